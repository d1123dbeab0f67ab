import { randomUUID } from 'node:crypto';
import {
  ClassQueueStats,
  EnqueueRequest,
  Lease,
  Node,
  NodeState,
  Placement,
  PolicyChange,
  PriorityClass,
  PriorityExplanation,
  QueueStats,
  Task,
  TaskResult,
  TaskState,
  TenantQueueStats,
  type ConnectResponse,
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
  ageFactor,
  applyPolicyUpdate,
  canTransition,
  classFactor,
  DEFAULT_POLICY,
  FailedPreconditionError,
  Fleet,
  InvalidArgumentError,
  isLeased,
  NotFoundError,
  ReadyQueue,
  stateName,
  toDuration,
  toTimestamp,
  timestampToMillis,
  type Clock,
  type Demand,
  type Policy,
  type Reservation,
} from '@autoglm/core';
import type { StoredEvent, TaskStore } from '@autoglm/store';
import { captureTraceContext, type Logger } from '@autoglm/runtime';
import type { EventBus } from './event-bus';

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
  /** An agent silent this long is lost and its leases requeued. @default 3000 */
  leaseMs?: number;
  /** How often agents push telemetry. @default 100 */
  telemetryIntervalMs?: number;
}

interface Live {
  task: Task;
  /** When it last became runnable (for age and queue time). */
  readySinceMs: number;
  lease?: { epoch: number; reservation: Reservation; queueTimeMs: number };
  /** Unfinished dependencies. */
  waitingOn?: Set<string>;
  /** W3C trace context of the submission (memory only), handed to the agent with the assignment. */
  traceContext?: Record<string, string>;
}

interface NodeInfo {
  register: Register;
  link: AgentLink;
  telemetry?: Telemetry;
  state: NodeState;
  lastSeenMs: number;
  leased: Set<string>;
}

const S = TaskState;

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
  private readonly queue = new ReadyQueue();
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
  private leaseEpoch: number;
  private dispatchScheduled = false;
  private policy: Policy = DEFAULT_POLICY;
  private succeeded = 0;
  private failed = 0;
  /** Reports refused because their lease was superseded (fencing). */
  rejectedReports = 0;

  constructor(options: SchedulerOptions) {
    this.store = options.store;
    this.bus = options.bus;
    this.fleet = options.fleet;
    this.logger = options.logger;
    this.weightBytesOf = options.weightBytesOf;
    this.clock = options.clock ?? Date.now;
    this.leaseMs = options.leaseMs ?? 3000;
    this.telemetryIntervalMs = options.telemetryIntervalMs ?? 100;
    // Epochs only grow, across restarts too: start from the clock, in microseconds.
    this.leaseEpoch = this.clock() * 1000;
  }

  /** Rebuilds the in-memory queue from the store after a start or restart. */
  async recover(): Promise<{ tasks: number; requeued: number }> {
    const tasks = await this.store.unfinished();
    const now = this.clock();
    for (const task of tasks) this.live.set(task.id, { task, readySinceMs: task.updatedAt ? timestampToMillis(task.updatedAt) : now });
    // Gate every waiting task first, so a dependency that ends below (dead-lettered
    // on requeue) finds its dependents registered and settles them.
    for (const task of tasks) {
      const entry = this.live.get(task.id);
      if (entry && (task.state === S.PENDING || task.state === S.WAITING_DEPS)) await this.gateOnDependencies(entry);
    }
    let requeued = 0;
    for (const task of tasks) {
      const entry = this.live.get(task.id);
      if (!entry) continue;
      if (task.state === S.QUEUED) this.queue.push(this.queueEntry(entry));
      else if (task.state !== S.PENDING && task.state !== S.WAITING_DEPS) {
        // ASSIGNED/RUNNING: the lease died with the old process; LOST, PREEMPTED,
        // FAILED: the requeue had not been recorded. Either way: next attempt.
        requeued += 1;
        await this.retryOrEnd(entry, isLeased(task.state) ? S.LOST : undefined, 'decision restarted while the attempt was in flight', true);
      }
    }
    this.scheduleDispatch();
    return { tasks: tasks.length, requeued };
  }

  // ---- submissions -------------------------------------------------------

  /** Makes a parsed submission durable and queues it (or gates it on its dependencies). */
  async enqueue(req: EnqueueRequest): Promise<{ task: Task; created: boolean }> {
    const spec = req.spec;
    if (!spec) throw new InvalidArgumentError('spec', 'is required');
    const states = await this.dependencyStates(spec.dependsOn);
    const unmet = new Set<string>();
    spec.dependsOn.forEach((dep, i) => {
      const state = states.get(dep);
      if (state === undefined) throw new InvalidArgumentError(`depends_on[${i}]`, `task ${dep} does not exist`);
      if (state === S.CANCELLED || state === S.DEAD_LETTER || (state === S.FAILED && !this.live.has(dep))) {
        throw new InvalidArgumentError(`depends_on[${i}]`, `task ${dep} ended ${stateName(state)} and will never succeed`);
      }
      if (state !== S.SUCCEEDED) unmet.add(dep);
    });
    const now = this.clock();
    const state = unmet.size > 0 ? S.WAITING_DEPS : S.QUEUED;
    const task = Task.fromPartial({
      id: randomUUID(),
      requestId: req.requestId,
      tenant: req.tenant,
      spec,
      state,
      attempt: 1,
      sequence: 1,
      createdAt: toTimestamp(now),
      updatedAt: toTimestamp(now),
      reason: unmet.size > 0 ? `waiting for ${[...unmet].join(', ')}` : '',
    });
    const event: StoredEvent = { sequence: 1, state, previousState: S.UNSPECIFIED, atMs: now, reason: task.reason };
    const { task: stored, created } = await this.store.submit(task, event);
    if (!created) return { task: this.live.get(stored.id)?.task ?? stored, created };
    const entry: Live = { task, readySinceMs: now, traceContext: captureTraceContext() };
    this.live.set(task.id, entry);
    if (unmet.size > 0) {
      entry.waitingOn = unmet;
      for (const dep of unmet) this.addDependent(dep, task.id);
    } else {
      this.queue.push(this.queueEntry(entry));
      this.scheduleDispatch();
    }
    this.publish(task, event);
    return { task, created };
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
      await onAdmitted(task, this.queue.positionOf(task.id, task.spec!.priorityClass)).catch((err: unknown) => {
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
      this.nodes.get(lease.reservation.nodeId)?.link.send({
        kind: { $case: 'revoke', revoke: { lease: this.leaseOf(entry), reason: why } },
      });
      this.releaseLease(entry);
    }
    this.queue.remove(taskId, entry.task.spec!.priorityClass);
    this.admissions.get(taskId)?.reject(new FailedPreconditionError(`task ${taskId} was cancelled: ${why}`));
    await this.finish(entry, S.CANCELLED, why);
    return entry.task;
  }

  // ---- agents ------------------------------------------------------------

  /** A node registered (or re-registered) on Connect. */
  agentRegistered(register: Register, link: AgentLink): Registered {
    const previous = this.nodes.get(register.nodeId);
    if (previous && previous.link !== link) {
      previous.link.close('replaced by a new session of the same node');
      this.agentGone(register.nodeId, previous.link, 'replaced by a new session');
    }
    this.fleet.upsert({
      nodeId: register.nodeId,
      address: register.address,
      models: register.models,
      maxTasksPerGpu: register.maxTasksPerGpu || 16,
      gpus: register.gpus.map((g) => ({ index: g.index, memoryTotalBytes: g.memoryTotalBytes })),
    });
    this.nodes.set(register.nodeId, { register, link, state: NodeState.READY, lastSeenMs: this.clock(), leased: new Set() });
    // Leases this process did not grant (or already took back) are revoked: the agent stops them.
    const revoked = register.running.filter((lease) => {
      const entry = this.live.get(lease.taskId);
      return !entry?.lease || entry.lease.epoch !== lease.leaseEpoch || entry.lease.reservation.nodeId !== register.nodeId;
    });
    this.logger.info({ nodeId: register.nodeId, gpus: register.gpus.length, revoked: revoked.length }, 'agent registered');
    this.scheduleDispatch();
    return { leaseDuration: toDuration(this.leaseMs), telemetryInterval: toDuration(this.telemetryIntervalMs), revoked };
  }

  agentTelemetry(nodeId: string, telemetry: Telemetry): void {
    const info = this.nodes.get(nodeId);
    if (!info) return;
    info.telemetry = telemetry;
    info.lastSeenMs = this.clock();
    if (telemetry.draining && info.state !== NodeState.DRAINING) {
      // No new work for a draining node: its refusals would burn tasks' retries.
      info.state = NodeState.DRAINING;
      this.fleet.setHealth(nodeId, 'draining');
      this.logger.info({ nodeId }, 'agent draining');
    }
    this.fleet.observe(nodeId, telemetry.gpus.map((g) => ({ index: g.index, utilization: g.utilization, memoryUsedBytes: g.memoryUsedBytes })));
    if (this.fleet.hasFreeSlot() && this.queue.size > 0) this.scheduleDispatch();
  }

  /** A progress report; rejected unless it carries the task's current lease (fencing). */
  async agentUpdate(nodeId: string, update: TaskUpdate): Promise<void> {
    const lease = update.lease;
    const entry = lease ? this.live.get(lease.taskId) : undefined;
    const info = this.nodes.get(nodeId);
    if (info) info.lastSeenMs = this.clock();
    if (!lease || !entry?.lease || entry.lease.epoch !== lease.leaseEpoch || entry.task.attempt !== lease.attempt || entry.lease.reservation.nodeId !== nodeId) {
      this.rejectedReports += 1;
      this.logger.debug({ nodeId, lease, state: stateName(update.state) }, 'report for a superseded lease rejected');
      if (lease && update.state === S.RUNNING) info?.link.send({ kind: { $case: 'revoke', revoke: { lease, reason: 'lease superseded' } } });
      return;
    }
    const now = this.clock();
    switch (update.state) {
      case S.RUNNING:
        if (entry.task.state === S.ASSIGNED) await this.transition(entry, S.RUNNING, '', { startedAt: toTimestamp(now) });
        return;
      case S.SUCCEEDED: {
        const result = TaskResult.fromPartial({ ...update.result, queueTime: toDuration(entry.lease.queueTimeMs) });
        this.releaseLease(entry);
        if (entry.task.state === S.ASSIGNED) await this.transition(entry, S.RUNNING, '', { startedAt: toTimestamp(now) });
        await this.finish(entry, S.SUCCEEDED, '', { result });
        return;
      }
      case S.FAILED: {
        const result = update.result ? TaskResult.fromPartial({ ...update.result, queueTime: toDuration(entry.lease.queueTimeMs) }) : undefined;
        this.releaseLease(entry);
        const error = update.error || 'failed';
        // A failure retrying cannot fix ends the task here, in one event that says so.
        if (!update.retryable) {
          await this.finish(entry, S.FAILED, error, { result });
          return;
        }
        await this.transition(entry, S.FAILED, error, { result });
        await this.retryOrEnd(entry, undefined, error, true);
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

  /** The node's session ended or went silent: its leases are lost and their tasks requeued. */
  agentGone(nodeId: string, link: AgentLink, reason: string): void {
    const info = this.nodes.get(nodeId);
    if (!info || info.link !== link) return;
    this.nodes.delete(nodeId);
    this.fleet.remove(nodeId);
    const leased = [...info.leased];
    this.logger.warn({ nodeId, reason, leased: leased.length }, 'agent lost');
    for (const taskId of leased) {
      const entry = this.live.get(taskId);
      if (!entry?.lease) continue;
      this.releaseLease(entry);
      void this.retryOrEnd(entry, S.LOST, `node ${nodeId} lost: ${reason}`, !entry.task.spec?.interactive).catch((err: unknown) =>
        this.logger.error({ err, taskId }, 'requeue after node loss failed'),
      );
    }
  }

  /** Declares silent agents lost. Called periodically. */
  sweepSilentAgents(): void {
    const now = this.clock();
    for (const [nodeId, info] of this.nodes) {
      if (now - info.lastSeenMs > this.leaseMs) {
        info.link.close(`no message for ${now - info.lastSeenMs} ms`);
        this.agentGone(nodeId, info.link, `silent for ${now - info.lastSeenMs} ms`);
      }
    }
  }

  // ---- reads -------------------------------------------------------------

  async get(taskId: string): Promise<Task> {
    const task = (await this.find(taskId));
    if (!task) throw new NotFoundError(`task ${taskId} does not exist`);
    return task;
  }

  /** The freshest copy of a task, if it exists. */
  async find(taskId: string): Promise<Task | undefined> {
    return this.live.get(taskId)?.task ?? this.finishing.get(taskId)?.task ?? (await this.store.get(taskId));
  }

  explain(taskId: string, task: Task): PriorityExplanation {
    const entry = this.live.get(taskId);
    const spec = task.spec!;
    const wait = entry && task.state === S.QUEUED ? this.clock() - entry.readySinceMs : 0;
    const factors = [
      { name: 'class', value: classFactor(spec.priorityClass) },
      { name: 'age', value: ageFactor(wait, this.policy.maxAgeMs) },
    ].map((f) => {
      const weight = this.policy.weights[f.name as 'class' | 'age'];
      return { ...f, weight, contribution: f.value * weight };
    });
    const position = task.state === S.QUEUED ? this.queue.positionOf(taskId, spec.priorityClass) : 0;
    let waitingReason = '';
    if (task.state === S.WAITING_DEPS) waitingReason = `waiting for dependencies: ${[...(entry?.waitingOn ?? [])].join(', ')}`;
    else if (task.state === S.QUEUED) {
      if (!this.fleet.servesModel(spec.model)) waitingReason = `no connected node serves model "${spec.model}"`;
      else if (!this.fleet.hasFreeSlot()) waitingReason = 'no capacity: every GPU slot is taken';
      else if (position > 1) waitingReason = `${position - 1} tasks are ahead in scheduling order`;
      else waitingReason = 'next to be placed; waiting for a GPU with enough free memory';
    }
    return PriorityExplanation.fromPartial({
      taskId,
      state: task.state,
      priority: factors.reduce((s, f) => s + f.contribution, 0),
      factors,
      queuePosition: position,
      waitingReason,
    });
  }

  applyPolicy(update: PolicyUpdate): number {
    this.policy = applyPolicyUpdate(this.policy, update);
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
    const now = this.clock();
    for (const { task, readySinceMs } of this.live.values()) {
      const pc = task.spec!.priorityClass;
      const c = classes.get(pc) ?? ClassQueueStats.fromPartial({ priorityClass: pc });
      const t = tenants.get(task.tenant) ?? TenantQueueStats.fromPartial({ tenant: task.tenant });
      classes.set(pc, c);
      tenants.set(task.tenant, t);
      if (task.state === S.WAITING_DEPS || task.state === S.PENDING) waitingDeps += 1;
      else if (task.state === S.QUEUED) {
        queued += 1;
        c.queued += 1;
        t.queued += 1;
        c.oldestWaitSeconds = Math.max(c.oldestWaitSeconds, (now - readySinceMs) / 1000);
      } else if (isLeased(task.state)) {
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
    const names = new Map(info.register.gpus.map((g) => [g.index, g]));
    const gpus: GpuStatus[] = info.telemetry?.gpus.length
      ? info.telemetry.gpus
      : info.register.gpus.map((g) => ({ index: g.index, name: g.name, utilization: 0, memoryUsedBytes: 0, memoryTotalBytes: g.memoryTotalBytes, temperatureC: 0, powerWatts: 0 }));
    return Node.fromPartial({
      nodeId,
      address: info.register.address,
      state: info.state,
      gpus: gpus.map((g) => ({ ...g, name: g.name || names.get(g.index)?.name || '' })),
      models: info.register.models,
      backends: info.register.backends,
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
      const entry = this.live.get(id);
      if (entry) states.set(id, entry.task.state);
      else missing.push(id);
    }
    for (const [id, state] of await this.store.states(missing)) states.set(id, state);
    return states;
  }

  private async gateOnDependencies(entry: Live): Promise<void> {
    const deps = entry.task.spec!.dependsOn;
    const stored = await this.store.states(deps.filter((d) => !this.live.has(d)));
    const unmet = new Set<string>();
    for (const dep of deps) {
      if (this.live.has(dep)) unmet.add(dep);
      else if (stored.get(dep) !== S.SUCCEEDED) {
        await this.finish(entry, S.CANCELLED, `dependency ${dep} ended ${stateName(stored.get(dep) ?? S.UNSPECIFIED)}`);
        return;
      }
    }
    if (unmet.size === 0) {
      await this.transition(entry, S.QUEUED, 'dependencies succeeded');
      this.queue.push(this.queueEntry(entry));
      return;
    }
    entry.waitingOn = unmet;
    for (const dep of unmet) this.addDependent(dep, entry.task.id);
  }

  private addDependent(dep: string, taskId: string): void {
    let set = this.dependents.get(dep);
    if (!set) this.dependents.set(dep, (set = new Set()));
    set.add(taskId);
  }

  private queueEntry(entry: Live) {
    return { id: entry.task.id, priorityClass: entry.task.spec!.priorityClass, tenant: entry.task.tenant, readySinceMs: entry.readySinceMs };
  }

  private demandOf(spec: TaskSpec): Demand {
    const gpuCount = Math.max(1, spec.gpuCount);
    const weights = spec.model ? (this.weightBytesOf(spec.model) ?? 0) / gpuCount : 0;
    const shared = spec.interactive || spec.payload?.$case === 'inference' ? Math.min(weights, spec.gpuMemoryBytes) : 0;
    return { model: spec.model, gpuCount, sharedBytesPerGpu: shared, privateBytesPerGpu: Math.max(0, spec.gpuMemoryBytes - shared) };
  }

  private leaseOf(entry: Live): Lease {
    return { taskId: entry.task.id, attempt: entry.task.attempt, leaseEpoch: entry.lease?.epoch ?? 0 };
  }

  private releaseLease(entry: Live): void {
    const lease = entry.lease;
    if (!lease) return;
    entry.lease = undefined;
    this.fleet.release(lease.reservation);
    this.nodes.get(lease.reservation.nodeId)?.leased.delete(entry.task.id);
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

  /**
   * Places runnable tasks in order. A task that fits nowhere does not block the
   * ones behind it (a smaller one may fit), but a pass gives up after a run of
   * misses so a long queue on a full fleet costs little.
   */
  private dispatch(): void {
    if (this.queue.size === 0) return;
    let misses = 0;
    for (const q of this.queue.inOrder()) {
      if (!this.fleet.hasFreeSlot() || misses >= 64) break;
      const entry = this.live.get(q.id);
      if (!entry) {
        this.queue.remove(q.id, q.priorityClass);
        continue;
      }
      const placed = this.fleet.place(this.demandOf(entry.task.spec!));
      if (typeof placed === 'string') {
        misses += 1;
        continue;
      }
      this.queue.remove(q.id, q.priorityClass);
      this.assign(entry, placed).catch((err: unknown) => this.logger.error({ err, taskId: q.id }, 'assignment failed'));
    }
  }

  private async assign(entry: Live, reservation: Reservation): Promise<void> {
    const now = this.clock();
    const epoch = ++this.leaseEpoch;
    const queueTimeMs = now - entry.readySinceMs;
    entry.lease = { epoch, reservation, queueTimeMs };
    const info = this.nodes.get(reservation.nodeId);
    info?.leased.add(entry.task.id);
    try {
      await this.transition(entry, S.ASSIGNED, `assigned to ${reservation.nodeId}`, { nodeId: reservation.nodeId });
    } catch (err) {
      // Not durable: give the capacity back; the task is retried from the store on restart.
      if (entry.lease?.epoch === epoch) this.releaseLease(entry);
      throw err;
    }
    // Between the transition and its commit the task may have been cancelled or its node lost.
    if (entry.lease?.epoch !== epoch || entry.task.state !== S.ASSIGNED) return;
    const lease = this.leaseOf(entry);
    info?.link.send({
      kind: { $case: 'assignment', assignment: { lease, task: entry.task, gpuIndices: reservation.gpuIndices, traceContext: entry.traceContext ?? {} } },
    });
    this.admissions.get(entry.task.id)?.resolve(
      Placement.fromPartial({ lease, nodeId: reservation.nodeId, agentAddress: reservation.address, gpuIndices: reservation.gpuIndices, queueTime: toDuration(queueTimeMs) }),
    );
  }

  /**
   * After a failed or lost attempt: queue the next attempt if retrying can help
   * and retries are left; DEAD_LETTER when the retries are used up; CANCELLED
   * when the attempt cannot be retried at all (an interactive stream whose
   * client is gone with its agent).
   */
  private async retryOrEnd(entry: Live, via: TaskState | undefined, reason: string, retryable: boolean): Promise<void> {
    if (via !== undefined && entry.task.state !== via) await this.transition(entry, via, reason);
    // entry.task is a new object after every transition: read it afresh.
    if (!retryable) {
      await this.finish(entry, S.CANCELLED, reason);
      return;
    }
    const attempt = entry.task.attempt;
    if (attempt > entry.task.spec!.maxRetries) {
      await this.finish(entry, S.DEAD_LETTER, `${reason}; no retries left after ${attempt} attempts`);
      return;
    }
    if (isLeased(entry.task.state)) await this.transition(entry, S.LOST, reason);
    entry.readySinceMs = this.clock();
    await this.transition(entry, S.QUEUED, `attempt ${attempt + 1} after: ${reason}`, { attempt: attempt + 1, nodeId: '' });
    this.queue.push(this.queueEntry(entry));
    this.scheduleDispatch();
  }

  /** Moves a task to a final state, forgets it, and settles its dependents. */
  private async finish(entry: Live, state: TaskState, reason: string, patch: Partial<Task> = {}): Promise<void> {
    const done = this.transition(entry, state, reason, { ...patch, finishedAt: toTimestamp(this.clock()) });
    // Out of the live set at once, so a cancel or report in between finds it over;
    // readable from `finishing` until the store has it.
    this.live.delete(entry.task.id);
    this.finishing.set(entry.task.id, entry);
    try {
      await done;
    } finally {
      this.finishing.delete(entry.task.id);
    }
    if (state === S.SUCCEEDED) this.succeeded += 1;
    else this.failed += 1;
    const waiting = this.dependents.get(entry.task.id);
    this.dependents.delete(entry.task.id);
    for (const id of waiting ?? []) {
      const dependent = this.live.get(id);
      if (!dependent?.waitingOn) continue;
      if (state !== S.SUCCEEDED) {
        await this.finish(dependent, S.CANCELLED, `dependency ${entry.task.id} ended ${stateName(state)}`);
        continue;
      }
      dependent.waitingOn.delete(entry.task.id);
      if (dependent.waitingOn.size === 0 && dependent.task.state === S.WAITING_DEPS) {
        dependent.waitingOn = undefined;
        dependent.readySinceMs = this.clock();
        await this.transition(dependent, S.QUEUED, 'dependencies succeeded');
        this.queue.push(this.queueEntry(dependent));
        this.scheduleDispatch();
      }
    }
  }

  /**
   * The one way a task changes state: checked against the state machine,
   * applied in memory at once (so later decisions see it), made durable with
   * its event, and published after the commit.
   */
  private transition(entry: Live, to: TaskState, reason: string, patch: Partial<Task> = {}): Promise<void> {
    const from = entry.task.state;
    if (!canTransition(from, to)) {
      this.logger.error({ taskId: entry.task.id, from: stateName(from), to: stateName(to) }, 'illegal transition refused');
      return Promise.reject(new FailedPreconditionError(`task ${entry.task.id} is ${stateName(from)} and cannot become ${stateName(to)}`));
    }
    const now = this.clock();
    // A fresh object per transition: the store and subscribers hold snapshots.
    const task: Task = { ...entry.task, ...patch, state: to, sequence: entry.task.sequence + 1, updatedAt: toTimestamp(now), reason };
    entry.task = task;
    const event: StoredEvent = { sequence: task.sequence, state: to, previousState: from, atMs: now, reason };
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
    });
  }

}
