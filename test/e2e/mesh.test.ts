import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { AutoglmClient, AutoglmError, startMesh, type Mesh } from '@autoglm/client';
import { PriorityClass, TaskState, type TaskEvent } from '@autoglm/proto';
import { tempDir } from '../support/temp-dir';
import { until } from '../support/until';

/**
 * The whole mesh as separate processes (decision, monitor, 4 agents, parser),
 * driven through the public API the way a user drives it.
 */
describe('the local mesh, end to end', () => {
  const data = tempDir('e2e');
  let mesh: Mesh;
  let client: AutoglmClient;

  beforeAll(async () => {
    mesh = await startMesh({ dataDir: data.dir, ports: 'ephemeral', agents: 4, timeScale: 20, logLevel: 'warn' });
    client = new AutoglmClient({ address: mesh.publicAddress, tenant: 'e2e', token: mesh.adminToken, ca: mesh.ca });
    await until(async () => ((await client.listNodes()).nodes.length === 4 ? true : undefined), 20_000, '4 agents to register');
  }, 90_000);

  afterAll(async () => {
    client?.close();
    await mesh?.stop();
    data.remove();
  }, 60_000);

  it("keeps decision's data, the admin token and the keys to their owner", () => {
    const open: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(file);
        else if ((statSync(file).mode & 0o077) !== 0) open.push(file);
      }
    };
    walk(path.join(mesh.dataDir, 'decision'));
    expect(open).toEqual([]);
    expect(statSync(mesh.dataDir).mode & 0o777).toBe(0o700);
    expect(statSync(mesh.adminTokenFile).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(mesh.dataDir, 'tls', 'parser-key.pem')).mode & 0o777).toBe(0o600);
  });

  it('runs 200 submitted tasks to SUCCEEDED with their outputs', async () => {
    const submitted = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        client.submit(
          i % 2 === 0
            ? { model: 'glm-4-9b', payload: { $case: 'inference', inference: { prompt: `Task ${i}: summarise the plot of a short story.`, params: { maxTokens: 12 } } } }
            : { payload: { $case: 'batch', batch: { expectedDuration: { seconds: 0, nanos: 50_000_000 } } }, priorityClass: PriorityClass.BACKGROUND },
        ),
      ),
    );
    expect(new Set(submitted.map((s) => s.task!.id)).size).toBe(200);
    const finals = await Promise.all(
      submitted.map(async ({ task }) => {
        let last: TaskEvent | undefined;
        for await (const event of client.watch(task!.id)) last = event;
        return last;
      }),
    );
    expect(finals.map((e) => e?.state)).toEqual(Array(200).fill(TaskState.SUCCEEDED));
    const inference = await client.get(submitted[0]!.task!.id);
    expect(inference.result?.completionTokens).toBe(12);
    expect(inference.result?.output.length).toBeGreaterThan(0);
    expect(inference.result?.finishReason).toBe('length');
    const stats = await client.queueStats();
    expect(stats.succeeded).toBeGreaterThanOrEqual(200);
  }, 120_000);

  it('streams every transition of a task in order, and resumes after a sequence number', async () => {
    const { task } = await client.submit({ model: 'glm-4-9b', payload: { $case: 'inference', inference: { prompt: 'Hello', params: { maxTokens: 4 } } } });
    const events: TaskEvent[] = [];
    for await (const e of client.watch(task!.id)) events.push(e);
    expect(events.map((e) => e.state)).toEqual([TaskState.QUEUED, TaskState.ASSIGNED, TaskState.RUNNING, TaskState.SUCCEEDED]);
    expect(events.map((e) => e.sequence)).toEqual([1, 2, 3, 4]);
    const resumed: TaskEvent[] = [];
    for await (const e of client.watch(task!.id, 2)) resumed.push(e);
    expect(resumed.map((e) => e.sequence)).toEqual([3, 4]);
  }, 30_000);

  it('streams Infer tokens straight back with usage', async () => {
    const kinds: string[] = [];
    let text = '';
    let chunkTokens = 0;
    let usage;
    for await (const message of client.infer({ model: 'glm-4-9b', input: { prompt: 'Say hello to the scheduler.', params: { maxTokens: 24 } } })) {
      const kind = message.kind!;
      kinds.push(kind.$case);
      if (kind.$case === 'chunk') {
        text += kind.chunk.text;
        chunkTokens += kind.chunk.tokenCount;
      }
      if (kind.$case === 'done') usage = kind.done.usage;
    }
    expect(kinds[0]).toBe('accepted');
    expect(kinds[kinds.length - 1]).toBe('done');
    expect(kinds.filter((k) => k === 'chunk').length).toBeGreaterThan(1);
    expect(text.length).toBeGreaterThan(0);
    expect(usage!.completionTokens).toBe(24);
    expect(chunkTokens).toBe(24);
    expect(usage!.promptTokens).toBeGreaterThan(0);
    expect(usage!.timeToFirstToken).toBeDefined();
  }, 30_000);

  it('cancels a running task and a queued one', async () => {
    const { task: running } = await client.submit({ payload: { $case: 'batch', batch: { expectedDuration: { seconds: 600, nanos: 0 } } } });
    await until(async () => ((await client.get(running!.id)).state === TaskState.RUNNING ? true : undefined), 10_000, 'the task to run');
    const cancelled = await client.cancel(running!.id, 'test cancel');
    expect(cancelled.state).toBe(TaskState.CANCELLED);
    expect(cancelled.reason).toBe('test cancel');
    // A dependent of the cancelled task can no longer be accepted.
    await expect(client.submit({ payload: { $case: 'batch', batch: {} }, dependsOn: [running!.id] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });

    const { task: blocker } = await client.submit({ payload: { $case: 'batch', batch: { expectedDuration: { seconds: 600, nanos: 0 } } } });
    const { task: waiting } = await client.submit({ payload: { $case: 'batch', batch: {} }, dependsOn: [blocker!.id] });
    expect(waiting!.state).toBe(TaskState.WAITING_DEPS);
    await client.cancel(blocker!.id);
    const dependent = await until(async () => {
      const t = await client.get(waiting!.id);
      return t.state === TaskState.CANCELLED ? t : undefined;
    }, 10_000, 'the dependent to be cancelled');
    expect(dependent.reason).toContain(blocker!.id);
  }, 30_000);

  it('requeues the work of an agent killed with SIGKILL, and every task still succeeds once', async () => {
    const submitted = await Promise.all(
      Array.from({ length: 40 }, () => client.submit({ payload: { $case: 'batch', batch: { expectedDuration: { seconds: 20, nanos: 0 } } } })),
    );
    const ids = submitted.map((s) => s.task!.id);
    const onVictim = await until(async () => {
      const tasks = await Promise.all(ids.map((id) => client.get(id)));
      const running = tasks.filter((t) => t.state === TaskState.RUNNING && t.nodeId === 'agent-1');
      return running.length > 0 ? running : undefined;
    }, 10_000, 'tasks running on agent-1');
    mesh.processes['agent-1']!.kill('SIGKILL');
    const finals = await Promise.all(
      ids.map(async (id) => {
        const states: TaskState[] = [];
        for await (const e of client.watch(id)) states.push(e.state);
        return states;
      }),
    );
    for (const states of finals) {
      expect(states[states.length - 1]).toBe(TaskState.SUCCEEDED);
      expect(states.filter((s) => s === TaskState.SUCCEEDED)).toHaveLength(1);
    }
    const requeued = await Promise.all(onVictim.map((t) => client.get(t.id)));
    for (const t of requeued) expect(t.attempt).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('rejects bad input with INVALID_ARGUMENT naming the field, and keeps serving', async () => {
    const cases: Array<[Parameters<AutoglmClient['submit']>[0], string]> = [
      [{ model: 'glm-9', payload: { $case: 'inference', inference: { prompt: 'x' } } }, 'model'],
      [{ model: 'glm-4-9b', payload: { $case: 'inference', inference: { prompt: '' } } }, 'inference'],
      [{ model: 'glm-4-9b', payload: { $case: 'inference', inference: { prompt: '   ' } } }, 'inference.prompt'],
      [{ payload: { $case: 'batch', batch: {} }, resources: { gpuCount: 1000 } }, 'resources.gpu_count'],
      [{ payload: { $case: 'batch', batch: {} }, resources: { gpuMemoryBytes: 10 ** 15 } }, 'resources.gpu_memory_bytes'],
      [{ payload: { $case: 'batch', batch: {} }, dependsOn: ['6f1d2c1e-0000-4000-8000-000000000000'] }, 'depends_on[0]'],
      [{ payload: { $case: 'batch', batch: {} }, priorityClass: 42 as PriorityClass }, 'priority_class'],
      [{ payload: { $case: 'batch', batch: {} }, deadline: { seconds: 1, nanos: 2_000_000_000 } }, 'deadline'],
    ];
    for (const [request, field] of cases) {
      const error = await client.submit(request).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(AutoglmError);
      expect((error as AutoglmError).code).toBe('INVALID_ARGUMENT');
      expect((error as AutoglmError).message).toContain(field);
    }
    const huge = 'x'.repeat(5 * 1024 * 1024);
    await expect(client.submit({ model: 'glm-4-9b', payload: { $case: 'inference', inference: { prompt: huge } } })).rejects.toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
    const { task } = await client.submit({ model: 'glm-4-9b', payload: { $case: 'inference', inference: { prompt: 'still here?', params: { maxTokens: 2 } } } });
    expect(task!.state).toBe(TaskState.QUEUED);
  }, 30_000);
});
