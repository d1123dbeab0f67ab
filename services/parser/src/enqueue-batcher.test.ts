import { EnqueueBatchRequest, EnqueueRequest, type DecisionServiceClient, type EnqueueBatchResponse } from '@autoglm/proto';
import { EnqueueBatcher } from './enqueue-batcher';

/** decision's EnqueueBatch, accepting everything and recording each call's encoded size. */
function fakeDecision(sizes: number[]): DecisionServiceClient {
  const enqueueBatch = (req: EnqueueBatchRequest, _md: unknown, _opts: unknown, cb: (err: null, res: EnqueueBatchResponse) => void) => {
    sizes.push(EnqueueBatchRequest.encode(req).finish().length);
    setImmediate(() => cb(null, { results: req.items.map((item) => ({ outcome: { $case: 'accepted', accepted: { task: { id: item.request!.requestId } as never, created: true } } })) }));
    return {};
  };
  return { enqueueBatch } as unknown as DecisionServiceClient;
}

const submission = (id: string, promptBytes: number) =>
  EnqueueRequest.fromPartial({ requestId: id, tenant: 't', spec: { payload: { $case: 'inference', inference: { prompt: 'x'.repeat(promptBytes) } } } });

describe('EnqueueBatcher', () => {
  it('coalesces what arrives in one turn, in calls of at most maxBatchBytes (a larger submission alone)', async () => {
    const sizes: number[] = [];
    const batcher = new EnqueueBatcher(fakeDecision(sizes), 1000, 512, 1_000_000);
    const answers = await Promise.all([
      ...Array.from({ length: 5 }, (_, i) => batcher.enqueue(submission(`a${i}`, 300_000))),
      batcher.enqueue(submission('big', 1_500_000)),
      ...Array.from({ length: 3 }, (_, i) => batcher.enqueue(submission(`b${i}`, 10))),
    ]);
    expect(answers.map((a) => a.task!.id)).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'big', 'b0', 'b1', 'b2']);
    // 3 + 2 of the 300 kB ones, the big one alone, then the small ones together.
    expect(sizes.length).toBe(4);
    expect(sizes.filter((s) => s > 1_000_000)).toHaveLength(1);
    expect(Math.max(...sizes.filter((s) => s < 1_500_000))).toBeLessThanOrEqual(1_000_000);
  });
});
