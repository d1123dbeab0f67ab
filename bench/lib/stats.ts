/** A mean over independent runs (seeds) with its 95 % confidence interval. */
export interface Estimate {
  mean: number;
  /** Half-width of the 95 % confidence interval (Student t, n − 1 degrees of freedom); NaN with fewer than two values. */
  half: number;
  n: number;
}

/**
 * Student t's 0.975 quantile by degrees of freedom (1..30), from the
 * standard tables: two-sided 95 % intervals over a handful of seeds are far
 * wider than the normal 1.96 would make them.
 */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06,
  2.056, 2.052, 2.048, 2.045, 2.042,
];
/** Beyond 30 degrees of freedom: 40, 60, 120 and ∞, interpolated in 1/df as tables advise. */
const T975_TAIL: Array<[number, number]> = [
  [30, 2.042],
  [40, 2.021],
  [60, 2.0],
  [120, 1.98],
  [Infinity, 1.96],
];

/** The 0.975 quantile of Student's t with `df` degrees of freedom. */
export function tQuantile975(df: number): number {
  if (!(df >= 1)) return NaN;
  if (df <= 30) return T975[Math.floor(df) - 1]!;
  for (let i = 1; i < T975_TAIL.length; i++) {
    const [hiDf, hiT] = T975_TAIL[i]!;
    if (df > hiDf) continue;
    const [loDf, loT] = T975_TAIL[i - 1]!;
    const x = (1 / df - 1 / loDf) / (1 / hiDf - 1 / loDf);
    return loT + x * (hiT - loT);
  }
  return 1.96;
}

export function mean(xs: readonly number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((s, x) => s + x, 0) / xs.length;
}

/** Sample standard deviation (n − 1). */
export function stdev(xs: readonly number[]): number {
  if (xs.length < 2) return NaN;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1));
}

/** Mean and 95 % confidence interval of independent values (one per seed). */
export function estimate(xs: readonly number[]): Estimate {
  const n = xs.length;
  return { mean: mean(xs), half: n < 2 ? NaN : (tQuantile975(n - 1) * stdev(xs)) / Math.sqrt(n), n };
}

/** Per-seed differences a − b (paired: same arrivals and fleet), with their mean and 95 % interval. */
export function pairedDifference(a: readonly number[], b: readonly number[]): Estimate {
  if (a.length !== b.length) throw new Error(`paired values: ${a.length} against ${b.length}`);
  return estimate(a.map((x, i) => x - b[i]!));
}

/** Per-seed ratios a / b (paired), and their mean and 95 % interval. */
export function pairedRatio(a: readonly number[], b: readonly number[]): { ratios: number[]; estimate: Estimate } {
  if (a.length !== b.length) throw new Error(`paired values: ${a.length} against ${b.length}`);
  const ratios = a.map((x, i) => x / b[i]!);
  return { ratios, estimate: estimate(ratios) };
}

/**
 * "a is no worse than b" for a measure where lower is better, over paired
 * runs: the mean difference a − b is at most the half-width of its 95 %
 * interval, i.e. the interval reaches zero or below, so the runs do not show
 * a worse at 95 %. With identical runs (zero difference) it holds.
 */
export function noWorse(a: readonly number[], b: readonly number[]): { holds: boolean; difference: Estimate } {
  const difference = pairedDifference(a, b);
  const half = Number.isFinite(difference.half) ? difference.half : 0;
  return { holds: difference.mean <= half + 1e-9 * Math.max(1, Math.abs(difference.mean)), difference };
}

/** Nearest-rank percentile of unsorted values (sorted here). */
export function percentileOf(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
