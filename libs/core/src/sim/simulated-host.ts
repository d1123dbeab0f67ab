import type { GpuInfo, GpuStatus, ModelServerLoad } from '@autoglm/proto';
import type { Scheduler } from './scheduler';
import { type JobOutcome, type JobRequest, type SequenceRequest, type SimModel, SimulatedGpu } from './simulated-gpu';

/** 80 GiB: what an H100 80GB reports (81559 MiB), rounded to the GiB. */
export const DEFAULT_SIM_GPU_MEMORY_BYTES = 80 * 1024 ** 3;
export const DEFAULT_SIM_GPU_COUNT = 8;
export const DEFAULT_SIM_GPU_NAME = 'Simulated H100 80GB';
/**
 * How fast a host reads model weights onto its GPUs: a fast NVMe drive
 * (PCIe 4.0 x4 reads about 7 GB/s). A replica of glm-4-9b (18.8 GB) loads
 * in under 3 s; llama-3.1-70b (141 GB) in about 20 s.
 */
export const DEFAULT_SIM_LOAD_BYTES_PER_SECOND = 7e9;
/** What a replica may fill of each GPU when not told its capacity, as vLLM's gpu_memory_utilization. */
const REPLICA_MEMORY_FRACTION = 0.9;
/** Memory each GPU spends besides weights and cache (CUDA context, activations). */
const REPLICA_OVERHEAD_BYTES = 2 * 2 ** 30;

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
  /** How fast weights load onto GPUs, bytes per second (before the time scale). @default 7e9 */
  readonly loadBytesPerSecond?: number;
}

/** A replica as the host reports it. */
export interface SimReplicaStatus {
  id: string;
  model: string;
  gpuIndices: number[];
  ready: boolean;
  /** KV-cache tokens it holds. */
  capacityTokens: number;
  running: number;
  waiting: number;
  kvCacheUsage: number;
}

/** What loading a replica needs to know. */
export interface ReplicaRequest {
  readonly id: string;
  /** The whole model: the host splits it over the GPUs. */
  readonly model: SimModel;
  readonly gpuIndices: readonly number[];
  /** KV-cache tokens to size it for; by default whatever fills each GPU to 90 %. */
  readonly capacityTokens?: number;
}

interface HostReplica {
  readonly request: ReplicaRequest;
  readonly gpus: readonly SimulatedGpu[];
  readonly shard: SimModel;
  readonly capacityTokens: number;
  ready: boolean;
  cancelLoad: (() => void) | undefined;
}

/** A GPU host: N simulated GPUs indexed 0..N-1, addressed the way CUDA_VISIBLE_DEVICES addresses them. */
export class SimulatedHost {
  readonly gpus: readonly SimulatedGpu[];
  /** Which GPUs each multi-GPU job holds, so `cancel` can reach all of them. */
  private readonly jobGpus = new Map<string, readonly SimulatedGpu[]>();
  private readonly replicas = new Map<string, HostReplica>();
  private readonly loadBytesPerSecond: number;
  private readonly scheduler: Scheduler;
  private readonly timeScale: number;

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
    this.scheduler = options.scheduler;
    this.timeScale = options.timeScale ?? 1;
    this.loadBytesPerSecond = options.loadBytesPerSecond ?? DEFAULT_SIM_LOAD_BYTES_PER_SECOND;
  }

  /**
   * Starts loading a model replica on `gpuIndices`: each GPU takes its shard
   * of the weights and of the KV-cache pool at once, and the replica serves
   * once the weights are read (their size over the host's load bandwidth).
   * Throws when a GPU is unknown or busy with a job or another replica.
   */
  loadReplica(request: ReplicaRequest, onReady?: () => void): void {
    if (this.replicas.has(request.id)) throw new Error(`replica ${request.id} is already loaded`);
    if (request.gpuIndices.length === 0) throw new RangeError(`replica ${request.id} names no GPU`);
    const gpus = request.gpuIndices.map((i) => this.gpu(i));
    const k = gpus.length;
    const shard: SimModel = { name: request.model.name, weightBytes: Math.ceil(request.model.weightBytes / k), kvBytesPerToken: Math.ceil(request.model.kvBytesPerToken / k) };
    const smallest = Math.min(...gpus.map((g) => g.memoryBytes));
    const fill = Math.floor((smallest * REPLICA_MEMORY_FRACTION - REPLICA_OVERHEAD_BYTES - shard.weightBytes) / Math.max(1, shard.kvBytesPerToken));
    const capacityTokens = request.capacityTokens && request.capacityTokens > 0 ? request.capacityTokens : Math.max(0, fill);
    const poolBytes = capacityTokens * shard.kvBytesPerToken;
    const hosted: SimulatedGpu[] = [];
    try {
      for (const gpu of gpus) {
        gpu.hostReplica(request.id, shard, poolBytes, hosted.length === 0 ? undefined : gpus[0]);
        hosted.push(gpu);
      }
    } catch (e) {
      for (const gpu of hosted) gpu.releaseReplica();
      throw e;
    }
    const replica: HostReplica = { request, gpus, shard, capacityTokens, ready: false, cancelLoad: undefined };
    this.replicas.set(request.id, replica);
    const loadMs = (request.model.weightBytes / this.loadBytesPerSecond) * 1000 / this.timeScale;
    replica.cancelLoad = this.scheduler.setTimer(loadMs, () => {
      replica.cancelLoad = undefined;
      replica.ready = true;
      for (const gpu of gpus) gpu.replicaReady();
      onReady?.();
    });
  }

  /** Unloads a replica: its sequences end cancelled and its GPUs are free. False when unknown. */
  evictReplica(id: string): boolean {
    const replica = this.replicas.get(id);
    if (!replica) return false;
    replica.cancelLoad?.();
    this.replicas.delete(id);
    for (const gpu of replica.gpus) gpu.releaseReplica();
    return true;
  }

  /** Whether a replica is loaded or loading here. */
  hasReplica(replicaId: string): boolean {
    return this.replicas.has(replicaId);
  }

  /** Queues a sequence in a replica (it waits while the replica loads); throws for a replica not loaded here. */
  submitToReplica(replicaId: string, req: Omit<SequenceRequest, 'model'>): void {
    const replica = this.replicas.get(replicaId);
    if (!replica) throw new Error(`replica ${replicaId} is not loaded on this host`);
    replica.gpus[0]!.submit({ ...req, model: replica.shard });
  }

  /** The replicas loaded or loading, with their engines' load. */
  replicaStatus(): SimReplicaStatus[] {
    return [...this.replicas.values()].map((r) => {
      const load = r.gpus[0]!.load();
      return {
        id: r.request.id,
        model: r.request.model.name,
        gpuIndices: [...r.request.gpuIndices],
        ready: r.ready,
        capacityTokens: r.capacityTokens,
        running: load.numRequestsRunning,
        waiting: load.numRequestsWaiting,
        kvCacheUsage: load.kvCacheUsagePerc,
      };
    });
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
    for (const id of [...this.replicas.keys()]) this.evictReplica(id);
    for (const gpu of this.gpus) gpu.shutdown();
    this.jobGpus.clear();
  }
}
