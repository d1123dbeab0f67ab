/**
 * The token `nvidia-smi topo -m` prints for a pair of GPUs: `X` (the GPU
 * itself), `NV<n>` (a bonded set of n NVLinks), `PIX`, `PXB`, `PHB`, `NODE` or
 * `SYS`. Older drivers print `SOC` where current ones print `SYS`, and the
 * legend writes NVLink as `NV#`. A plain string rather than a union: a driver
 * may print a token this code does not know, and the matrix must still load
 * (the token then scores 0).
 */
export type GpuLinkKind = string;

/** The interconnect of one host, as read from `nvidia-smi topo -m`. */
export interface GpuTopology {
  /** Square, indexed by GPU index: `links[i][j]` is the link kind between GPU i and GPU j. */
  links: GpuLinkKind[][];
}

/** Staying on one GPU beats any link, so a self pair never lowers a set's score. */
const SELF_SCORE = 1_000;
/** Any NVLink bond outranks every PCIe path; the number of bonded links is added on top. */
const NVLINK_BASE = 100;
/**
 * The nvidia-smi legend, nearest first: PIX crosses at most one PCIe bridge,
 * PXB several bridges but no host bridge, PHB a host bridge (the CPU), NODE the
 * interconnect between host bridges of one NUMA node, SYS (SOC on old drivers)
 * the SMP link between NUMA nodes. Each step adds a kind of hop to a
 * peer-to-peer copy, so each is slower than the one before it. The numbers are
 * ranks, not bandwidths: only their order, and the order of their sums, is used.
 */
const PCIE_SCORES: ReadonlyMap<string, number> = new Map([
  ['PIX', 50],
  ['PXB', 40],
  ['PHB', 30],
  ['NODE', 20],
  ['SYS', 10],
  ['SOC', 10],
]);

/**
 * A rank for a link kind, higher for a faster link: self, then NVLink (more
 * bonded links rank higher, since their bandwidth adds up), then the PCIe
 * paths in the legend's order. A token nobody knows ranks 0, below every known
 * path, so a matrix with a surprise in it never makes a pair look closer than
 * it is.
 */
export function linkScore(kind: GpuLinkKind): number {
  const token = kind.trim().toUpperCase();
  if (token === 'X') return SELF_SCORE;
  const nvlink = /^NV(\d*)#?$/.exec(token);
  if (nvlink !== null) {
    const links = Math.max(1, Number.parseInt(nvlink[1] || '1', 10));
    return NVLINK_BASE + Math.min(links, SELF_SCORE - NVLINK_BASE - 1);
  }
  return PCIE_SCORES.get(token) ?? 0;
}

/**
 * Above this many combinations the choice is greedy. Every choice out of 8
 * GPUs (at most C(8, 4) = 70 sets) and any pair out of 64 (C(64, 2) = 2016)
 * stay exact, and an exact search this size takes well under a millisecond.
 */
const EXACT_SEARCH_LIMIT = 5_000;

/**
 * Picks `count` GPUs out of `candidates` that talk over the fastest links: the
 * set whose slowest pair is fastest (a collective runs at the pace of its
 * slowest link), then the one with the highest sum over its pairs, then the
 * lowest indices, so the same inputs always give the same GPUs. Exact when
 * the number of possible sets is small; otherwise the best of one greedy
 * growth from each candidate. Without a topology, or with a candidate the
 * matrix does not cover, nothing is known about the links and the lowest
 * indices are returned. Returns [] when there are fewer than `count`
 * candidates. The result is in ascending order.
 */
export function chooseConnectedGpus(candidates: readonly number[], count: number, topology: GpuTopology | undefined): number[] {
  const gpus = [...new Set(candidates)].sort((a, b) => a - b);
  if (!Number.isInteger(count) || count <= 0 || gpus.length < count) return [];
  if (topology === undefined || !covers(topology, gpus) || count === 1 || count === gpus.length) return gpus.slice(0, count);
  const scores = new PairScores(gpus, topology);
  const best = combinations(gpus.length, count) <= EXACT_SEARCH_LIMIT ? bestExact(scores, count) : bestGreedy(scores, count);
  return best.members.map((position) => gpus[position]!);
}

/** A set of candidate positions (ascending), with its slowest pair and the sum over its pairs. */
interface Choice {
  members: number[];
  min: number;
  sum: number;
}

/** Pair ranks among the candidates, by position in the sorted candidate list. */
class PairScores {
  readonly size: number;
  /** Row-major, `size` by `size`; the diagonal is unused. */
  readonly values: Float64Array;
  /** The rank of the fastest pair among the candidates. */
  readonly fastest: number;

  constructor(gpus: readonly number[], topology: GpuTopology) {
    this.size = gpus.length;
    this.values = new Float64Array(this.size * this.size);
    // A host prints a handful of distinct tokens; scoring each once keeps a 64-GPU matrix cheap.
    const known = new Map<string, number>();
    const score = (kind: string): number => {
      let value = known.get(kind);
      if (value === undefined) known.set(kind, (value = linkScore(kind)));
      return value;
    };
    let fastest = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < this.size; i++) {
      const a = gpus[i]!;
      for (let j = i + 1; j < this.size; j++) {
        const b = gpus[j]!;
        // Both directions, the slower one counting: a matrix read from text need not be symmetric.
        const pair = Math.min(score(topology.links[a]?.[b] ?? ''), score(topology.links[b]?.[a] ?? ''));
        this.values[i * this.size + j] = pair;
        this.values[j * this.size + i] = pair;
        fastest = Math.max(fastest, pair);
      }
    }
    this.fastest = fastest;
  }

  at(i: number, j: number): number {
    return this.values[i * this.size + j] ?? 0;
  }
}

function covers(topology: GpuTopology, gpus: readonly number[]): boolean {
  const highest = gpus[gpus.length - 1] ?? 0;
  return gpus.every((gpu) => Number.isInteger(gpu) && gpu >= 0 && (topology.links[gpu]?.length ?? 0) > highest);
}

/** C(n, k), stopping early once past the exact-search limit so it never overflows. */
function combinations(n: number, k: number): number {
  let result = 1;
  for (let i = 1; i <= Math.min(k, n - k); i++) {
    result = (result * (n - i + 1)) / i;
    if (result > EXACT_SEARCH_LIMIT) return result;
  }
  return result;
}

function isBetter(a: Choice, b: Choice): boolean {
  if (a.min !== b.min) return a.min > b.min;
  if (a.sum !== b.sum) return a.sum > b.sum;
  for (let i = 0; i < a.members.length; i++) {
    const x = a.members[i]!;
    const y = b.members[i]!;
    if (x !== y) return x < y;
  }
  return false;
}

/**
 * Every set, in lexicographic order, so the first of equally good sets (the
 * one kept, since only a strictly better set replaces it) has the lowest indices.
 */
function bestExact(scores: PairScores, count: number): Choice {
  let best: Choice | undefined;
  const chosen: number[] = [];
  const visit = (start: number, min: number, sum: number): void => {
    if (chosen.length === count) {
      if (best === undefined || min > best.min || (min === best.min && sum > best.sum)) best = { members: [...chosen], min, sum };
      return;
    }
    // Adding members only lowers the minimum: a branch already below the best cannot win.
    if (best !== undefined && min < best.min) return;
    for (let next = start; next <= scores.size - (count - chosen.length); next++) {
      let nextMin = min;
      let nextSum = sum;
      for (const member of chosen) {
        const score = scores.at(member, next);
        nextMin = Math.min(nextMin, score);
        nextSum += score;
      }
      chosen.push(next);
      visit(next + 1, nextMin, nextSum);
      chosen.pop();
    }
  };
  visit(0, Number.POSITIVE_INFINITY, 0);
  return best ?? { members: chosen, min: 0, sum: 0 };
}

/**
 * One greedy growth from each candidate; the best of them. O(n² · count) at
 * worst, much less in practice: a growth stops as soon as its slowest link
 * falls below the best set so far, since adding members only lowers it. The
 * lowest indices, what a scheduler blind to the links would take, compete
 * too, so knowing the topology never makes a choice worse than not knowing it.
 */
function bestGreedy(scores: PairScores, count: number): Choice {
  let best = lowestPositions(scores, count);
  // The lowest positions with every pair at the fastest link present cannot be beaten.
  if (best.min === scores.fastest) return best;
  const grower = new Grower(scores);
  for (let seed = 0; seed < scores.size; seed++) {
    const choice = grower.grow(seed, count, best.min);
    if (choice !== undefined && isBetter(choice, best)) best = choice;
  }
  return best;
}

function lowestPositions(scores: PairScores, count: number): Choice {
  const members = Array.from({ length: count }, (_, i) => i);
  let min = Number.POSITIVE_INFINITY;
  let sum = 0;
  for (let i = 0; i < count; i++) {
    for (let j = i + 1; j < count; j++) {
      const score = scores.at(i, j);
      min = Math.min(min, score);
      sum += score;
    }
  }
  return { members, min, sum };
}

/**
 * Grows a set from a seed, adding each time the candidate whose slowest link
 * to the set is fastest (then the highest sum of links to it, then the lowest
 * index). Each candidate's slowest and summed link to the set is kept up to
 * date as members join, so a step costs one pass over the candidates. The
 * buffers are reused from one seed to the next.
 */
class Grower {
  /** Candidates not in the set yet: the first `left` entries. */
  private readonly outside: Int32Array;
  private readonly minToSet: Float64Array;
  private readonly sumToSet: Float64Array;

  constructor(private readonly scores: PairScores) {
    this.outside = new Int32Array(scores.size);
    this.minToSet = new Float64Array(scores.size);
    this.sumToSet = new Float64Array(scores.size);
  }

  /** The grown set, or undefined once its slowest link falls below `floor` (it can no longer win). */
  grow(seed: number, count: number, floor: number): Choice | undefined {
    const { size, values } = this.scores;
    const { outside, minToSet, sumToSet } = this;
    let left = 0;
    for (let j = 0; j < size; j++) if (j !== seed) outside[left++] = j;
    minToSet.fill(Number.POSITIVE_INFINITY);
    sumToSet.fill(0);
    const members = [seed];
    let min = Number.POSITIVE_INFINITY;
    let sum = 0;
    let joined = seed;
    while (members.length < count) {
      const row = joined * size;
      let at = -1;
      let bestMin = Number.NEGATIVE_INFINITY;
      let bestSum = Number.NEGATIVE_INFINITY;
      for (let k = 0; k < left; k++) {
        const j = outside[k]!;
        const score = values[row + j]!;
        const toSet = Math.min(minToSet[j]!, score);
        const summed = sumToSet[j]! + score;
        minToSet[j] = toSet;
        sumToSet[j] = summed;
        // `outside` is not kept in index order, so the lower index wins a full tie explicitly.
        if (toSet > bestMin || (toSet === bestMin && (summed > bestSum || (summed === bestSum && j < outside[at]!)))) {
          at = k;
          bestMin = toSet;
          bestSum = summed;
        }
      }
      min = Math.min(min, bestMin);
      if (min < floor) return undefined;
      sum += bestSum;
      joined = outside[at]!;
      members.push(joined);
      outside[at] = outside[--left]!;
    }
    members.sort((a, b) => a - b);
    return { members, min, sum };
  }
}
