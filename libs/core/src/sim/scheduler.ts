/**
 * The simulator's only contact with time. Production code passes one built on
 * `setTimeout`; tests pass a `ManualScheduler` and move time by hand, so a
 * simulated minute of GPU work runs in microseconds and the same way every time.
 */
export interface Scheduler {
  /** Current time in milliseconds (any epoch; only differences matter). */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds; the returned function cancels it. */
  setTimer(ms: number, fn: () => void): () => void;
}

interface PendingTimer {
  readonly due: number;
  /** Insertion order, so timers due at the same time fire first-come first-served. */
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

/** A scheduler whose clock moves only when told to. Timers fire in due order, ties by creation. */
export class ManualScheduler implements Scheduler {
  private time: number;
  private nextSeq = 0;
  /** Sorted by (due, seq). */
  private readonly timers: PendingTimer[] = [];

  constructor(startMs = 0) {
    this.time = startMs;
  }

  now(): number {
    return this.time;
  }

  setTimer(ms: number, fn: () => void): () => void {
    if (Number.isNaN(ms)) throw new RangeError('timer delay is NaN');
    const timer: PendingTimer = { due: this.time + Math.max(0, ms), seq: this.nextSeq++, fn, cancelled: false };
    this.timers.splice(this.insertionPoint(timer), 0, timer);
    return () => {
      timer.cancelled = true;
    };
  }

  /** Timers not yet fired or cancelled. */
  get pendingTimers(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  /** When the next live timer is due, if any. */
  nextTimerAt(): number | undefined {
    return this.timers.find((t) => !t.cancelled)?.due;
  }

  /** Moves the clock forward by `ms`, firing every timer that falls due, including ones set while firing. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`cannot advance by ${ms} ms`);
    this.advanceTo(this.time + ms);
  }

  /** Moves the clock to `target` (not backwards), firing due timers in order. */
  advanceTo(target: number): void {
    if (Number.isNaN(target)) throw new RangeError('cannot move the clock to NaN');
    if (target < this.time) throw new RangeError(`cannot move the clock back from ${this.time} to ${target}`);
    for (;;) {
      const next = this.timers[0];
      if (next === undefined || next.due > target) break;
      this.timers.shift();
      if (next.cancelled) continue;
      this.time = next.due;
      next.fn();
    }
    this.time = target;
  }

  /**
   * Fires timers until none is left. `maxTimers` bounds the run so a loop that
   * keeps re-arming itself fails the test instead of hanging it.
   */
  runUntilIdle(maxTimers = 1_000_000): void {
    let fired = 0;
    for (;;) {
      const next = this.timers.shift();
      if (next === undefined) return;
      if (next.cancelled) continue;
      if (++fired > maxTimers) throw new Error(`still busy after ${maxTimers} timers`);
      this.time = Math.max(this.time, next.due);
      next.fn();
    }
  }

  private insertionPoint(timer: PendingTimer): number {
    let lo = 0;
    let hi = this.timers.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const other = this.timers[mid] as PendingTimer;
      if (other.due < timer.due || (other.due === timer.due && other.seq < timer.seq)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
