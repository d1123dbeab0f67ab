import { DomainError, InvalidArgumentError } from '@autoglm/core';

type Kind<S, C> = { $case: 'start'; start: S } | { $case: 'cancel'; cancel: C };

/** A request stream that opens with a start message and may later send a cancel. */
export interface StartedStream<S> {
  start: S;
  /** Aborted when the client sends cancel, or the call itself ends (reason: an Error saying which). */
  signal: AbortSignal;
}

/** How long a stream may stay open without its start message. */
export const DEFAULT_START_TIMEOUT_MS = 30_000;

/**
 * Reads the start message of a `start, then optionally cancel` stream (Infer,
 * Execute) and keeps reading in the background for the cancel. Resolves
 * undefined when the client closed without starting; a stream that sends no
 * start within `startTimeoutMs` fails with DEADLINE_EXCEEDED (an idle stream
 * is not held open forever).
 */
export async function readStartThenCancel<S, C extends { reason: string }>(
  requests: AsyncIterable<{ kind: Kind<S, C> | undefined }>,
  callSignal: AbortSignal,
  method: string,
  startTimeoutMs = DEFAULT_START_TIMEOUT_MS,
): Promise<StartedStream<S> | undefined> {
  const iterator = requests[Symbol.asyncIterator]();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => reject(new DomainError('DEADLINE_EXCEEDED', `${method}: no start message within ${startTimeoutMs / 1000} s of opening the stream; send start first`)),
      startTimeoutMs,
    );
  });
  const first = await Promise.race([iterator.next(), late]).finally(() => clearTimeout(timer));
  if (first.done) return undefined;
  const kind = first.value.kind;
  if (kind?.$case !== 'start') throw new InvalidArgumentError('kind', `the first message on ${method} must be start`);
  const stop = new AbortController();
  // A caller that left while the start was read (or before) is gone already: no abort event will come.
  if (callSignal.aborted) stop.abort(new Error('the caller went away'));
  else callSignal.addEventListener('abort', () => stop.abort(new Error('the caller went away')), { once: true });
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
