/**
 * What a schedule whose fire time has come does now. The policy, as
 * Kubernetes CronJob's with its startingDeadlineSeconds:
 * - However many fire times passed unseen (decision was down, or late), at
 *   most one task is submitted: for the latest of them.
 * - A starting deadline, when set, skips even that one if it is older than
 *   the deadline, and waits for the next fire time.
 * - The fire time names the task's request id, so submitting it again after
 *   a crash (committed, not yet recorded) finds the same task.
 */
import { latestFireAtOrBefore, nextFireAfter, type CronExpression } from './cron';

/** A fire that is due. */
export interface DueFire {
  /** The fire time to submit for: the latest one not after now. */
  readonly fireAtMs: number;
  /** Earlier fire times were missed and will not be run. */
  readonly missedEarlier: boolean;
  /** The fire time is older than the starting deadline: record it as missed, submit nothing. */
  readonly tooLate: boolean;
  /** The fire time after now, for the schedule to wait for next. */
  readonly nextFireAtMs: number;
}

/**
 * The fire due at `nowMs` for a schedule waiting for `nextFireAtMs`, or
 * undefined when that time has not come. A starting deadline of 0 means none.
 */
export function dueFire(cron: CronExpression, timeZone: string, nextFireAtMs: number, nowMs: number, startingDeadlineMs = 0): DueFire | undefined {
  if (nextFireAtMs > nowMs) return undefined;
  // On time (no fire time since the awaited one): the fire after it is the next, and nothing was missed.
  const following = nextFireAfter(cron, nextFireAtMs, timeZone);
  if (following > nowMs) {
    return { fireAtMs: nextFireAtMs, missedEarlier: false, tooLate: startingDeadlineMs > 0 && nowMs - nextFireAtMs > startingDeadlineMs, nextFireAtMs: following };
  }
  // Fire times were missed: find the latest by bisection rather than walking them.
  const fireAtMs = latestFireAtOrBefore(cron, nowMs, timeZone, nextFireAtMs) ?? nextFireAtMs;
  return {
    fireAtMs,
    missedEarlier: fireAtMs > nextFireAtMs,
    tooLate: startingDeadlineMs > 0 && nowMs - fireAtMs > startingDeadlineMs,
    nextFireAtMs: nextFireAfter(cron, Math.max(nowMs, fireAtMs), timeZone),
  };
}

/** Starts the request id of every task a schedule submits; clients may not use it (see parseRequestId). */
export const SCHEDULE_REQUEST_ID_PREFIX = 'schedule:';

/** The request id of the task a schedule submits for one fire time: the same on every retry and after a restart. */
export function fireRequestId(scheduleId: string, fireAtMs: number): string {
  return `${SCHEDULE_REQUEST_ID_PREFIX}${scheduleId}:${Math.round(fireAtMs)}`;
}
