/**
 * When a failed attempt is tried again: exponential backoff with jitter.
 * The n-th failure waits between half and all of min(cap, base * 2^(n-1)),
 * so retries of many tasks that failed together (a bad node, a broken
 * dependency) spread out instead of arriving as one wave.
 */
export interface RetryPolicy {
  /** Delay before the first retry, before jitter. @default 500 */
  baseMs: number;
  /** Largest delay, before jitter. @default 30000 */
  maxMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { baseMs: 500, maxMs: 30_000 };

/** Milliseconds to wait after the `failures`-th failure (1, 2, ...). `random` in [0, 1). */
export function retryDelayMs(failures: number, policy: RetryPolicy = DEFAULT_RETRY_POLICY, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(0, failures - 1), 30);
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** exponent);
  return Math.round(ceiling * (0.5 + 0.5 * random()));
}

