import { ExecuteDone, ExecutorServiceService, type ExecuteRequest, type ExecuteResponse } from '@autoglm/proto';
import { AbortedError, FailedPreconditionError, InvalidArgumentError, toDuration, UnavailableError } from '@autoglm/core';
import { readStartThenCancel, trace, type CallContext, type Logger, type ServiceHandlers, type StreamSink } from '@autoglm/runtime';
import type { Agent } from './agent';
import { ExecutionError, type Backend } from './backends';

/**
 * ExecutorService.Execute: the parser presents the lease decision granted;
 * the agent runs the inference and streams its tokens back directly.
 */
export function executorHandlers(agent: Agent, backend: Backend, nodeId: string, logger: Logger): ServiceHandlers<typeof ExecutorServiceService> {
  return {
    execute: (requests, sink, ctx) => execute(requests, sink, ctx, agent, backend, nodeId, logger),
  };
}

async function execute(
  requests: AsyncIterable<ExecuteRequest>,
  sink: StreamSink<ExecuteResponse>,
  ctx: CallContext,
  agent: Agent,
  backend: Backend,
  nodeId: string,
  logger: Logger,
): Promise<void> {
  const started = await readStartThenCancel(requests, ctx.signal, 'Execute');
  if (!started) return;
  const lease = started.start.lease;
  if (!lease?.taskId) throw new InvalidArgumentError('start.lease', 'is required');
  // The call's span names its task, as an assignment's agent.execute span does: a trace is found by task id.
  trace.getActiveSpan()?.setAttributes({ 'autoglm.task_id': lease.taskId, 'autoglm.attempt': lease.attempt, 'autoglm.node_id': nodeId });
  const cancel = new AbortController();
  if (started.signal.aborted) cancel.abort(started.signal.reason);
  else started.signal.addEventListener('abort', () => cancel.abort(started.signal.reason), { once: true });
  const claimed = await agent.claim(lease, cancel.signal);
  // Revoked, expired or superseded before the stream came: another attempt (a retried request) may run.
  if (!claimed) throw new AbortedError(`lease for task ${lease.taskId} attempt ${lease.attempt} is not held by node ${nodeId}`);
  const spec = claimed.assignment.task!.spec!;
  try {
    const outcome = await backend.execute({
      taskId: lease.taskId,
      attempt: lease.attempt,
      spec,
      gpuIndices: claimed.assignment.gpuIndices,
      replicaId: claimed.assignment.replicaId || undefined,
      signal: claimed.signal,
      onChunk: (text, tokenCount) => {
        sink.write({ kind: { $case: 'chunk', chunk: { text, tokenCount } } }).catch(() => cancel.abort(new Error('the parser went away')));
      },
    });
    claimed.settle(outcome);
    if (ctx.signal.aborted) return;
    await sink.write({
      kind: {
        $case: 'done',
        done: ExecuteDone.fromPartial({
          finishReason: outcome.finishReason,
          promptTokens: outcome.promptTokens,
          completionTokens: outcome.completionTokens,
          timeToFirstToken: toDuration(outcome.timeToFirstTokenMs),
          nodeId,
        }),
      },
    });
  } catch (err) {
    const failure = err instanceof ExecutionError ? err : new ExecutionError(err instanceof Error ? err.message : String(err), false);
    claimed.settle(failure);
    // The backend's own text may name hosts and URLs: log it; the client gets it only when it is about the request.
    if (failure.retryable) {
      if (!ctx.signal.aborted) logger.warn({ err: failure, taskId: lease.taskId }, 'interactive execution failed');
      throw new UnavailableError(`inference failed on node ${nodeId}; retry`);
    }
    throw new FailedPreconditionError(failure.message);
  }
}
