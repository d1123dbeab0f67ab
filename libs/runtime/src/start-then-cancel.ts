import { InvalidArgumentError } from '@autoglm/core';

type Kind<S, C> = { $case: 'start'; start: S } | { $case: 'cancel'; cancel: C };

/** A request stream that opens with a start message and may later send a cancel. */
export interface StartedStream<S> {
  start: S;
  /** Aborted when the client sends cancel, or the call itself ends (reason: an Error saying which). */
  signal: AbortSignal;
}

/**
 * Reads the start message of a `start, then optionally cancel` stream (Infer,
 * Execute) and keeps reading in the background for the cancel. Resolves
 * undefined when the client closed without starting.
 */
export async function readStartThenCancel<S, C extends { reason: string }>(
  requests: AsyncIterable<{ kind: Kind<S, C> | undefined }>,
  callSignal: AbortSignal,
  method: string,
): Promise<StartedStream<S> | undefined> {
  const iterator = requests[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done) return undefined;
  const kind = first.value.kind;
  if (kind?.$case !== 'start') throw new InvalidArgumentError('kind', `the first message on ${method} must be start`);
  const stop = new AbortController();
  callSignal.addEventListener('abort', () => stop.abort(new Error('the caller went away')), { once: true });
  void (async () => {
    try {
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        const message = next.value.kind;
        if (message?.$case === 'cancel') {
          stop.abort(new Error(message.cancel.reason || 'cancelled by client'));
          return;
        }
      }
    } catch {
      // The caller's side broke: callSignal covers it.
    }
  })();
  return { start: kind.start, signal: stop.signal };
}
