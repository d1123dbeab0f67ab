import {
  type ConnectResponse,
  type GpuStatus,
  type HostStatus,
  type Lease,
  type ModelServerLoad,
  Node,
  NodeState,
  Placement,
  type Register,
  type Registered,
  ReplicaState,
  type ReplicaStatus,
  TaskResult,
  TaskState,
  type TaskUpdate,
  type Telemetry,
} from '@autoglm/proto';
import {
  durationToMillis,
  FailedPreconditionError,
  heartbeatIntervalMs,
  preemptionRank,
  NotFoundError,
  stateName,
  timestampToMillis,
  toDuration,
  toTimestamp,
  type Claim,
  type Clock,
  type Dispatcher,
  type Fleet,
  type ReplicaReport,
  type RunTimePredictor,
  type WaitPredictor,
} from '@autoglm/core';
import type { Logger } from '@autoglm/runtime';
import type { EventBus } from './event-bus';
import type { ExperimentStats } from './experiment-stats';
import type { Lifecycle } from './lifecycle';
import type { Live } from './live';
import type { TaskBook } from './task-book';

const S = TaskState;

/** How decision talks back to one connected agent. */
export interface AgentLink {
  send(message: ConnectResponse): void;
  /** Ends the agent's stream (it was replaced or declared lost). */
  close(reason: string): void;
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

/**
 * An attempt decision has given up (cancelled, or an interactive one
 * preempted) that its agent is still stopping (SIGTERM, then SIGKILL after
 * its grace): its claim stands until the agent reports it has stopped.
 */
interface Stopping {
  nodeId: string;
  claim: Claim;
  timer: NodeJS.Timeout;
}

/** What the sessions ask of the queue, wired in by the Scheduler. */
export interface SessionHooks {
  dispatcher: Dispatcher;
  scheduleDispatch(): void;
  /** Resolves a waiting Admit with its placement. */
  placed(taskId: string, placement: Placement): void;
  /** Answers a waiting Admit whose task was cancelled before its placement went out. */
  cancelled(taskId: string, why: string): void;
}

export interface AgentSessionsOptions {
  book: TaskBook;
  lifecycle: Lifecycle;
  fleet: Fleet;
  bus: EventBus;
  logger: Logger;
  clock: Clock;
  leaseMs: number;
  telemetryIntervalMs: number;
  /** How long a preempted attempt may take to stop (SIGTERM to SIGKILL; a command job may checkpoint). */
  preemptGraceMs: number;
  incarnation: number;
  runTimes: RunTimePredictor;
  waits: WaitPredictor;
  experiments: ExperimentStats;
}

/** The longest an agent waits between reconnection attempts (its backoff doubles from 100 ms up to this). */
const AGENT_MAX_BACKOFF_MS = 2000;

/** Lease epochs: incarnation * 2^32 + a per-process counter (exact in a double up to incarnation 2^21). */
const EPOCHS_PER_INCARNATION = 2 ** 32;

const leaseKey = (l: Lease): string => `${l.taskId}/${l.attempt}/${l.leaseEpoch}`;

/**
 * Agent sessions and the leases they hold: registration and reconciliation
 * after a reconnect, telemetry (the fleet's readings and replicas), task
 * reports under fencing, silence and loss, and the leases themselves:
 * assignment, release, cancel and preemption (an attempt being stopped keeps
 * its claim until its agent reports it has stopped), and the replica loads
 * and evictions placement decides.
 */
export class AgentSessions {
  private readonly nodes = new Map<string, NodeInfo>();
  private readonly stopping = new Map<string, Stopping>();
  private hooks!: SessionHooks;
  private leaseCounter = 0;
  /** Reports refused because their lease was superseded (fencing). */
  rejectedReports = 0;
  /** Attempts declared LOST because their node went silent or came back without them. */
  lostAttempts = 0;
  /** Attempts stopped for higher-ranked work. */
  preempted = 0;
  /** Telemetry messages received (from current sessions). */
  telemetryReceived = 0;
  private readonly o: AgentSessionsOptions;

  /** Nodes quarantined (by the monitor or an operator), with why, until when, and the timer that lifts it then. */
  private readonly quarantined = new Map<string, { reason: string; untilMs: number | undefined; timer: NodeJS.Timeout | undefined; byMonitor: boolean }>();

  constructor(options: AgentSessionsOptions) {
    this.o = options;
  }

  wire(hooks: SessionHooks): void {
    this.hooks = hooks;
  }

  // ---- sessions ---------------------------------------------------------------

  /**
   * A node registered on Connect: new, reconnecting within its lease, or
   * coming back after a decision restart. Reconciliation: the attempts it
   * still holds (Register.running) that are still leased to it keep running;
   * those it holds that decision has given away are revoked (the agent stops
   * them); those leased to it that it no longer holds are LOST and requeued.
   * The replicas it reports are taken into the fleet.
   */
  agentRegistered(register: Register, link: AgentLink): Registered {
    const { fleet, clock, book, lifecycle } = this.o;
    const dispatcher = this.hooks.dispatcher;
    const nodeId = register.nodeId;
    const previous = this.nodes.get(nodeId);
    if (previous?.link && previous.link !== link) previous.link.close('replaced by a new session of the same node');
    const holds = new Map(register.running.map((l) => [l.taskId, l]));
    const kept: Live[] = [];
    const dropped: Live[] = [];
    /** Attempts placed because they had waited past the age bound: still never preempted once counted again. */
    const guaranteed = new Set<string>();
    for (const taskId of previous?.leased ?? []) {
      const entry = book.live.get(taskId);
      if (!entry?.lease) continue;
      const held = holds.get(taskId);
      // An assignment still being committed has not reached the agent: it goes out on the new stream.
      if (!entry.lease.sent || (held && held.attempt === entry.task.attempt && held.leaseEpoch === entry.lease.epoch)) kept.push(entry);
      else dropped.push(entry);
      // The fleet's view of the node is rebuilt below, without the old claims;
      // the tenants' usage too (what is kept is counted again with its new claim).
      entry.lease.claim = undefined;
      if (dispatcher.runningAttempt(taskId)?.guaranteed) guaranteed.add(taskId);
      dispatcher.release(taskId, clock());
    }
    fleet.upsert(
      {
        nodeId,
        address: register.address,
        models: register.models,
        backends: register.backends,
        gpus: register.gpus.map((g) => ({ index: g.index, memoryTotalBytes: g.memoryTotalBytes })),
        cpuMillis: register.cpuMillis,
        memoryBytes: register.memoryBytes,
        topology: register.gpuLinks.length > 0 ? { links: register.gpuLinks.map((r) => r.links) } : undefined,
        maxSequencesPerReplica: register.maxSequencesPerReplica,
      },
      register.replicas.map(replicaReport),
    );
    dispatcher.fleetChanged(clock());
    const quarantined = this.quarantined.has(nodeId);
    // A quarantine outlives a reconnect: the node comes back out of placement until readmitted.
    if (quarantined) fleet.setHealth(nodeId, 'draining');
    const info: NodeInfo = { register, link, state: quarantined ? NodeState.QUARANTINED : NodeState.READY, lastSeenMs: clock(), leased: new Set() };
    this.nodes.set(nodeId, info);
    const keptIds = new Set<string>();
    for (const entry of kept) {
      const lease = entry.lease!;
      lease.claim = fleet.restore(nodeId, lease.gpuIndices, entry.demand, entry.id);
      if (!lease.claim) {
        dropped.push(entry);
        continue;
      }
      info.leased.add(entry.id);
      keptIds.add(entry.id);
      if (lease.preempting) {
        // The stop may have been lost with the old stream: ask again, with the grace that is left.
        this.sendPreemptRevoke(entry, link);
        continue;
      }
      const spec = entry.task.spec!;
      dispatcher.allocate(entry.id, entry.tenant, lease.claim, clock(), {
        id: entry.id,
        tenant: entry.tenant,
        claim: lease.claim,
        preemptible: spec.preemptible,
        rank: preemptionRank(spec.priorityClass, spec.priority),
        startedAtMs: entry.task.startedAt ? timestampToMillis(entry.task.startedAt) : clock(),
        guaranteed: guaranteed.has(entry.id),
      });
    }
    this.restoreStopping(nodeId, register.running);
    for (const entry of dropped) {
      if (entry.lease?.preempting) {
        // It stopped while the agent was away: the preemption it was for is done.
        void this.endPreemption(entry).catch((err: unknown) => this.o.logger.error({ err, taskId: entry.id }, 'requeue after preemption failed'));
        continue;
      }
      entry.lease = undefined;
      this.lostAttempts += 1;
      const why = `node ${nodeId} came back without attempt ${entry.task.attempt}`;
      void lifecycle.loseAttempt(entry, why).catch((err: unknown) => this.o.logger.error({ err, taskId: entry.id }, 'requeue after reconciliation failed'));
    }
    // What the agent holds that is not (or no longer) its lease: it stops it.
    const revoked = register.running.filter((lease) => !keptIds.has(lease.taskId));
    this.o.logger.info({ nodeId, gpus: register.gpus.length, replicas: register.replicas.length, kept: keptIds.size, lost: dropped.length, revoked: revoked.length }, 'agent registered');
    this.flushReplicaCommands();
    this.hooks.scheduleDispatch();
    return {
      leaseDuration: toDuration(this.o.leaseMs),
      telemetryInterval: toDuration(this.o.telemetryIntervalMs),
      heartbeatInterval: toDuration(heartbeatIntervalMs(this.o.leaseMs)),
      revoked,
    };
  }

  agentTelemetry(nodeId: string, link: AgentLink, telemetry: Telemetry): void {
    const info = this.nodes.get(nodeId);
    if (!info || info.link !== link) return;
    this.telemetryReceived += 1;
    info.telemetry = telemetry;
    info.lastSeenMs = this.o.clock();
    if (telemetry.draining && info.state !== NodeState.DRAINING) {
      // No new work for a draining node: its refusals would burn tasks' retries.
      info.state = NodeState.DRAINING;
      this.o.fleet.setHealth(nodeId, 'draining');
      this.hooks.dispatcher.fleetChanged(this.o.clock());
      this.o.logger.info({ nodeId }, 'agent draining');
    }
    const readings = telemetry.gpus.map((g) => ({ index: g.index, utilization: g.utilization, memoryUsedBytes: g.memoryUsedBytes }));
    // Claims are the gate; a reading matters only when it shows room placement could not see.
    const opened = this.o.fleet.observe(nodeId, readings, telemetry.replicas.map(replicaReport));
    this.flushReplicaCommands();
    if (opened && this.hooks.dispatcher.size > 0) this.hooks.scheduleDispatch();
  }

  /** A progress report; rejected unless it carries the task's current lease (fencing). */
  async agentUpdate(nodeId: string, link: AgentLink, update: TaskUpdate): Promise<void> {
    const { book, lifecycle, clock } = this.o;
    const lease = update.lease;
    const entry = lease ? book.live.get(lease.taskId) : undefined;
    const info = this.nodes.get(nodeId);
    const current = info?.link === link;
    if (info && current) info.lastSeenMs = clock();
    if (!current || !lease || !entry?.lease || entry.lease.epoch !== lease.leaseEpoch || entry.task.attempt !== lease.attempt || entry.lease.nodeId !== nodeId) {
      // A preempted attempt saying it has stopped is expected: its claim goes back now.
      if (lease && current && this.stopped(nodeId, lease, update.state)) return;
      this.rejectedReports += 1;
      this.o.logger.info({ nodeId, lease, state: stateName(update.state) }, 'report for a superseded lease rejected');
      if (lease && update.state === S.RUNNING) link.send({ kind: { $case: 'revoke', revoke: { lease, reason: 'lease superseded', preempted: false, gracePeriod: undefined } } });
      return;
    }
    const now = clock();
    if (entry.lease.preempting && update.state !== S.RUNNING && update.state !== S.SUCCEEDED) {
      // Stopped for the work that preempted it (a job killed by SIGTERM may exit non-zero): no retry used.
      await this.endPreemption(entry, update.result);
      return;
    }
    switch (update.state) {
      case S.RUNNING:
        if (entry.state === S.ASSIGNED) await lifecycle.transition(entry, S.RUNNING, '', { startedAt: toTimestamp(now) });
        return;
      case S.SUCCEEDED: {
        const result = TaskResult.fromPartial({ ...update.result, queueTime: toDuration(entry.lease.queueTimeMs) });
        if (result.runTime) {
          const inference = entry.task.spec!.payload?.$case !== 'batch';
          this.o.runTimes.observe(entry.task.spec!, durationToMillis(result.runTime), { tenant: entry.tenant, outputTokens: inference ? result.completionTokens : undefined });
        }
        this.releaseLease(entry);
        if (entry.state === S.ASSIGNED) await lifecycle.transition(entry, S.RUNNING, '', { startedAt: toTimestamp(now) });
        // Cancelled while that committed: the cancel stands.
        if (book.live.get(entry.id) !== entry) return;
        await lifecycle.finish(entry, S.SUCCEEDED, '', { result });
        return;
      }
      case S.FAILED: {
        const result = update.result ? TaskResult.fromPartial({ ...update.result, queueTime: toDuration(entry.lease.queueTimeMs) }) : undefined;
        const error = update.error || 'failed';
        if (update.handedBack) {
          // The agent stopped it itself (draining): not the task's fault, no retry used up.
          this.releaseLease(entry);
          await lifecycle.transition(entry, S.PREEMPTED, `handed back: ${error}`, { result });
          await lifecycle.requeue(entry, `handed back by ${nodeId}`);
          return;
        }
        if (!update.retryable) {
          // A failure retrying cannot fix ends the task here, in one event that says so.
          this.releaseLease(entry);
          await lifecycle.finish(entry, S.FAILED, error, { result, failures: entry.task.failures + 1 });
          return;
        }
        await lifecycle.failAttempt(entry, 'failed', error, result);
        return;
      }
      case S.CANCELLED:
        this.releaseLease(entry);
        await lifecycle.finish(entry, S.CANCELLED, update.error || 'cancelled on the agent');
        return;
      default:
        this.o.logger.warn({ nodeId, state: stateName(update.state) }, 'agent reported a state agents do not report');
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
    this.o.fleet.setHealth(nodeId, 'lost');
    this.hooks.dispatcher.fleetChanged(this.o.clock());
    this.o.logger.warn({ nodeId, reason, leased: info.leased.size }, 'agent disconnected; its leases stand until they expire');
  }

  /** Sends every connected agent a heartbeat (they fence themselves without one). Called every heartbeatIntervalMs(leaseMs). */
  heartbeat(): void {
    const time = toTimestamp(this.o.clock());
    for (const info of this.nodes.values()) info.link?.send({ kind: { $case: 'heartbeat', heartbeat: { time } } });
  }

  /** Declares agents silent past their lease lost and requeues their work. Called periodically. */
  sweepSilentAgents(): void {
    const now = this.o.clock();
    for (const [nodeId, info] of this.nodes) {
      const silentMs = now - info.lastSeenMs;
      if (silentMs <= this.o.leaseMs) continue;
      info.link?.close(`no message for ${silentMs} ms`);
      this.nodes.delete(nodeId);
      this.o.fleet.remove(nodeId);
      this.forgetStopping(nodeId);
      // Gone: the monitor forgets it too, so a quarantine would outlive anyone who could lift it.
      this.liftQuarantine(nodeId);
      this.hooks.dispatcher.fleetChanged(now);
      // The last word on it: subscribers (the monitor) drop what they keep for it.
      this.o.bus.publishNode(Node.fromPartial({ nodeId, state: NodeState.LOST }));
      this.o.logger.warn({ nodeId, silentMs, leased: info.leased.size }, 'agent lost: silent past its lease');
      for (const taskId of info.leased) {
        const entry = this.o.book.live.get(taskId);
        if (!entry?.lease || entry.lease.nodeId !== nodeId) continue;
        if (entry.lease.preempting) {
          // It was being stopped anyway: preempted, not lost.
          void this.endPreemption(entry).catch((err: unknown) => this.o.logger.error({ err, taskId }, 'requeue after preemption failed'));
          continue;
        }
        this.releaseLease(entry);
        this.lostAttempts += 1;
        void this.o.lifecycle.loseAttempt(entry, `node ${nodeId} lost: silent for ${silentMs} ms`).catch((err: unknown) =>
          this.o.logger.error({ err, taskId }, 'requeue after node loss failed'),
        );
      }
    }
  }

  /**
   * An attempt recovered from the store as assigned or running: it stays
   * leased to its node, which is waited for (see openForAgents).
   */
  holdRecovered(entry: Live): void {
    const task = entry.task;
    entry.lease = { epoch: task.leaseEpoch, nodeId: task.nodeId, gpuIndices: task.gpuIndices, queueTimeMs: 0, sent: true };
    let node = this.nodes.get(task.nodeId);
    if (!node) {
      // Its grace period starts when decision serves again (openForAgents).
      node = { state: NodeState.DISCONNECTED, lastSeenMs: this.o.clock(), leased: new Set() };
      this.nodes.set(task.nodeId, node);
    }
    node.leased.add(task.id);
  }

  /**
   * Called once decision serves again after recovery: nodes known only from
   * recovered leases get one lease period from now, plus the longest an
   * agent's reconnect backoff takes, to come back before their work is lost.
   */
  openForAgents(): void {
    const now = this.o.clock();
    // Silent from now + AGENT_MAX_BACKOFF_MS, so lost one lease after that.
    for (const info of this.nodes.values()) if (!info.register) info.lastSeenMs = now + AGENT_MAX_BACKOFF_MS;
  }

  // ---- leases -------------------------------------------------------------------

  /**
   * Gives a placed task its lease: committed ASSIGNED with the epoch and
   * GPUs first (so a restarted decision recognises it), then sent to the
   * agent, and the Admit waiting for it answered.
   */
  async assign(entry: Live, claim: Claim): Promise<void> {
    const now = this.o.clock();
    const epoch = this.o.incarnation * EPOCHS_PER_INCARNATION + ++this.leaseCounter;
    const queueTimeMs = now - (entry.queuedAtMs ?? entry.readySinceMs);
    // First attempts only: a requeued task's time includes its earlier runs.
    if (entry.task.attempt === 1) {
      this.o.waits.observe(entry.task.spec!.priorityClass, queueTimeMs);
      this.o.experiments.placed(entry.task.spec!, queueTimeMs);
    }
    const gpuIndices = [...claim.gpuIndices];
    entry.lease = { epoch, nodeId: claim.nodeId, gpuIndices, claim, queueTimeMs, sent: false };
    this.nodes.get(claim.nodeId)?.leased.add(entry.id);
    try {
      // The lease is durable with the assignment, so a restarted decision recognises it.
      await this.o.lifecycle.transition(entry, S.ASSIGNED, `assigned to ${claim.nodeId}`, { nodeId: claim.nodeId, leaseEpoch: epoch, gpuIndices });
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
    this.nodes.get(claim.nodeId)?.link?.send({
      kind: { $case: 'assignment', assignment: { lease, task: entry.task, gpuIndices, traceContext: entry.traceContext ?? {}, replicaId: claim.replicaId ?? '' } },
    });
    this.hooks.placed(entry.id, Placement.fromPartial({ lease, nodeId: claim.nodeId, agentAddress: claim.address, gpuIndices, queueTime: toDuration(queueTimeMs) }));
  }

  leaseOf(entry: Live): Lease {
    return { taskId: entry.id, attempt: entry.task.attempt, leaseEpoch: entry.lease?.epoch ?? 0 };
  }

  /** Ends a task's lease: its claim goes back, its tenant's usage stops growing, and a dispatch pass may use the room. */
  releaseLease(entry: Live): void {
    const lease = entry.lease;
    if (!lease) return;
    entry.lease = undefined;
    clearTimeout(lease.preempting?.timer);
    if (lease.claim) this.o.fleet.release(lease.claim);
    this.hooks.dispatcher.release(entry.id, this.o.clock());
    this.nodes.get(lease.nodeId)?.leased.delete(entry.id);
    this.hooks.scheduleDispatch();
  }

  /**
   * Tells the agent to stop a task's attempt (cancelled, or an interactive
   * one preempted) and ends its lease. What the attempt holds stays claimed
   * until the agent reports it has stopped, so nothing else is placed beside
   * a process that is still exiting.
   */
  revoke(entry: Live, reason: string, grace?: { preempted: true; graceMs: number }): void {
    const lease = entry.lease;
    if (!lease) return;
    const message = this.leaseOf(entry);
    this.nodes.get(lease.nodeId)?.link?.send({
      kind: { $case: 'revoke', revoke: { lease: message, reason, preempted: grace !== undefined, gracePeriod: grace ? toDuration(grace.graceMs) : undefined } },
    });
    // An assignment not yet sent never ran: its room is free now.
    if (lease.claim && lease.sent) {
      this.holdStopping(message, lease.nodeId, lease.claim);
      lease.claim = undefined;
    }
    this.releaseLease(entry);
  }

  /**
   * Stops a running attempt for higher-ranked work. The agent is told to
   * stop it (SIGTERM and the grace period for a command job, which may
   * checkpoint). The attempt keeps its lease and claim until the agent
   * reports it has stopped (or its node is lost, or the grace and two leases
   * pass without a word), so the preemptor never shares its GPUs and the task
   * never runs twice at once; then it goes PREEMPTED and back to the queue
   * with its history and no retry used. One that finishes first succeeds. An
   * assignment not yet sent never ran and is requeued at once; an interactive
   * stream cannot resume, so it is cancelled.
   */
  async preemptAttempt(entry: Live, reason: string): Promise<void> {
    const lease = entry.lease;
    if (!lease || lease.preempting) return;
    this.preempted += 1;
    if (entry.task.spec?.interactive) {
      this.revoke(entry, reason, { preempted: true, graceMs: this.o.preemptGraceMs });
      this.hooks.cancelled(entry.id, reason);
      await this.o.lifecycle.finish(entry, S.CANCELLED, reason);
      return;
    }
    if (!lease.sent) {
      this.releaseLease(entry);
      await this.o.lifecycle.transition(entry, S.PREEMPTED, reason);
      await this.o.lifecycle.requeue(entry, reason);
      return;
    }
    const now = this.o.clock();
    const epoch = lease.epoch;
    // An agent that never answers (a bug, a wedged process) must not keep the room for ever.
    const timer = setTimeout(() => {
      if (entry.lease?.epoch !== epoch) return;
      this.o.logger.warn({ taskId: entry.id, nodeId: lease.nodeId }, 'preempted attempt did not report stopping within its grace; its claim goes back');
      void this.endPreemption(entry).catch((err: unknown) => this.o.logger.error({ err, taskId: entry.id }, 'requeue after preemption failed'));
    }, this.o.preemptGraceMs + 2 * this.o.leaseMs);
    timer.unref();
    lease.preempting = { reason, graceEndsMs: now + this.o.preemptGraceMs, timer };
    this.sendPreemptRevoke(entry, this.nodes.get(lease.nodeId)?.link);
    // No longer a running attempt to bill its tenant for or to preempt again; its claim stays.
    this.hooks.dispatcher.release(entry.id, now);
  }

  private sendPreemptRevoke(entry: Live, link: AgentLink | undefined): void {
    const p = entry.lease?.preempting;
    if (!p) return;
    const graceMs = Math.max(0, p.graceEndsMs - this.o.clock());
    link?.send({ kind: { $case: 'revoke', revoke: { lease: this.leaseOf(entry), reason: p.reason, preempted: true, gracePeriod: toDuration(graceMs) } } });
  }

  /** A preempted attempt has stopped (or is given up on): its claim goes back, and the task is PREEMPTED and queued again. */
  private async endPreemption(entry: Live, result?: TaskUpdate['result']): Promise<void> {
    const reason = entry.lease?.preempting?.reason;
    if (reason === undefined) return;
    this.releaseLease(entry);
    await this.o.lifecycle.transition(entry, S.PREEMPTED, reason, result ? { result: TaskResult.fromPartial(result) } : {});
    await this.o.lifecycle.requeue(entry, reason);
  }

  /** Sends the agents the replica loads and evictions placement has decided since the last call. */
  flushReplicaCommands(): void {
    for (const command of this.o.fleet.takeCommands()) {
      const link = this.nodes.get(command.nodeId)?.link;
      if (command.kind === 'load') {
        const r = command.replica;
        this.o.logger.info({ nodeId: command.nodeId, replicaId: r.id, model: r.model, gpus: r.gpuIndices }, 'starting replica');
        link?.send({ kind: { $case: 'loadReplica', loadReplica: { replicaId: r.id, model: r.model, gpuIndices: [...r.gpuIndices], capacityTokens: r.capacityTokens, maxSequences: r.maxSequences } } });
      } else {
        this.o.logger.info({ nodeId: command.nodeId, replicaId: command.replicaId, reason: command.reason }, 'evicting replica');
        link?.send({ kind: { $case: 'evictReplica', evictReplica: { replicaId: command.replicaId, reason: command.reason } } });
      }
    }
  }

  // ---- stopping attempts -----------------------------------------------------------

  private holdStopping(lease: Lease, nodeId: string, claim: Claim): void {
    const key = leaseKey(lease);
    // An agent that never answers (a bug, a wedged process) must not keep the room for ever.
    const timer = setTimeout(() => this.releaseStopping(key), this.o.preemptGraceMs + 2 * this.o.leaseMs);
    timer.unref();
    this.stopping.set(key, { nodeId, claim, timer });
  }

  /** A report for an attempt being stopped: a final one releases its claim. True when the lease is one being stopped. */
  private stopped(nodeId: string, lease: Lease, state: TaskState): boolean {
    const key = leaseKey(lease);
    const s = this.stopping.get(key);
    if (!s || s.nodeId !== nodeId) return false;
    if (state !== S.RUNNING) this.releaseStopping(key);
    return true;
  }

  private releaseStopping(key: string): void {
    const s = this.stopping.get(key);
    if (!s) return;
    clearTimeout(s.timer);
    this.stopping.delete(key);
    this.o.fleet.release(s.claim);
    this.hooks.scheduleDispatch();
  }

  /** After a reconnect: an attempt being stopped that the agent still runs keeps its claim (booked again); the others are gone. */
  private restoreStopping(nodeId: string, running: Lease[]): void {
    const held = new Set(running.map(leaseKey));
    for (const [key, s] of this.stopping) {
      if (s.nodeId !== nodeId) continue;
      const claim = held.has(key) ? this.o.fleet.restore(nodeId, s.claim.gpuIndices, s.claim.demand, s.claim.owner) : undefined;
      if (claim) s.claim = claim;
      else {
        clearTimeout(s.timer);
        this.stopping.delete(key);
      }
    }
  }

  private forgetStopping(nodeId: string): void {
    for (const [key, s] of this.stopping) {
      if (s.nodeId !== nodeId) continue;
      clearTimeout(s.timer);
      this.stopping.delete(key);
    }
  }

  // ---- nodes -------------------------------------------------------------------

  /**
   * Takes a node out of placement (its running work finishes; nothing new is
   * placed on it), or readmits it. The quarantine holds across reconnects
   * until readmitted; `untilMs` is when the caller means to readmit it. An
   * operator's quarantine is theirs: the monitor (`byMonitor`) may neither
   * replace nor lift it.
   */
  setQuarantine(nodeId: string, quarantined: boolean, reason: string, untilMs: number | undefined, byMonitor = false): Node {
    const info = this.nodes.get(nodeId);
    if (!info) throw new NotFoundError(`node ${nodeId} is not known to decision; list nodes with "autoglm nodes"`);
    const held = this.quarantined.get(nodeId);
    if (byMonitor && held !== undefined && !held.byMonitor) {
      throw new FailedPreconditionError(`node ${nodeId} was quarantined by an operator (${held.reason}); the monitor leaves it to them`);
    }
    const { fleet, clock, logger } = this.o;
    if (quarantined) {
      this.liftQuarantine(nodeId);
      // Lifted at `untilMs` even if no one readmits it (a monitor that went away must not strand a node).
      const timer = untilMs === undefined ? undefined : setTimeout(() => this.expireQuarantine(nodeId, untilMs), Math.max(0, untilMs - clock()));
      timer?.unref();
      this.quarantined.set(nodeId, { reason, untilMs, timer, byMonitor });
      if (info.state === NodeState.READY) {
        info.state = NodeState.QUARANTINED;
        fleet.setHealth(nodeId, 'draining');
      }
      logger.warn({ nodeId, reason }, 'node quarantined');
    } else if (this.liftQuarantine(nodeId)) {
      if (info.state === NodeState.QUARANTINED) {
        const draining = info.telemetry?.draining ?? false;
        info.state = draining ? NodeState.DRAINING : NodeState.READY;
        fleet.setHealth(nodeId, draining ? 'draining' : 'ready');
      }
      logger.info({ nodeId, reason }, 'node readmitted');
    }
    this.hooks.dispatcher.fleetChanged(clock());
    this.hooks.scheduleDispatch();
    const node = this.nodeSnapshot(nodeId, info);
    this.o.bus.publishNode(node);
    return node;
  }

  /** Forgets a node's quarantine (and its expiry timer); says whether it had one. */
  private liftQuarantine(nodeId: string): boolean {
    const q = this.quarantined.get(nodeId);
    if (q === undefined) return false;
    if (q.timer !== undefined) clearTimeout(q.timer);
    return this.quarantined.delete(nodeId);
  }

  private expireQuarantine(nodeId: string, untilMs: number): void {
    if (this.quarantined.get(nodeId)?.untilMs !== untilMs || !this.nodes.has(nodeId)) return;
    this.setQuarantine(nodeId, false, 'probation over', undefined);
  }

  listNodes(): Node[] {
    const out: Node[] = [];
    for (const [nodeId, info] of this.nodes) out.push(this.nodeSnapshot(nodeId, info));
    return out.sort((a, b) => a.nodeId.localeCompare(b.nodeId));
  }

  /** Publishes every node's snapshot (for the monitor). */
  publishNodes(): void {
    for (const node of this.listNodes()) this.o.bus.publishNode(node);
  }

  private nodeSnapshot(nodeId: string, info: NodeInfo): Node {
    const registered = info.register?.gpus ?? [];
    const names = new Map(registered.map((g) => [g.index, g]));
    const gpus: GpuStatus[] = info.telemetry?.gpus.length
      ? info.telemetry.gpus
      : registered.map((g) => ({ index: g.index, name: g.name, utilization: 0, memoryUsedBytes: 0, memoryTotalBytes: g.memoryTotalBytes, temperatureC: 0, powerWatts: 0 }));
    const booked = this.o.fleet.get(nodeId);
    const replicas: ReplicaStatus[] = [...(booked?.replicas.values() ?? [])].map((r) => ({
      replicaId: r.id,
      model: r.model,
      gpuIndices: [...r.gpuIndices],
      state: r.state === 'ready' ? ReplicaState.READY : ReplicaState.LOADING,
      external: r.external,
      capacityTokens: Number.isFinite(r.capacityTokens) ? r.capacityTokens : 0,
      numRequestsRunning: r.reported?.running ?? 0,
      numRequestsWaiting: r.reported?.waiting ?? 0,
      kvCacheUsagePerc: r.reported?.kvCacheUsage ?? 0,
      sequences: r.sequences,
      claimedTokens: r.usedTokens,
      contextLength: 0,
    }));
    // What the agent's server serves: as registered, then as its latest telemetry says (a model
    // the server loaded since, or whose context length it now reports).
    const served = new Map((info.register?.servedModels ?? []).map((m) => [m.name, m]));
    const reported = new Map((info.telemetry?.replicas ?? []).filter((r) => r.external).map((r) => [r.model, r.contextLength]));
    for (const r of replicas) {
      if (!r.external) continue;
      const contextLength = reported.get(r.model) || served.get(r.model)?.contextLength || 0;
      r.contextLength = contextLength;
      served.set(r.model, { name: r.model, contextLength });
    }
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
      replicas,
      gpuClaims: (booked?.gpus ?? []).map((g) => ({ gpuIndex: g.index, taskId: g.job?.owner ?? '', replicaId: g.replica?.id ?? '', heldFor: g.heldFor ?? '' })),
      cpuMillis: booked?.cpuMillis ?? info.register?.cpuMillis ?? 0,
      cpuClaimedMillis: booked?.cpuClaimedMillis ?? 0,
      memoryBytes: booked?.memoryBytes ?? info.register?.memoryBytes ?? 0,
      memoryClaimedBytes: booked?.memoryClaimedBytes ?? 0,
      servedModels: [...served.values()],
      stateReason: this.quarantined.get(nodeId)?.reason ?? (info.state === NodeState.DRAINING ? 'the agent is draining' : ''),
      quarantinedUntil: info.state === NodeState.QUARANTINED && this.quarantined.get(nodeId)?.untilMs !== undefined ? toTimestamp(this.quarantined.get(nodeId)!.untilMs!) : undefined,
    });
  }
}

/** A replica as the agent reports it, in the fleet's terms. */
function replicaReport(r: ReplicaStatus): ReplicaReport {
  return {
    id: r.replicaId,
    model: r.model,
    gpuIndices: r.gpuIndices,
    ready: r.state === ReplicaState.READY,
    external: r.external,
    capacityTokens: r.capacityTokens,
    running: r.numRequestsRunning,
    waiting: r.numRequestsWaiting,
    kvCacheUsage: r.kvCacheUsagePerc,
  };
}
