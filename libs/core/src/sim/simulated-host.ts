import type { GpuInfo, GpuStatus, ModelServerLoad } from '@autoglm/proto';
import type { Scheduler } from './scheduler';
import { type JobOutcome, type JobRequest, type SequenceRequest, SimulatedGpu } from './simulated-gpu';

/** 80 GiB: what an H100 80GB reports (81559 MiB), rounded to the GiB. */
export const DEFAULT_SIM_GPU_MEMORY_BYTES = 80 * 1024 ** 3;
export const DEFAULT_SIM_GPU_COUNT = 8;
export const DEFAULT_SIM_GPU_NAME = 'Simulated H100 80GB';

export interface SimulatedHostOptions {
  readonly scheduler: Scheduler;
  /** @default 8 */
  readonly gpuCount?: number;
  /** Per GPU. @default 80 GiB */
  readonly gpuMemoryBytes?: number;
  /** @default "Simulated H100 80GB" */
  readonly gpuName?: string;
  /** See `SimulatedGpuOptions.timeScale`. @default 1 */
  readonly timeScale?: number;
  /** See `SimulatedGpuOptions.maxBatch`. @default 256 */
  readonly maxBatch?: number;
  /** See `SimulatedGpuOptions.maxPrefillTokens`. @default 8192 */
  readonly maxPrefillTokens?: number;
}

/** A GPU host: N simulated GPUs indexed 0..N-1, addressed the way CUDA_VISIBLE_DEVICES addresses them. */
export class SimulatedHost {
  readonly gpus: readonly SimulatedGpu[];
  /** Which GPUs each multi-GPU job holds, so `cancel` can reach all of them. */
  private readonly jobGpus = new Map<string, readonly SimulatedGpu[]>();

  constructor(options: SimulatedHostOptions) {
    const count = options.gpuCount ?? DEFAULT_SIM_GPU_COUNT;
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`gpuCount must be a positive integer, got ${count}`);
    const gpus: SimulatedGpu[] = [];
    for (let index = 0; index < count; index++) {
      gpus.push(
        new SimulatedGpu({
          index,
          name: options.gpuName ?? DEFAULT_SIM_GPU_NAME,
          memoryBytes: options.gpuMemoryBytes ?? DEFAULT_SIM_GPU_MEMORY_BYTES,
          scheduler: options.scheduler,
          ...(options.timeScale === undefined ? {} : { timeScale: options.timeScale }),
          ...(options.maxBatch === undefined ? {} : { maxBatch: options.maxBatch }),
          ...(options.maxPrefillTokens === undefined ? {} : { maxPrefillTokens: options.maxPrefillTokens }),
        }),
      );
    }
    this.gpus = gpus;
  }

  /** The GPU at `index`; throws RangeError for an index the host does not have. */
  gpu(index: number): SimulatedGpu {
    const gpu = this.gpus[index];
    if (gpu === undefined) throw new RangeError(`GPU ${index} does not exist on this host (it has ${this.gpus.length})`);
    return gpu;
  }

  /** Queues an inference sequence on one GPU. */
  submit(gpuIndex: number, req: SequenceRequest): void {
    this.gpu(gpuIndex).submit(req);
  }

  /**
   * Runs a job across `gpuIndices`, holding `memoryBytes` on each, all or
   * nothing: if one GPU cannot take it, none is touched and the error is thrown.
   * `onDone` is called once, when every GPU has finished (or on cancel).
   */
  runJob(gpuIndices: readonly number[], req: JobRequest): void {
    if (gpuIndices.length === 0) throw new RangeError(`job "${req.id}" names no GPU`);
    if (new Set(gpuIndices).size !== gpuIndices.length) throw new RangeError(`job "${req.id}" names a GPU twice: ${gpuIndices.join(',')}`);
    if (this.jobGpus.has(req.id)) throw new Error(`job "${req.id}" is already running`);
    const gpus = gpuIndices.map((i) => this.gpu(i));
    for (const gpu of gpus) gpu.checkJob(req);
    let remaining = gpus.length;
    let cancelled = false;
    let runTimeMs = 0;
    const onPartDone = (outcome: JobOutcome): void => {
      cancelled ||= outcome.status === 'cancelled';
      runTimeMs = Math.max(runTimeMs, outcome.runTimeMs);
      if (--remaining > 0) return;
      this.jobGpus.delete(req.id);
      req.onDone({ status: cancelled ? 'cancelled' : 'completed', runTimeMs });
    };
    this.jobGpus.set(req.id, gpus);
    for (const gpu of gpus) gpu.runJob({ id: req.id, memoryBytes: req.memoryBytes, durationMs: req.durationMs, onDone: onPartDone });
  }

  /** Cancels a sequence or a job by id wherever it runs; false when nothing had that id. */
  cancel(id: string): boolean {
    const jobGpus = this.jobGpus.get(id);
    if (jobGpus !== undefined) {
      let any = false;
      for (const gpu of jobGpus) any = gpu.cancel(id) || any;
      return any;
    }
    let any = false;
    for (const gpu of this.gpus) any = gpu.cancel(id) || any;
    return any;
  }

  info(): GpuInfo[] {
    return this.gpus.map((g) => g.info());
  }

  status(): GpuStatus[] {
    return this.gpus.map((g) => g.status());
  }

  /**
   * The host's load as one model server would report it: counts summed, KV
   * use over the GPUs that hold a model (an empty GPU has no KV cache to fill).
   */
  load(): ModelServerLoad {
    let running = 0;
    let waiting = 0;
    let kvSum = 0;
    let serving = 0;
    for (const gpu of this.gpus) {
      const load = gpu.load();
      running += load.numRequestsRunning;
      waiting += load.numRequestsWaiting;
      if (gpu.residentModels().length > 0) {
        kvSum += load.kvCacheUsagePerc;
        serving++;
      }
    }
    return { numRequestsRunning: running, numRequestsWaiting: waiting, kvCacheUsagePerc: serving === 0 ? 0 : kvSum / serving };
  }

  /** Cancels all work on every GPU; no timer is left behind. */
  shutdown(): void {
    for (const gpu of this.gpus) gpu.shutdown();
    this.jobGpus.clear();
  }
}
