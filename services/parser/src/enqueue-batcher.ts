import { Metadata } from '@grpc/grpc-js';
import { EnqueueRequest, type DecisionServiceClient, type EnqueueBatchItem, type EnqueueResponse } from '@autoglm/proto';
import { callUnary, captureTraceContext, ourStatus } from '@autoglm/runtime';

interface Pending {
  item: EnqueueBatchItem;
  resolve: (r: EnqueueResponse) => void;
  reject: (e: unknown) => void;
}

/**
 * Coalesces the submissions that arrive in one turn of the event loop into a
 * single EnqueueBatch call. Under load a burst of submissions costs one call
 * to decision instead of one each; alone, a submission waits no longer than
 * the current turn. Each answer, accepted or refused, goes to its own caller.
 * A call carries at most `maxBatchBytes` of submissions (one larger goes
 * alone), so large submissions arriving together stay under decision's
 * message limit.
 */
export class EnqueueBatcher {
  private pending: Pending[] = [];
  private pendingBytes = 0;
  private scheduled = false;

  constructor(
    private readonly decision: DecisionServiceClient,
    private readonly deadlineMs: number,
    private readonly maxBatch = 512,
    private readonly maxBatchBytes = 4 * 1024 * 1024,
  ) {}

  enqueue(request: EnqueueRequest): Promise<EnqueueResponse> {
    const bytes = EnqueueRequest.encode(request).finish().length;
    return new Promise((resolve, reject) => {
      if (this.pending.length > 0 && this.pendingBytes + bytes > this.maxBatchBytes) this.flush();
      this.pendingBytes += bytes;
      this.pending.push({ item: { request, traceContext: captureTraceContext() }, resolve, reject });
      if (this.pending.length >= this.maxBatch) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.pending.splice(0, this.pending.length);
    this.pendingBytes = 0;
    if (batch.length === 0) return;
    callUnary(this.decision.enqueueBatch.bind(this.decision), { items: batch.map((p) => p.item) }, { deadlineMs: this.deadlineMs, metadata: new Metadata() }).then(
      (response) => {
        batch.forEach((p, i) => {
          const outcome = response.results[i]?.outcome;
          if (outcome?.$case === 'accepted') p.resolve(outcome.accepted);
          // decision made these statuses with its toStatus: they pass through to the client.
          else if (outcome?.$case === 'error') p.reject(ourStatus(outcome.error.code, outcome.error.message, outcome.error.retryAfterMs || undefined));
          else p.reject(ourStatus(13, 'decision returned no result for this submission'));
        });
      },
      (err: unknown) => {
        for (const p of batch) p.reject(err);
      },
    );
  }
}
