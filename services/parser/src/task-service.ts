import { Metadata, type ClientReadableStream } from '@grpc/grpc-js';
import {
  ClusterServiceService,
  DeadLetterSelector,
  EnqueueWorkflowRequest,
  Role,
  TaskServiceService,
  type Task,
  type DecisionServiceClient,
  type MonitorServiceClient,
  type Event,
  type ExecutorServiceClient,
} from '@autoglm/proto';
import {
  actingTenant,
  listingTenant,
  parseInferStart,
  parseSubmission,
  parseWorkflow,
  requireVisible,
  type ParseContext,
  type Principal,
  type TenantRateLimiter,
} from '@autoglm/core';
import { callUnary, type ServiceHandlers } from '@autoglm/runtime';
import { admitRate } from './admit-rate';
import type { EnqueueBatcher } from './enqueue-batcher';
import type { Authenticator } from './authenticate';
import { relayInfer } from './infer-relay';
import { tenantOf } from './tenant';

export interface ParserDeps {
  /** Who each call comes from (its bearer token, or no check at all). */
  auth: Authenticator;
  decision: DecisionServiceClient;
  /** The monitor: alerts, SLOs, scale recommendations and feedback actions. */
  monitor: MonitorServiceClient;
  /** Per-tenant submission rate limits (SubmitTask, SubmitWorkflow, Infer starts, CreateSchedule). */
  rateLimiter?: TenantRateLimiter;
  enqueue: EnqueueBatcher;
  executorAt(address: string): ExecutorServiceClient;
  parseContext(): ParseContext;
  /** Makes sure a model an agent's server has just started serving is known before parsing (see ServedModels). */
  knowModels(models: string[]): Promise<void>;
  decisionTimeoutMs: number;
  /** Longest an Infer stream may stay open without its start message. */
  streamStartTimeoutMs?: number;
}

/** The public TaskService: authenticate, validate and parse here, forward to decision, relay Infer tokens. */
export function taskHandlers(deps: ParserDeps): ServiceHandlers<typeof TaskServiceService> {
  const { decision, auth } = deps;
  const opts = (signal?: AbortSignal) => ({ deadlineMs: deps.decisionTimeoutMs, signal });
  /** The task, if the caller may see it: another tenant's is "not found", as one that does not exist. */
  const visibleTask = async (who: Principal, taskId: string, signal: AbortSignal): Promise<Task> => {
    const task = await callUnary(decision.getTask.bind(decision), { taskId }, opts(signal));
    requireVisible(who, task.tenant, `task ${taskId} does not exist`);
    return task;
  };
  return {
    submitTask: async (req, ctx) => {
      const who = await auth.authorize(ctx.metadata, 'submit', 'SubmitTask');
      const tenant = actingTenant(who, tenantOf(req.tenant, ctx.metadata));
      await deps.knowModels([req.model]);
      const parsed = parseSubmission({ ...req, tenant }, deps.parseContext());
      admitRate(deps.rateLimiter, parsed.tenant);
      return deps.enqueue.enqueue({ requestId: parsed.requestId, tenant: parsed.tenant, spec: parsed.spec });
    },
    submitWorkflow: async (req, ctx) => {
      const who = await auth.authorize(ctx.metadata, 'submit', 'SubmitWorkflow');
      const tenant = actingTenant(who, tenantOf(req.tenant, ctx.metadata));
      await deps.knowModels(req.steps.map((step) => step.task?.model ?? ''));
      const parsed = parseWorkflow({ ...req, tenant }, deps.parseContext());
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
    getTask: async (req, ctx) => {
      const who = await auth.authorize(ctx.metadata, 'read', 'GetTask');
      return visibleTask(who, req.taskId, ctx.signal);
    },
    listTasks: async (req, ctx) => {
      const who = await auth.authorize(ctx.metadata, 'read', 'ListTasks');
      return callUnary(decision.listTasks.bind(decision), { ...req, tenant: listingTenant(who, req.tenant) }, opts(ctx.signal));
    },
    cancelTask: async (req, ctx) => {
      const who = await auth.authorize(ctx.metadata, 'submit', 'CancelTask');
      await visibleTask(who, req.taskId, ctx.signal);
      return callUnary(decision.cancelTask.bind(decision), req, opts(ctx.signal));
    },
    explainTask: async (req, ctx) => {
      const who = await auth.authorize(ctx.metadata, 'read', 'ExplainTask');
      await visibleTask(who, req.taskId, ctx.signal);
      return callUnary(decision.explainTask.bind(decision), req, opts(ctx.signal));
    },
    requeueDeadLetters: async (req, ctx) => {
      const who = await auth.authorize(ctx.metadata, 'submit', 'RequeueDeadLetters');
      return callUnary(decision.requeueDeadLetters.bind(decision), { select: deadLetters(who, req.select, ctx.metadata) }, opts(ctx.signal));
    },
    purgeDeadLetters: async (req, ctx) => {
      const who = await auth.authorize(ctx.metadata, 'submit', 'PurgeDeadLetters');
      return callUnary(decision.purgeDeadLetters.bind(decision), { select: deadLetters(who, req.select, ctx.metadata) }, opts(ctx.signal));
    },
    watchTask: async (req, sink, ctx) => {
      const who = await auth.authorize(ctx.metadata, 'read', 'WatchTask');
      await visibleTask(who, req.taskId, ctx.signal);
      const call: ClientReadableStream<Event> = decision.subscribe({ taskEvents: false, nodeEvents: false, taskId: req.taskId, afterSequence: req.afterSequence, states: [], batched: false, snapshot: false }, new Metadata());
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
    infer: async (requests, sink, ctx) => {
      // Known before anything is read: a caller without the right never holds a stream open.
      const who = await auth.authorize(ctx.metadata, 'submit', 'Infer');
      return relayInfer(requests, sink, ctx, {
        decision,
        executorAt: deps.executorAt,
        parse: async (start, metadata) => {
          const tenant = actingTenant(who, tenantOf(start.tenant, metadata));
          await deps.knowModels([start.model]);
          const parsed = parseInferStart({ ...start, tenant }, deps.parseContext());
          admitRate(deps.rateLimiter, parsed.tenant);
          return parsed;
        },
        admitTimeoutMs: 10 * 60_000,
        startTimeoutMs: deps.streamStartTimeoutMs,
      });
    },
  };
}

/**
 * A dead-letter selector limited to what the caller may touch: its own
 * tenant's (or, for an admin, the tenant it names; none: every tenant).
 */
function deadLetters(who: Principal, select: DeadLetterSelector | undefined, metadata: Metadata): DeadLetterSelector {
  const base = select ?? DeadLetterSelector.fromPartial({});
  return { ...base, tenant: listingTenant(who, tenantOf(base.tenant, metadata)) };
}

/** Whether a caller may see what concerns `tenant` (undefined or '*': no one tenant). */
function sees(who: Principal, tenant: string | undefined): boolean {
  return who.role === Role.ADMIN || tenant === undefined || tenant === '*' || tenant === who.tenant;
}

/**
 * The public ClusterService, answered by decision. Anyone with a token sees
 * the fleet; only an admin sees which task holds or waits for each GPU, and
 * every tenant's queue (others see their own).
 */
export function clusterHandlers(deps: ParserDeps): ServiceHandlers<typeof ClusterServiceService> {
  const { decision, monitor, auth } = deps;
  const opts = (signal: AbortSignal) => ({ deadlineMs: deps.decisionTimeoutMs, signal });
  return {
    listNodes: async (req, ctx) => {
      const who = await auth.authorize(ctx.metadata, 'read', 'ListNodes');
      const answer = await callUnary(decision.listNodes.bind(decision), req, opts(ctx.signal));
      if (who.role === Role.ADMIN) return answer;
      return { ...answer, nodes: answer.nodes.map((n) => ({ ...n, gpuClaims: n.gpuClaims.map((c) => ({ ...c, taskId: '', heldFor: '' })) })) };
    },
    getQueueStats: async (req, ctx) => {
      const who = await auth.authorize(ctx.metadata, 'read', 'GetQueueStats');
      const stats = await callUnary(decision.getQueueStats.bind(decision), req, opts(ctx.signal));
      return who.role === Role.ADMIN ? stats : { ...stats, tenants: stats.tenants.filter((t) => t.tenant === who.tenant) };
    },
    // The monitor's views: another tenant's alerts, SLO series and boosts are an admin's to see.
    listAlerts: async (req, ctx) => {
      const who = await auth.authorize(ctx.metadata, 'read', 'ListAlerts');
      const answer = await callUnary(monitor.listAlerts.bind(monitor), req, opts(ctx.signal));
      return { alerts: answer.alerts.filter((a) => sees(who, a.labels.tenant)) };
    },
    getSloStatus: async (req, ctx) => {
      const who = await auth.authorize(ctx.metadata, 'read', 'GetSloStatus');
      const answer = await callUnary(monitor.getSloStatus.bind(monitor), req, opts(ctx.signal));
      return { slos: answer.slos.filter((s) => sees(who, s.tenant)) };
    },
    getScaleRecommendations: async (req, ctx) => {
      await auth.authorize(ctx.metadata, 'read', 'GetScaleRecommendations');
      return callUnary(monitor.getScaleRecommendations.bind(monitor), req, opts(ctx.signal));
    },
    listFeedbackActions: async (req, ctx) => {
      const who = await auth.authorize(ctx.metadata, 'read', 'ListFeedbackActions');
      const answer = await callUnary(monitor.listFeedbackActions.bind(monitor), req, opts(ctx.signal));
      return { ...answer, actions: answer.actions.filter((a) => a.kind !== 'tenant-boost' || sees(who, a.target)) };
    },
  };
}
