import { AutoglmClient, startMesh, type Mesh } from '@autoglm/client';
import { PriorityClass, TaskState, WaitingCause, type Task } from '@autoglm/proto';
import { timestampToMillis } from '@autoglm/core';
import { tempDir } from '../support/temp-dir';
import { until } from '../support/until';

/**
 * The scheduling policy through the public API, on a saturated mesh: one
 * simulated host of 2 GPUs, far more background work than it can run.
 */
describe('scheduling policy, end to end', () => {
  const data = tempDir('e2e-policy');
  let mesh: Mesh;
  let client: AutoglmClient;

  beforeAll(async () => {
    mesh = await startMesh({ dataDir: data.dir, ports: 'ephemeral', agents: 1, gpusPerAgent: 2, timeScale: 20, logLevel: 'warn' });
    client = new AutoglmClient({ address: mesh.publicAddress, tenant: 'e2e-policy', token: mesh.adminToken, ca: mesh.ca });
    await until(async () => ((await client.listNodes()).nodes.length === 1 ? true : undefined), 20_000, 'the agent to register');
  }, 90_000);

  afterAll(async () => {
    client?.close();
    await mesh?.stop();
    data.remove();
  }, 60_000);

  it('starts urgent inference submitted after 1,000 background tasks before the ones still queued', async () => {
    const background = await Promise.all(
      Array.from({ length: 1000 }, () =>
        client.submit({ payload: { $case: 'batch', batch: { expectedDuration: { seconds: 200, nanos: 0 } } }, priorityClass: PriorityClass.BACKGROUND }),
      ),
    );
    // Saturated: the host runs what it can and the rest waits.
    await until(async () => {
      const s = await client.queueStats();
      return s.running > 0 && s.queued > 500 ? s : undefined;
    }, 20_000, 'the host to fill up');
    const before = await client.queueStats();

    let urgentId = '';
    for await (const message of client.infer({ model: 'glm-4-9b', priorityClass: PriorityClass.URGENT, input: { prompt: 'Answer now.', params: { maxTokens: 4 } } })) {
      if (message.kind?.$case === 'accepted') urgentId = message.kind.accepted.taskId;
    }
    const urgent = await client.get(urgentId);
    expect(urgent.state).toBe(TaskState.SUCCEEDED);
    // When decision gave it a GPU (background work placed in the same pass may start a moment sooner).
    let assignedAt = 0;
    for await (const e of client.watch(urgentId)) if (e.state === TaskState.ASSIGNED) assignedAt = timestampToMillis(e.time!);

    const tasks: Task[] = await Promise.all(background.map((b) => client.get(b.task!.id)));
    const startedFirst = tasks.filter((t) => t.startedAt && timestampToMillis(t.startedAt) < assignedAt).length;
    // Only what already held the GPUs (or was being assigned) when it arrived started before it.
    expect(startedFirst).toBeLessThanOrEqual(before.running + 2);
    expect(tasks.filter((t) => t.state === TaskState.QUEUED).length).toBeGreaterThan(500);

    // A queued background task can say why it waits, factor by factor.
    const waiting = tasks.find((t) => t.state === TaskState.QUEUED)!;
    const why = await client.explain(waiting.id);
    expect(why.factors.map((f) => f.name)).toEqual(['class', 'age', 'deadline', 'dependency', 'business', 'fairshare', 'size', 'cost']);
    expect(why.queuePosition).toBeGreaterThan(0);
    expect([WaitingCause.CAPACITY, WaitingCause.PRIORITY]).toContain(why.waitingCause);
    expect(why.waitingReason).not.toBe('');

    for (const t of tasks) if (t.state === TaskState.QUEUED) void client.cancel(t.id, 'test over').catch(() => undefined);
  }, 120_000);
});
