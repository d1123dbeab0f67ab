/**
 * When a fire refused for a reason that may pass (the store unreachable, a
 * rate limit) is tried again: after the refusal's own hint when it gives
 * one, else with exponential backoff and jitter as a failed task attempt
 * waits; never later than the schedule's next fire time, which supersedes
 * the pending one. The schedule's next_fire_at moves to this time, so a
 * schedule being retried sorts behind every other due schedule.
 */
import { retryDelayMs, type RetryPolicy } from '../lifecycle/retry';

/** Backoff of a fire tried again: 1 s, doubling, at most 5 min (before jitter). */
export const DEFAULT_FIRE_RETRY_POLICY: RetryPolicy = { baseMs: 1000, maxMs: 5 * 60_000 };

export interface FireRetryTiming {
  nowMs: number;
  /** Failed tries of this fire time so far, this one included (1, 2, ...). */
  attempts: number;
  /** When the refusal said trying again makes sense (RESOURCE_EXHAUSTED's retry-after), if it did. */
  retryAfterMs?: number;
  /** The schedule's fire time after the pending one. */
  nextFireAtMs: number;
}

/** The instant to try a pending fire again; always after `nowMs`. `random` in [0, 1), for the jitter. */
export function fireRetryAt(timing: FireRetryTiming, policy: RetryPolicy = DEFAULT_FIRE_RETRY_POLICY, random: () => number = Math.random): number {
  const hinted = timing.retryAfterMs !== undefined && Number.isFinite(timing.retryAfterMs) && timing.retryAfterMs > 0;
  const delayMs = hinted ? timing.retryAfterMs! : retryDelayMs(timing.attempts, policy, random);
  return Math.max(timing.nowMs + 1, Math.min(timing.nowMs + Math.ceil(delayMs), timing.nextFireAtMs));
}
