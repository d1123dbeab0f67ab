import fc from 'fast-check';
import { chooseConnectedGpus, type GpuTopology, linkScore } from './topology';

/** A host of `size` GPUs whose off-diagonal links come from `link`; the diagonal is X, as nvidia-smi prints it. */
function host(size: number, link: (a: number, b: number) => string): GpuTopology {
  return {
    links: Array.from({ length: size }, (_, a) => Array.from({ length: size }, (_, b) => (a === b ? 'X' : link(a, b)))),
  };
}

/** NVLink inside each island, SYS between islands; `islandOf` names each GPU's island. */
function islands(size: number, islandOf: (gpu: number) => number, nvlink = 'NV18'): GpuTopology {
  return host(size, (a, b) => (islandOf(a) === islandOf(b) ? nvlink : 'SYS'));
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

describe('linkScore', () => {
  it('ranks NVLink above every PCIe path, more bonded links higher, then the PCIe paths in legend order', () => {
    const fastestFirst = ['NV18', 'NV12', 'NV4', 'NV2', 'NV1', 'PIX', 'PXB', 'PHB', 'NODE', 'SYS'];
    const scores = fastestFirst.map(linkScore);
    for (let i = 1; i < scores.length; i++) expect(scores[i]!).toBeLessThan(scores[i - 1]!);
  });

  it('reads the old SOC as SYS and the legend NV# as one link', () => {
    expect(linkScore('SOC')).toBe(linkScore('SYS'));
    expect(linkScore('NV#')).toBe(linkScore('NV1'));
    expect(linkScore('NV#')).toBeGreaterThan(linkScore('PIX'));
  });

  it('scores an unknown token 0, below every known link', () => {
    for (const token of ['', 'N/A', 'FOO', 'CPU']) expect(linkScore(token)).toBe(0);
    expect(linkScore('SYS')).toBeGreaterThan(0);
  });

  it('scores self like the best link, and ignores case and padding', () => {
    expect(linkScore(' X ')).toBeGreaterThanOrEqual(linkScore('NV18'));
    expect(linkScore(' nv12 ')).toBe(linkScore('NV12'));
  });
});

describe('chooseConnectedGpus', () => {
  it('on an all-NVLink (DGX-like) host, takes the lowest free indices', () => {
    const dgx = host(8, () => 'NV18');
    expect(chooseConnectedGpus(range(0, 8), 2, dgx)).toEqual([0, 1]);
    expect(chooseConnectedGpus([6, 2, 5, 3], 3, dgx)).toEqual([2, 3, 5]);
  });

  it('on a PCIe host, takes the pair behind one switch over the lower indices split across sockets', () => {
    const pcie = host(4, (a, b) => (Math.floor(a / 2) === Math.floor(b / 2) ? 'PIX' : 'SYS'));
    expect(chooseConnectedGpus([0, 2, 3], 2, pcie)).toEqual([2, 3]);
  });

  it('keeps four GPUs on one NVLink island rather than spanning two', () => {
    const twoIslands = islands(8, (gpu) => Math.floor(gpu / 4), 'NV12');
    expect(chooseConnectedGpus(range(1, 8), 4, twoIslands)).toEqual([4, 5, 6, 7]);
  });

  it('among sets with the same slowest link, takes the higher sum, then the lower indices', () => {
    const links: Record<string, string> = { '0-1': 'NV2', '2-3': 'NV4' };
    const mesh = host(4, (a, b) => links[`${Math.min(a, b)}-${Math.max(a, b)}`] ?? 'NV1');
    // Every triple's slowest link is NV1; {0,2,3} and {1,2,3} include the NV4 pair and tie on the sum.
    expect(chooseConnectedGpus([0, 1, 2, 3], 3, mesh)).toEqual([0, 2, 3]);
  });

  it('grows greedily on a 16-GPU host (C(16, 8) sets is past the exact search) and still finds the island', () => {
    const uneven = islands(16, (gpu) => (gpu < 6 ? 0 : 1));
    expect(chooseConnectedGpus(range(0, 16), 8, uneven)).toEqual(range(6, 14));
  });

  it('on a 64-GPU host of eight islands, finds the one island with eight free GPUs', () => {
    const fleet = islands(64, (gpu) => Math.floor(gpu / 8));
    const busy = new Set([3, 9, 20, 31, 33, 50, 60]);
    const free = range(0, 64).filter((gpu) => !busy.has(gpu));
    expect(chooseConnectedGpus(free, 8, fleet)).toEqual(range(40, 48));
    expect(chooseConnectedGpus(free, 2, fleet)).toEqual([0, 1]);
  });

  it('without a topology, or with a candidate the matrix does not cover, takes the lowest indices', () => {
    expect(chooseConnectedGpus([5, 3, 7, 1], 2, undefined)).toEqual([1, 3]);
    const pcie = host(4, (a, b) => (Math.floor(a / 2) === Math.floor(b / 2) ? 'PIX' : 'SYS'));
    expect(chooseConnectedGpus([0, 2, 3, 9], 2, pcie)).toEqual([0, 2]);
  });

  it('returns [] when there are fewer candidates than asked for, counting a repeated GPU once', () => {
    const dgx = host(8, () => 'NV18');
    expect(chooseConnectedGpus([1, 2], 3, dgx)).toEqual([]);
    expect(chooseConnectedGpus([1, 1], 2, dgx)).toEqual([]);
    expect(chooseConnectedGpus([1, 2], 0, dgx)).toEqual([]);
  });

  it('matches a brute-force search on small hosts, and is never worse than the lowest indices on larger ones', () => {
    const tokens = ['NV1', 'NV2', 'NV4', 'NV12', 'PIX', 'PXB', 'PHB', 'NODE', 'SYS', '???'];
    const arbitraryHost = fc.integer({ min: 2, max: 18 }).chain((size) =>
      fc.record({
        size: fc.constant(size),
        pairs: fc.array(fc.constantFrom(...tokens), { minLength: size * size, maxLength: size * size }),
        free: fc.subarray(range(0, size), { minLength: 1 }),
        count: fc.integer({ min: 1, max: size }),
      }),
    );
    fc.assert(
      fc.property(arbitraryHost, ({ size, pairs, free, count }) => {
        // Symmetric, as nvidia-smi prints it: the upper triangle decides each pair.
        const topology = host(size, (a, b) => pairs[Math.min(a, b) * size + Math.max(a, b)]!);
        const chosen = chooseConnectedGpus(free, count, topology);
        if (free.length < count) return expect(chosen).toEqual([]);
        expect(chosen).toHaveLength(count);
        expect(chosen).toEqual([...chosen].sort((a, b) => a - b));
        expect(chosen.every((gpu) => free.includes(gpu))).toBe(true);
        const quality = rate(chosen, topology);
        if (free.length <= 8) return expect(quality).toEqual(rate(bruteForce(free, count, topology), topology));
        const blind = rate([...free].sort((a, b) => a - b).slice(0, count), topology);
        return expect(quality.min > blind.min || (quality.min === blind.min && quality.sum >= blind.sum)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

/** The slowest pair and the sum over pairs of a set; a single GPU has no pairs. */
function rate(gpus: readonly number[], topology: GpuTopology): { min: number; sum: number } {
  let min = Number.POSITIVE_INFINITY;
  let sum = 0;
  for (const [i, a] of gpus.entries()) {
    for (const b of gpus.slice(i + 1)) {
      const score = linkScore(topology.links[a]![b]!);
      min = Math.min(min, score);
      sum += score;
    }
  }
  return { min, sum };
}

/** Every subset of the given size by bitmask; the best by (slowest pair, sum), the first found on a tie. */
function bruteForce(free: readonly number[], count: number, topology: GpuTopology): number[] {
  const sorted = [...free].sort((a, b) => a - b);
  let best: { gpus: number[]; min: number; sum: number } | undefined;
  for (let mask = 0; mask < 1 << sorted.length; mask++) {
    const gpus = sorted.filter((_, i) => (mask & (1 << i)) !== 0);
    if (gpus.length !== count) continue;
    const { min, sum } = rate(gpus, topology);
    if (best === undefined || min > best.min || (min === best.min && sum > best.sum)) best = { gpus, min, sum };
  }
  return best?.gpus ?? [];
}
