import { credentials, Metadata } from '@grpc/grpc-js';
import { InferRequest, InferStart, TaskServiceClient, TaskState, type InferResponse } from '@autoglm/proto';
import { startInProcessMesh, type InProcessMesh } from '../support/in-process-mesh';
import { until } from '../support/until';

describe('the bidirectional Infer stream against real servers', () => {
  let mesh: InProcessMesh;
  beforeAll(async () => {
    mesh = await startInProcessMesh({ timeScale: 2 });
  }, 60_000);
  afterEach(() => mesh.expectNoLeakedStreams());
  afterAll(() => mesh?.stop(), 30_000);

  const start = (maxTokens: number) => ({ model: 'glm-4-9b', input: { prompt: 'Tell me about schedulers.', params: { maxTokens } } });

  it('streams accepted, chunks and done', async () => {
    const out: InferResponse[] = [];
    for await (const m of mesh.client.infer(start(6))) out.push(m);
    expect(out[0]!.kind!.$case).toBe('accepted');
    expect(out.filter((m) => m.kind!.$case === 'chunk')).toHaveLength(6);
    const done = out[out.length - 1]!.kind;
    expect(done?.$case === 'done' && done.done.usage?.completionTokens).toBe(6);
  });

  it('a cancel message stops generation on the agent and ends the task CANCELLED', async () => {
    const abort = new AbortController();
    const out: InferResponse[] = [];
    for await (const m of mesh.client.infer(start(5000), { signal: abort.signal })) {
      out.push(m);
      if (out.filter((x) => x.kind!.$case === 'chunk').length === 3) abort.abort();
    }
    const accepted = out[0]!.kind;
    const taskId = accepted?.$case === 'accepted' ? accepted.accepted.taskId : '';
    const task = await until(async () => {
      const t = await mesh.client.get(taskId);
      return t.state === TaskState.CANCELLED ? t : undefined;
    }, 10_000, 'the task to be cancelled');
    expect(task.state).toBe(TaskState.CANCELLED);
  });

  /** A raw Infer call, started, whose accepted task id and chunks are seen as they come; the caller decides how it ends. */
  function rawInfer(maxTokens: number, read = true) {
    const tasks = new TaskServiceClient(mesh.parser.grpcAddress, credentials.createInsecure());
    const md = new Metadata();
    md.set('authorization', `Bearer ${mesh.adminToken}`);
    const call = tasks.infer(md);
    call.on('error', () => undefined);
    let chunks = 0;
    const accepted = new Promise<string>((resolve) =>
      call.on('data', (m: InferResponse) => {
        if (m.kind?.$case === 'accepted') resolve(m.kind.accepted.taskId);
        if (m.kind?.$case === 'chunk') chunks += 1;
        // A client that stops reading: the parser's writes to it back up.
        if (!read && m.kind?.$case === 'chunk') call.pause();
      }),
    );
    call.write(InferRequest.fromPartial({ kind: { $case: 'start', start: InferStart.fromPartial(start(maxTokens)) } }));
    const ended = new Promise<void>((resolve) => call.on('status', () => resolve()));
    /** Drops the call as a client that went away does (no cancel message), and closes the channel once the call has ended. */
    const goAway = async () => {
      call.cancel();
      if (!read) call.resume();
      await ended;
      tasks.close();
    };
    return { accepted, chunks: () => chunks, goAway };
  }

  async function expectCancelledAndFreed(taskId: string): Promise<void> {
    const task = await until(async () => {
      const t = await mesh.client.get(taskId);
      return t.finishedAt ? t : undefined;
    }, 10_000, 'the task to end');
    expect(task.state).toBe(TaskState.CANCELLED);
    // The agent stopped generating: no GPU of the node is held by the stream any more.
    await until(async () => ((await mesh.client.listNodes()).nodes[0]!.runningTasks === 0 ? true : undefined), 10_000, 'the agent to free the stream\'s capacity');
  }

  it('a client that goes away mid-stream (no cancel message) ends the task CANCELLED and frees the agent', async () => {
    const infer = rawInfer(5000);
    const taskId = await infer.accepted;
    await until(async () => (infer.chunks() >= 3 ? true : undefined), 10_000, 'three chunks');
    await infer.goAway();
    await expectCancelledAndFreed(taskId);
  });

  it('a client that stops reading, then goes away, ends the task CANCELLED and frees the agent', async () => {
    const infer = rawInfer(5000, false);
    const taskId = await infer.accepted;
    // Generating into a client that reads nothing: the parser's writes back up behind its flow-control window.
    await until(async () => ((await mesh.client.get(taskId)).state === TaskState.RUNNING ? true : undefined), 10_000, 'the task to run');
    await infer.goAway();
    await expectCancelledAndFreed(taskId);
  });

  it('refuses a stream that does not start with start', async () => {
    const bad = async () => {
      for await (const _ of mesh.client.infer({ model: 'glm-9', input: { prompt: 'x' } })) void _;
    };
    await expect(bad()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
