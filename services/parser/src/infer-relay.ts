import { Metadata, type ClientDuplexStream, type ClientReadableStream } from '@grpc/grpc-js';
import {
  InferDone,
  type AdmitResponse,
  type ExecuteRequest,
  type ExecuteResponse,
  type ExecutorServiceClient,
  type InferRequest,
  type InferResponse,
  type Placement,
  type DecisionServiceClient,
  type Task,
} from '@autoglm/proto';
import { CancelledError, toDuration, type ParsedSubmission } from '@autoglm/core';
import { readStartThenCancel, type CallContext, type StreamSink } from '@autoglm/runtime';

export interface InferRelayDeps {
  decision: DecisionServiceClient;
  executorAt(address: string): ExecutorServiceClient;
  parse(start: Extract<NonNullable<InferRequest['kind']>, { $case: 'start' }>['start'], metadata: Metadata): Promise<ParsedSubmission>;
  /** Longest an Infer may wait for placement. */
  admitTimeoutMs: number;
  /** Longest an Infer stream may stay open without its start message. */
  startTimeoutMs?: number;
}

/**
 * One Infer stream: admission and placement through decision, then tokens
 * straight from the agent's Execute stream to the client. A cancel message or
 * a client that goes away stops the agent's work (and, before placement, the
 * queued task).
 */
export async function relayInfer(
  requests: AsyncIterable<InferRequest>,
  sink: StreamSink<InferResponse>,
  ctx: CallContext,
  deps: InferRelayDeps,
): Promise<void> {
  const started = await readStartThenCancel(requests, ctx.signal, 'Infer', deps.startTimeoutMs);
  if (!started) return;
  const parsed = await deps.parse(started.start, ctx.metadata);
  const acceptedAt = Date.now();
  const stop = started.signal;
  const cancelReason = () => (stop.reason instanceof Error ? stop.reason.message : 'cancelled by client');

  const admitted = await admit(parsed, deps, sink, stop);
  if (!admitted.placement) {
    if (ctx.signal.aborted) return;
    await sink.write({ kind: { $case: 'done', done: InferDone.fromPartial({ finishReason: 'cancelled' }) } });
    return;
  }
  const { placement } = admitted;
  // The client interceptor carries the trace context to the agent.
  const execution: ClientDuplexStream<ExecuteRequest, ExecuteResponse> = deps.executorAt(placement.agentAddress).execute(new Metadata());
  execution.write({ kind: { $case: 'start', start: { lease: placement.lease } } });
  const onStop = () => {
    execution.write({ kind: { $case: 'cancel', cancel: { reason: cancelReason() } } });
    execution.end();
  };
  // A client that left after its placement came (no abort event will come again): the work stops before it starts.
  if (stop.aborted) onStop();
  else stop.addEventListener('abort', onStop, { once: true });
  let firstTokenAt: number | undefined;
  try {
    for await (const message of execution as AsyncIterable<ExecuteResponse>) {
      const kind = message.kind;
      if (kind?.$case === 'chunk') {
        firstTokenAt ??= Date.now();
        await sink.write({ kind: { $case: 'chunk', chunk: kind.chunk } });
      } else if (kind?.$case === 'done') {
        const now = Date.now();
        const done = kind.done;
        await sink.write({
          kind: {
            $case: 'done',
            done: InferDone.fromPartial({
              finishReason: done.finishReason,
              nodeId: done.nodeId || placement.nodeId,
              usage: {
                promptTokens: done.promptTokens,
                completionTokens: done.completionTokens,
                queueTime: placement.queueTime,
                timeToFirstToken: toDuration((firstTokenAt ?? now) - acceptedAt),
                totalTime: toDuration(now - acceptedAt),
              },
            }),
          },
        });
      }
    }
  } finally {
    stop.removeEventListener('abort', onStop);
    execution.end();
  }
}

async function admit(
  parsed: ParsedSubmission,
  deps: InferRelayDeps,
  sink: StreamSink<InferResponse>,
  signal: AbortSignal,
): Promise<{ task?: Task; placement?: Placement }> {
  const call: ClientReadableStream<AdmitResponse> = deps.decision.admit(
    { requestId: parsed.requestId, tenant: parsed.tenant, spec: parsed.spec },
    new Metadata(),
    { deadline: Date.now() + deps.admitTimeoutMs },
  );
  const onAbort = () => call.cancel();
  // Gone before the Admit went out (the parse may have waited on decision): decision cancels the task when the call is.
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  let task: Task | undefined;
  try {
    for await (const message of call as AsyncIterable<AdmitResponse>) {
      const kind = message.kind;
      if (kind?.$case === 'admitted') {
        task = kind.admitted.task;
        await sink.write({ kind: { $case: 'accepted', accepted: { taskId: task?.id ?? '', queuePosition: kind.admitted.queuePosition } } });
      } else if (kind?.$case === 'placement') {
        return { task, placement: kind.placement };
      }
    }
  } catch (err) {
    if (signal.aborted) return { task };
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  if (signal.aborted) return { task };
  throw new CancelledError('decision ended the admission without a placement');
}
