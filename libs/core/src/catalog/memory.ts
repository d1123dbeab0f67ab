/**
 * GPU memory a model needs, per GPU, when its weights and KV cache are split
 * evenly over `gpuCount` GPUs by tensor parallelism.
 */
import type { CatalogModel } from './models';

/**
 * Memory each GPU spends besides weights and KV cache: the CUDA context and
 * cuBLAS/NCCL workspaces (about 0.5-1 GiB) plus the activation peak of a
 * prefill chunk and captured CUDA graphs (about 1 GiB at the default batch of
 * a vLLM/SGLang server). 2 GiB covers both for the models in the catalog.
 */
export const RUNTIME_OVERHEAD_BYTES = 2 * 2 ** 30;

/** Tensor-parallel degrees the scheduler places: powers of two divide every model's heads evenly. */
export const GPU_COUNT_CHOICES: readonly number[] = Object.freeze([1, 2, 4, 8]);

/**
 * Share of a GPU's memory a placement may plan to use; the rest absorbs
 * fragmentation and estimate error. The same as decision's placement limit
 * (maxGpuMemoryFraction), so a task sized here always fits there.
 */
export const DEFAULT_GPU_MEMORY_HEADROOM = 0.9;

/**
 * Bytes of KV cache one token occupies: a K and a V vector per layer per KV
 * head, in the cache's element size (the weights' when the model names none).
 */
export function kvCacheBytesPerToken(model: CatalogModel): number {
  return 2 * model.layers * model.kvHeads * model.headDim * (model.kvDtypeBytes ?? model.dtypeBytes);
}

/**
 * Bytes each of `gpuCount` GPUs needs to serve `model` with `totalTokens`
 * (prompt + generation budget) resident: its share of the weights, its share
 * of the KV cache, and {@link RUNTIME_OVERHEAD_BYTES}. Rounded up to a whole byte.
 */
export function estimateGpuMemory(model: CatalogModel, totalTokens: number, gpuCount: number): number {
  if (!Number.isSafeInteger(gpuCount) || gpuCount < 1) {
    throw new RangeError(`gpuCount must be a positive integer, got ${gpuCount}`);
  }
  if (!Number.isFinite(totalTokens) || totalTokens < 0) {
    throw new RangeError(`totalTokens must be a non-negative number, got ${totalTokens}`);
  }
  const kvCacheBytes = kvCacheBytesPerToken(model) * totalTokens;
  return Math.ceil((model.weightBytes + kvCacheBytes) / gpuCount) + RUNTIME_OVERHEAD_BYTES;
}

/**
 * The fewest GPUs, from {@link GPU_COUNT_CHOICES}, on which `model` with
 * `totalTokens` needs at most `headroom` of `gpuMemoryBytes` per GPU; undefined
 * when even the largest choice is not enough.
 */
export function minimumGpuCount(
  model: CatalogModel,
  totalTokens: number,
  gpuMemoryBytes: number,
  headroom: number = DEFAULT_GPU_MEMORY_HEADROOM,
): number | undefined {
  const usable = gpuMemoryBytes * headroom;
  return GPU_COUNT_CHOICES.find((count) => estimateGpuMemory(model, totalTokens, count) <= usable);
}
