import { PriorityClass } from '@autoglm/proto';

/** Weight of the newest queue time in a class's moving average. */
const WAIT_ALPHA = 0.1;

/**
 * Predicts how long a new task of a class will wait before it is placed:
 * a moving average (EWMA) of the queue times of the class's recent
 * placements, learned online; nothing waits while the fleet has room and
 * nothing of the class or above is queued.
 */
export class WaitPredictor {
  private readonly meanMs = new Map<PriorityClass, number>();

  observe(priorityClass: PriorityClass, queueMs: number): void {
    if (!(queueMs >= 0) || !Number.isFinite(queueMs)) return;
    const mean = this.meanMs.get(priorityClass);
    this.meanMs.set(priorityClass, mean === undefined ? queueMs : mean + WAIT_ALPHA * (queueMs - mean));
  }

  /** Predicted wait (ms) of a task of the class; 0 when it would be placed at once. */
  predict(priorityClass: PriorityClass, placedAtOnce: boolean): number {
    return placedAtOnce ? 0 : (this.meanMs.get(priorityClass) ?? 0);
  }
}

/** Why a deadline cannot be met, or undefined when the predicted finish is in time. */
export interface UnmeetableDeadline {
  finishMs: number;
  lateMs: number;
}

export function unmeetableDeadline(nowMs: number, deadlineMs: number, predictedWaitMs: number, predictedRunMs: number): UnmeetableDeadline | undefined {
  const finishMs = nowMs + predictedWaitMs + predictedRunMs;
  return finishMs > deadlineMs ? { finishMs, lateMs: finishMs - deadlineMs } : undefined;
}

export type DeadlineOutcome = 'met' | 'missed' | 'refused';

export interface DeadlineCounts {
  tenant: string;
  priorityClass: PriorityClass;
  met: number;
  missed: number;
  refused: number;
}

/**
 * Deadline outcomes per tenant and class: a task with a deadline that
 * succeeded by it met it; one that succeeded later, or ended without success
 * once it had passed, missed it; a submission refused up front was refused.
 */
export class DeadlineOutcomes {
  private readonly counts = new Map<string, DeadlineCounts>();

  /** The outcome of a task with a deadline that reached a final state (undefined: it ended early without success, which is no miss). */
  static of(succeeded: boolean, finishedMs: number, deadlineMs: number): DeadlineOutcome | undefined {
    if (finishedMs <= deadlineMs) return succeeded ? 'met' : undefined;
    return 'missed';
  }

  record(tenant: string, priorityClass: PriorityClass, outcome: DeadlineOutcome): void {
    const key = `${tenant}\u0000${priorityClass}`;
    let c = this.counts.get(key);
    if (!c) {
      c = { tenant, priorityClass, met: 0, missed: 0, refused: 0 };
      this.counts.set(key, c);
    }
    c[outcome] += 1;
  }

  /** Every (tenant, class) with an outcome, by tenant then class. */
  all(): DeadlineCounts[] {
    return [...this.counts.values()].map((c) => ({ ...c })).sort((a, b) => a.tenant.localeCompare(b.tenant) || a.priorityClass - b.priorityClass);
  }
}
