/** The smallest bucketed latency, in seconds: anything faster shares the first bucket. */
const BASE_SECONDS = 0.001;
/** Each bucket's upper bound is this times its lower one: about 10 % resolution. */
const GROWTH = 1.1;
const LOG_GROWTH = Math.log(GROWTH);
/** Under 1 ms, then 1 ms × 1.1^k up to about 1 h, then everything slower. */
const BUCKETS = 2 + Math.ceil(Math.log(3600 / BASE_SECONDS) / LOG_GROWTH);

function bucketOf(seconds: number): number {
  if (!(seconds >= BASE_SECONDS)) return 0;
  return Math.min(BUCKETS - 1, 1 + Math.floor(Math.log(seconds / BASE_SECONDS) / LOG_GROWTH));
}

/** One second's samples. */
interface Slot {
  /** Which second (epoch ms / 1000, floored) the counts are of; -1 when unused. */
  second: number;
  count: number;
  min: number;
  max: number;
  readonly counts: Uint32Array;
}

/**
 * Latencies of the last `windowMs`, as one log-bucketed histogram per second
 * of wall time: recording is O(1) at any rate, and memory is fixed
 * (window seconds × ~160 buckets). Percentiles merge the slots still in the
 * window and answer within one bucket (about 10 %), clamped to the exact
 * minimum and maximum seen, so a lone sample is reported as it was.
 */
export class LatencyWindow {
  private readonly slots: Slot[];

  constructor(windowMs: number) {
    const seconds = Math.max(1, Math.ceil(windowMs / 1000));
    this.slots = Array.from({ length: seconds }, () => ({ second: -1, count: 0, min: Infinity, max: -Infinity, counts: new Uint32Array(BUCKETS) }));
  }

  record(atMs: number, seconds: number): void {
    const second = Math.floor(atMs / 1000);
    const slot = this.slots[second % this.slots.length]!;
    if (slot.second !== second) {
      slot.second = second;
      slot.count = 0;
      slot.min = Infinity;
      slot.max = -Infinity;
      slot.counts.fill(0);
    }
    slot.count += 1;
    slot.counts[bucketOf(seconds)]! += 1;
    if (seconds < slot.min) slot.min = seconds;
    if (seconds > slot.max) slot.max = seconds;
  }

  /** Median and 99th percentile (nearest rank) of the window ending at `nowMs`; null without any sample. */
  percentiles(nowMs: number): [number | null, number | null] {
    const newest = Math.floor(nowMs / 1000);
    const oldest = newest - this.slots.length + 1;
    const merged = new Float64Array(BUCKETS);
    let count = 0;
    let min = Infinity;
    let max = -Infinity;
    for (const slot of this.slots) {
      if (slot.count === 0 || slot.second < oldest || slot.second > newest) continue;
      count += slot.count;
      if (slot.min < min) min = slot.min;
      if (slot.max > max) max = slot.max;
      for (let b = 0; b < BUCKETS; b += 1) merged[b]! += slot.counts[b]!;
    }
    if (count === 0) return [null, null];
    const rank = (p: number): number => {
      const target = Math.max(1, Math.ceil(p * count));
      let seen = 0;
      let b = 0;
      for (; b < BUCKETS - 1; b += 1) {
        seen += merged[b]!;
        if (seen >= target) break;
      }
      // The bucket's geometric middle, kept within what was actually seen.
      const estimate = BASE_SECONDS * GROWTH ** (b - 0.5);
      return Math.min(max, Math.max(min, estimate));
    };
    return [rank(0.5), rank(0.99)];
  }
}
