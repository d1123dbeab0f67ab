import { ManualScheduler } from './scheduler';
import { type JobOutcome, type SequenceOutcome, SimOutOfMemoryError } from './simulated-gpu';
import { DEFAULT_SIM_GPU_MEMORY_BYTES, SimulatedHost } from './simulated-host';

const GLM = { name: 'glm-4-9b', weightBytes: 18e9, kvBytesPerToken: 40_960 };

describe('SimulatedHost', () => {
  it('defaults to eight 80 GiB GPUs indexed from 0', () => {
    const host = new SimulatedHost({ scheduler: new ManualScheduler() });
    expect(host.info()).toHaveLength(8);
    expect(host.info()[7]).toEqual({ index: 7, name: 'Simulated H100 80GB', memoryTotalBytes: DEFAULT_SIM_GPU_MEMORY_BYTES });
    expect(host.status().every((g) => g.utilization === 0 && g.memoryUsedBytes === 0)).toBe(true);
    expect(() => host.gpu(8)).toThrow(RangeError);
  });

  it('runs inference on the GPU it is given and reports the host load', () => {
    const scheduler = new ManualScheduler();
    const host = new SimulatedHost({ scheduler, gpuCount: 2, timeScale: 100 });
    const outcomes: SequenceOutcome[] = [];
    host.submit(1, { id: 'a', model: GLM, promptTokens: 100, maxTokens: 10, onTokens: () => undefined, onDone: (o) => outcomes.push(o) });
    scheduler.advance(0);
    expect(host.load()).toMatchObject({ numRequestsRunning: 1, numRequestsWaiting: 0 });
    expect(host.status()[0]?.memoryUsedBytes).toBe(0);
    expect(host.status()[1]?.memoryUsedBytes).toBe(GLM.weightBytes + 100 * GLM.kvBytesPerToken);

    scheduler.runUntilIdle();
    expect(outcomes).toMatchObject([{ finishReason: 'length', completionTokens: 10 }]);
    expect(host.load()).toEqual({ numRequestsRunning: 0, numRequestsWaiting: 0, kvCacheUsagePerc: 0 });
  });

  it('runs a job across several GPUs and reports it done once', () => {
    const scheduler = new ManualScheduler();
    const host = new SimulatedHost({ scheduler, gpuCount: 4 });
    const done: JobOutcome[] = [];
    host.runJob([1, 3], { id: 'train', memoryBytes: 40e9, durationMs: 500, onDone: (o) => done.push(o) });
    expect(host.status().map((g) => g.utilization)).toEqual([0, 1, 0, 1]);
    expect(host.status().map((g) => g.memoryUsedBytes)).toEqual([0, 40e9, 0, 40e9]);
    scheduler.runUntilIdle();
    expect(done).toEqual([{ status: 'completed', runTimeMs: 500 }]);
    expect(host.status().map((g) => g.memoryUsedBytes)).toEqual([0, 0, 0, 0]);
  });

  it('starts a multi-GPU job on all of its GPUs or none', () => {
    const scheduler = new ManualScheduler();
    const host = new SimulatedHost({ scheduler, gpuCount: 2, gpuMemoryBytes: 50e9 });
    host.runJob([1], { id: 'first', memoryBytes: 30e9, durationMs: 1000, onDone: () => undefined });
    expect(() => host.runJob([0, 1], { id: 'second', memoryBytes: 30e9, durationMs: 1000, onDone: () => undefined })).toThrow(SimOutOfMemoryError);
    expect(host.status()[0]?.memoryUsedBytes).toBe(0);
  });

  it('cancels a multi-GPU job everywhere with one call', () => {
    const scheduler = new ManualScheduler();
    const host = new SimulatedHost({ scheduler, gpuCount: 2 });
    const done: JobOutcome[] = [];
    host.runJob([0, 1], { id: 'train', memoryBytes: 1e9, durationMs: 10_000, onDone: (o) => done.push(o) });
    scheduler.advance(10);
    expect(host.cancel('train')).toBe(true);
    expect(done).toEqual([{ status: 'cancelled', runTimeMs: 10 }]);
    expect(host.status().map((g) => g.memoryUsedBytes)).toEqual([0, 0]);
    expect(host.cancel('train')).toBe(false);
    expect(scheduler.pendingTimers).toBe(0);
  });

  it('refuses a sequence larger than its replica’s KV-cache pool as one that can never fit there', () => {
    const host = new SimulatedHost({ scheduler: new ManualScheduler(), gpuCount: 1 });
    host.loadReplica({ id: 'r1', model: GLM, gpuIndices: [0], capacityTokens: 1000 });
    const error = (() => {
      try {
        host.submitToReplica('r1', { id: 'big', promptTokens: 900, maxTokens: 200, onTokens: () => undefined, onDone: () => undefined });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(SimOutOfMemoryError);
    expect((error as SimOutOfMemoryError).couldFitLater).toBe(false);
    expect((error as Error).message).toMatch(/replica r1's KV cache on GPU 0 holds 40960000/);
  });

  it('shutdown leaves no work and no timer', () => {
    const scheduler = new ManualScheduler();
    const host = new SimulatedHost({ scheduler, gpuCount: 2 });
    const outcomes: SequenceOutcome[] = [];
    host.submit(0, { id: 'a', model: GLM, promptTokens: 10, maxTokens: 1000, onTokens: () => undefined, onDone: (o) => outcomes.push(o) });
    host.runJob([1], { id: 'j', memoryBytes: 1, durationMs: 1000, onDone: () => undefined });
    scheduler.advance(5);
    host.shutdown();
    expect(outcomes).toMatchObject([{ finishReason: 'cancelled' }]);
    expect(scheduler.pendingTimers).toBe(0);
  });
});
