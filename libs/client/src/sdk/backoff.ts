/** How `submit` spaces its attempts. */
export interface RetryOptions {
  /**
   * Attempts in all, the first included; 1 disables retrying.
   * @default 5
   */
  maxAttempts?: number;
  /**
   * Delay before the second attempt, before jitter.
   * @default 100
   */
  initialBackoffMs?: number;
  /**
   * Ceiling of the delay, before jitter.
   * @default 5000
   */
  maxBackoffMs?: number;
}

/** RetryOptions with every default applied. */
export type ResolvedRetryOptions = Required<RetryOptions>;

/** Applies the defaults of RetryOptions. */
export function resolveRetryOptions(options: RetryOptions = {}): ResolvedRetryOptions {
  return {
    maxAttempts: Math.max(1, options.maxAttempts ?? 5),
    initialBackoffMs: options.initialBackoffMs ?? 100,
    maxBackoffMs: options.maxBackoffMs ?? 5000,
  };
}

/**
 * Delay after the `failures`-th consecutive failure (1-based): exponential,
 * capped, with ±20 % jitter (as gRPC's own connection backoff) so that many
 * clients failing together do not come back together. A server's
 * `retryAfterMs` is a floor.
 */
export function backoffDelay(
  failures: number,
  options: ResolvedRetryOptions,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number {
  const exponential = Math.min(options.maxBackoffMs, options.initialBackoffMs * 2 ** Math.max(0, failures - 1));
  const jittered = exponential * (0.8 + 0.4 * random());
  return Math.round(Math.max(jittered, retryAfterMs ?? 0));
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
