import { TaskState, type InferResponse } from '@autoglm/proto';
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

  it('refuses a stream that does not start with start', async () => {
    const bad = async () => {
      for await (const _ of mesh.client.infer({ model: 'glm-9', input: { prompt: 'x' } })) void _;
    };
    await expect(bad()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
