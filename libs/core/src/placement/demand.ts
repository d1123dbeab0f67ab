/**
 * What a task asks of a host, in the claim model's three kinds:
 * - `gpus`: a batch job holding whole GPUs of one host, exclusively (as
 *   Slurm's GRES and Kubernetes' `nvidia.com/gpu` give them);
 * - `sequence`: an inference request, which runs in a replica of its model
 *   and takes KV-cache tokens there (continuous batching);
 * - `cpu`: a job without GPUs, holding host cores and memory.
 */
export type DemandKind = 'gpus' | 'sequence' | 'cpu';

export interface Demand {
  readonly kind: DemandKind;
  /** Catalog model; '' for a job without one. */
  readonly model: string;
  /**
   * gpus: the GPUs the job holds, on one host. sequence: the fewest GPUs a
   * replica serving it may have (the parser's sizing for this request); the
   * replica's own size comes from the model. cpu: 0.
   */
  readonly gpuCount: number;
  /** gpus: memory the job uses on each of its GPUs (a smaller GPU cannot take it). */
  readonly gpuMemoryBytes: number;
  /** sequence: KV-cache tokens it reserves (prompt plus generation budget). */
  readonly tokens: number;
  /** Host CPU in thousandths of a core (cpu jobs; a GPU job may ask too). */
  readonly cpuMillis: number;
  /** Host memory in bytes (cpu jobs; a GPU job may ask too). */
  readonly memoryBytes: number;
  /**
   * A job that runs a program (an argv): only agents that run processes
   * take it, unless none is connected (then a simulator plays it, as in a
   * demo fleet). A job without one (a duration to simulate) runs only on
   * simulators.
   */
  readonly program?: boolean;
}

/** What placement needs to know of a model to size and fill its replicas. */
export interface ModelShape {
  readonly name: string;
  /** Bytes of its weights (split evenly over a replica's GPUs). */
  readonly weightBytes: number;
  /** KV-cache bytes per token of context. */
  readonly kvBytesPerToken: number;
  /** Longest sequence it accepts: a replica holds at least one. */
  readonly contextLength: number;
}

/** Looks a model's shape up; undefined for a model placement cannot size (served only by external replicas). */
export type ModelShapes = (model: string) => ModelShape | undefined;

/**
 * Memory each GPU spends besides weights and KV cache (CUDA context,
 * workspaces, activations); the same allowance the parser sizes requests
 * with (catalog/memory.ts RUNTIME_OVERHEAD_BYTES).
 */
export const REPLICA_OVERHEAD_BYTES_PER_GPU = 2 * 2 ** 30;

/** Tensor-parallel degrees a replica may have: powers of two divide every model's heads evenly. */
export const REPLICA_GPU_COUNTS: readonly number[] = Object.freeze([1, 2, 4, 8, 16, 32, 64]);

/** A replica's size on one kind of GPU. */
export interface ReplicaShape {
  gpuCount: number;
  /** KV-cache tokens that fit beside the weights, over all its GPUs. */
  capacityTokens: number;
}

/**
 * KV-cache tokens a replica of `model` on `gpuCount` GPUs of `gpuMemoryBytes`
 * holds when it may fill `fraction` of each GPU (vLLM's
 * gpu_memory_utilization): what is left beside the weights and the per-GPU
 * overhead. Negative when the weights do not fit.
 */
export function replicaCapacityTokens(model: ModelShape, gpuCount: number, gpuMemoryBytes: number, fraction: number): number {
  const free = gpuCount * (gpuMemoryBytes * fraction - REPLICA_OVERHEAD_BYTES_PER_GPU) - model.weightBytes;
  return Math.floor(free / Math.max(1, model.kvBytesPerToken));
}

/**
 * The replica a model gets on GPUs of `gpuMemoryBytes`: the fewest GPUs (a
 * power of two, at least `atLeast`, at most `maxGpus`) on which its weights
 * and one full context window of KV cache fit, as an inference server
 * refuses to start with a max_model_len its cache cannot hold. Undefined
 * when no such count exists on this host.
 */
export function replicaShape(model: ModelShape, gpuMemoryBytes: number, fraction: number, maxGpus: number, atLeast = 1): ReplicaShape | undefined {
  for (const gpuCount of REPLICA_GPU_COUNTS) {
    if (gpuCount < atLeast) continue;
    if (gpuCount > maxGpus) return undefined;
    const capacityTokens = replicaCapacityTokens(model, gpuCount, gpuMemoryBytes, fraction);
    if (capacityTokens >= model.contextLength) return { gpuCount, capacityTokens };
  }
  return undefined;
}
