import { AutoglmError } from './errors';

/** The part of a grpc-js client stream (server or bidi streaming) that reading needs. */
export interface ReadableCall<T> extends AsyncIterable<T> {
  cancel(): void;
}

/**
 * Yields the messages of a call until the server ends it. A non-OK status is
 * thrown as an AutoglmError. When `signal` aborts, `onAbort` runs (by default
 * the call is cancelled); a CANCELLED status that follows is the caller's own
 * doing and ends the iteration quietly. A consumer that stops iterating early
 * cancels the call, so no stream is left open on the server.
 */
export async function* readStream<T>(
  call: ReadableCall<T>,
  signal: AbortSignal | undefined,
  onAbort: () => void = () => call.cancel(),
): AsyncGenerator<T, void, undefined> {
  let ended = false;
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const message of call) yield message;
    ended = true;
  } catch (error) {
    ended = true;
    const wrapped = AutoglmError.from(error);
    if (signal?.aborted && wrapped.code === 'CANCELLED') return;
    throw wrapped;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!ended) call.cancel();
  }
}
