import { Metadata, type ClientDuplexStream } from '@grpc/grpc-js';
import {
  TaskResult,
  TaskState,
  type Assignment,
  type ConnectRequest,
  type ConnectResponse,
  type DecisionServiceClient,
  type GpuInfo,
  type GpuLinkRow,
  type GpuStatus,
  type Lease,
  type TaskUpdate,
} from '@autoglm/proto';
import { durationToMillis, selfFenceAfterMs, toDuration, toTimestamp } from '@autoglm/core';
import { context, contextFromCarrier, startSpan, type Logger } from '@autoglm/runtime';
import { ExecutionError, StopRequest, type Backend, type ExecutionOutcome, type HostResources } from './backends';
import { HostSampler } from './telemetry';

export interface AgentOptions {
  nodeId: string;
  decision: DecisionServiceClient;
  backend: Backend;
  /** The host's GPUs (the simulator's, or nvidia-smi's). */
  gpus: GpuInfo[];
  /** Their latest readings. */
  gpuStatus(): GpuStatus[];
  /** How the GPUs are linked (nvidia-smi topo -m), a row per GPU; empty when unknown. */
  gpuLinks: GpuLinkRow[];
  /** Cores and host memory offered to jobs. */
  host: HostResources;
  /** Most sequences one replica runs at once; 0 leaves it to decision. */
  maxSequencesPerReplica: number;
  executeWaitMs: number;
  logger: Logger;
}

interface Running {
  lease: Lease;
  abort: AbortController;
}

/** An interactive placement waiting for the parser's Execute stream. */
interface Awaiting {
  assignment: Assignment;
  timer: NodeJS.Timeout;
}

/** What an Execute stream gets once its lease is recognised. */
export interface ClaimedExecution {
  assignment: Assignment;
  /** Reports the outcome to decision and frees the slot. */
  settle(outcome: ExecutionOutcome | ExecutionError | 'cancelled', error?: string): void;
  signal: AbortSignal;
}

/**
 * Why the agent itself stopped an attempt that nobody cancelled (drain, stop,
 * self-fencing): the work is handed back to decision as a retryable failure,
 * so it runs again elsewhere rather than ending CANCELLED.
 */
class HandBack extends Error {
  override readonly name = 'HandBack';
}

const sameLease = (a: Lease | undefined, b: Lease | undefined) =>
  !!a && !!b && a.taskId === b.taskId && a.attempt === b.attempt && a.leaseEpoch === b.leaseEpoch;

/** How often the agent checks that decision has been heard from recently enough. */
const FENCE_CHECK_MS = 200;
/**
 * Final reports are kept this long after they are sent: if decision dies
 * before committing one, the agent reports it again to the next decision.
 */
const REPORT_RETENTION_MS = 60_000;
/** stop() waits at most this long for stopped work to settle before closing Connect. */
const STOP_FLUSH_MS = 5_000;

/**
 * The agent's side of Connect: registers, pushes telemetry, runs batch
 * assignments on the backend, holds interactive ones for Execute, and reports
 * every outcome under the lease it was given. It reconnects with backoff when
 * decision goes away. Decision sends a heartbeat every second; an agent that
 * has heard nothing from decision for a lease period (a crash, a partition, or
 * this process having been stopped) fences itself: it stops its work and hands
 * it back, because decision will have declared it lost and given the work to
 * others, and it reconnects. Reports made meanwhile wait in the outbox.
 */
export class Agent {
  private readonly running = new Map<string, Running>();
  private readonly awaiting = new Map<string, Awaiting>();
  private readonly claimWaiters = new Map<string, Array<() => void>>();
  /** Reports made while disconnected, sent after the next registration. */
  private outbox: TaskUpdate[] = [];
  /** Reports of this turn of the event loop, sent together. */
  private pendingUpdates: TaskUpdate[] = [];
  private stream: ClientDuplexStream<ConnectRequest, ConnectResponse> | undefined;
  private registered = false;
  private telemetryTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private fenceTimer: NodeJS.Timeout | undefined;
  /** When decision was last heard from (any message), on the monotonic clock. */
  private lastHeardMs = performance.now();
  private leaseMs = 3000;
  /** Silence from decision after which the agent fences itself (selfFenceAfterMs). */
  private fenceAfterMs = selfFenceAfterMs(3000, 1000);
  /** Final reports already sent, by task id, kept for REPORT_RETENTION_MS (see there). */
  private readonly sentFinal = new Map<string, { update: TaskUpdate; sentAt: number }>();
  private backoffMs = 100;
  private stopped = false;
  private draining = false;
  private readonly host = new HostSampler();
  private readonly log: Logger;

  constructor(private readonly options: AgentOptions) {
    this.log = options.logger;
  }

  private address = '';

  /** Connects to decision, advertising `address` as where the parser reaches this agent's ExecutorService. */
  start(address: string): void {
    this.address = address;
    this.lastHeardMs = performance.now();
    this.fenceTimer = setInterval(() => this.checkLease(), FENCE_CHECK_MS);
    this.fenceTimer.unref();
    this.connect();
  }

  /** Tasks running or awaiting their Execute stream. */
  get inFlight(): number {
    return this.running.size + this.awaiting.size;
  }

  /** Stops taking work; running work gets `graceMs`, then is cancelled and handed back. */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    // Tell decision now rather than at the next tick, so it stops placing work here.
    this.sendTelemetry();
    const deadline = Date.now() + graceMs;
    while (this.running.size > 0 && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(50, Math.max(1, deadline - Date.now())));
        t.unref();
      });
    }
    for (const r of this.running.values()) r.abort.abort(new HandBack(`node ${this.options.nodeId} is draining; handed back`));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const r of this.running.values()) r.abort.abort(new HandBack(`node ${this.options.nodeId} is stopping; handed back`));
    for (const a of this.awaiting.values()) clearTimeout(a.timer);
    this.awaiting.clear();
    clearTimeout(this.reconnectTimer);
    clearInterval(this.fenceTimer);
    // Stopped work settles when its backend lets go (a process group takes a moment to exit):
    // its hand-back must go out before the stream closes, or decision would count it as lost.
    const deadline = performance.now() + STOP_FLUSH_MS;
    while (this.running.size > 0 && performance.now() < deadline) {
      await new Promise<void>((resolve) => setTimeout(resolve, 20).unref());
    }
    clearInterval(this.telemetryTimer);
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.flushUpdates();
    this.stream?.end();
    this.stream = undefined;
  }

  /**
   * Claims an interactive placement for an Execute stream, waiting up to
   * executeWaitMs for its assignment to arrive over Connect (the parser may be
   * faster than decision's message). Undefined when the lease is not ours.
   */
  async claim(lease: Lease, signal: AbortSignal): Promise<ClaimedExecution | undefined> {
    const deadline = Date.now() + this.options.executeWaitMs;
    while (!this.awaiting.has(lease.taskId) && Date.now() < deadline && !signal.aborted) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        const list = this.claimWaiters.get(lease.taskId) ?? [];
        list.push(() => {
          clearTimeout(timer);
          resolve();
        });
        this.claimWaiters.set(lease.taskId, list);
      });
    }
    this.claimWaiters.delete(lease.taskId);
    const waiting = this.awaiting.get(lease.taskId);
    if (!waiting || !sameLease(waiting.assignment.lease, lease)) return undefined;
    this.awaiting.delete(lease.taskId);
    clearTimeout(waiting.timer);
    const abort = new AbortController();
    signal.addEventListener('abort', () => abort.abort(signal.reason), { once: true });
    this.running.set(lease.taskId, { lease, abort });
    this.report({ lease, state: TaskState.RUNNING });
    return {
      assignment: waiting.assignment,
      signal: abort.signal,
      settle: (outcome, error) => this.settle(lease, outcome, error),
    };
  }

  private connect(): void {
    if (this.stopped) return;
    const stream = this.options.decision.connect(new Metadata());
    this.stream = stream;
    this.registered = false;
    stream.on('data', (message: ConnectResponse) => {
      // Resumed after being stopped past the lease (SIGSTOP, a long pause): fence before reading
      // what was buffered meanwhile, or a stale heartbeat would make the silence look over.
      if (this.stream === stream && this.leaseExpired()) this.checkLease();
      // Messages of a dropped stream are stale: ignore them.
      if (this.stream === stream) this.onMessage(message);
    });
    stream.on('error', (err: Error) => this.dropStream(stream, err.message));
    stream.on('end', () => this.dropStream(stream, 'decision ended the stream'));
    const b = this.options.backend;
    const gpus = this.options.gpus;
    stream.write({
      kind: {
        $case: 'register',
        register: {
          nodeId: this.options.nodeId,
          address: this.address,
          gpus,
          models: [...b.models],
          backends: [b.name],
          running: this.heldLeases(),
          cpuMillis: this.options.host.cpuMillis,
          memoryBytes: this.options.host.memoryBytes,
          gpuLinks: this.options.gpuLinks,
          replicas: b.replicas(),
          maxSequencesPerReplica: this.options.maxSequencesPerReplica,
          servedModels: b.servedModels?.() ?? [],
        },
      },
    });
  }

  /** Forgets a stream that ended or went silent, and reconnects with backoff. */
  private dropStream(stream: ClientDuplexStream<ConnectRequest, ConnectResponse>, why: string): void {
    if (this.stream !== stream) return;
    this.stream = undefined;
    this.registered = false;
    clearInterval(this.telemetryTimer);
    if (this.stopped) return;
    this.log.warn({ why, retryInMs: this.backoffMs }, 'decision connection lost; reconnecting');
    this.reconnectTimer = setTimeout(() => this.connect(), this.backoffMs);
    this.backoffMs = Math.min(2000, this.backoffMs * 2);
  }

  /**
   * Every lease the agent still holds: attempts running or waiting for their
   * Execute stream, and finished ones whose report has not been sent.
   * Decision reconciles against this when the agent registers.
   */
  private heldLeases(): Lease[] {
    const held = new Map<string, Lease>();
    for (const r of this.running.values()) held.set(r.lease.taskId, r.lease);
    for (const a of this.awaiting.values()) if (a.assignment.lease) held.set(a.assignment.lease.taskId, a.assignment.lease);
    for (const u of [...this.outbox, ...this.pendingUpdates]) if (u.lease && !held.has(u.lease.taskId)) held.set(u.lease.taskId, u.lease);
    this.forgetOldReports();
    for (const { update } of this.sentFinal.values()) if (update.lease && !held.has(update.lease.taskId)) held.set(update.lease.taskId, update.lease);
    return [...held.values()];
  }

  private forgetOldReports(): void {
    const oldest = performance.now() - REPORT_RETENTION_MS;
    for (const [id, sent] of this.sentFinal) {
      if (sent.sentAt >= oldest) break;
      this.sentFinal.delete(id);
    }
  }

  /** Decision has not been heard from for long enough that it may have given this agent's work away. */
  private leaseExpired(): boolean {
    return performance.now() - this.lastHeardMs > this.fenceAfterMs;
  }

  /**
   * Self-fencing: without a word from decision for a lease period, decision
   * has given this agent's work to others (or will before it can be told
   * otherwise). Stop it all, and drop a connection that has gone silent.
   */
  private checkLease(): void {
    if (this.stopped || !this.leaseExpired()) return;
    const n = this.running.size + this.awaiting.size;
    if (n > 0) {
      this.log.warn({ tasks: n, silentMs: Math.round(performance.now() - this.lastHeardMs) }, 'self-fencing: decision silent past the lease; stopping work');
      for (const r of this.running.values()) r.abort.abort(new HandBack('self-fenced: decision silent past the lease'));
      for (const [id, a] of this.awaiting) {
        clearTimeout(a.timer);
        this.awaiting.delete(id);
      }
    }
    if (this.stream && this.registered) {
      const stream = this.stream;
      this.dropStream(stream, `no heartbeat from decision for ${Math.round(performance.now() - this.lastHeardMs)} ms`);
      stream.cancel();
    }
  }

  private onMessage(message: ConnectResponse): void {
    this.lastHeardMs = performance.now();
    const kind = message.kind;
    if (!kind) return;
    switch (kind.$case) {
      case 'heartbeat':
        return;
      case 'registered': {
        this.registered = true;
        this.backoffMs = 100;
        const r = kind.registered;
        this.leaseMs = r.leaseDuration ? durationToMillis(r.leaseDuration) : this.leaseMs;
        this.fenceAfterMs = selfFenceAfterMs(this.leaseMs, r.heartbeatInterval ? durationToMillis(r.heartbeatInterval) : 1000);
        const revoked = new Set(r.revoked.map((l) => `${l.taskId}/${l.attempt}/${l.leaseEpoch}`));
        for (const lease of r.revoked) this.running.get(lease.taskId)?.abort.abort(new Error('lease revoked by decision'));
        // Final reports the previous decision may not have committed go out again, unless
        // this one does not recognise their lease (it has them, or gave the work away).
        const resend = [...this.sentFinal.values()].map((s) => s.update).filter((u) => u.lease && !revoked.has(`${u.lease.taskId}/${u.lease.attempt}/${u.lease.leaseEpoch}`));
        this.sentFinal.clear();
        const outbox = this.outbox;
        this.outbox = [];
        for (const update of [...resend, ...outbox]) this.report(update);
        const every = r.telemetryInterval ? Math.max(10, durationToMillis(r.telemetryInterval)) : 100;
        clearInterval(this.telemetryTimer);
        this.sendTelemetry();
        this.telemetryTimer = setInterval(() => this.sendTelemetry(), every);
        this.log.info({ leaseMs: this.leaseMs, telemetryMs: every }, 'registered with decision');
        return;
      }
      case 'assignment':
        this.accept(kind.assignment);
        return;
      case 'assignments':
        for (const assignment of kind.assignments.assignments) this.accept(assignment);
        return;
      case 'loadReplica':
        if (!this.options.backend.loadReplica) {
          this.log.warn({ replicaId: kind.loadReplica.replicaId, model: kind.loadReplica.model }, 'asked to load a replica, but this backend does not load models');
          return;
        }
        try {
          this.options.backend.loadReplica(kind.loadReplica);
          this.log.info({ replicaId: kind.loadReplica.replicaId, model: kind.loadReplica.model, gpus: kind.loadReplica.gpuIndices }, 'loading replica');
        } catch (err) {
          // Not reported in telemetry, so decision drops it and places elsewhere.
          this.log.warn({ err, replicaId: kind.loadReplica.replicaId }, 'could not load replica');
        }
        return;
      case 'evictReplica':
        this.options.backend.evictReplica?.(kind.evictReplica);
        this.log.info({ replicaId: kind.evictReplica.replicaId, reason: kind.evictReplica.reason }, 'evicted replica');
        return;
      case 'revoke': {
        const revoke = kind.revoke;
        const id = revoke.lease?.taskId ?? '';
        const running = this.running.get(id);
        const graceMs = revoke.gracePeriod ? durationToMillis(revoke.gracePeriod) : undefined;
        if (running && sameLease(running.lease, revoke.lease)) running.abort.abort(new StopRequest(revoke.reason || 'revoked', graceMs, revoke.preempted));
        const waiting = this.awaiting.get(id);
        if (waiting && sameLease(waiting.assignment.lease, kind.revoke.lease)) {
          clearTimeout(waiting.timer);
          this.awaiting.delete(id);
        }
        return;
      }
    }
  }

  private accept(assignment: Assignment): void {
    const lease = assignment.lease;
    const spec = assignment.task?.spec;
    if (!lease || !spec) return;
    if (this.draining) {
      this.report({ lease, state: TaskState.FAILED, error: `node ${this.options.nodeId} is draining`, retryable: true, handedBack: true });
      return;
    }
    if (spec.interactive) {
      const timer = setTimeout(() => {
        if (!this.awaiting.delete(lease.taskId)) return;
        this.report({ lease, state: TaskState.CANCELLED, error: `no Execute stream arrived within ${this.options.executeWaitMs} ms` });
      }, this.options.executeWaitMs);
      this.awaiting.set(lease.taskId, { assignment, timer });
      for (const wake of this.claimWaiters.get(lease.taskId) ?? []) wake();
      return;
    }
    const abort = new AbortController();
    this.running.set(lease.taskId, { lease, abort });
    this.report({ lease, state: TaskState.RUNNING });
    const { span, ctx } = startSpan('agent.execute', { 'autoglm.task_id': lease.taskId, 'autoglm.attempt': lease.attempt, 'autoglm.node_id': this.options.nodeId }, extractTraceFrom(assignment));
    context
      .with(ctx, () =>
        this.options.backend.execute({
          taskId: lease.taskId,
          attempt: lease.attempt,
          spec,
          gpuIndices: assignment.gpuIndices,
          replicaId: assignment.replicaId || undefined,
          signal: abort.signal,
          onChunk: () => {},
        }),
      )
      .then(
        (outcome) => this.settle(lease, outcome),
        (err: unknown) => this.settle(lease, err instanceof ExecutionError ? err : new ExecutionError(String((err as Error)?.message ?? err), true)),
      )
      .finally(() => span.end());
  }

  private settle(lease: Lease, outcome: ExecutionOutcome | ExecutionError | 'cancelled', error?: string): void {
    const running = this.running.get(lease.taskId);
    if (!running || !sameLease(running.lease, lease)) return;
    this.running.delete(lease.taskId);
    if (outcome === 'cancelled' || (!(outcome instanceof ExecutionError) && outcome.finishReason === 'cancelled')) {
      const why = running.abort.signal.reason;
      // Handed back, or stopped for work that preempted it: not the task's failure, so no retry
      // is used (a decision that restarted since the preemption requeues it all the same).
      if (why instanceof HandBack || (why instanceof StopRequest && why.preempted)) {
        this.report({ lease, state: TaskState.FAILED, error: why.message, retryable: true, handedBack: true });
        return;
      }
      const reason = error ?? (running.abort.signal.reason instanceof Error ? running.abort.signal.reason.message : 'cancelled');
      this.report({ lease, state: TaskState.CANCELLED, error: reason, result: outcome === 'cancelled' ? undefined : resultOf(outcome) });
      return;
    }
    if (outcome instanceof ExecutionError) {
      this.report({ lease, state: TaskState.FAILED, error: outcome.message, retryable: outcome.retryable });
      return;
    }
    this.report({ lease, state: TaskState.SUCCEEDED, result: resultOf(outcome) });
  }

  private report(update: Partial<TaskUpdate> & { state: TaskState }): void {
    const full: TaskUpdate = { lease: undefined, result: undefined, error: '', retryable: false, handedBack: false, ...update };
    // A stream decision has been silent on past the lease may be dead: keep the report for the next session.
    if (!this.stream || !this.registered || this.leaseExpired()) {
      this.outbox.push(full);
      return;
    }
    // Updates made in one turn of the loop go out as one message.
    if (this.pendingUpdates.push(full) === 1) setImmediate(() => this.flushUpdates());
  }

  private flushUpdates(): void {
    const updates = this.pendingUpdates;
    this.pendingUpdates = [];
    if (updates.length === 0) return;
    if (!this.stream || !this.registered || this.leaseExpired()) {
      this.outbox.push(...updates);
      return;
    }
    if (updates.length === 1) this.stream.write({ kind: { $case: 'update', update: updates[0]! } });
    else this.stream.write({ kind: { $case: 'updates', updates: { updates } } });
    const now = performance.now();
    for (const u of updates) {
      if (!u.lease || u.state === TaskState.RUNNING) continue;
      // Re-inserted, so the map stays in send order for forgetOldReports.
      this.sentFinal.delete(u.lease.taskId);
      this.sentFinal.set(u.lease.taskId, { update: u, sentAt: now });
    }
  }


  private sendTelemetry(): void {
    if (!this.stream || !this.registered) return;
    const b = this.options.backend;
    this.stream.write({
      kind: {
        $case: 'telemetry',
        telemetry: { time: toTimestamp(Date.now()), gpus: this.options.gpuStatus(), host: this.host.sample(), load: b.load(), draining: this.draining, replicas: b.replicas() },
      },
    });
  }
}

function resultOf(outcome: ExecutionOutcome): TaskResult {
  return TaskResult.fromPartial({
    output: outcome.output,
    finishReason: outcome.finishReason,
    promptTokens: outcome.promptTokens,
    completionTokens: outcome.completionTokens,
    exitCode: outcome.exitCode,
    runTime: toDuration(outcome.runTimeMs),
    timeToFirstToken: toDuration(outcome.timeToFirstTokenMs),
  });
}

/** The Connect stream has no per-message metadata: the task's trace context rides in the assignment. */
function extractTraceFrom(assignment: Assignment) {
  return contextFromCarrier(assignment.traceContext);
}
