import { randomUUID } from 'node:crypto';
import {
  ClassQueueStats,
  EnqueueRequest,
  type EnqueueWorkflowRequest,
  Lease,
  Node,
  NodeState,
  Placement,
  PolicyChange,
  DeadlinePolicy,
  PriorityClass,
  RequeuedTask,
  PriorityExplanation,
  QueueStats,
  Task,
  TaskResult,
  TaskState,
  TenantQueueStats,
  WaitingCause,
  type ConnectResponse,
  type DeadLetterSelector,
  type GpuStatus,
  type HostStatus,
  type ModelServerLoad,
  type PolicyUpdate,
  type Register,
  type Registered,
  type TaskSpec,
  type TaskUpdate,
  type Telemetry,
} from '@autoglm/proto';
import {
  applyPolicyUpdate,
  canTransition,
  classValue,
  DEFAULT_POLICY,
  Dispatcher,
  explainPriority,
  FairShare,
  DEFAULT_RETRY_POLICY,
  FailedPreconditionError,
  AlreadyExistsError,
  Fleet,
  InvalidArgumentError,
  isFinal,
  heartbeatIntervalMs,
  isLeased,
  NotFoundError,
  isSheddable,
  preemptionRank,
  ResourceExhaustedError,
  retryDelayMs,
  RunTimePredictor,
  DeadlineOutcomes,
  unmeetableDeadline,
  WaitPredictor,
  variantOf,
  type PolicyExperiment,
  stateName,
  UnavailableError,
  toDuration,
  toTimestamp,
  timestampToMillis,
  durationToMillis,
  type Clock,
  type Demand,
  type Policy,
  type QueuedTaskInit,
  type Reservation,
  type RetryPolicy,
  type TenantConfig,
  type WaitCause,
} from '@autoglm/core';
import { isTransient, type StoredEvent, type TaskStore } from '@autoglm/store';
import { captureTraceContext, type Logger } from '@autoglm/runtime';
import type { EventBus } from './event-bus';
import { Live } from './live';
import { UUID } from './paging';

/** How decision talks back to one connected agent. */
export interface AgentLink {
  send(message: ConnectResponse): void;
  /** Ends the agent's stream (it was replaced or declared lost). */
  close(reason: string): void;
}

/** Model weights by name, for GPU-memory accounting (weights are shared on a GPU). */
export type WeightBytesOf = (model: string) => number | undefined;

export interface SchedulerOptions {
  store: TaskStore;
  bus: EventBus;
  fleet: Fleet;
  logger: Logger;
  weightBytesOf: WeightBytesOf;
  clock?: Clock;
  /**
   * This decision process's number (TaskStore.newIncarnation). Lease epochs
   * are incarnation * 2^32 + a counter, so they grow across restarts.
   */
  incarnation: number;
  /** An agent silent this long is lost and its leases requeued. @default 3000 */
  leaseMs?: number;
  /** How often agents push telemetry. @default 100 */
  telemetryIntervalMs?: number;
  /** Backoff between a failed attempt and the next. */
  retry?: RetryPolicy;
  /** The policy to start with (weights, age bound, fair-share half-life). @default DEFAULT_POLICY */
  policy?: Policy;
  /** Tenants' shares and quotas; tenants not listed have share 1 and no quota. */
  tenants?: TenantConfig[];
  /**
   * Sheddable submissions (negative priority) are refused while their class
   * has this many tasks queued, or has tasks past the age bound. @default 10000
   */
  shedQueueLimit?: number;
  /** A policy experiment: tasks split between weight variants, the variant recorded on each. */
  experiment?: PolicyExperiment;
}

interface NodeInfo {
  /** Absent for a node known only from leases recovered after a restart. */
  register?: Register;
  /** Absent while the node is disconnected. */
  link?: AgentLink;
  telemetry?: Telemetry;
  state: NodeState;
  lastSeenMs: number;
  leased: Set<string>;
}

const S = TaskState;
/** Dead letters one `all` requeue or purge acts on at most. */
const MAX_DEAD_LETTERS_PER_CALL = 10_000;

/** Distinct task sizes whose Demand is shared before the cache starts over. */
const MAX_SHARED_DEMANDS = 10_000;

/** The longest an agent waits between reconnection attempts (its backoff doubles from 100 ms up to this). */
const AGENT_MAX_BACKOFF_MS = 2000;

const seconds = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
const className = (c: PriorityClass): string => (c === PriorityClass.URGENT ? 'urgent' : c === PriorityClass.BACKGROUND ? 'background' : 'normal');

const WAIT_CAUSES: Record<WaitCause, WaitingCause> = {
  priority: WaitingCause.PRIORITY,
  capacity: WaitingCause.CAPACITY,
  quota: WaitingCause.QUOTA,
  'no-model': WaitingCause.NO_MODEL,
};

/** The cost factor: a task's share of a node, counted against an 8-GPU node of 80 GiB GPUs. */
const COST_GPUS = 8;
const COST_GPU_MEMORY_BYTES = 8 * 80 * 2 ** 30;

/** Lease epochs: incarnation * 2^32 + a per-process counter (exact in a double up to incarnation 2^21). */
const EPOCHS_PER_INCARNATION = 2 ** 32;

/** A submission whose commit may have happened although the store said it failed. */
interface InDoubt {
  traceContext?: Record<string, string>;
  checks: number;
}

/**
 * Decision's state and the rules that move tasks through it. The ordering and
 * placement decisions themselves are in libs/core (ReadyQueue, Fleet, the state
 * machine); this class sequences them with the store: a transition is made
 * durable before its event is published and before an agent is told to run
 * anything. (A cancel stops the agent's work before the CANCELLED commit:
 * stopping early is safe, running unrecorded work is not.)
 */
export class Scheduler {
  private readonly live = new Map<string, Live>();
  /** Tasks whose final transition is being committed. */
  private readonly finishing = new Map<string, Live>();
  private readonly dispatcher: Dispatcher;
  private readonly runTimes = new RunTimePredictor();
  private readonly waits = new WaitPredictor();
  private readonly deadlines = new DeadlineOutcomes();
  private readonly shedQueueLimit: number;
  private readonly experiment?: PolicyExperiment;
  /** Per variant (by index): what its tasks saw. */
  private readonly variantStats: Array<{ submitted: number; placed: number; queueMs: number; met: number; missed: number }> = [];
  private readonly dependents = new Map<string, Set<string>>();
  private readonly admissions = new Map<string, { resolve: (p: Placement) => void; reject: (e: unknown) => void }>();
  private readonly nodes = new Map<string, NodeInfo>();
  private readonly store: TaskStore;
  private readonly bus: EventBus;
  private readonly fleet: Fleet;
  private readonly logger: Logger;
  private readonly weightBytesOf: WeightBytesOf;
  private readonly clock: Clock;
  private readonly leaseMs: number;
  private readonly telemetryIntervalMs: number;
  private readonly retryPolicy: RetryPolicy;
  private readonly incarnation: number;
  private leaseCounter = 0;
  private dispatchScheduled = false;
  private preemptionTimer: ReturnType<typeof setTimeout> | undefined;
  private preemptionTimerAtMs: number | undefined;
  private policy: Policy = DEFAULT_POLICY;
  private succeeded = 0;
  private failed = 0;
  private readonly inDoubt = new Map<string, InDoubt>();
  /** Tenant names, one string each however many tasks name them. */
  private readonly tenantNames = new Map<string, string>();
  /** Demands by size, shared by the tasks that need the same. */
  private readonly demands = new Map<string, Readonly<Demand>>();
  /** Entries to put at rest after this turn's dispatch pass (see Live). */
  private readonly resting: Live[] = [];
  private restScheduled = false;
  /** Reports refused because their lease was superseded (fencing). */
  rejectedReports = 0;
  /** Attempts declared LOST because their node went silent or came back without them. */
  lostAttempts = 0;
  private deadLetterCount = 0;
  /** Attempts stopped for higher-ranked work. */
  preempted = 0;

  constructor(options: SchedulerOptions) {
    this.store = options.store;
    this.bus = options.bus;
    this.fleet = options.fleet;
    this.logger = options.logger;
    this.weightBytesOf = options.weightBytesOf;
    this.clock = options.clock ?? Date.now;
    this.leaseMs = options.leaseMs ?? 3000;
    this.telemetryIntervalMs = options.telemetryIntervalMs ?? 100;
    this.retryPolicy = options.retry ?? DEFAULT_RETRY_POLICY;
    this.incarnation = options.incarnation;
    this.policy = options.policy ?? DEFAULT_POLICY;
    this.shedQueueLimit = options.shedQueueLimit ?? 10_000;
    this.experiment = options.experiment;
    const now = this.clock();
    this.dispatcher = new Dispatcher({
      fleet: this.fleet,
      fairShare: new FairShare(options.tenants ?? [], { halfLifeMs: this.policy.fairShareHalfLifeMs, nowMs: now }),
      policy: this.policy,
      nowMs: now,
      demandOf: (id) => this.live.get(id)?.demand,
    });
    if (this.experiment) {
      this.dispatcher.queue.setVariants(this.experiment.variants.map((v) => v.weights), now);
      for (const _ of this.experiment.variants) this.variantStats.push({ submitted: 0, placed: 0, queueMs: 0, met: 0, missed: 0 });
    }
  }

  /**
   * Rebuilds the in-memory state from the store after a start or restart.
   * Attempts that were assigned or running stay leased to their node for a
   * grace period: an agent that reconnects and still holds them keeps them
   * (see agentRegistered); the others are declared LOST when it ends.
   */
  async recover(): Promise<{ tasks: number; held: number; requeued: number }> {
    const now = this.clock();
    const entries: Live[] = [];
    /** Each entry's state as read (gating below may end or queue some). */
    const stored: TaskState[] = [];
    /** The queued ones' queue entries, made while they are decoded (then they rest, and are not decoded again). */
    const inits = new Map<Live, QueuedTaskInit>();
    const waiting = (state: TaskState) => state === S.PENDING || state === S.WAITING_DEPS;
    for await (const page of this.store.unfinishedPages()) {
      for (const task of page) {
        const entry = this.newLive(task, task.updatedAt ? timestampToMillis(task.updatedAt) : now);
        this.live.set(task.id, entry);
        this.countInVariant(task);
        // Queued and waiting tasks are nearly all of a big backlog: at rest from the start,
        // so recovery holds one page of decoded tasks, not the whole backlog.
        if (task.state === S.QUEUED) inits.set(entry, this.queuedInit(entry));
        if (task.state === S.QUEUED || waiting(task.state)) entry.rest();
        entries.push(entry);
        stored.push(task.state);
      }
    }
    this.deadLetterCount = await this.store.countDeadLetters();
    const current = (i: number) => (this.live.get(entries[i]!.id) === entries[i] ? entries[i] : undefined);
    // Gate every waiting task first, so a dependency that ends below (dead-lettered
    // on requeue) finds its dependents registered and settles them.
    for (let i = 0; i < entries.length; i++) {
      const entry = current(i);
      if (entry && waiting(stored[i]!)) await this.gateOnDependencies(entry);
    }
    let held = 0;
    let requeued = 0;
    // Queued oldest first, so the age bound finds them in order.
    const queued = [...inits.keys()];
    queued.sort((a, b) => a.readySinceMs - b.readySinceMs);
    for (const entry of queued) {
      if (this.live.get(entry.id) !== entry || entry.state !== S.QUEUED) continue;
      if (!entry.atRest) {
        this.enqueueReady(entry);
        continue;
      }
      // What gating above changed: the tasks now waiting on it, and the class they lend it.
      this.dispatcher.enqueue({ ...inits.get(entry)!, dependents: this.dependents.get(entry.id)?.size ?? 0, inheritedClass: entry.inheritedClass }, this.clock());
    }
    inits.clear();
    for (let i = 0; i < entries.length; i++) {
      const entry = current(i);
      const state = stored[i]!;
      if (!entry || state === S.QUEUED || waiting(state)) continue;
      const task = entry.task;
      if (isLeased(state) && task.nodeId && task.leaseEpoch > 0) {
        held += 1;
        entry.lease = { epoch: task.leaseEpoch, nodeId: task.nodeId, gpuIndices: task.gpuIndices, queueTimeMs: 0, sent: true };
        let node = this.nodes.get(task.nodeId);
        if (!node) {
          // Its grace period starts when decision serves again (openForAgents).
          node = { state: NodeState.DISCONNECTED, lastSeenMs: now, leased: new Set() };
          this.nodes.set(task.nodeId, node);
        }
        node.leased.add(task.id);
      } else {
        // FAILED, LOST: the next step after the failure was not recorded; PREEMPTED: the requeue was not.
        // (A backoff in progress restarts from zero: its timer died with the old process.)
        requeued += 1;
        if (isLeased(state)) await this.failAttempt(entry, 'lost', 'decision restarted and the attempt had no recorded lease');
        else if (state === S.PREEMPTED) await this.requeue(entry, 'decision restarted');
        else await this.afterFailure(entry, 'decision restarted', false);
      }
    }
    this.scheduleDispatch();
    return { tasks: entries.length, held, requeued };
  }

  /**
   * Called once decision serves again after recover(): nodes known only from
   * recovered leases get one lease period from now, plus the longest an
   * agent's reconnect backoff takes, to come back before their work is lost.
   */
  openForAgents(): void {
    const now = this.clock();
    // Silent from now + AGENT_MAX_BACKOFF_MS, so lost one lease after that.
    for (const info of this.nodes.values()) if (!info.register) info.lastSeenMs = now + AGENT_MAX_BACKOFF_MS;
  }

  // ---- submissions -------------------------------------------------------

  /** Makes a parsed submission durable and queues it (or gates it on its dependencies). */
  async enqueue(req: EnqueueRequest): Promise<{ task: Task; created: boolean }> {
    const spec = req.spec;
    if (!spec) throw new InvalidArgumentError('spec', 'is required');
    const unmet = await this.unmetDependencies(spec.dependsOn, 'depends_on');
    if (isSheddable(spec.priority)) await this.shedIfOverloaded(req.tenant, req.requestId, spec, 'spec');
    await this.refuseUnmeetable(req.tenant, req.requestId, spec, unmet.size > 0, 'spec');
    const { task, event } = this.newTask(req.requestId, req.tenant, spec, unmet);
    const traceContext = captureTraceContext();
    let submitted;
    try {
      submitted = await this.store.submit(task, event);
    } catch (err) {
      this.submissionInDoubt([task], traceContext, err);
      throw err;
    }
    return this.accepted(submitted, event, unmet, traceContext);
  }

  /**
   * Makes a parsed workflow durable in one transaction (every step, or none)
   * and queues or gates each step. Steps name earlier steps by index; their
   * ids are assigned here, so the whole graph exists before any step can run.
   */
  async enqueueWorkflow(req: EnqueueWorkflowRequest): Promise<{ tasks: Task[]; created: boolean }> {
    if (req.steps.length === 0) throw new InvalidArgumentError('steps', 'required: a workflow has at least one step');
    if (req.requestId) {
      const again = await this.workflowSentBefore(req);
      if (again) return { tasks: again, created: false };
    }
    const ids: string[] = [];
    const items: Array<{ task: Task; event: StoredEvent; unmet: Set<string> }> = [];
    for (const [i, step] of req.steps.entries()) {
      // Errors name the step as the client numbered it.
      const at = `steps[${step.requestIndex}]`;
      if (!step.spec) throw new InvalidArgumentError(`${at}.task`, 'is required');
      const unmet = await this.unmetDependencies(step.spec.dependsOn, `${at}.task.depends_on`);
      const local = step.after.map((k, j) => {
        if (!Number.isInteger(k) || k >= i) throw new InvalidArgumentError(`${at}.after[${j}]`, `${k} is not an earlier step: steps must come after the steps they wait for`);
        return ids[k]!;
      });
      for (const id of local) unmet.add(id);
      const spec = { ...step.spec, dependsOn: [...step.spec.dependsOn, ...local] };
      const requestId = req.requestId ? `${req.requestId}/${step.name}` : '';
      if (isSheddable(spec.priority)) await this.shedIfOverloaded(req.tenant, requestId, spec, `${at}.task`);
      await this.refuseUnmeetable(req.tenant, requestId, spec, unmet.size > 0, `${at}.task`);
      const { task, event } = this.newTask(requestId, req.tenant, spec, unmet);
      ids.push(task.id);
      items.push({ task, event, unmet });
    }
    const traceContext = captureTraceContext();
    let submitted;
    try {
      submitted = await this.store.submitAll(items);
    } catch (err) {
      this.submissionInDoubt(items.map((item) => item.task), traceContext, err);
      throw err;
    }
    if (submitted.some((r) => r.created) && submitted.some((r) => !r.created)) {
      // Only a concurrent submission of another workflow under the same request id gets here.
      this.logger.error({ requestId: req.requestId, tenant: req.tenant }, 'workflow steps partly existed already: two different workflows were sent under one request id at once');
    }
    const tasks: Task[] = [];
    // In order: a step's dependencies are registered before it looks for them.
    for (const [i, result] of submitted.entries()) {
      tasks.push((await this.accepted(result, items[i]!.event, items[i]!.unmet, traceContext)).task);
    }
    return { tasks, created: submitted.some((r) => r.created) };
  }

  /**
   * A workflow whose request id was used before: the same workflow sent
   * again gets its tasks (queued as they were); a different one is refused
   * before anything is written, since a mix would leave new steps waiting on
   * steps that were never created.
   */
  private async workflowSentBefore(req: EnqueueWorkflowRequest): Promise<Task[] | undefined> {
    const requestIds = req.steps.map((step) => `${req.requestId}/${step.name}`);
    const found = new Map((await this.store.byRequestIds(req.tenant, requestIds)).map((t) => [t.requestId, t]));
    if (found.size === 0) return undefined;
    const missing = req.steps.find((_, i) => !found.has(requestIds[i]!));
    if (missing) {
      throw new AlreadyExistsError(
        `request_id: "${req.requestId}" was used for a workflow without a step "${missing.name}"; send this workflow under a new request_id`,
      );
    }
    const tasks: Task[] = [];
    for (const requestId of requestIds) {
      const task = found.get(requestId)!;
      const event: StoredEvent = { sequence: task.sequence, state: task.state, previousState: S.UNSPECIFIED, atMs: this.clock(), reason: '' };
      tasks.push((await this.accepted({ task, created: false }, event, new Set(), undefined)).task);
    }
    return tasks;
  }

  /**
   * deadline_policy REFUSE_UNMEETABLE: refuses the submission when its
   * predicted finish (the wait its class has seen lately, unless it would be
   * placed at once, plus its predicted run time) is past its deadline. A task
   * waiting for dependencies is not judged: its start depends on theirs.
   */
  private async refuseUnmeetable(tenant: string, requestId: string, spec: TaskSpec, gated: boolean, field: string): Promise<void> {
    if (spec.deadlinePolicy !== DeadlinePolicy.REFUSE_UNMEETABLE || !spec.deadline || gated) return;
    const now = this.clock();
    const placedAtOnce = this.fleet.hasFreeSlot() && !this.classesAtOrAbove(spec.priorityClass).some((pc) => this.dispatcher.queue.classCounts(pc).queued > 0);
    const waitMs = this.waits.predict(spec.priorityClass, placedAtOnce);
    const runMs = this.runTimes.predict(spec);
    const late = unmeetableDeadline(now, timestampToMillis(spec.deadline), waitMs, runMs);
    if (!late) return;
    // A retry of a submission already accepted gets its task, as always.
    if (requestId && (await this.store.byRequestId(tenant, requestId))) return;
    this.deadlines.record(tenant, spec.priorityClass, 'refused');
    const seen = this.runTimes.observations(spec);
    throw new FailedPreconditionError(
      `${field}.deadline: ${new Date(timestampToMillis(spec.deadline)).toISOString()} cannot be met: predicted run ${seconds(runMs)} (${seen > 0 ? `learned from ${seen} tasks like it` : 'from its size; nothing like it has run yet'})` +
        ` after a predicted wait of ${seconds(waitMs)} for ${className(spec.priorityClass)} work ends ${seconds(late.lateMs)} past it;` +
        ' set a later deadline or a higher priority class, or deadline_policy BEST_EFFORT to run it anyway',
    );
  }

  /** A task this process schedules from now on counts as submitted to its variant (so placements never outnumber submissions). */
  private countInVariant(task: Task): void {
    const variant = this.variantIndex(task.spec!);
    if (variant !== undefined) this.variantStats[variant]!.submitted += 1;
  }

  /** The experiment variant a task was put in (undefined: none, or one of an experiment no longer running). */
  private variantIndex(spec: TaskSpec): number | undefined {
    const experiment = this.experiment;
    if (!experiment || !spec.policyVariant.startsWith(`${experiment.name}/`)) return undefined;
    const i = experiment.variants.findIndex((v) => spec.policyVariant === `${experiment.name}/${v.name}`);
    return i >= 0 ? i : undefined;
  }

  private classesAtOrAbove(priorityClass: PriorityClass): PriorityClass[] {
    const order = [PriorityClass.BACKGROUND, PriorityClass.NORMAL, PriorityClass.URGENT];
    return order.slice(Math.max(0, order.indexOf(priorityClass)));
  }

  /** The dependencies not yet succeeded; refuses ones that do not exist or will never succeed. */
  private async unmetDependencies(dependsOn: string[], field: string): Promise<Set<string>> {
    const states = await this.dependencyStates(dependsOn);
    const unmet = new Set<string>();
    dependsOn.forEach((dep, i) => {
      const state = states.get(dep);
      if (state === undefined) throw new InvalidArgumentError(`${field}[${i}]`, `task ${dep} does not exist`);
      if (state === S.CANCELLED || state === S.DEAD_LETTER || (state === S.FAILED && !this.live.has(dep))) {
        throw new InvalidArgumentError(`${field}[${i}]`, `task ${dep} ended ${stateName(state)} and will never succeed`);
      }
      if (state !== S.SUCCEEDED) unmet.add(dep);
    });
    return unmet;
  }

  private newTask(requestId: string, tenant: string, spec: TaskSpec, unmet: Set<string>): { task: Task; event: StoredEvent } {
    const now = this.clock();
    const state = unmet.size > 0 ? S.WAITING_DEPS : S.QUEUED;
    const id = randomUUID();
    if (this.experiment) {
      const v = this.experiment.variants[variantOf(this.experiment, tenant, requestId, id)]!;
      spec = { ...spec, policyVariant: `${this.experiment.name}/${v.name}` };
    }
    const task = Task.fromPartial({
      id,
      requestId,
      tenant,
      spec,
      state,
      attempt: 1,
      sequence: 1,
      createdAt: toTimestamp(now),
      updatedAt: toTimestamp(now),
      reason: unmet.size > 0 ? `waiting for ${[...unmet].join(', ')}` : '',
    });
    return { task, event: { sequence: 1, state, previousState: S.UNSPECIFIED, atMs: now, reason: task.reason } };
  }

  /**
   * A submission the store did not confirm: the commit may have happened with
   * its answer lost. Found out later (resolveInDoubt), so a task that is
   * durable is never left out of the queue.
   */
  private submissionInDoubt(tasks: Task[], traceContext: Record<string, string> | undefined, err: unknown): void {
    if (!(err instanceof UnavailableError || isTransient(err))) return;
    for (const task of tasks) this.inDoubt.set(task.id, { traceContext, checks: 0 });
    if (!(err instanceof UnavailableError)) throw new UnavailableError('the task store did not confirm the write; retry with the same request_id', { cause: err });
  }

  /** After the store answered a submission: queues or gates a new task; finds the one a repeated request id names. */
  private async accepted(
    submitted: { task: Task; created: boolean },
    event: StoredEvent,
    unmet: Set<string>,
    traceContext: Record<string, string> | undefined,
  ): Promise<{ task: Task; created: boolean }> {
    const { task, created } = submitted;
    if (!created) {
      const known = this.live.get(task.id) ?? this.finishing.get(task.id);
      if (known) return { task: this.read(known), created };
      // Committed by an earlier call whose answer was lost: this process never queued it.
      if (!task.finishedAt) await this.adopt(task);
      const adopted = this.live.get(task.id);
      return { task: adopted ? this.read(adopted) : task, created };
    }
    this.inDoubt.delete(task.id);
    this.countInVariant(task);
    const entry = this.newLive(task, event.atMs, traceContext);
    this.live.set(task.id, entry);
    this.publish(task, event);
    if (unmet.size === 0) {
      this.enqueueReady(entry);
      return { task, created };
    }
    entry.waitingOn = unmet;
    for (const dep of unmet) this.addDependent(dep, task.id);
    // A dependency that ended while this task was being committed has settled its dependents already.
    await this.settleEndedDependencies(entry);
    const current = entry.task;
    this.restLater(entry);
    return { task: current, created };
  }

  /**
   * Load shedding: a sheddable submission (negative priority) is refused
   * while its class's queue is at its limit (count, or tasks past the age
   * bound), with a hint of when to retry. A retry of one already accepted
   * (same request id) gets its task, as always.
   */
  private async shedIfOverloaded(tenant: string, requestId: string, spec: TaskSpec, field: string): Promise<void> {
    const { queued, overdue } = this.dispatcher.queue.classCounts(spec.priorityClass);
    if (queued < this.shedQueueLimit && overdue === 0) return;
    if (await this.store.byRequestId(tenant, requestId)) return;
    const why = overdue > 0 ? `${overdue} tasks of this class have waited past the ${Math.round(this.policy.maxAgeMs / 1000)} s age bound` : `${queued} tasks of this class are queued (limit ${this.shedQueueLimit})`;
    const retryAfterMs = Math.min(60_000, Math.max(1000, Math.round(this.policy.maxAgeMs / 10)));
    throw new ResourceExhaustedError(
      `${field}.priority: ${spec.priority} is sheddable and the ${className(spec.priorityClass)} queue is full: ${why}; retry after ${retryAfterMs / 1000} s, or submit with priority 0 or more`,
      retryAfterMs,
    );
  }

  /**
   * Queues an interactive inference and resolves once it is placed. `onAdmitted`
   * runs when it is durable. Aborting before placement cancels the task.
   */
  async admit(
    req: EnqueueRequest,
    onAdmitted: (task: Task, queuePosition: number) => Promise<void>,
    signal: AbortSignal,
  ): Promise<Placement> {
    const { task, created } = await this.enqueue(req);
    if (!created) throw new FailedPreconditionError(`request ${req.requestId} already started task ${task.id}; an Infer stream cannot be resumed`);
    const placed = new Promise<Placement>((resolve, reject) => this.admissions.set(task.id, { resolve, reject }));
    // Settled (by cancel) possibly before anyone awaits it: never an unhandled rejection.
    placed.catch(() => undefined);
    const giveUp = (why: string) => {
      if (this.admissions.delete(task.id)) {
        this.cancel(task.id, why).catch((err: unknown) => this.logger.warn({ err, taskId: task.id }, 'cancel of an abandoned admission failed'));
      }
    };
    const onAbort = () => giveUp('client went away before placement');
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    try {
      await onAdmitted(task, this.dispatcher.queue.positionOf(task.id)).catch((err: unknown) => {
        giveUp('could not tell the client it was admitted');
        throw err;
      });
      return await placed;
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.admissions.delete(task.id);
    }
  }

  /** Cancels a task that has not finished; a finished one is returned as it is. */
  async cancel(taskId: string, reason: string): Promise<Task> {
    const entry = this.live.get(taskId);
    if (!entry) {
      const ending = this.finishing.get(taskId);
      if (ending) return ending.task;
      const stored = await this.store.get(taskId);
      if (!stored) throw new NotFoundError(`task ${taskId} does not exist`);
      return stored;
    }
    if (entry.task.finishedAt) return entry.task;
    const why = reason || 'cancelled by client';
    const lease = entry.lease;
    if (lease) {
      this.nodes.get(lease.nodeId)?.link?.send({
        kind: { $case: 'revoke', revoke: { lease: this.leaseOf(entry), reason: why } },
      });
      this.releaseLease(entry);
    }
    clearTimeout(entry.retryTimer);
    entry.retryTimer = undefined;
    this.dispatcher.dequeue(taskId);
    this.admissions.get(taskId)?.reject(new FailedPreconditionError(`task ${taskId} was cancelled: ${why}`));
    await this.finish(entry, S.CANCELLED, why);
    return entry.task;
  }

  // ---- agents ------------------------------------------------------------

  /**
   * A node registered on Connect: new, reconnecting within its lease, or
   * coming back after a decision restart. Reconciliation: the attempts it
   * still holds (Register.running) that are still leased to it keep running;
   * those it holds that decision has given away are revoked (the agent stops
   * them); those leased to it that it no longer holds are LOST and requeued.
   */
  agentRegistered(register: Register, link: AgentLink): Registered {
    const nodeId = register.nodeId;
    const previous = this.nodes.get(nodeId);
    if (previous?.link && previous.link !== link) previous.link.close('replaced by a new session of the same node');
    const holds = new Map(register.running.map((l) => [l.taskId, l]));
    const kept: Live[] = [];
    const dropped: Live[] = [];
    /** Attempts placed because they had waited past the age bound: still never preempted once counted again. */
    const guaranteed = new Set<string>();
    for (const taskId of previous?.leased ?? []) {
      const entry = this.live.get(taskId);
      if (!entry?.lease) continue;
      const held = holds.get(taskId);
      // An assignment still being committed has not reached the agent: it goes out on the new stream.
      if (!entry.lease.sent || (held && held.attempt === entry.task.attempt && held.leaseEpoch === entry.lease.epoch)) kept.push(entry);
      else dropped.push(entry);
      // The fleet's view of the node is rebuilt below, without the old reservations;
      // the tenants' usage too (what is kept is counted again with its new reservation).
      entry.lease.reservation = undefined;
      if (this.dispatcher.runningAttempt(taskId)?.guaranteed) guaranteed.add(taskId);
      this.dispatcher.release(taskId, this.clock());
    }
    this.fleet.upsert({
      nodeId,
      address: register.address,
      models: register.models,
      maxTasksPerGpu: register.maxTasksPerGpu || 16,
      gpus: register.gpus.map((g) => ({ index: g.index, memoryTotalBytes: g.memoryTotalBytes })),
    });
    this.dispatcher.fleetChanged(this.clock());
    const info: NodeInfo = { register, link, state: NodeState.READY, lastSeenMs: this.clock(), leased: new Set() };
    this.nodes.set(nodeId, info);
    const keptIds = new Set<string>();
    for (const entry of kept) {
      const lease = entry.lease!;
      lease.reservation = this.fleet.restore(nodeId, lease.gpuIndices, entry.demand);
      if (!lease.reservation) {
        dropped.push(entry);
        continue;
      }
      const spec = entry.task.spec!;
      this.dispatcher.allocate(entry.id, entry.tenant, lease.reservation.demand, this.clock(), {
        id: entry.id,
        tenant: entry.tenant,
        reservation: lease.reservation,
        preemptible: spec.preemptible,
        rank: preemptionRank(spec.priorityClass, spec.priority),
        startedAtMs: entry.task.startedAt ? timestampToMillis(entry.task.startedAt) : this.clock(),
        guaranteed: guaranteed.has(entry.id),
      });
      info.leased.add(entry.id);
      keptIds.add(entry.id);
    }
    for (const entry of dropped) {
      entry.lease = undefined;
      this.lostAttempts += 1;
      const why = `node ${nodeId} came back without attempt ${entry.task.attempt}`;
      void this.loseAttempt(entry, why).catch((err: unknown) => this.logger.error({ err, taskId: entry.id }, 'requeue after reconciliation failed'));
    }
    // What the agent holds that is not (or no longer) its lease: it stops it.
    const revoked = register.running.filter((lease) => !keptIds.has(lease.taskId));
    this.logger.info({ nodeId, gpus: register.gpus.length, kept: keptIds.size, lost: dropped.length, revoked: revoked.length }, 'agent registered');
    this.scheduleDispatch();
    return {
      leaseDuration: toDuration(this.leaseMs),
      telemetryInterval: toDuration(this.telemetryIntervalMs),
      heartbeatInterval: toDuration(heartbeatIntervalMs(this.leaseMs)),
      revoked,
    };
  }

  agentTelemetry(nodeId: string, link: AgentLink, telemetry: Telemetry): void {
    const info = this.nodes.get(nodeId);
    if (!info || info.link !== link) return;
    info.telemetry = telemetry;
    info.lastSeenMs = this.clock();
    if (telemetry.draining && info.state !== NodeState.DRAINING) {
      // No new work for a draining node: its refusals would burn tasks' retries.
      info.state = NodeState.DRAINING;
      this.fleet.setHealth(nodeId, 'draining');
      this.dispatcher.fleetChanged(this.clock());
      this.logger.info({ nodeId }, 'agent draining');
    }
    this.fleet.observe(nodeId, telemetry.gpus.map((g) => ({ index: g.index, utilization: g.utilization, memoryUsedBytes: g.memoryUsedBytes })));
    if (this.fleet.hasFreeSlot() && this.dispatcher.size > 0) this.scheduleDispatch();
  }

  /** A progress report; rejected unless it carries the task's current lease (fencing). */
  async agentUpdate(nodeId: string, link: AgentLink, update: TaskUpdate): Promise<void> {
    const lease = update.lease;
    const entry = lease ? this.live.get(lease.taskId) : undefined;
    const info = this.nodes.get(nodeId);
    const current = info?.link === link;
    if (info && current) info.lastSeenMs = this.clock();
    if (!current || !lease || !entry?.lease || entry.lease.epoch !== lease.leaseEpoch || entry.task.attempt !== lease.attempt || entry.lease.nodeId !== nodeId) {
      this.rejectedReports += 1;
      this.logger.info({ nodeId, lease, state: stateName(update.state) }, 'report for a superseded lease rejected');
      if (lease && update.state === S.RUNNING) link.send({ kind: { $case: 'revoke', revoke: { lease, reason: 'lease superseded' } } });
      return;
    }
    const now = this.clock();
    switch (update.state) {
      case S.RUNNING:
        if (entry.state === S.ASSIGNED) await this.transition(entry, S.RUNNING, '', { startedAt: toTimestamp(now) });
        return;
      case S.SUCCEEDED: {
        const result = TaskResult.fromPartial({ ...update.result, queueTime: toDuration(entry.lease.queueTimeMs) });
        if (result.runTime) this.runTimes.observe(entry.task.spec!, durationToMillis(result.runTime));
        this.releaseLease(entry);
        if (entry.state === S.ASSIGNED) await this.transition(entry, S.RUNNING, '', { startedAt: toTimestamp(now) });
        // Cancelled while that committed: the cancel stands.
        if (this.live.get(entry.id) !== entry) return;
        await this.finish(entry, S.SUCCEEDED, '', { result });
        return;
      }
      case S.FAILED: {
        const result = update.result ? TaskResult.fromPartial({ ...update.result, queueTime: toDuration(entry.lease.queueTimeMs) }) : undefined;
        const error = update.error || 'failed';
        if (update.handedBack) {
          // The agent stopped it itself (draining): not the task's fault, no retry used up.
          this.releaseLease(entry);
          await this.transition(entry, S.PREEMPTED, `handed back: ${error}`, { result });
          await this.requeue(entry, `handed back by ${nodeId}`);
          return;
        }
        if (!update.retryable) {
          // A failure retrying cannot fix ends the task here, in one event that says so.
          this.releaseLease(entry);
          await this.finish(entry, S.FAILED, error, { result, failures: entry.task.failures + 1 });
          return;
        }
        await this.failAttempt(entry, 'failed', error, result);
        return;
      }
      case S.CANCELLED:
        this.releaseLease(entry);
        await this.finish(entry, S.CANCELLED, update.error || 'cancelled on the agent');
        return;
      default:
        this.logger.warn({ nodeId, state: stateName(update.state) }, 'agent reported a state agents do not report');
    }
  }

  /**
   * The node's Connect stream ended. It takes no new work, but its leases
   * stand until it has been silent for a lease period (sweepSilentAgents): an
   * agent that reconnects in time keeps its running work.
   */
  agentDisconnected(nodeId: string, link: AgentLink, reason: string): void {
    const info = this.nodes.get(nodeId);
    if (!info || info.link !== link) return;
    info.link = undefined;
    info.state = NodeState.DISCONNECTED;
    this.fleet.setHealth(nodeId, 'lost');
    this.dispatcher.fleetChanged(this.clock());
    this.logger.warn({ nodeId, reason, leased: info.leased.size }, 'agent disconnected; its leases stand until they expire');
  }

  /** Sends every connected agent a heartbeat (they fence themselves without one). Called every heartbeatIntervalMs(leaseMs). */
  heartbeat(): void {
    const time = toTimestamp(this.clock());
    for (const info of this.nodes.values()) info.link?.send({ kind: { $case: 'heartbeat', heartbeat: { time } } });
  }

  /** Declares agents silent past their lease lost and requeues their work. Called periodically. */
  sweepSilentAgents(): void {
    const now = this.clock();
    for (const [nodeId, info] of this.nodes) {
      const silentMs = now - info.lastSeenMs;
      if (silentMs <= this.leaseMs) continue;
      info.link?.close(`no message for ${silentMs} ms`);
      this.nodes.delete(nodeId);
      this.fleet.remove(nodeId);
      this.dispatcher.fleetChanged(now);
      this.logger.warn({ nodeId, silentMs, leased: info.leased.size }, 'agent lost: silent past its lease');
      for (const taskId of info.leased) {
        const entry = this.live.get(taskId);
        if (!entry?.lease || entry.lease.nodeId !== nodeId) continue;
        this.releaseLease(entry);
        this.lostAttempts += 1;
        void this.loseAttempt(entry, `node ${nodeId} lost: silent for ${silentMs} ms`).catch((err: unknown) =>
          this.logger.error({ err, taskId }, 'requeue after node loss failed'),
        );
      }
    }
  }

  /**
   * Settles submissions whose commit the store could not confirm: one that
   * turns out durable is queued (it is a task like any other); one that is
   * still absent after a few checks never committed. Called periodically.
   */
  async resolveInDoubt(): Promise<void> {
    if (this.inDoubt.size === 0) return;
    const ids = [...this.inDoubt.keys()];
    const found = await this.store.states(ids);
    for (const id of ids) {
      const doubt = this.inDoubt.get(id);
      if (!doubt) continue;
      if (!found.has(id)) {
        if (++doubt.checks >= 3) this.inDoubt.delete(id);
        continue;
      }
      this.inDoubt.delete(id);
      if (this.live.has(id) || this.finishing.has(id)) continue;
      const task = await this.store.get(id);
      if (task && !task.finishedAt) await this.adopt(task, doubt.traceContext);
    }
  }

  // ---- dead letters ------------------------------------------------------

  /** Submits a new task in place of each selected dead letter (idempotent: a retry returns the same new tasks). */
  async requeueDeadLetters(select: DeadLetterSelector | undefined): Promise<RequeuedTask[]> {
    const out: RequeuedTask[] = [];
    // Named ids answer again for ones requeued before (a retried call); `all` takes only the others.
    for (const dead of await this.selectDeadLetters(select, (select?.taskIds.length ?? 0) > 0)) {
      if (dead.requeuedAs) {
        const earlier = await this.find(dead.requeuedAs);
        if (earlier) out.push(RequeuedTask.fromPartial({ deadLetterId: dead.id, task: earlier }));
        continue;
      }
      const spec = dead.spec!;
      const labels = { ...spec.labels, 'autoglm.requeued_from': dead.id };
      // Its dependencies had succeeded (it ran): the new task needs none.
      const { task } = await this.enqueue(EnqueueRequest.fromPartial({ requestId: `requeue-of:${dead.id}`, tenant: dead.tenant, spec: { ...spec, labels, dependsOn: [] } }));
      await this.store.record({ ...dead, requeuedAs: task.id });
      out.push(RequeuedTask.fromPartial({ deadLetterId: dead.id, task }));
    }
    this.deadLetterCount = await this.store.countDeadLetters();
    return out;
  }

  /** Deletes the selected dead letters and their events; returns how many. */
  async purgeDeadLetters(select: DeadLetterSelector | undefined): Promise<number> {
    // Requeued dead letters are purged too: their new tasks carry on on their own.
    const dead = await this.selectDeadLetters(select, true);
    const purged = await this.store.purgeDeadLetters(dead.map((t) => t.id));
    this.deadLetterCount = await this.store.countDeadLetters();
    return purged;
  }

  private async selectDeadLetters(select: DeadLetterSelector | undefined, includeRequeued: boolean): Promise<Task[]> {
    const ids = select?.taskIds ?? [];
    const tenant = select?.tenant || undefined;
    if (ids.length > 0) {
      if (select?.all) throw new InvalidArgumentError('select.all', 'give task_ids or all, not both');
      const tasks: Task[] = [];
      for (const [i, id] of ids.entries()) {
        if (!UUID.test(id)) throw new InvalidArgumentError(`select.task_ids[${i}]`, `"${id}" is not a task id (a UUID)`);
        const task = await this.store.get(id);
        if (!task || (tenant && task.tenant !== tenant)) throw new NotFoundError(`task ${id} does not exist`);
        if (task.state !== S.DEAD_LETTER) throw new FailedPreconditionError(`task ${id} is ${stateName(task.state)}, not DEAD_LETTER`);
        if (!task.requeuedAs || includeRequeued) tasks.push(task);
      }
      return tasks;
    }
    if (!select?.all) throw new InvalidArgumentError('select', 'name the dead letters in task_ids, or set all');
    return this.store.deadLetters({
      tenant,
      finishedBeforeMs: select.finishedBefore ? timestampToMillis(select.finishedBefore) : undefined,
      limit: MAX_DEAD_LETTERS_PER_CALL,
      includeRequeued,
    });
  }

  // ---- reads -------------------------------------------------------------

  async get(taskId: string): Promise<Task> {
    const task = (await this.find(taskId));
    if (!task) throw new NotFoundError(`task ${taskId} does not exist`);
    return task;
  }

  /** The freshest copy of a task, if it exists. */
  async find(taskId: string): Promise<Task | undefined> {
    const entry = this.live.get(taskId) ?? this.finishing.get(taskId);
    return entry ? this.read(entry) : await this.store.get(taskId);
  }

  /**
   * The task's priority factor by factor, its place in the order, and what
   * keeps it from running. A task not queued (waiting on dependencies, backing
   * off, running) is explained as it would rank if queued now, age 0.
   */
  explain(taskId: string, task: Task): PriorityExplanation {
    const now = this.clock();
    const entry = this.live.get(taskId);
    const queued = entry && task.state === S.QUEUED ? this.dispatcher.explain(taskId, now) : undefined;
    if (queued) {
      return PriorityExplanation.fromPartial({
        taskId,
        state: task.state,
        priority: queued.priority,
        factors: queued.factors,
        queuePosition: queued.position,
        tasksAhead: Math.max(0, queued.position - 1),
        waitingReason: queued.detail,
        waitingCause: WAIT_CAUSES[queued.cause],
        overdue: queued.overdue,
        tenantUsageOverShare: queued.usageOverShare,
        reservedNode: queued.heldNode ?? '',
      });
    }
    const usageOverShare = this.dispatcher.usageOverShare(task.tenant, now);
    const init = entry ? this.queuedInit(entry) : undefined;
    if (entry) this.restLater(entry);
    const { priority, factors } = explainPriority(
      {
        priorityClass: init?.inheritedClass ?? task.spec!.priorityClass,
        waitMs: 0,
        slackMs: init?.deadlineMs === undefined ? undefined : init.deadlineMs - now - (init.predictedRunMs ?? 0),
        dependents: init?.dependents ?? 0,
        priority: task.spec!.priority,
        usageOverShare,
        resourceShare: init?.resourceShare ?? 0,
      },
      this.policy.weights,
      this.policy,
    );
    let waitingCause = WaitingCause.UNSPECIFIED;
    let waitingReason = '';
    if (task.state === S.WAITING_DEPS || task.state === S.PENDING) {
      waitingCause = WaitingCause.DEPENDENCY;
      waitingReason = `waiting for dependencies: ${[...(entry?.waitingOn ?? [])].join(', ')}`;
    } else if (entry?.retryTimer) {
      waitingCause = WaitingCause.BACKOFF;
      waitingReason = `attempt ${task.attempt} failed; the next starts after its retry backoff`;
    }
    return PriorityExplanation.fromPartial({ taskId, state: task.state, priority, factors, waitingReason, waitingCause, tenantUsageOverShare: usageOverShare });
  }

  applyPolicy(update: PolicyUpdate): number {
    this.policy = applyPolicyUpdate(this.policy, update);
    this.dispatcher.setPolicy(this.policy, this.clock());
    this.logger.info({ version: this.policy.version, source: update.source, reason: update.reason }, 'policy updated');
    this.bus.publishPolicy(PolicyChange.fromPartial({ version: this.policy.version, update, time: toTimestamp(this.clock()) }));
    this.scheduleDispatch();
    return this.policy.version;
  }

  queueStats(): QueueStats {
    const classes = new Map<PriorityClass, ClassQueueStats>();
    const tenants = new Map<string, TenantQueueStats>();
    let waitingDeps = 0;
    let queued = 0;
    let running = 0;
    let retrying = 0;
    const now = this.clock();
    // Reads only what every entry holds decoded: a task at rest stays encoded.
    for (const { state, tenant, priorityClass: pc, readySinceMs, retryTimer } of this.live.values()) {
      if (retryTimer) retrying += 1;
      const c = classes.get(pc) ?? ClassQueueStats.fromPartial({ priorityClass: pc });
      const t = tenants.get(tenant) ?? TenantQueueStats.fromPartial({ tenant });
      classes.set(pc, c);
      tenants.set(tenant, t);
      if (state === S.WAITING_DEPS || state === S.PENDING) waitingDeps += 1;
      else if (state === S.QUEUED) {
        queued += 1;
        c.queued += 1;
        t.queued += 1;
        c.oldestWaitSeconds = Math.max(c.oldestWaitSeconds, (now - readySinceMs) / 1000);
      } else if (isLeased(state)) {
        running += 1;
        c.running += 1;
        t.running += 1;
      }
    }
    return QueueStats.fromPartial({
      waitingDeps,
      queued,
      running,
      succeeded: this.succeeded,
      failed: this.failed,
      classes: [...classes.values()].sort((a, b) => a.priorityClass - b.priorityClass),
      tenants: [...tenants.values()].sort((a, b) => a.tenant.localeCompare(b.tenant)),
      rejectedReports: this.rejectedReports,
      lostAttempts: this.lostAttempts,
      deadLetters: this.deadLetterCount,
      retrying,
      preempted: this.preempted,
      deadlines: this.deadlines.all(),
      variants: (this.experiment?.variants ?? []).map((v, i) => {
        const s = this.variantStats[i]!;
        return {
          experiment: this.experiment!.name,
          variant: v.name,
          percent: v.percent,
          submitted: s.submitted,
          placed: s.placed,
          meanQueueSeconds: s.placed > 0 ? s.queueMs / s.placed / 1000 : 0,
          deadlinesMet: s.met,
          deadlinesMissed: s.missed,
        };
      }),
    });
  }

  listNodes(): Node[] {
    const out: Node[] = [];
    for (const [nodeId, info] of this.nodes) out.push(this.nodeSnapshot(nodeId, info));
    return out.sort((a, b) => a.nodeId.localeCompare(b.nodeId));
  }

  /** Publishes every node's snapshot (for the monitor). */
  publishNodes(): void {
    for (const node of this.listNodes()) this.bus.publishNode(node);
  }

  // ---- internals ---------------------------------------------------------

  private nodeSnapshot(nodeId: string, info: NodeInfo): Node {
    const registered = info.register?.gpus ?? [];
    const names = new Map(registered.map((g) => [g.index, g]));
    const gpus: GpuStatus[] = info.telemetry?.gpus.length
      ? info.telemetry.gpus
      : registered.map((g) => ({ index: g.index, name: g.name, utilization: 0, memoryUsedBytes: 0, memoryTotalBytes: g.memoryTotalBytes, temperatureC: 0, powerWatts: 0 }));
    return Node.fromPartial({
      nodeId,
      address: info.register?.address ?? '',
      state: info.state,
      gpus: gpus.map((g) => ({ ...g, name: g.name || names.get(g.index)?.name || '' })),
      models: info.register?.models ?? [],
      backends: info.register?.backends ?? [],
      host: info.telemetry?.host as HostStatus | undefined,
      load: info.telemetry?.load as ModelServerLoad | undefined,
      lastSeen: toTimestamp(info.lastSeenMs),
      runningTasks: info.leased.size,
    });
  }

  private async dependencyStates(ids: string[]): Promise<Map<string, TaskState>> {
    const states = new Map<string, TaskState>();
    const missing: string[] = [];
    for (const id of ids) {
      const entry = this.live.get(id) ?? this.finishing.get(id);
      if (entry) states.set(id, entry.state);
      else missing.push(id);
    }
    for (const [id, state] of await this.store.states(missing)) states.set(id, state);
    return states;
  }

  private async gateOnDependencies(entry: Live): Promise<void> {
    const deps = entry.task.spec!.dependsOn;
    const states = await this.dependencyStates(deps);
    const unmet = new Set<string>();
    for (const dep of deps) {
      const state = states.get(dep) ?? S.UNSPECIFIED;
      // Live, or ending right now (its dependents are settled once that commits).
      if (this.live.has(dep) || (this.finishing.has(dep) && state !== S.SUCCEEDED)) unmet.add(dep);
      else if (state !== S.SUCCEEDED) {
        await this.finish(entry, S.CANCELLED, `dependency ${dep} ended ${stateName(state)}`);
        return;
      }
    }
    if (unmet.size === 0) {
      // Its age counts from now: it was not runnable while it waited.
      entry.readySinceMs = this.clock();
      await this.transition(entry, S.QUEUED, 'dependencies succeeded');
      this.enqueueReady(entry);
      return;
    }
    entry.waitingOn = unmet;
    for (const dep of unmet) this.addDependent(dep, entry.id);
    await this.settleEndedDependencies(entry);
    this.restLater(entry);
  }

  /**
   * For a task just registered as waiting: settles the dependencies that ended
   * meanwhile (between reading their state and registering), whose own
   * settling of dependents ran before this task was among them.
   */
  private async settleEndedDependencies(entry: Live): Promise<void> {
    const gone = [...(entry.waitingOn ?? [])].filter((dep) => !this.live.has(dep) && !this.finishing.has(dep));
    if (gone.length === 0) return;
    const states = await this.store.states(gone);
    for (const dep of gone) {
      if (this.live.get(entry.id) !== entry || !entry.waitingOn?.has(dep)) return;
      this.dependents.get(dep)?.delete(entry.id);
      const state = states.get(dep) ?? S.UNSPECIFIED;
      if (state !== S.SUCCEEDED) {
        await this.finish(entry, S.CANCELLED, `dependency ${dep} ended ${stateName(state)}`);
        return;
      }
      entry.waitingOn.delete(dep);
    }
    if (entry.waitingOn?.size === 0 && entry.state === S.WAITING_DEPS) {
      entry.waitingOn = undefined;
      entry.readySinceMs = this.clock();
      await this.transition(entry, S.QUEUED, 'dependencies succeeded');
      this.enqueueReady(entry);
    }
  }

  private addDependent(dep: string, taskId: string): void {
    let set = this.dependents.get(dep);
    if (!set) this.dependents.set(dep, (set = new Set()));
    set.add(taskId);
    this.refreshLineage(dep);
  }

  /** Queues a runnable task in policy order and asks for a dispatch pass. */
  private enqueueReady(entry: Live): void {
    this.dispatcher.enqueue(this.queuedInit(entry), this.clock());
    this.scheduleDispatch();
    this.restLater(entry);
  }

  private queuedInit(entry: Live): QueuedTaskInit {
    const { task, demand } = entry;
    const spec = task.spec!;
    return {
      // The entry's strings, shared with it: not the decoded task's copies.
      id: entry.id,
      tenant: entry.tenant,
      priorityClass: spec.priorityClass,
      priority: spec.priority,
      readySinceMs: entry.readySinceMs,
      deadlineMs: spec.deadline ? timestampToMillis(spec.deadline) : undefined,
      predictedRunMs: this.runTimes.predict(spec),
      dependents: this.dependents.get(task.id)?.size ?? 0,
      inheritedClass: entry.inheritedClass,
      preemptible: spec.preemptible,
      variant: this.variantIndex(spec),
      resourceShare: Math.min(1, Math.max(demand.gpuCount / COST_GPUS, ((demand.privateBytesPerGpu + demand.sharedBytesPerGpu) * demand.gpuCount) / COST_GPU_MEMORY_BYTES)),
    };
  }

  /**
   * Dependency weight and priority inheritance: a task's direct waiting
   * dependents count for it, and the highest class among them is lent to it;
   * a change flows on down to what it waits on in turn.
   */
  private refreshLineage(taskId: string, seen = new Set<string>()): void {
    if (seen.has(taskId)) return;
    seen.add(taskId);
    const entry = this.live.get(taskId);
    if (!entry) return;
    let lent: PriorityClass | undefined;
    for (const id of this.dependents.get(taskId) ?? []) {
      const d = this.live.get(id);
      if (!d) continue;
      for (const c of [d.priorityClass, d.inheritedClass]) {
        if (c !== undefined && (lent === undefined || classValue(c) > classValue(lent))) lent = c;
      }
    }
    const inheritedClass = lent !== undefined && classValue(lent) > classValue(entry.priorityClass) ? lent : undefined;
    const changed = inheritedClass !== entry.inheritedClass;
    entry.inheritedClass = inheritedClass;
    this.dispatcher.update(taskId, { inheritedClass, dependents: this.dependents.get(taskId)?.size ?? 0 }, this.clock());
    if (changed) for (const dep of entry.waitingOn ?? []) this.refreshLineage(dep, seen);
  }

  /** A decision-side record of a task, sharing its tenant name and demand with the tasks that have the same. */
  private newLive(task: Task, readySinceMs: number, traceContext?: Record<string, string>): Live {
    let tenant = this.tenantNames.get(task.tenant);
    if (tenant === undefined) this.tenantNames.set(task.tenant, (tenant = task.tenant));
    return new Live(task, this.demandOf(task.spec!), readySinceMs, tenant, traceContext);
  }

  private demandOf(spec: TaskSpec): Demand {
    const gpuCount = Math.max(1, spec.gpuCount);
    const weights = spec.model ? (this.weightBytesOf(spec.model) ?? 0) / gpuCount : 0;
    const shared = spec.interactive || spec.payload?.$case === 'inference' ? Math.min(weights, spec.gpuMemoryBytes) : 0;
    const privateBytes = Math.max(0, spec.gpuMemoryBytes - shared);
    const key = `${gpuCount}/${shared}/${privateBytes}/${spec.model}`;
    let demand = this.demands.get(key);
    if (!demand) {
      // Sizes are free-form: the cache is a cache, not a registry of every size ever seen.
      if (this.demands.size >= MAX_SHARED_DEMANDS) this.demands.clear();
      demand = Object.freeze({ model: spec.model, gpuCount, sharedBytesPerGpu: shared, privateBytesPerGpu: privateBytes });
      this.demands.set(key, demand);
    }
    return demand;
  }

  /** An entry's task; one at rest is put back to rest after this turn. */
  private read(entry: Live): Task {
    if (entry.atRest) this.restLater(entry);
    return entry.task;
  }

  /** Lets a task that stays queued (or waiting) drop its decoded form once this turn's dispatch pass has run. */
  private restLater(entry: Live): void {
    this.resting.push(entry);
    if (this.restScheduled) return;
    this.restScheduled = true;
    // After the dispatch pass scheduled with it (setImmediate runs in order): what that pass places never rests.
    setImmediate(() => {
      this.restScheduled = false;
      const resting = this.resting.splice(0);
      for (const e of resting) {
        if (!e.atRest && this.live.get(e.id) === e && (e.state === S.QUEUED || e.state === S.WAITING_DEPS || e.state === S.PENDING)) e.rest();
      }
    });
  }

  private leaseOf(entry: Live): Lease {
    return { taskId: entry.id, attempt: entry.task.attempt, leaseEpoch: entry.lease?.epoch ?? 0 };
  }

  private releaseLease(entry: Live): void {
    const lease = entry.lease;
    if (!lease) return;
    entry.lease = undefined;
    if (lease.reservation) this.fleet.release(lease.reservation);
    this.dispatcher.release(entry.id, this.clock());
    this.nodes.get(lease.nodeId)?.leased.delete(entry.id);
    this.scheduleDispatch();
  }

  scheduleDispatch(): void {
    if (this.dispatchScheduled) return;
    this.dispatchScheduled = true;
    setImmediate(() => {
      this.dispatchScheduled = false;
      this.dispatch();
    });
  }

  /** Places runnable tasks in policy order (libs/core Dispatcher) and assigns them. */
  private dispatch(): void {
    const now = this.clock();
    for (const { task, reservation } of this.dispatcher.dispatch(now)) {
      const entry = this.live.get(task.id);
      if (!entry || entry.state !== S.QUEUED) {
        this.fleet.release(reservation);
        this.dispatcher.release(task.id, now);
        continue;
      }
      this.assign(entry, reservation).catch((err: unknown) => this.logger.error({ err, taskId: task.id }, 'assignment failed'));
    }
    const preemption = this.dispatcher.preempt(now);
    const due = this.dispatcher.preemptionDueAtMs;
    // A full fleet triggers no pass by itself: come back when the blocked task may preempt.
    if (due !== undefined && (this.preemptionTimerAtMs === undefined || due < this.preemptionTimerAtMs)) {
      clearTimeout(this.preemptionTimer);
      this.preemptionTimerAtMs = due;
      this.preemptionTimer = setTimeout(() => {
        this.preemptionTimer = undefined;
        this.preemptionTimerAtMs = undefined;
        this.scheduleDispatch();
      }, Math.max(0, due - now));
      this.preemptionTimer.unref();
    }
    if (preemption) {
      for (const victim of preemption.victims) {
        const entry = this.live.get(victim.id);
        if (entry?.lease) void this.preemptAttempt(entry, `preempted by ${preemption.preemptor.id}`).catch((err: unknown) => this.logger.error({ err, taskId: victim.id }, 'preemption failed'));
      }
      this.logger.info({ taskId: preemption.preemptor.id, nodeId: preemption.nodeId, victims: preemption.victims.map((v) => v.id) }, 'preempted work to make room');
    }
  }

  /**
   * Stops a running attempt for higher-ranked work: the agent is told to stop
   * it (its later reports are fenced off), its capacity is freed at once, and
   * the task goes PREEMPTED, then back to the queue with its attempt history
   * and no retry used. An interactive stream cannot resume: it is cancelled.
   */
  private async preemptAttempt(entry: Live, reason: string): Promise<void> {
    const lease = entry.lease;
    if (!lease) return;
    this.nodes.get(lease.nodeId)?.link?.send({ kind: { $case: 'revoke', revoke: { lease: this.leaseOf(entry), reason } } });
    this.releaseLease(entry);
    this.preempted += 1;
    if (entry.task.spec?.interactive) {
      await this.finish(entry, S.CANCELLED, reason);
      return;
    }
    await this.transition(entry, S.PREEMPTED, reason);
    await this.requeue(entry, reason);
  }

  private async assign(entry: Live, reservation: Reservation): Promise<void> {
    const now = this.clock();
    const epoch = this.incarnation * EPOCHS_PER_INCARNATION + ++this.leaseCounter;
    const queueTimeMs = now - (entry.queuedAtMs ?? entry.readySinceMs);
    // First attempts only: a requeued task's time includes its earlier runs.
    if (entry.task.attempt === 1) {
      this.waits.observe(entry.task.spec!.priorityClass, queueTimeMs);
      const variant = this.variantIndex(entry.task.spec!);
      if (variant !== undefined) {
        this.variantStats[variant]!.placed += 1;
        this.variantStats[variant]!.queueMs += queueTimeMs;
      }
    }
    entry.lease = { epoch, nodeId: reservation.nodeId, gpuIndices: reservation.gpuIndices, reservation, queueTimeMs, sent: false };
    this.nodes.get(reservation.nodeId)?.leased.add(entry.id);
    try {
      // The lease is durable with the assignment, so a restarted decision recognises it.
      await this.transition(entry, S.ASSIGNED, `assigned to ${reservation.nodeId}`, { nodeId: reservation.nodeId, leaseEpoch: epoch, gpuIndices: reservation.gpuIndices });
    } catch (err) {
      // Not durable: give the capacity back; the task is retried from the store on restart.
      if (entry.lease?.epoch === epoch) this.releaseLease(entry);
      throw err;
    }
    // Between the transition and its commit the task may have been cancelled or its node lost.
    if (entry.lease?.epoch !== epoch || entry.state !== S.ASSIGNED) return;
    entry.lease.sent = true;
    const lease = this.leaseOf(entry);
    // The node's current stream: it may have reconnected meanwhile.
    this.nodes.get(reservation.nodeId)?.link?.send({
      kind: { $case: 'assignment', assignment: { lease, task: entry.task, gpuIndices: reservation.gpuIndices, traceContext: entry.traceContext ?? {} } },
    });
    this.admissions.get(entry.id)?.resolve(
      Placement.fromPartial({ lease, nodeId: reservation.nodeId, agentAddress: reservation.address, gpuIndices: reservation.gpuIndices, queueTime: toDuration(queueTimeMs) }),
    );
  }

  /**
   * An attempt whose node is gone (silent past its lease, or back without
   * it). A batch task is requeued; an interactive one is cancelled, because
   * its client's stream went with the agent.
   */
  private async loseAttempt(entry: Live, reason: string): Promise<void> {
    if (!entry.task.spec?.interactive) {
      // Never reported running: the attempt did not start, so it is not the task's failure.
      await this.failAttempt(entry, 'lost', reason, undefined, entry.state === S.RUNNING);
      return;
    }
    await this.transition(entry, S.LOST, reason);
    if (this.live.get(entry.id) === entry) await this.finish(entry, S.CANCELLED, reason);
  }

  /** Records a failed (FAILED) or lost (LOST) attempt, counting it against the task's retries (unless told not to), then goes on. */
  private async failAttempt(entry: Live, how: 'failed' | 'lost', reason: string, result?: TaskResult, counts = true): Promise<void> {
    this.releaseLease(entry);
    await this.transition(entry, how === 'failed' ? S.FAILED : S.LOST, reason, { result, failures: entry.task.failures + (counts ? 1 : 0) });
    await this.afterFailure(entry, reason, how === 'failed');
  }

  /**
   * After a counted failure: DEAD_LETTER when the failures exceed max_retries;
   * else the next attempt, at once (a lost node) or after a backoff with
   * jitter (a failed attempt).
   */
  private async afterFailure(entry: Live, reason: string, backoff: boolean): Promise<void> {
    if (this.live.get(entry.id) !== entry) return;
    const { failures, spec } = entry.task;
    if (failures > spec!.maxRetries) {
      await this.finish(entry, S.DEAD_LETTER, `${reason}; no retries left after ${failures} failed attempts`);
      return;
    }
    if (!backoff) {
      await this.requeue(entry, reason);
      return;
    }
    const delay = retryDelayMs(failures, this.retryPolicy);
    entry.retryTimer = setTimeout(() => {
      entry.retryTimer = undefined;
      this.requeue(entry, `${reason} (retried after ${delay} ms)`).catch((err: unknown) => this.logger.error({ err, taskId: entry.id }, 'retry failed'));
    }, delay);
    entry.retryTimer.unref?.();
  }

  /** The next attempt: back to the queue with attempt + 1. */
  private async requeue(entry: Live, reason: string): Promise<void> {
    const from = entry.state;
    // Cancelled (or finished) meanwhile: nothing to requeue.
    if (this.live.get(entry.id) !== entry || (from !== S.FAILED && from !== S.LOST && from !== S.PREEMPTED)) return;
    const attempt = entry.task.attempt;
    // A preempted task keeps its age: it was runnable all along, and the age bound is its guarantee.
    // Its queue time (reported) counts from now all the same.
    if (from !== S.PREEMPTED) entry.readySinceMs = this.clock();
    entry.queuedAtMs = this.clock();
    await this.transition(entry, S.QUEUED, `attempt ${attempt + 1} after: ${reason}`, { attempt: attempt + 1, nodeId: '', gpuIndices: [] });
    this.enqueueReady(entry);
  }

  /**
   * Takes in a durable task this process does not know: one whose commit was
   * confirmed only to a later retry. It is queued (or gated) like a new one.
   */
  private async adopt(task: Task, traceContext?: Record<string, string>): Promise<void> {
    if (this.live.has(task.id) || this.finishing.has(task.id)) return;
    this.inDoubt.delete(task.id);
    const entry = this.newLive(task, this.clock(), traceContext);
    this.live.set(task.id, entry);
    this.countInVariant(task);
    this.logger.warn({ taskId: task.id }, 'adopted a submission whose commit was confirmed late');
    // An Infer whose start was refused has no client stream to serve.
    if (task.spec?.interactive) await this.finish(entry, S.CANCELLED, 'its Infer stream was refused before the submission was confirmed');
    else if (task.state === S.WAITING_DEPS || task.state === S.PENDING) await this.gateOnDependencies(entry);
    else if (task.state === S.QUEUED) {
      this.enqueueReady(entry);
    }
  }

  /** Moves a task to a final state, forgets it, and settles its dependents. */
  private async finish(entry: Live, state: TaskState, reason: string, patch: Partial<Task> = {}): Promise<void> {
    const done = this.transition(entry, state, reason, { ...patch, finishedAt: toTimestamp(this.clock()) });
    clearTimeout(entry.retryTimer);
    entry.retryTimer = undefined;
    // Out of the live set at once, so a cancel or report in between finds it over;
    // readable from `finishing` until the store has it.
    this.live.delete(entry.id);
    this.finishing.set(entry.id, entry);
    try {
      await done;
    } finally {
      this.finishing.delete(entry.id);
    }
    if (state === S.SUCCEEDED) this.succeeded += 1;
    else this.failed += 1;
    if (state === S.DEAD_LETTER) this.deadLetterCount += 1;
    const deadline = entry.task.spec?.deadline;
    if (deadline) {
      const outcome = DeadlineOutcomes.of(state === S.SUCCEEDED, timestampToMillis(entry.task.finishedAt!), timestampToMillis(deadline));
      if (outcome) this.deadlines.record(entry.tenant, entry.task.spec!.priorityClass, outcome);
      const variant = this.variantIndex(entry.task.spec!);
      if (variant !== undefined && outcome === 'met') this.variantStats[variant]!.met += 1;
      if (variant !== undefined && outcome === 'missed') this.variantStats[variant]!.missed += 1;
    }
    // Ended while waiting: its dependencies no longer have it behind them.
    for (const dep of entry.waitingOn ?? []) {
      this.dependents.get(dep)?.delete(entry.id);
      this.refreshLineage(dep);
    }
    const waiting = this.dependents.get(entry.id);
    this.dependents.delete(entry.id);
    for (const id of waiting ?? []) {
      const dependent = this.live.get(id);
      if (!dependent?.waitingOn) continue;
      if (state !== S.SUCCEEDED) {
        await this.finish(dependent, S.CANCELLED, `dependency ${entry.id} ended ${stateName(state)}`);
        continue;
      }
      dependent.waitingOn.delete(entry.id);
      if (dependent.waitingOn.size === 0 && dependent.state === S.WAITING_DEPS) {
        dependent.waitingOn = undefined;
        dependent.readySinceMs = this.clock();
        await this.transition(dependent, S.QUEUED, 'dependencies succeeded');
        this.enqueueReady(dependent);
      }
    }
  }

  /**
   * The one way a task changes state: checked against the state machine,
   * applied in memory at once (so later decisions see it), made durable with
   * its event, and published after the commit.
   */
  private transition(entry: Live, to: TaskState, reason: string, patch: Partial<Task> = {}): Promise<void> {
    const from = entry.state;
    if (!canTransition(from, to)) {
      this.logger.error({ taskId: entry.id, from: stateName(from), to: stateName(to) }, 'illegal transition refused');
      return Promise.reject(new FailedPreconditionError(`task ${entry.id} is ${stateName(from)} and cannot become ${stateName(to)}`));
    }
    const now = this.clock();
    // A fresh object per transition: the store and subscribers hold snapshots.
    const task: Task = { ...entry.task, ...patch, state: to, sequence: entry.task.sequence + 1, updatedAt: toTimestamp(now), reason };
    entry.task = task;
    const event: StoredEvent = { sequence: task.sequence, state: to, previousState: from, atMs: now, reason, final: isFinal(to) || !!patch.finishedAt };
    return this.store.record(task, event).then(() => this.publish(task, event));
  }

  private publish(task: Task, event: StoredEvent): void {
    // Events describe transitions: the prompt stays out of them (GetTask has it), which
    // keeps every subscriber's stream small however long the prompts are. Built as a
    // plain object: fromPartial would deep-copy the task once more per event.
    const spec = task.spec && task.spec.payload ? { ...task.spec, payload: undefined } : task.spec;
    this.bus.publishTask({
      taskId: task.id,
      sequence: event.sequence,
      state: event.state,
      previousState: event.previousState,
      time: toTimestamp(event.atMs),
      reason: event.reason,
      task: { ...task, spec },
      final: event.final ?? false,
    });
  }

}
