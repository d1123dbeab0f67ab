import { ManualScheduler } from '@autoglm/core';
import { TaskKind, TaskSpec } from '@autoglm/proto';
import { ExecutionError, type ExecutionRequest } from './backend';
import { SimBackend } from './sim-backend';

const GIB = 1024 ** 3;
const CATALOG: Record<string, { weightBytes: number; kvBytesPerToken: number }> = {
  'glm-4-9b': { weightBytes: 18 * GIB, kvBytesPerToken: 40_960 },
};
const catalog = (model: string) => CATALOG[model];

function inferenceSpec(inputTokens: number, maxOutputTokens: number, model = 'glm-4-9b'): TaskSpec {
  return TaskSpec.fromPartial({
    kind: TaskKind.INFERENCE,
    model,
    inputTokens,
    maxOutputTokens,
    gpuCount: 1,
    payload: { $case: 'inference', inference: { prompt: 'hello' } },
  });
}

function batchSpec(seconds: number, gpuMemoryBytes: number): TaskSpec {
  return TaskSpec.fromPartial({
    kind: TaskKind.BATCH,
    gpuMemoryBytes,
    payload: { $case: 'batch', batch: { expectedDuration: { seconds, nanos: 0 } } },
  });
}

function request(spec: TaskSpec, overrides: Partial<ExecutionRequest> = {}) {
  const chunks: Array<[string, number]> = [];
  const events: string[] = [];
  const controller = new AbortController();
  const req: ExecutionRequest = {
    taskId: 't1',
    attempt: 1,
    spec,
    gpuIndices: [0],
    signal: controller.signal,
    onStart: () => events.push('start'),
    onChunk: (text, count) => {
      if (chunks.length === 0) events.push('first-chunk');
      chunks.push([text, count]);
    },
    ...overrides,
  };
  return { req, chunks, events, controller };
}

describe('SimBackend', () => {
  it('streams exactly maxOutputTokens tokens and accounts them', async () => {
    const scheduler = new ManualScheduler();
    const backend = new SimBackend({ catalog, gpuCount: 2, scheduler });
    const { req, chunks, events } = request(inferenceSpec(500, 32));
    const done = backend.execute(req);
    scheduler.runUntilIdle();
    const outcome = await done;

    expect(chunks).toHaveLength(32);
    expect(chunks.every(([, n]) => n === 1)).toBe(true);
    expect(events).toEqual(['start', 'first-chunk']);
    expect(outcome).toMatchObject({ finishReason: 'length', promptTokens: 500, completionTokens: 32, exitCode: 0 });
    expect(outcome.output).toBe(chunks.map(([t]) => t).join(''));
    expect(outcome.timeToFirstTokenMs).toBeCloseTo((0.01969 + 6.77e-5 * 500) * 1000, 9);
    expect(outcome.runTimeMs).toBeGreaterThan(outcome.timeToFirstTokenMs);
    expect(backend.gpuStatus()[0]?.memoryUsedBytes).toBe(18 * GIB);
    await backend.close();
  });

  it('runs on the first GPU it is given', async () => {
    const scheduler = new ManualScheduler();
    const backend = new SimBackend({ catalog, gpuCount: 4, scheduler });
    const { req } = request(inferenceSpec(10, 1000), { gpuIndices: [2, 3] });
    const done = backend.execute(req);
    scheduler.advance(100);
    expect(backend.gpuStatus().map((g) => g.memoryUsedBytes > 0)).toEqual([false, false, true, false]);
    expect(backend.load().numRequestsRunning).toBe(1);
    await backend.close();
    await expect(done).resolves.toMatchObject({ finishReason: 'cancelled' });
  });

  it('resolves cancelled on abort and frees the KV cache', async () => {
    const scheduler = new ManualScheduler();
    const backend = new SimBackend({ catalog, gpuCount: 1, scheduler });
    const { req, chunks, controller } = request(inferenceSpec(100, 10_000));
    const done = backend.execute(req);
    scheduler.advance(500);
    controller.abort();
    const outcome = await done;

    expect(outcome.finishReason).toBe('cancelled');
    expect(outcome.completionTokens).toBe(chunks.length);
    expect(chunks.length).toBeGreaterThan(0);
    expect(backend.gpuStatus()[0]?.memoryUsedBytes).toBe(18 * GIB);
    const seen = chunks.length;
    scheduler.runUntilIdle(); // the step in flight ends, and nothing follows it
    expect(chunks).toHaveLength(seen);
    expect(backend.load().numRequestsRunning).toBe(0);
  });

  it('does not start work whose signal is already aborted', async () => {
    const backend = new SimBackend({ catalog, scheduler: new ManualScheduler() });
    const { req, controller, events } = request(inferenceSpec(10, 10));
    controller.abort();
    await expect(backend.execute(req)).resolves.toMatchObject({ finishReason: 'cancelled', completionTokens: 0 });
    expect(events).toEqual([]);
  });

  it('fails the share of attempts fault injection asks for, as a faulty GPU would (retryable)', async () => {
    const draws = [0.1, 0.5, 0.29];
    const backend = new SimBackend({ catalog, scheduler: new ManualScheduler(), failFraction: 0.3, random: () => draws.shift()! });
    const outcomes = await Promise.all(
      draws.slice().map(() => backend.execute(request(inferenceSpec(10, 10), { replicaId: 'r-none' }).req).catch((e: unknown) => e as ExecutionError)),
    );
    expect(outcomes.map((e) => (e as ExecutionError).message.startsWith('simulated GPU fault'))).toEqual([true, false, true]);
    expect(outcomes.every((e) => (e as ExecutionError).retryable)).toBe(true);
  });

  it('rejects a model outside the catalog as not retryable', async () => {
    const backend = new SimBackend({ catalog, scheduler: new ManualScheduler() });
    const { req } = request(inferenceSpec(10, 10, 'glm-9'));
    const error = await backend.execute(req).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExecutionError);
    expect(error).toMatchObject({ retryable: false, message: 'model "glm-9" is not in this agent\'s catalog' });
  });

  it('fails a sequence as retryable when its replica is not here, or is unloaded under it: another placement may serve it', async () => {
    const scheduler = new ManualScheduler();
    const backend = new SimBackend({ catalog, gpuCount: 1, scheduler });
    const missing = request(inferenceSpec(100, 10), { replicaId: 'r-gone' });
    await expect(backend.execute(missing.req)).rejects.toMatchObject({ retryable: true, message: expect.stringContaining('replica r-gone is not loaded') });

    backend.loadReplica({ replicaId: 'r1', model: 'glm-4-9b', gpuIndices: [0], capacityTokens: 0, maxSequences: 0 });
    const running = request(inferenceSpec(100, 10_000), { replicaId: 'r1' });
    const done = backend.execute(running.req);
    scheduler.advance(30_000);
    expect(running.chunks.length).toBeGreaterThan(0);
    backend.evictReplica({ replicaId: 'r1', reason: 'its GPUs are needed' });
    await expect(done).rejects.toMatchObject({ retryable: true, message: expect.stringContaining('replica was unloaded') });
    await backend.close();
  });

  it('runs a batch job for its expected duration over the time scale, on all its GPUs', async () => {
    const scheduler = new ManualScheduler();
    const backend = new SimBackend({ catalog, gpuCount: 4, timeScale: 10, scheduler });
    const { req, events } = request(batchSpec(2, 10 * GIB), { gpuIndices: [1, 2] });
    const done = backend.execute(req);
    expect(events).toEqual(['start']);
    expect(backend.gpuStatus().map((g) => g.utilization)).toEqual([0, 1, 1, 0]);
    scheduler.advance(199);
    expect(backend.gpuStatus()[1]?.utilization).toBe(1);
    scheduler.advance(1);
    await expect(done).resolves.toMatchObject({ finishReason: 'stop', exitCode: 0, runTimeMs: 200 });
    expect(backend.gpuStatus().map((g) => g.utilization)).toEqual([0, 0, 0, 0]);
  });

  it('tells a job that can never fit from one that must wait for memory', async () => {
    const scheduler = new ManualScheduler();
    const backend = new SimBackend({ catalog, gpuCount: 1, gpuMemoryBytes: 40 * GIB, scheduler });
    const never = await backend.execute(request(batchSpec(1, 41 * GIB)).req).catch((e: unknown) => e);
    expect(never).toMatchObject({ retryable: false });

    const first = backend.execute(request(batchSpec(1, 30 * GIB), { taskId: 'a' }).req);
    const later = await backend.execute(request(batchSpec(1, 30 * GIB), { taskId: 'b' }).req).catch((e: unknown) => e);
    expect(later).toBeInstanceOf(ExecutionError);
    expect(later).toMatchObject({ retryable: true });
    scheduler.runUntilIdle();
    await expect(first).resolves.toMatchObject({ finishReason: 'stop' });
  });

  it('finishes a zero-length batch job at once', async () => {
    const scheduler = new ManualScheduler();
    const backend = new SimBackend({ catalog, scheduler });
    const done = backend.execute(request(batchSpec(0, 0)).req);
    scheduler.advance(0);
    await expect(done).resolves.toMatchObject({ finishReason: 'stop', runTimeMs: 0 });
  });

  it('fails a job at its end when its env asks for a simulated failure, retryable or not', async () => {
    const scheduler = new ManualScheduler();
    const backend = new SimBackend({ catalog, scheduler });
    const failing = (mode: string) =>
      TaskSpec.fromPartial({ ...batchSpec(1, 0), payload: { $case: 'batch', batch: { expectedDuration: { seconds: 1, nanos: 0 }, env: { AUTOGLM_SIM_FAIL: mode } } } });
    const retryable = backend.execute(request(failing('retryable'), { taskId: 'r' }).req).catch((e: unknown) => e);
    const permanent = backend.execute(request(failing('permanent'), { taskId: 'p' }).req).catch((e: unknown) => e);
    scheduler.advance(1000);
    expect(await retryable).toMatchObject({ retryable: true, message: expect.stringContaining('AUTOGLM_SIM_FAIL=retryable') });
    expect(await permanent).toMatchObject({ retryable: false });
    await expect(backend.execute(request(failing('sometimes'), { taskId: 's' }).req)).rejects.toMatchObject({ retryable: false, message: expect.stringContaining('"sometimes"') });
  });

  it('runs on real timers at a high time scale', async () => {
    const backend = new SimBackend({ catalog, gpuCount: 1, timeScale: 1000 });
    const a = request(inferenceSpec(200, 50), { taskId: 'a' });
    const b = request(inferenceSpec(200, 50), { taskId: 'b' });
    const outcomes = await Promise.all([backend.execute(a.req), backend.execute(b.req)]);
    expect(outcomes.map((o) => o.completionTokens)).toEqual([50, 50]);
    expect(a.chunks).toHaveLength(50);
    expect(backend.load()).toEqual({ numRequestsRunning: 0, numRequestsWaiting: 0, kvCacheUsagePerc: 0 });
    await backend.close();
  });

  it('close cancels running work and refuses new work', async () => {
    const backend = new SimBackend({ catalog, gpuCount: 1, timeScale: 1 });
    const done = backend.execute(request(inferenceSpec(10, 100_000)).req);
    await backend.close();
    await expect(done).resolves.toMatchObject({ finishReason: 'cancelled' });
    await expect(backend.execute(request(inferenceSpec(10, 10)).req)).rejects.toMatchObject({ retryable: true });
  });
});
