import {
  ClassQueueStats,
  type EnqueueRequest,
  type EnqueueWorkflowRequest,
  type Node,
  type Placement,
  PolicyChange,
  PriorityClass,
  PriorityExplanation,
  QueueStats,
  type RequeuedTask,
  type Task,
  type TaskEvent,
  TaskState,
  TenantQueueStats,
  WaitingCause,
  type DeadLetterSelector,
  PolicyUpdate,
  type Register,
  type Registered,
  type TaskUpdate,
  type Telemetry,
} from '@autoglm/proto';
import {
  applyPolicyUpdate,
  combinedBoosts,
  parseFeedback,
  parseWarmReplicas,
  DEFAULT_POLICY,
  DEFAULT_RETRY_POLICY,
  explainPriority,
  isLeased,
  NotFoundError,
  RunTimePredictor,
  timestampToMillis,
  toTimestamp,
  WaitPredictor,
  type Clock,
  type Feedback,
  type Fleet,
  type Policy,
  type PolicyExperiment,
  type RetryPolicy,
  type TenantConfig,
  type WaitCause,
} from '@autoglm/core';
import type { TaskStore } from '@autoglm/store';
import type { Logger } from '@autoglm/runtime';
import { AgentSessions, type AgentLink } from './agent-sessions';
import { DeadLetters } from './dead-letters';
import { DispatchLoop } from './dispatch-loop';
import type { EventBus } from './event-bus';
import { ExperimentStats } from './experiment-stats';
import { Intake } from './intake';
import { Lifecycle } from './lifecycle';
import type { Live } from './live';
import { TaskBook } from './task-book';

export type { AgentLink } from './agent-sessions';

export interface SchedulerOptions {
  store: TaskStore;
  bus: EventBus;
  /** The claim model over the agents' hosts (it knows the models' shapes). */
  fleet: Fleet;
  logger: Logger;
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
  /** How long a preempted attempt has to stop (SIGTERM to SIGKILL for a command job, which may checkpoint). @default 10000 */
  preemptGraceMs?: number;
  /**
   * The monitor's feedback (its boost factors and warm floors) is dropped
   * unless it sends it again within this long: a monitor that went away must
   * not leave its last word in force. @default 300000
   */
  feedbackTtlMs?: number;
}

const S = TaskState;

const WAIT_CAUSES: Record<WaitCause, WaitingCause> = {
  priority: WaitingCause.PRIORITY,
  capacity: WaitingCause.CAPACITY,
  quota: WaitingCause.QUOTA,
  'no-model': WaitingCause.NO_MODEL,
};

/**
 * Decision's state and the rules that move tasks through it, in parts that
 * each read on their own: the task book (what is in memory), the lifecycle
 * (transitions, failures, dependencies), intake (submissions, Admits,
 * cancels), agent sessions and their leases, the dispatch loop, and dead
 * letters. The ordering and placement decisions themselves are in libs/core
 * (Dispatcher, Fleet, the state machine). A transition is made durable
 * before its event is published and before an agent is told to run anything.
 */
export class Scheduler {
  private readonly book = new TaskBook();
  private readonly lifecycle: Lifecycle;
  private readonly sessions: AgentSessions;
  private readonly queue: DispatchLoop;
  private readonly intake: Intake;
  private readonly deadLetters: DeadLetters;
  private readonly experiments: ExperimentStats;
  private readonly runTimes = new RunTimePredictor();
  private readonly waits = new WaitPredictor();
  private readonly store: TaskStore;
  private readonly bus: EventBus;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly fleet: Fleet;
  private policy: Policy;
  /** The operators' tenant boosts (configuration, admins' ApplyPolicy); the policy in force has the feedback's factors on them. */
  private operatorBoosts: Record<string, number>;
  /** The monitor's feedback loop, as last sent, and when it lapses. */
  private feedback: Feedback = { boosts: {}, floors: {} };
  private feedbackExpiry: NodeJS.Timeout | undefined;
  private readonly feedbackTtlMs: number;

  constructor(options: SchedulerOptions) {
    this.store = options.store;
    this.bus = options.bus;
    this.logger = options.logger;
    this.clock = options.clock ?? Date.now;
    this.policy = options.policy ?? DEFAULT_POLICY;
    this.operatorBoosts = { ...this.policy.tenantBoosts };
    this.feedbackTtlMs = options.feedbackTtlMs ?? 300_000;
    this.fleet = options.fleet;
    const { book, clock, logger, store, bus, fleet } = { book: this.book, clock: this.clock, logger: this.logger, store: this.store, bus: this.bus, fleet: options.fleet };
    this.experiments = new ExperimentStats(options.experiment);
    this.lifecycle = new Lifecycle({ book, store, bus, logger, clock, retry: options.retry ?? DEFAULT_RETRY_POLICY, experiments: this.experiments });
    const leaseMs = options.leaseMs ?? 3000;
    this.sessions = new AgentSessions({
      book,
      lifecycle: this.lifecycle,
      fleet,
      bus,
      logger,
      clock,
      leaseMs,
      telemetryIntervalMs: options.telemetryIntervalMs ?? 100,
      preemptGraceMs: options.preemptGraceMs ?? 10_000,
      incarnation: options.incarnation,
      runTimes: this.runTimes,
      waits: this.waits,
      experiments: this.experiments,
    });
    this.queue = new DispatchLoop({
      book,
      lifecycle: this.lifecycle,
      sessions: this.sessions,
      fleet,
      logger,
      clock,
      policy: this.policy,
      tenants: options.tenants ?? [],
      runTimes: this.runTimes,
      experiments: this.experiments,
    });
    this.intake = new Intake({
      book,
      lifecycle: this.lifecycle,
      sessions: this.sessions,
      queue: this.queue,
      store,
      fleet,
      logger,
      clock,
      runTimes: this.runTimes,
      waits: this.waits,
      experiments: this.experiments,
      shedQueueLimit: options.shedQueueLimit ?? 10_000,
      policy: () => this.policy,
    });
    this.deadLetters = new DeadLetters(store, this.intake, this.lifecycle, (id) => this.find(id));
    this.lifecycle.wire({
      enqueueReady: (entry) => this.queue.enqueueReady(entry),
      updateQueued: (id, patch) => this.queue.dispatcher.update(id, patch, this.clock()),
      releaseLease: (entry) => this.sessions.releaseLease(entry),
    });
    this.sessions.wire({
      dispatcher: this.queue.dispatcher,
      scheduleDispatch: () => this.queue.schedule(),
      placed: (taskId, placement) => this.intake.placed(taskId, placement),
      cancelled: (taskId, why) => this.intake.abandoned(taskId, why),
    });
  }

  /**
   * Rebuilds the in-memory state from the store after a start or restart.
   * Attempts that were assigned or running stay leased to their node for a
   * grace period: an agent that reconnects and still holds them keeps them
   * (see agentRegistered); the others are declared LOST when it ends.
   */
  async recover(): Promise<{ tasks: number; held: number; requeued: number }> {
    const { book, lifecycle } = this;
    const now = this.clock();
    const entries: Live[] = [];
    /** Each entry's state as read (gating below may end or queue some). */
    const stored: TaskState[] = [];
    /** The queued ones' queue entries, made while they are decoded (then they rest, and are not decoded again). */
    const inits = new Map<Live, ReturnType<DispatchLoop['queuedInit']>>();
    const waiting = (state: TaskState) => state === S.PENDING || state === S.WAITING_DEPS;
    for await (const page of this.store.unfinishedPages()) {
      for (const task of page) {
        const entry = book.newLive(task, task.updatedAt ? timestampToMillis(task.updatedAt) : now);
        book.live.set(task.id, entry);
        this.experiments.submitted(task);
        // Queued and waiting tasks are nearly all of a big backlog: at rest from the start,
        // so recovery holds one page of decoded tasks, not the whole backlog.
        if (task.state === S.QUEUED) inits.set(entry, this.queue.queuedInit(entry));
        if (task.state === S.QUEUED || waiting(task.state)) entry.rest();
        entries.push(entry);
        stored.push(task.state);
      }
    }
    await this.deadLetters.count();
    const current = (i: number) => (book.live.get(entries[i]!.id) === entries[i] ? entries[i] : undefined);
    // Gate every waiting task first, so a dependency that ends below (dead-lettered
    // on requeue) finds its dependents registered and settles them.
    for (let i = 0; i < entries.length; i++) {
      const entry = current(i);
      if (entry && waiting(stored[i]!)) await lifecycle.gateOnDependencies(entry);
    }
    let held = 0;
    let requeued = 0;
    // Queued oldest first, so the age bound finds them in order.
    const queued = [...inits.keys()];
    queued.sort((a, b) => a.readySinceMs - b.readySinceMs);
    for (const entry of queued) {
      if (book.live.get(entry.id) !== entry || entry.state !== S.QUEUED) continue;
      if (!entry.atRest) {
        this.queue.enqueueReady(entry);
        continue;
      }
      // What gating above changed: the tasks now waiting on it, and the class they lend it.
      this.queue.dispatcher.enqueue({ ...inits.get(entry)!, dependents: lifecycle.dependents.get(entry.id)?.size ?? 0, inheritedClass: entry.inheritedClass }, this.clock());
    }
    inits.clear();
    for (let i = 0; i < entries.length; i++) {
      const entry = current(i);
      const state = stored[i]!;
      if (!entry || state === S.QUEUED || waiting(state)) continue;
      const task = entry.task;
      if (isLeased(state) && task.nodeId && task.leaseEpoch > 0) {
        held += 1;
        this.sessions.holdRecovered(entry);
      } else {
        // FAILED, LOST: the next step after the failure was not recorded; PREEMPTED: the requeue was not.
        // (A backoff in progress restarts from zero: its timer died with the old process.)
        requeued += 1;
        if (isLeased(state)) await lifecycle.failAttempt(entry, 'lost', 'decision restarted and the attempt had no recorded lease');
        else if (state === S.PREEMPTED) await lifecycle.requeue(entry, 'decision restarted');
        else await lifecycle.afterFailure(entry, 'decision restarted', false);
      }
    }
    this.queue.schedule();
    return { tasks: entries.length, held, requeued };
  }

  openForAgents(): void {
    this.sessions.openForAgents();
  }

  // ---- submissions -------------------------------------------------------

  enqueue(req: EnqueueRequest): Promise<{ task: Task; created: boolean }> {
    return this.intake.enqueue(req);
  }

  enqueueWorkflow(req: EnqueueWorkflowRequest): Promise<{ tasks: Task[]; created: boolean }> {
    return this.intake.enqueueWorkflow(req);
  }

  admit(req: EnqueueRequest, onAdmitted: (task: Task, queuePosition: number) => Promise<void>, signal: AbortSignal): Promise<Placement> {
    return this.intake.admit(req, onAdmitted, signal);
  }

  cancel(taskId: string, reason: string): Promise<Task> {
    return this.intake.cancel(taskId, reason);
  }

  resolveInDoubt(): Promise<void> {
    return this.intake.resolveInDoubt();
  }

  // ---- agents ------------------------------------------------------------

  agentRegistered(register: Register, link: AgentLink): Registered {
    return this.sessions.agentRegistered(register, link);
  }

  agentTelemetry(nodeId: string, link: AgentLink, telemetry: Telemetry): void {
    this.sessions.agentTelemetry(nodeId, link, telemetry);
  }

  agentUpdate(nodeId: string, link: AgentLink, update: TaskUpdate): Promise<void> {
    return this.sessions.agentUpdate(nodeId, link, update);
  }

  agentDisconnected(nodeId: string, link: AgentLink, reason: string): void {
    this.sessions.agentDisconnected(nodeId, link, reason);
  }

  heartbeat(): void {
    this.sessions.heartbeat();
  }

  sweepSilentAgents(): void {
    this.sessions.sweepSilentAgents();
  }

  // ---- dead letters ------------------------------------------------------

  requeueDeadLetters(select: DeadLetterSelector | undefined): Promise<RequeuedTask[]> {
    return this.deadLetters.requeue(select);
  }

  purgeDeadLetters(select: DeadLetterSelector | undefined): Promise<number> {
    return this.deadLetters.purge(select);
  }

  // ---- reads -------------------------------------------------------------

  async get(taskId: string): Promise<Task> {
    const task = await this.find(taskId);
    if (!task) throw new NotFoundError(`task ${taskId} does not exist`);
    return task;
  }

  /** The freshest copy of a task, if it exists. */
  async find(taskId: string): Promise<Task | undefined> {
    const entry = this.book.entry(taskId);
    return entry ? this.book.read(entry) : await this.store.get(taskId);
  }

  /**
   * The task's priority factor by factor, its place in the order, and what
   * keeps it from running (its claims, what is held for it, what is being
   * preempted for it). A task not queued (waiting on dependencies, backing
   * off, running) is explained as it would rank if queued now, age 0.
   */
  explain(taskId: string, task: Task): PriorityExplanation {
    const now = this.clock();
    const entry = this.book.live.get(taskId);
    const dispatcher = this.queue.dispatcher;
    const queued = entry && task.state === S.QUEUED ? dispatcher.explain(taskId, now) : undefined;
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
        preempting: queued.preempting,
        reservedStart: queued.reservedStartMs === undefined ? undefined : toTimestamp(queued.reservedStartMs),
      });
    }
    const usageOverShare = dispatcher.usageOverShare(task.tenant, now);
    const init = entry ? this.queue.queuedInit(entry) : undefined;
    if (entry) this.book.restLater(entry);
    const { priority, factors } = explainPriority(
      {
        priorityClass: init?.inheritedClass ?? task.spec!.priorityClass,
        waitMs: 0,
        slackMs: init?.deadlineMs === undefined ? undefined : init.deadlineMs - now - (init.predictedRunMs ?? 0),
        dependents: init?.dependents ?? 0,
        priority: task.spec!.priority,
        usageOverShare,
        resourceShare: init?.resourceShare ?? 0,
        predictedRunMs: init?.predictedRunMs,
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

  /**
   * An operator's update (`byMonitor` false) changes the policy; the monitor's
   * replaces the feedback loop's whole state (its boost factors, multiplying
   * the operators' boosts, and warm floors), which lapses unless sent again
   * within feedbackTtlMs.
   */
  applyPolicy(update: PolicyUpdate, byMonitor = false): number {
    if (byMonitor) {
      const feedback = parseFeedback(update);
      this.setFeedback(feedback);
      clearTimeout(this.feedbackExpiry);
      this.feedbackExpiry = setTimeout(() => this.feedbackLapsed(), this.feedbackTtlMs);
      this.feedbackExpiry.unref();
      return this.policyChanged(update);
    }
    // Both parts are validated before either is applied.
    const policy = applyPolicyUpdate({ ...this.policy, tenantBoosts: this.operatorBoosts }, update);
    const floors = parseWarmReplicas(update.warmReplicas);
    this.operatorBoosts = policy.tenantBoosts;
    this.policy = { ...policy, tenantBoosts: combinedBoosts(this.operatorBoosts, this.feedback.boosts) };
    if (Object.keys(floors).length > 0) this.fleet.setWarmFloors(floors);
    return this.policyChanged(update);
  }

  /** The tenant boosts in force: the operators', each times the feedback loop's factor for the tenant. */
  tenantBoosts(): Readonly<Record<string, number>> {
    return this.policy.tenantBoosts;
  }

  /** The feedback loop's state in force: its factors on the operators' boosts, and its floors (those it no longer names go). */
  private setFeedback(feedback: Feedback): void {
    const dropped = Object.fromEntries(Object.keys(this.feedback.floors).filter((m) => !(m in feedback.floors)).map((m) => [m, 0]));
    this.feedback = feedback;
    this.policy = { ...this.policy, tenantBoosts: combinedBoosts(this.operatorBoosts, feedback.boosts), version: this.policy.version + 1 };
    this.fleet.setWarmFloors({ ...dropped, ...feedback.floors });
  }

  private feedbackLapsed(): void {
    this.feedbackExpiry = undefined;
    if (Object.keys(this.feedback.boosts).length === 0 && Object.keys(this.feedback.floors).length === 0) return;
    this.logger.warn({ ttlMs: this.feedbackTtlMs }, "the monitor's feedback lapsed (not sent again in time): its boosts and warm floors are dropped");
    this.setFeedback({ boosts: {}, floors: {} });
    this.policyChanged(PolicyUpdate.fromPartial({ source: 'decision', reason: "the monitor's feedback lapsed: not sent again in time" }));
  }

  private policyChanged(update: PolicyUpdate): number {
    this.queue.setPolicy(this.policy);
    this.logger.info({ version: this.policy.version, source: update.source, reason: update.reason }, 'policy updated');
    this.bus.publishPolicy(PolicyChange.fromPartial({ version: this.policy.version, update, time: toTimestamp(this.clock()) }));
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
    for (const { state, tenant, priorityClass: pc, readySinceMs, retryTimer } of this.book.live.values()) {
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
      succeeded: this.lifecycle.succeeded,
      failed: this.lifecycle.failed,
      classes: [...classes.values()].sort((a, b) => a.priorityClass - b.priorityClass),
      tenants: [...tenants.values()].sort((a, b) => a.tenant.localeCompare(b.tenant)),
      rejectedReports: this.sessions.rejectedReports,
      lostAttempts: this.sessions.lostAttempts,
      deadLetters: this.lifecycle.deadLetters,
      retrying,
      preempted: this.sessions.preempted,
      deadlines: this.lifecycle.deadlines.all(),
      variants: this.experiments.report(),
      telemetryReceived: this.sessions.telemetryReceived,
    });
  }

  setNodeQuarantine(nodeId: string, quarantined: boolean, reason: string, untilMs: number | undefined, byMonitor = false): Node {
    return this.sessions.setQuarantine(nodeId, quarantined, reason, untilMs, byMonitor);
  }

  listNodes(): Node[] {
    return this.sessions.listNodes();
  }

  /** How many tasks are unfinished (in memory). */
  unfinishedCount(): number {
    return this.book.live.size;
  }

  /** Every unfinished task as an event of its current state (for a Subscribe snapshot), optionally only those in `states`. */
  taskSnapshot(states: readonly TaskState[]): Generator<TaskEvent> {
    return this.lifecycle.snapshot(states);
  }

  /** Publishes every node's snapshot (for the monitor). */
  publishNodes(): void {
    this.sessions.publishNodes();
  }
}
