import type { TaskEvent, TaskState } from '@autoglm/proto';
import type { AutoglmClient } from '../sdk/client';
import { abortableDelay, backoffDelay, resolveRetryOptions } from '../sdk/backoff';
import { AutoglmError, isRetryable } from '../sdk/errors';
import { endsTask } from './names';

/** Watches open at once when following many tasks; the rest wait their turn (a watch replays history, so nothing is missed). */
export const WATCH_CONCURRENCY = 512;

const RESUME = resolveRetryOptions({ maxAttempts: 10, initialBackoffMs: 200, maxBackoffMs: 5000 });

/**
 * Follows a task to its final state. A watch cut by a restarting ingress
 * (UNAVAILABLE, or a stream that ends early) is resumed after the last
 * sequence seen, so no transition is missed or repeated. Returns the final
 * state, or the last state seen when `signal` aborted.
 */
export async function followTask(
  client: AutoglmClient,
  taskId: string,
  onEvent: (event: TaskEvent) => void,
  signal?: AbortSignal,
): Promise<TaskState | undefined> {
  let after = 0;
  let state: TaskState | undefined;
  let over = false;
  let failures = 0;
  for (;;) {
    let failure: AutoglmError;
    try {
      for await (const event of client.watch(taskId, after, { signal })) {
        after = event.sequence;
        state = event.state;
        over = endsTask(event);
        failures = 0;
        onEvent(event);
      }
      if (signal?.aborted || over) return state;
      failure = new AutoglmError('UNAVAILABLE', `the watch of task ${taskId} ended before a final state`);
    } catch (error) {
      failure = AutoglmError.from(error);
      if (!isRetryable(failure)) throw failure;
    }
    failures++;
    if (failures >= RESUME.maxAttempts) throw failure;
    try {
      await abortableDelay(backoffDelay(failures, RESUME, failure.retryAfterMs), signal);
    } catch {
      return state;
    }
  }
}
