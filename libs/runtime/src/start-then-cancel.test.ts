import { readStartThenCancel } from './start-then-cancel';

type Message = { kind: { $case: 'start'; start: string } | { $case: 'cancel'; cancel: { reason: string } } | undefined };

/** A request stream fed by the test: push messages, end it. */
function requestStream() {
  const queue: Message[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const iterable: AsyncIterable<Message> = {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        if (queue.length > 0) yield queue.shift()!;
        else if (ended) return;
        else await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
  return {
    iterable,
    push: (m: Message) => {
      queue.push(m);
      wake?.();
    },
    end: () => {
      ended = true;
      wake?.();
    },
  };
}

describe('readStartThenCancel', () => {
  it('gives the start and a signal that a later cancel message aborts with its reason', async () => {
    const requests = requestStream();
    requests.push({ kind: { $case: 'start', start: 'go' } });
    const started = await readStartThenCancel(requests.iterable, new AbortController().signal, 'Infer');
    expect(started?.start).toBe('go');
    expect(started?.signal.aborted).toBe(false);
    const aborted = new Promise((resolve) => started!.signal.addEventListener('abort', resolve));
    requests.push({ kind: { $case: 'cancel', cancel: { reason: 'changed my mind' } } });
    await aborted;
    expect((started!.signal.reason as Error).message).toBe('changed my mind');
  });

  it('gives a signal already aborted when the caller left before the start was read', async () => {
    const requests = requestStream();
    requests.push({ kind: { $case: 'start', start: 'go' } });
    const call = new AbortController();
    call.abort();
    const started = await readStartThenCancel(requests.iterable, call.signal, 'Infer');
    expect(started?.signal.aborted).toBe(true);
    expect((started!.signal.reason as Error).message).toBe('the caller went away');
  });

  it('resolves undefined for a stream closed without a start, and refuses one that opens with anything else', async () => {
    const empty = requestStream();
    empty.end();
    await expect(readStartThenCancel(empty.iterable, new AbortController().signal, 'Infer')).resolves.toBeUndefined();
    const wrong = requestStream();
    wrong.push({ kind: { $case: 'cancel', cancel: { reason: '' } } });
    await expect(readStartThenCancel(wrong.iterable, new AbortController().signal, 'Infer')).rejects.toThrow('kind: the first message on Infer must be start');
  });
});
