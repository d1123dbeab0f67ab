import {
  AlertState,
  ApplyPolicyResponse,
  DecisionServiceService,
  EnqueueBatchResponse,
  EnqueueResult,
  ListNodesResponse,
  ListTasksResponse,
  PurgeDeadLettersResponse,
  RequeueDeadLettersResponse,
  TaskEvent,
  TaskState,
  type Event,
  type SubscribeRequest,
} from '@autoglm/proto';
import { InvalidArgumentError, isFinal, ResourceExhaustedError, timestampToMillis } from '@autoglm/core';
import type { TaskStore } from '@autoglm/store';
import { context, contextFromCarrier, endSpan, RETRY_AFTER_TRAILER, startSpan, toStatus, type CallContext, type Logger, type ServiceHandlers, type StreamSink } from '@autoglm/runtime';
import { serveAgentSession } from './agent-session';
import { EventQueue } from './event-queue';
import { decodePageToken, encodePageToken, pageLimit, UUID } from './paging';
import type { EventBus } from './event-bus';
import type { Scheduler } from './scheduler';

/** Bounds on what one caller may make decision hold. */
export interface DecisionLimits {
  /** A Subscribe stream this many events behind is cut with RESOURCE_EXHAUSTED. */
  subscriberBacklog: number;
  /** Subscribe streams of every task's or node's events at once (per-task watches are not counted); more are refused. */
  maxSubscribers: number;
}

export function decisionHandlers(scheduler: Scheduler, store: TaskStore, bus: EventBus, logger: Logger, limits: DecisionLimits): ServiceHandlers<typeof DecisionServiceService> {
  let subscribers = 0;
  return {
    enqueue: async (req) => scheduler.enqueue(req),
    enqueueWorkflow: async (req) => scheduler.enqueueWorkflow(req),

    enqueueBatch: async (req) => {
      const results = await Promise.all(
        req.items.map((item) => {
          // Each submission continues its own trace (the parser's SubmitTask span).
          const { span, ctx } = startSpan('decision.enqueue', {}, contextFromCarrier(item.traceContext));
          return context.with(ctx, () =>
            (item.request ? scheduler.enqueue(item.request) : Promise.reject(new InvalidArgumentError('items.request', 'is required'))).then(
              (accepted) => {
                span.setAttribute('autoglm.task_id', accepted.task.id);
                endSpan(span, 0);
                return EnqueueResult.fromPartial({ outcome: { $case: 'accepted', accepted } });
              },
              (err: unknown) => {
                const st = toStatus(err, logger);
                endSpan(span, st.code, st.details);
                const retryAfterMs = Number(st.metadata?.get(RETRY_AFTER_TRAILER)[0] ?? 0);
                return EnqueueResult.fromPartial({ outcome: { $case: 'error', error: { code: st.code, message: st.details, retryAfterMs } } });
              },
            ),
          );
        }),
      );
      return EnqueueBatchResponse.fromPartial({ results });
    },

    admit: async (req, sink, ctx) => {
      // A client that goes away before placement (ctx.signal) cancels the task.
      const placement = await scheduler.admit(
        req,
        (task, queuePosition) => sink.write({ kind: { $case: 'admitted', admitted: { task, queuePosition } } }),
        ctx.signal,
      );
      await sink.write({ kind: { $case: 'placement', placement } });
    },

    connect: (requests, sink, ctx) => serveAgentSession(requests, sink, ctx, scheduler, logger),

    subscribe: async (req, sink, ctx) => {
      if (req.taskId) {
        await streamTaskEvents(req.taskId, req.afterSequence, scheduler, store, bus, sink, ctx.signal);
        return;
      }
      if (!req.taskEvents && !req.nodeEvents) throw new InvalidArgumentError('task_events', 'ask for task_events, node_events or a task_id');
      if (subscribers >= limits.maxSubscribers) throw new ResourceExhaustedError(`decision serves at most ${limits.maxSubscribers} Subscribe streams of all events at once; close one, or watch single tasks`);
      subscribers += 1;
      const queue = new EventQueue<Event>(ctx.signal);
      // Live events wait in the queue while a snapshot is written: its size is allowed on top.
      let backlog = limits.subscriberBacklog;
      // The backlog is bounded where it grows: a subscriber that does not read
      // (its writes wait for it) is cut at once, its queue dropped, rather
      // than left to hold events in decision's memory.
      const unsubscribe = bus.subscribe({ tasks: req.taskEvents, nodes: req.nodeEvents, states: req.states }, (event) => {
        queue.push(event);
        if (queue.length <= backlog) return;
        unsubscribe();
        queue.clear();
        sink.fail(new ResourceExhaustedError(`subscriber fell more than ${backlog} events behind (it reads too slowly); resubscribe (with snapshot)`));
      });
      try {
        // Subscribed first, so nothing between the snapshot and the live events is lost (a repeat is skipped by its sequence).
        if (req.snapshot) {
          backlog += scheduler.unfinishedCount();
          await writeSnapshot(req, scheduler, sink, req.batched ? 1024 : 1);
        }
        for (;;) {
          const events = await queue.take(req.batched ? 1024 : 1);
          if (events.length === 0) return;
          await sink.write(events.length === 1 ? events[0]! : { kind: { $case: 'batch', batch: { events } } });
        }
      } finally {
        subscribers -= 1;
        unsubscribe();
        queue.close();
      }
    },

    applyPolicy: async (req, ctx) => {
      if (!req.update) throw new InvalidArgumentError('update', 'is required');
      return ApplyPolicyResponse.fromPartial({ version: scheduler.applyPolicy(req.update, fromMonitor(ctx, req.update.source)) });
    },

    setNodeQuarantine: async (req, ctx) => {
      if (!req.nodeId) throw new InvalidArgumentError('node_id', 'is required: the node to quarantine or readmit');
      if (req.quarantined && !req.reason.trim()) throw new InvalidArgumentError('reason', 'is required to quarantine a node: say why, for whoever reads "autoglm nodes"');
      const reason = `${req.reason}${req.source ? ` (${req.source})` : ''}`;
      return scheduler.setNodeQuarantine(req.nodeId, req.quarantined, reason, req.until ? timestampToMillis(req.until) : undefined, fromMonitor(ctx, req.source));
    },

    reportAlerts: async (req) => {
      for (const [i, alert] of req.alerts.entries()) {
        if (!alert.name) throw new InvalidArgumentError(`alerts[${i}].name`, 'is required');
        if (alert.state === AlertState.UNSPECIFIED || !(alert.state in AlertState)) throw new InvalidArgumentError(`alerts[${i}].state`, 'must be PENDING, FIRING or RESOLVED');
      }
      for (const alert of req.alerts) bus.publishAlert(alert);
      return {};
    },

    getTask: async (req) => scheduler.get(requireTaskId(req.taskId)),

    listTasks: async (req) => {
      const limit = pageLimit(req.pageSize);
      for (const [i, s] of req.states.entries()) {
        if (!(s in TaskState) || s === TaskState.UNSPECIFIED) throw new InvalidArgumentError(`states[${i}]`, `unknown state ${s}`);
      }
      const before = req.pageToken ? decodePageToken(req.pageToken) : undefined;
      const tasks = await store.list({ tenant: req.tenant || undefined, states: req.states, limit, before });
      const last = tasks[tasks.length - 1];
      const nextPageToken = tasks.length === limit && last?.createdAt ? encodePageToken(timestampToMillis(last.createdAt), last.id) : '';
      return ListTasksResponse.fromPartial({ tasks, nextPageToken });
    },

    cancelTask: async (req) => scheduler.cancel(requireTaskId(req.taskId), req.reason),

    explainTask: async (req) => {
      const id = requireTaskId(req.taskId);
      return scheduler.explain(id, await scheduler.get(id));
    },

    listNodes: async () => ListNodesResponse.fromPartial({ nodes: scheduler.listNodes() }),

    getQueueStats: async () => scheduler.queueStats(),

    requeueDeadLetters: async (req) => RequeueDeadLettersResponse.fromPartial({ requeued: await scheduler.requeueDeadLetters(req.select) }),

    purgeDeadLetters: async (req) => PurgeDeadLettersResponse.fromPartial({ purged: await scheduler.purgeDeadLetters(req.select) }),
  };
}

/** Whether the monitor's feedback loop calls: its certificate says so; without mutual TLS (a plaintext local mesh) its word (`source`) does. */
function fromMonitor(ctx: CallContext, source: string): boolean {
  return ctx.identity !== undefined ? ctx.identity.role === 'monitor' : source === 'monitor';
}

/** A Subscribe's snapshot: each unfinished task's current state, then each node, in messages of up to `perMessage` events. */
async function writeSnapshot(req: SubscribeRequest, scheduler: Scheduler, sink: StreamSink<Event>, perMessage: number): Promise<void> {
  let events: Event[] = [];
  const flush = async () => {
    if (events.length === 0) return;
    await sink.write(events.length === 1 ? events[0]! : { kind: { $case: 'batch', batch: { events } } });
    events = [];
  };
  const add = async (event: Event) => {
    events.push(event);
    if (events.length >= perMessage) await flush();
  };
  if (req.taskEvents) for (const task of scheduler.taskSnapshot(req.states)) await add({ kind: { $case: 'task', task } });
  if (req.nodeEvents) for (const node of scheduler.listNodes()) await add({ kind: { $case: 'node', node } });
  await flush();
}

function requireTaskId(id: string): string {
  if (!id) throw new InvalidArgumentError('task_id', 'is required');
  if (!UUID.test(id)) throw new InvalidArgumentError('task_id', `"${id}" is not a task id (a UUID)`);
  return id.toLowerCase();
}

/**
 * Whether the event ends its task: marked final, or (events stored before
 * the flag existed) a final state or the transition that finished the task.
 */
function endsTask(event: TaskEvent): boolean {
  return event.final || isFinal(event.state) || (event.task?.finishedAt !== undefined && event.task.sequence === event.sequence);
}

/**
 * A task's transitions: replay from the store after `afterSequence`, then live
 * ones, with no gap and no duplicate, until the task reaches a final state.
 */
async function streamTaskEvents(
  rawId: string,
  afterSequence: number,
  scheduler: Scheduler,
  store: TaskStore,
  bus: EventBus,
  sink: StreamSink<Event>,
  signal: AbortSignal,
): Promise<void> {
  const taskId = requireTaskId(rawId);
  const live = new EventQueue<TaskEvent>(signal);
  // Listen before reading the store: an event committed after the read is then caught live.
  const unsubscribe = bus.subscribe({ taskId }, (event) => {
    if (event.kind?.$case === 'task') live.push(event.kind.task);
  });
  try {
    const current = await scheduler.find(taskId);
    if (!current) throw new InvalidArgumentError('task_id', `task ${taskId} does not exist`);
    let last = afterSequence;
    // Already over and nothing new to replay: there is nothing left to stream.
    if (current.finishedAt && afterSequence >= current.sequence) return;
    const replay = await store.events(taskId, afterSequence);
    for (const [i, event] of replay.entries()) {
      // Replayed events carry the task as it is now; the last one is the current state.
      event.task = i === replay.length - 1 ? current : undefined;
      await sink.write({ kind: { $case: 'task', task: event } });
      last = event.sequence;
      if (endsTask(event)) return;
    }
    for (;;) {
      const event = await live.next();
      if (!event) return;
      if (event.sequence <= last) continue;
      await sink.write({ kind: { $case: 'task', task: event } });
      last = event.sequence;
      if (endsTask(event)) return;
    }
  } finally {
    unsubscribe();
    live.close();
  }
}
