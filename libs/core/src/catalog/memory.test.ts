import { DEFAULT_MODEL_CATALOG } from './models';
import type { CatalogModel } from './models';
import { RUNTIME_OVERHEAD_BYTES, estimateGpuMemory, kvCacheBytesPerToken, minimumGpuCount } from './memory';

const GB = 1e9;
const GPU_80 = 80 * 2 ** 30;
const GPU_141 = 141 * 2 ** 30;

function model(name: string): CatalogModel {
  const found = DEFAULT_MODEL_CATALOG.get(name);
  if (found === undefined) throw new Error(`no ${name} in the default catalog`);
  return found;
}

describe('kvCacheBytesPerToken', () => {
  it('is K and V per layer per KV head, in the model dtype', () => {
    // GLM-4-9B: 2 * 40 layers * 2 groups * 128 * 2 bytes = 40 KiB per token.
    expect(kvCacheBytesPerToken(model('glm-4-9b'))).toBe(40_960);
    // Llama 3.1 70B: 2 * 80 * 8 * 128 * 2 = 320 KiB per token.
    expect(kvCacheBytesPerToken(model('llama-3.1-70b'))).toBe(327_680);
  });
});

describe('estimateGpuMemory', () => {
  it('gives glm-4-9b in bf16 about 18.8 GB of weights plus KV cache and the runtime overhead', () => {
    const glm = model('glm-4-9b');
    const weightsOnly = estimateGpuMemory(glm, 0, 1);
    expect(weightsOnly - RUNTIME_OVERHEAD_BYTES).toBeGreaterThan(18 * GB);
    expect(weightsOnly - RUNTIME_OVERHEAD_BYTES).toBeLessThan(19 * GB);
    // A full 8192-token window adds 8192 * 40 KiB = 320 MiB.
    expect(estimateGpuMemory(glm, 8192, 1) - weightsOnly).toBe(8192 * 40_960);
  });

  it('splits weights and KV cache over the GPUs but not the overhead', () => {
    const llama = model('llama-3.1-70b');
    const one = estimateGpuMemory(llama, 4096, 1);
    const two = estimateGpuMemory(llama, 4096, 2);
    expect(two - RUNTIME_OVERHEAD_BYTES).toBeCloseTo((one - RUNTIME_OVERHEAD_BYTES) / 2, -1);
  });

  it('refuses a GPU count that is not a positive integer', () => {
    expect(() => estimateGpuMemory(model('glm-4-9b'), 10, 0)).toThrow(RangeError);
    expect(() => estimateGpuMemory(model('glm-4-9b'), -1, 1)).toThrow(RangeError);
  });
});

describe('minimumGpuCount', () => {
  it('puts small models on one GPU', () => {
    expect(minimumGpuCount(model('glm-4-9b'), 9216, GPU_80)).toBe(1);
    expect(minimumGpuCount(model('llama-3.1-8b'), 131_072, GPU_80)).toBe(1);
  });

  it('splits large models over the fewest of 1, 2, 4, 8 GPUs', () => {
    expect(minimumGpuCount(model('llama-3.1-70b'), 4096, GPU_80)).toBe(2);
    expect(minimumGpuCount(model('glm-4.5-air'), 4096, GPU_80)).toBe(4);
    expect(minimumGpuCount(model('glm-4.5'), 4096, GPU_141)).toBe(8);
  });

  it('says when a model does not fit even on eight GPUs', () => {
    expect(minimumGpuCount(model('glm-4.5'), 4096, GPU_80)).toBeUndefined();
  });

  it('keeps headroom: 90% of the GPU by default', () => {
    const llama = model('llama-3.1-70b');
    // A long window that fits two GPUs filled to the brim but not at 90%.
    const tokens = 40_000;
    expect(estimateGpuMemory(llama, tokens, 2)).toBeGreaterThan(0.9 * GPU_80);
    expect(estimateGpuMemory(llama, tokens, 2)).toBeLessThanOrEqual(GPU_80);
    expect(minimumGpuCount(llama, tokens, GPU_80)).toBe(4);
    expect(minimumGpuCount(llama, tokens, GPU_80, 1)).toBe(2);
  });
});
