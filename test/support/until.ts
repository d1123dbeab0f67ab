import type { AutoglmClient } from '@autoglm/client';
import type { Task } from '@autoglm/proto';

/**
 * Polls `check` until it returns a value (not undefined) or `timeoutMs` passes.
 * For conditions observable only by asking (a task's state over the API).
 */
export async function until<T>(check: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Polls a task until it has finished (its `finishedAt` is set: a final state,
 * or FAILED with no retry to follow) and returns it.
 */
export function untilFinished(client: Pick<AutoglmClient, 'get'>, id: string, timeoutMs = 20_000): Promise<Task> {
  return until(async () => {
    const task = await client.get(id);
    return task.finishedAt ? task : undefined;
  }, timeoutMs, `task ${id} to end`);
}
