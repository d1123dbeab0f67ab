import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { Event, NodeState, PriorityClass, Task, TaskEvent, TaskState } from '@autoglm/proto';
import pino from 'pino';
import { DashboardEvents, type DashboardEventsOptions } from './dashboard-events';
import type { FeedbackSource, FeedbackView } from './dashboard-feedback';
import { LiveState, type LiveSample } from './live-state';

/** Polls `check` until it holds, failing after `ms`. */
async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function dataOf<T>(event: string, text: string): T {
  return JSON.parse(new RegExp(`event: ${event}\ndata: (.*)\n\n`).exec(text)![1]!) as T;
}

describe('DashboardEvents', () => {
  let live: LiveState;
  let events: DashboardEvents;
  let server: Server;
  let port: number;

  async function serve(options: Omit<DashboardEventsOptions, 'live' | 'logger'> & { logger?: DashboardEventsOptions['logger'] }): Promise<string> {
    events = new DashboardEvents({ live, logger: pino({ level: 'silent' }), ...options });
    server = createServer((_req, res) => events.accept(res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    return `http://127.0.0.1:${port}/`;
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
    // Each look is a new dashboard: its snapshot has the samples taken while none was open.
    const samples = async (): Promise<number> => {
      const stream = await open(url);
      const text = await stream.readUntil((t) => t.includes('event: snapshot') && t.endsWith('\n\n')).finally(() => stream.close());
      return dataOf<{ samples: LiveSample[] }>('snapshot', text).samples.length;
    };
    let seen = await samples();
    const deadline = Date.now() + 5000;
    while (seen <= 2 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      seen = await samples();
    }
    expect(seen).toBeGreaterThan(2);
  });

  it('resends the feedback to a dashboard opened after nobody watched, once it differs from the snapshot', async () => {
    // The snapshot is made while the loop says 2; every other look says 1, as the last dashboard was sent.
    let snapshotSays: number | undefined;
    const feedback: FeedbackSource = {
      enabled: true,
      sloStatus: () => [],
      alerts: () => [],
      recentActions: () => [],
      recommendations: () => {
        const computedAt = snapshotSays ?? 1;
        snapshotSays = undefined;
        return { recommendations: [], computedAt };
      },
    };
    const url = await serve({ pushEveryMs: 20, heartbeatMs: 60, feedback });
    const first = await open(url);
    // A delta, not the snapshot: the streams have been sent feedback that says 1.
    await first.readUntil((t) => /event: delta\ndata: [^\n]*"recommendedAtMs":1\}/.test(t)).finally(() => first.close());
    await until('the first dashboard to leave', () => events.size === 0);

    snapshotSays = 2;
    const second = await open(url);
    try {
      const opened = await second.readUntil((t) => t.includes('event: snapshot') && t.endsWith('\n\n'));
      expect(dataOf<{ feedback: FeedbackView }>('snapshot', opened).feedback.recommendedAtMs).toBe(2);
      // Nothing else moves: without the resend, only heartbeats would follow and the page would keep showing 2.
      const later = (await second.readUntil((t) => t.slice(opened.length).includes('"recommendedAtMs":1}') || t.split(': heartbeat').length > 4)).slice(opened.length);
      expect(dataOf<{ feedback: FeedbackView }>('delta', later).feedback.recommendedAtMs).toBe(1);
    } finally {
      second.close();
    }
  });

  it('cuts a dashboard that stops reading once its backlog passes the cap', async () => {
    // A snapshot (40 MiB) far past what the sockets between us and the client buffer.
    for (let i = 0; i < 40; i += 1) {
      live.observe(Event.fromPartial({ kind: { $case: 'node', node: { nodeId: `node-${i}`, state: NodeState.READY, stateReason: 'x'.repeat(2 ** 20) } } }));
    }
    const warnings: string[] = [];
    await serve({ pushEveryMs: 10, heartbeatMs: 10, maxBacklogBytes: 2 ** 20, logger: pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) }) });
    let socket: Socket | undefined;
    try {
      socket = connect(port, '127.0.0.1');
      // Connected, asking, and never reading a byte.
      socket.pause();
      socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      // The next heartbeat finds most of the snapshot still unsent.
      await until('the dashboard to be cut', () => warnings.some((w) => w.includes('the client is not reading')));
      expect(events.size).toBe(0);
    } finally {
      socket?.destroy();
    }
  });
});
