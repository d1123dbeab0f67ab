import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Event, PriorityClass, Task, TaskEvent, TaskState } from '@autoglm/proto';
import pino from 'pino';
import { DashboardEvents } from './dashboard-events';
import { LiveState, type LiveSample } from './live-state';

describe('DashboardEvents', () => {
  let live: LiveState;
  let events: DashboardEvents;
  let server: Server;

  async function serve(options: { pushEveryMs: number; heartbeatMs: number }): Promise<string> {
    events = new DashboardEvents({ live, logger: pino({ level: 'silent' }), ...options });
    server = createServer((_req, res) => events.accept(res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  }

  /** A stream, read until its text so far satisfies a condition. */
  async function open(url: string): Promise<{ readUntil(done: (text: string) => boolean): Promise<string>; close(): void }> {
    const abort = new AbortController();
    const res = await fetch(url, { signal: abort.signal });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    return {
      async readUntil(done) {
        while (!done(text)) {
          const { value, done: ended } = await reader.read();
          if (ended) throw new Error(`the stream ended after: ${text}`);
          text += decoder.decode(value, { stream: true });
        }
        return text;
      },
      close: () => abort.abort(),
    };
  }

  beforeEach(() => {
    live = new LiveState();
  });

  afterEach(async () => {
    events.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('sends a comment when nothing moves, and the quiet ticks\' samples with the next delta', async () => {
    const url = await serve({ pushEveryMs: 20, heartbeatMs: 100 });
    const stream = await open(url);
    try {
      const quiet = await stream.readUntil((text) => text.includes(': heartbeat\n\n'));
      // The first tick has nothing to compare with, so it sends a delta; the quiet ones after it send nothing.
      expect(quiet).toMatch(/^retry: 2000\n\nevent: snapshot\ndata: [^\n]+\n\n(event: delta\ndata: [^\n]+\n\n)?: heartbeat\n\n$/);

      const task = TaskEvent.fromPartial({ taskId: 't', sequence: 1, state: TaskState.QUEUED, task: Task.fromPartial({ id: 't', tenant: 'acme', spec: { priorityClass: PriorityClass.URGENT } }) });
      live.observe(Event.fromPartial({ kind: { $case: 'task', task } }));
      const text = (await stream.readUntil((t) => t.slice(quiet.length).includes('event: delta'))).slice(quiet.length);
      const delta = JSON.parse(/event: delta\ndata: (.*)\n\n/.exec(text)![1]!) as { samples: LiveSample[]; byClass: Array<{ pending: number }> };
      expect(delta.byClass[0]!.pending).toBe(1);
      // The quiet ticks' samples, in order, then this tick's: the charts have no gap.
      expect(delta.samples.length).toBeGreaterThan(2);
      expect(delta.samples.map((s) => s.t)).toEqual([...delta.samples.map((s) => s.t)].sort((a, b) => a - b));
    } finally {
      stream.close();
    }
  });

  it('keeps sampling with nobody watching, so a dashboard opened later has history', async () => {
    const url = await serve({ pushEveryMs: 10, heartbeatMs: 15_000 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const stream = await open(url);
    const text = await stream.readUntil((t) => t.includes('event: snapshot') && t.endsWith('\n\n')).finally(() => stream.close());
    const snapshot = JSON.parse(/event: snapshot\ndata: (.*)\n\n/.exec(text)![1]!) as { samples: LiveSample[] };
    expect(snapshot.samples.length).toBeGreaterThan(2);
  });
});
