import { Metadata, type ClientReadableStream } from '@grpc/grpc-js';
import {
  ClusterServiceService,
  DeadLetterSelector,
  EnqueueWorkflowRequest,
  TaskServiceService,
  type Task,
  type DecisionServiceClient,
  type Event,
  type ExecutorServiceClient,
} from '@autoglm/proto';
import { parseInferStart, parseSubmission, parseWorkflow, type ParseContext, type TenantRateLimiter } from '@autoglm/core';
import { callUnary, type ServiceHandlers } from '@autoglm/runtime';
import { admitRate } from './admit-rate';
import type { EnqueueBatcher } from './enqueue-batcher';
import { relayInfer } from './infer-relay';
import { tenantOf } from './tenant';

export interface ParserDeps {
  decision: DecisionServiceClient;
  /** Per-tenant submission rate limits (SubmitTask, SubmitWorkflow, Infer starts, CreateSchedule). */
  rateLimiter?: TenantRateLimiter;
  enqueue: EnqueueBatcher;
  executorAt(address: string): ExecutorServiceClient;
  parseContext(): ParseContext;
  /** Makes sure a model an agent's server has just started serving is known before parsing (see ServedModels). */
  knowModels(models: string[]): Promise<void>;
  decisionTimeoutMs: number;
}

/** The public TaskService: validate and parse here, forward to decision, relay Infer tokens. */
export function taskHandlers(deps: ParserDeps): ServiceHandlers<typeof TaskServiceService> {
  const { decision } = deps;
  const opts = (signal?: AbortSignal) => ({ deadlineMs: deps.decisionTimeoutMs, signal });
  return {
    submitTask: async (req, ctx) => {
      await deps.knowModels([req.model]);
      const parsed = parseSubmission({ ...req, tenant: tenantOf(req.tenant, ctx.metadata) }, deps.parseContext());
      admitRate(deps.rateLimiter, parsed.tenant);
      return deps.enqueue.enqueue({ requestId: parsed.requestId, tenant: parsed.tenant, spec: parsed.spec });
    },
    submitWorkflow: async (req, ctx) => {
      await deps.knowModels(req.steps.map((step) => step.task?.model ?? ''));
      const parsed = parseWorkflow({ ...req, tenant: tenantOf(req.tenant, ctx.metadata) }, deps.parseContext());
      admitRate(deps.rateLimiter, parsed.tenant, parsed.steps.length);
      const { tasks, created } = await callUnary(
        decision.enqueueWorkflow.bind(decision),
        EnqueueWorkflowRequest.fromPartial({ requestId: parsed.requestId, tenant: parsed.tenant, steps: parsed.steps }),
        opts(ctx.signal),
      );
      // Back in the request's order.
      const inRequestOrder: Task[] = new Array<Task>(tasks.length);
      parsed.steps.forEach((step, i) => (inRequestOrder[step.requestIndex] = tasks[i]!));
      return { tasks: inRequestOrder, created };
    },
    getTask: async (req, ctx) => callUnary(decision.getTask.bind(decision), req, opts(ctx.signal)),
    listTasks: async (req, ctx) => callUnary(decision.listTasks.bind(decision), req, opts(ctx.signal)),
    cancelTask: async (req, ctx) => callUnary(decision.cancelTask.bind(decision), req, opts(ctx.signal)),
    explainTask: async (req, ctx) => callUnary(decision.explainTask.bind(decision), req, opts(ctx.signal)),
    requeueDeadLetters: async (req, ctx) =>
      callUnary(decision.requeueDeadLetters.bind(decision), { select: withTenant(req.select, ctx.metadata) }, opts(ctx.signal)),
    purgeDeadLetters: async (req, ctx) =>
      callUnary(decision.purgeDeadLetters.bind(decision), { select: withTenant(req.select, ctx.metadata) }, opts(ctx.signal)),
    watchTask: async (req, sink, ctx) => {
      const call: ClientReadableStream<Event> = decision.subscribe({ taskEvents: false, nodeEvents: false, taskId: req.taskId, afterSequence: req.afterSequence, states: [], batched: false }, new Metadata());
      const onAbort = () => call.cancel();
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      try {
        for await (const event of call as AsyncIterable<Event>) {
          if (event.kind?.$case === 'task') await sink.write(event.kind.task);
        }
      } catch (err) {
        if (!ctx.signal.aborted) throw err;
      } finally {
        ctx.signal.removeEventListener('abort', onAbort);
      }
    },
    infer: (requests, sink, ctx) =>
      relayInfer(requests, sink, ctx, {
        decision,
        executorAt: deps.executorAt,
        parse: async (start, metadata) => {
          await deps.knowModels([start.model]);
          const parsed = parseInferStart({ ...start, tenant: tenantOf(start.tenant, metadata) }, deps.parseContext());
          admitRate(deps.rateLimiter, parsed.tenant);
          return parsed;
        },
        admitTimeoutMs: 10 * 60_000,
      }),
  };
}

/** A dead-letter selector with the caller's tenant filled in from metadata when the field is empty. */
function withTenant(select: DeadLetterSelector | undefined, metadata: Metadata): DeadLetterSelector {
  const base = select ?? DeadLetterSelector.fromPartial({});
  return { ...base, tenant: tenantOf(base.tenant, metadata) };
}

/** The public ClusterService, answered by decision. */
export function clusterHandlers(deps: ParserDeps): ServiceHandlers<typeof ClusterServiceService> {
  const { decision } = deps;
  return {
    listNodes: async (req, ctx) => callUnary(decision.listNodes.bind(decision), req, { deadlineMs: deps.decisionTimeoutMs, signal: ctx.signal }),
    getQueueStats: async (req, ctx) => callUnary(decision.getQueueStats.bind(decision), req, { deadlineMs: deps.decisionTimeoutMs, signal: ctx.signal }),
  };
}
