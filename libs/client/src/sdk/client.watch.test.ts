import { type ServerWritableStream, status } from '@grpc/grpc-js';
import { TaskEvent, TaskState, type WatchTaskRequest } from '@autoglm/proto';
import { AutoglmClient } from './client';
import { AutoglmError } from './errors';
import { startTestServer, type TestServer } from './test-server';

type WatchCall = ServerWritableStream<WatchTaskRequest, TaskEvent>;

const event = (taskId: string, sequence: number, state: TaskState): TaskEvent =>
  TaskEvent.fromPartial({ taskId, sequence, state });

describe('AutoglmClient.watch (server stream)', () => {
  let server: TestServer | undefined;
  let client: AutoglmClient | undefined;

  afterEach(async () => {
    client?.close();
    await server?.shutdown();
    server = undefined;
    client = undefined;
  });

  it('yields the events after the given sequence and ends when the server ends the stream', async () => {
    let request: WatchTaskRequest | undefined;
    server = await startTestServer({
      watchTask: (call: WatchCall) => {
        request = call.request;
        call.write(event(call.request.taskId, 3, TaskState.RUNNING));
        call.write(event(call.request.taskId, 4, TaskState.SUCCEEDED));
        call.end();
      },
    });
    client = new AutoglmClient({ address: server.address, tenant: 'acme' });
    const seen: TaskEvent[] = [];
    for await (const e of client.watch('t-1', 2)) seen.push(e);
    expect(request).toMatchObject({ taskId: 't-1', afterSequence: 2 });
    expect(seen.map((e) => [e.sequence, e.state])).toEqual([
      [3, TaskState.RUNNING],
      [4, TaskState.SUCCEEDED],
    ]);
  });

  it('yields what arrived, then throws the status as an AutoglmError', async () => {
    server = await startTestServer({
      watchTask: (call: WatchCall) => {
        call.write(event('t-1', 1, TaskState.QUEUED));
        call.emit('error', { code: status.UNAVAILABLE, details: 'decision went away' });
      },
    });
    client = new AutoglmClient({ address: server.address });
    const seen: TaskEvent[] = [];
    const error = await (async () => {
      for await (const e of client.watch('t-1')) seen.push(e);
    })().catch((e: unknown) => e);
    expect(seen).toHaveLength(1);
    expect(error).toBeInstanceOf(AutoglmError);
    expect(error).toMatchObject({ code: 'UNAVAILABLE', details: 'decision went away' });
  });

  it('ends quietly and cancels the server call when the signal aborts', async () => {
    let serverSawCancel: Promise<void> | undefined;
    server = await startTestServer({
      watchTask: (call: WatchCall) => {
        serverSawCancel = new Promise((resolve) => call.on('cancelled', () => resolve()));
        call.write(event('t-1', 1, TaskState.QUEUED));
        // The stream stays open: only the client's abort can end it.
      },
    });
    client = new AutoglmClient({ address: server.address });
    const controller = new AbortController();
    const seen: TaskEvent[] = [];
    for await (const e of client.watch('t-1', 0, { signal: controller.signal })) {
      seen.push(e);
      controller.abort();
    }
    expect(seen).toHaveLength(1);
    await serverSawCancel;
  });

  it('cancels the server call when the consumer stops iterating early', async () => {
    let serverSawCancel: Promise<void> | undefined;
    server = await startTestServer({
      watchTask: (call: WatchCall) => {
        serverSawCancel = new Promise((resolve) => call.on('cancelled', () => resolve()));
        call.write(event('t-1', 1, TaskState.QUEUED));
      },
    });
    client = new AutoglmClient({ address: server.address });
    for await (const e of client.watch('t-1')) {
      expect(e.sequence).toBe(1);
      break;
    }
    await serverSawCancel;
  });
});
