import type { Claim, Demand, Fleet } from '@autoglm/core';
import { earliestReservation, type Reservation } from './easy-reservation';
import type { RunningView, Scheduler } from './quality-sim';
import type { Work } from './quality-workload';

/** Later tasks a pass tries to backfill, as Slurm's bf_max_job_test (its default, 500). */
const BACKFILL_DEPTH = 500;

/** The baselines, in words, for the report. */
export const BASELINE_DESCRIPTIONS = {
  fifo: 'strict FIFO: one queue in arrival order; the head waits until it fits and nothing passes it (placement by Fleet)',
  'fifo-easy': `FIFO with EASY backfill (Slurm's default): the head that does not fit gets a reservation at the earliest time it can start by the predicted ends of running work; later tasks (the next ${BACKFILL_DEPTH} in order) start out of order only if they fit now and are predicted to end before that time or keep off the reserved GPUs`,
};

/** FIFO as it is usually meant: arrival order, and a head that does not fit blocks everything behind it. */
export class StrictFifo implements Scheduler {
  private queue: Work[] = [];
  private head = 0;

  constructor(private readonly fleet: Fleet) {}

  get queued(): number {
    return this.queue.length - this.head;
  }

  enqueue(work: Work): void {
    this.queue.push(work);
  }

  place(_nowMs: number, start: (work: Work, claim: Claim) => void): void {
    while (this.head < this.queue.length && this.fleet.hasRoom()) {
      const work = this.queue[this.head]!;
      const claim = this.fleet.place(work.demand, work.id);
      if (typeof claim === 'string') break;
      this.head += 1;
      start(work, claim);
    }
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  released(): void {}

  preempt(): string[] {
    return [];
  }

  wakeAtMs(): undefined {
    return undefined;
  }
}

interface Queued {
  work: Work;
  predictedRunMs: number;
  shape: string;
  started: boolean;
}

/**
 * FIFO with EASY backfill, in the claim model. The reservation is the
 * earliest time the queue head fits on some node once running work ends at
 * its predicted end (easy-reservation.ts), held there with Fleet.holdAfter,
 * so placement keeps other work off the reserved GPUs (or replica). A
 * later task may start if it fits with the hold in place (it keeps off the
 * reserved GPUs), or, predicted to end before the reservation's start, if it
 * fits without it. Predictions are the same predictor's as every policy's
 * (core's RunTimePredictor), never the truth.
 *
 * A pass skips a task whose shape (kind, model, GPUs) already failed to fit
 * in it, and stops once every shape queued has failed both ways: with the KV
 * cache never binding here, such a task cannot fit either.
 */
export class EasyBackfill implements Scheduler {
  private queue: Queued[] = [];
  private head = 0;
  private waiting = 0;
  /** The head's reservation, kept while nothing has ended since (only an end can move it earlier). */
  private reservation: (Reservation & { holder: string }) | undefined;
  /** Queued tasks by shape (see shapeOf). */
  private readonly shapes = new Map<string, number>();

  constructor(
    private readonly fleet: Fleet,
    private readonly running: RunningView,
  ) {}

  get queued(): number {
    return this.waiting;
  }

  enqueue(work: Work, _nowMs: number, predictedRunMs: number): void {
    const shape = shapeOf(work.demand);
    this.queue.push({ work, predictedRunMs, shape, started: false });
    this.waiting += 1;
    this.shapes.set(shape, (this.shapes.get(shape) ?? 0) + 1);
  }

  place(nowMs: number, start: (work: Work, claim: Claim) => void): void {
    // Heads in order while they fit (a head may use what is held for it).
    for (let q = this.headEntry(); q && this.fleet.hasRoom(q.work.demand.kind); q = this.headEntry()) {
      const claim = this.fleet.place(q.work.demand, q.work.id);
      if (typeof claim === 'string') break;
      this.fleet.unhold(q.work.id);
      this.started(q);
      start(q.work, claim);
    }
    const head = this.headEntry();
    if (!head) return;
    const reservation = this.reservationFor(head.work, nowMs);
    // No reservation (it fits nowhere even once all running work ends): backfilling could starve it.
    if (!reservation) return;
    const failed = new Set<string>();
    let tried = 0;
    for (let i = this.head + 1; i < this.queue.length && tried < BACKFILL_DEPTH && this.fleet.hasRoom(); i++) {
      const q = this.queue[i]!;
      if (q.started) continue;
      tried += 1;
      const shape = q.shape;
      const short = nowMs + q.predictedRunMs <= reservation.shadowMs;
      if (failed.has(shape) && (!short || failed.has(`${shape}/short`))) continue;
      let claim: Claim | undefined;
      if (!failed.has(shape)) {
        // With the hold in place, placement keeps it off the reserved GPUs.
        const placed = this.fleet.place(q.work.demand, q.work.id);
        if (typeof placed === 'string') failed.add(shape);
        else claim = placed;
      }
      if (!claim && short && !failed.has(`${shape}/short`)) {
        // Predicted gone before the reservation starts: it may use the reserved room meanwhile.
        this.fleet.unhold(head.work.id);
        const placed = this.fleet.place(q.work.demand, q.work.id);
        if (typeof placed === 'string') failed.add(`${shape}/short`);
        else {
          claim = placed;
          if (placed.nodeId === reservation.nodeId) reservation.freed.push(placed);
        }
        if (!this.fleet.holdAfter(reservation.nodeId, head.work.demand, reservation.freed, head.work.id)) {
          // The Fleet plans the room differently now: reserve afresh before going on.
          const again = this.reserve(head.work, nowMs);
          if (!again) {
            this.reservation = undefined;
            break;
          }
          Object.assign(reservation, again);
        }
      }
      if (!claim) {
        if (this.exhausted(failed)) break;
        continue;
      }
      this.started(q);
      start(q.work, claim);
    }
    this.compact();
  }

  released(): void {
    this.reservation = undefined;
  }

  preempt(): string[] {
    return [];
  }

  wakeAtMs(): undefined {
    return undefined;
  }

  /** The head's reservation: the last one while the head, its hold and its start still stand, else a new one. */
  private reservationFor(work: Work, nowMs: number): Reservation | undefined {
    const kept = this.reservation;
    if (kept && kept.holder === work.id && kept.shadowMs >= nowMs && this.fleet.heldNode(work.id) === kept.nodeId) return kept;
    const fresh = this.reserve(work, nowMs);
    this.reservation = fresh && { ...fresh, holder: work.id };
    return this.reservation;
  }

  private started(q: Queued): void {
    q.started = true;
    this.waiting -= 1;
    this.shapes.set(q.shape, this.shapes.get(q.shape)! - 1);
  }

  /** Every shape still queued failed with and without the hold: nothing further can fit in this pass. */
  private exhausted(failed: Set<string>): boolean {
    for (const [shape, n] of this.shapes) if (n > 0 && !(failed.has(shape) && failed.has(`${shape}/short`))) return false;
    return true;
  }

  private headEntry(): Queued | undefined {
    while (this.head < this.queue.length && this.queue[this.head]!.started) this.head += 1;
    return this.queue[this.head];
  }

  /** The head's reservation, held on the Fleet (the hold from the last pass is stale: running work has moved on). */
  private reserve(work: Work, nowMs: number): Reservation | undefined {
    this.fleet.unhold(work.id);
    const reservation = earliestReservation(this.fleet, work.demand, work.id, (nodeId) => this.running.on(nodeId), nowMs);
    if (reservation && !this.fleet.holdAfter(reservation.nodeId, work.demand, reservation.freed, work.id)) return undefined;
    return reservation;
  }

  /** Drops started entries once they are most of the array (backfill starts them out of order). */
  private compact(): void {
    if (this.queue.length - this.head > 2 * this.waiting + 1024) {
      this.queue = this.queue.slice(this.head).filter((q) => !q.started);
      this.head = 0;
    }
  }
}

function shapeOf(d: Demand): string {
  return `${d.kind}/${d.model}/${d.gpuCount}`;
}
