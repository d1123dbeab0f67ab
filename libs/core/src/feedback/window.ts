/**
 * Counts over a rolling window of time, kept as a ring of equal buckets: the
 * window slides one bucket at a time, so a count is exact to within one
 * bucket's span and memory is fixed (one pair of numbers per bucket), however
 * many events arrive.
 */
export class RollingCounts {
  private readonly good: Float64Array;
  private readonly bad: Float64Array;
  /** The bucket number (time / bucketMs) each slot last held. */
  private readonly epoch: Float64Array;
  readonly bucketMs: number;

  /** @param windowMs the window's span; @param buckets how many slices it is cut into. */
  constructor(readonly windowMs: number, buckets = 30) {
    this.bucketMs = Math.max(1, Math.ceil(windowMs / buckets));
    const n = Math.max(1, Math.ceil(windowMs / this.bucketMs));
    this.good = new Float64Array(n);
    this.bad = new Float64Array(n);
    this.epoch = new Float64Array(n).fill(-1);
  }

  /** Counts `count` events at `atMs`, good or bad. Events older than the window are ignored. */
  add(atMs: number, good: boolean, count = 1): void {
    const bucket = Math.floor(atMs / this.bucketMs);
    const slot = bucket % this.good.length;
    if (this.epoch[slot] !== bucket) {
      // A slot holding an older bucket is reused; one holding a newer one means this event is too old.
      if (this.epoch[slot]! > bucket) return;
      this.epoch[slot] = bucket;
      this.good[slot] = 0;
      this.bad[slot] = 0;
    }
    if (good) this.good[slot]! += count;
    else this.bad[slot]! += count;
  }

  /** Good and total events in the window that ends at `nowMs`. */
  totals(nowMs: number): { good: number; total: number } {
    const newest = Math.floor(nowMs / this.bucketMs);
    const oldest = newest - this.good.length + 1;
    let good = 0;
    let bad = 0;
    for (let i = 0; i < this.good.length; i++) {
      const e = this.epoch[i]!;
      if (e < oldest || e > newest) continue;
      good += this.good[i]!;
      bad += this.bad[i]!;
    }
    return { good, total: good + bad };
  }

  /** Whether anything at all is counted in the window ending at `nowMs` (series with none can be dropped). */
  isEmpty(nowMs: number): boolean {
    return this.totals(nowMs).total === 0;
  }
}
