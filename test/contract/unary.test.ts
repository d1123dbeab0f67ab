import { AutoglmError } from '@autoglm/client';
import { PriorityClass, TaskState } from '@autoglm/proto';
import { startInProcessMesh, type InProcessMesh } from '../support/in-process-mesh';

describe('unary RPCs against real servers', () => {
  let mesh: InProcessMesh;
  beforeAll(async () => {
    mesh = await startInProcessMesh();
  }, 60_000);
  afterEach(() => mesh.expectNoLeakedStreams());
  afterAll(() => mesh?.stop(), 30_000);

  it('submits, reads back and explains a task', async () => {
    const { task, created } = await mesh.client.submit({
      requestId: 'unary-1',
      model: 'glm-4-9b',
      priorityClass: PriorityClass.URGENT,
      labels: { team: 'search' },
      payload: { $case: 'inference', inference: { messages: [{ role: 'user', content: 'What is a KV cache?' }], params: { maxTokens: 5 } } },
    });
    expect(created).toBe(true);
    expect(task!.spec!.inputTokens).toBeGreaterThan(5);
    expect(task!.spec!.gpuMemoryBytes).toBeGreaterThan(16 * 1024 ** 3);
    const again = await mesh.client.submit({ requestId: 'unary-1', model: 'glm-4-9b', payload: { $case: 'inference', inference: { prompt: 'different' } } });
    expect(again.created).toBe(false);
    expect(again.task!.id).toBe(task!.id);
    const read = await mesh.client.get(task!.id);
    expect(read.spec!.labels).toEqual({ team: 'search' });
    const explained = await mesh.client.explain(task!.id);
    expect(explained.factors.map((f) => f.name)).toEqual(['class', 'age', 'deadline', 'dependency', 'business', 'fairshare', 'size', 'cost']);
    expect(explained.priority).toBeCloseTo(explained.factors.reduce((sum, f) => sum + f.contribution, 0), 6);
  });

  it('lists tasks newest first, page by page', async () => {
    for (let i = 0; i < 5; i++) await mesh.client.submit({ tenant: 'lister', payload: { $case: 'batch', batch: {} } });
    const first = await mesh.client.list({ tenant: 'lister', pageSize: 3 });
    expect(first.tasks).toHaveLength(3);
    expect(first.nextPageToken).not.toBe('');
    const second = await mesh.client.list({ tenant: 'lister', pageSize: 3, pageToken: first.nextPageToken });
    expect(second.tasks).toHaveLength(2);
    const ids = [...first.tasks, ...second.tasks].map((t) => t.id);
    expect(new Set(ids).size).toBe(5);
  });

  it('answers NOT_FOUND and INVALID_ARGUMENT with the field named', async () => {
    await expect(mesh.client.get('6f1d2c1e-0000-4000-8000-000000000000')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const err = await mesh.client.get('not-a-uuid').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AutoglmError);
    expect((err as AutoglmError).code).toBe('INVALID_ARGUMENT');
    expect((err as AutoglmError).message).toContain('task_id');
    await expect(mesh.client.list({ pageSize: 5000 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(mesh.client.list({ pageToken: 'garbage' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('reports nodes and queue stats', async () => {
    const { nodes } = await mesh.client.listNodes();
    expect(nodes[0]!.gpus).toHaveLength(2);
    expect(nodes[0]!.models).toContain('glm-4-9b');
    const stats = await mesh.client.queueStats();
    expect(stats.queued + stats.running + Number(stats.succeeded)).toBeGreaterThan(0);
  });

  it('cancels a queued or running task and returns a finished one unchanged', async () => {
    const { task } = await mesh.client.submit({ payload: { $case: 'batch', batch: { expectedDuration: { seconds: 3600, nanos: 0 } } } });
    const cancelled = await mesh.client.cancel(task!.id, 'no longer needed');
    expect(cancelled.state).toBe(TaskState.CANCELLED);
    const again = await mesh.client.cancel(task!.id);
    expect(again.state).toBe(TaskState.CANCELLED);
    expect(again.reason).toBe('no longer needed');
  });
});
