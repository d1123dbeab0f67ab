import { TaskState } from '@autoglm/proto';
import { Dispatcher, FairShare, lostWork, timestampToMillis, type Clock, type Fleet, type Policy, type QueuedTaskInit, type RunTimePredictor, type TenantConfig } from '@autoglm/core';
import type { Logger } from '@autoglm/runtime';
import type { AgentSessions } from './agent-sessions';
import type { ExperimentStats } from './experiment-stats';
import type { Lifecycle } from './lifecycle';
import type { Live } from './live';
import type { TaskBook } from './task-book';

const S = TaskState;

/** The cost factor: a task's share of a node, counted against an 8-GPU node of 80 GiB GPUs and 64 cores. */
const COST_GPUS = 8;
const COST_GPU_MEMORY_BYTES = 8 * 80 * 2 ** 30;
const COST_CPUS = 64;

export interface DispatchLoopOptions {
  book: TaskBook;
  lifecycle: Lifecycle;
  sessions: AgentSessions;
  fleet: Fleet;
  logger: Logger;
  clock: Clock;
  policy: Policy;
  tenants: TenantConfig[];
  runTimes: RunTimePredictor;
  experiments: ExperimentStats;
}

/**
 * The queue and its passes: runnable tasks go into the libs/core Dispatcher
 * (policy order, fair share, quotas, the claim model's placement), a pass
 * runs on the next tick after anything changes, its placements are handed to
 * the sessions to lease, the replicas it starts or evicts are sent to the
 * agents, and preemption it decides is carried out.
 */
export class DispatchLoop {
  readonly dispatcher: Dispatcher;
  private scheduled = false;
  private preemptionTimer: ReturnType<typeof setTimeout> | undefined;
  private preemptionTimerAtMs: number | undefined;
  private readonly o: DispatchLoopOptions;

  constructor(options: DispatchLoopOptions) {
    this.o = options;
    const now = options.clock();
    this.dispatcher = new Dispatcher({
      fleet: options.fleet,
      fairShare: new FairShare(options.tenants, { halfLifeMs: options.policy.fairShareHalfLifeMs, nowMs: now }),
      policy: options.policy,
      nowMs: now,
      demandOf: (id) => options.book.live.get(id)?.demand,
    });
    const experiment = options.experiments.experiment;
    if (experiment) this.dispatcher.queue.setVariants(experiment.variants.map((v) => v.weights), now);
  }

  /** Queues a runnable task in policy order and asks for a dispatch pass. */
  enqueueReady(entry: Live): void {
    this.dispatcher.enqueue(this.queuedInit(entry), this.o.clock());
    this.schedule();
    this.o.book.restLater(entry);
  }

  /** What the policy queue keeps of a task (its factors' inputs). */
  queuedInit(entry: Live): QueuedTaskInit {
    const { task, demand } = entry;
    const spec = task.spec!;
    const share = this.o.fleet.estimateResources(demand);
    return {
      // The entry's strings, shared with it: not the decoded task's copies.
      id: entry.id,
      tenant: entry.tenant,
      priorityClass: spec.priorityClass,
      priority: spec.priority,
      readySinceMs: entry.readySinceMs,
      deadlineMs: spec.deadline ? timestampToMillis(spec.deadline) : undefined,
      predictedRunMs: this.o.runTimes.predict(spec, entry.tenant),
      // Attempts that ended without failing (preempted, handed back): a task is preempted at most MAX_PREEMPTIONS times.
      preemptions: Math.max(0, task.attempt - 1 - task.failures),
      dependents: this.o.lifecycle.dependents.get(task.id)?.size ?? 0,
      inheritedClass: entry.inheritedClass,
      preemptible: spec.preemptible,
      variant: this.o.experiments.variantIndex(spec),
      resourceShare: Math.min(1, Math.max(share.gpus / COST_GPUS, share.gpuMemoryBytes / COST_GPU_MEMORY_BYTES, share.cpus / COST_CPUS)),
    };
  }

  setPolicy(policy: Policy): void {
    this.dispatcher.setPolicy(policy, this.o.clock());
    this.schedule();
  }

  /** Asks for a dispatch pass on the next tick (passes asked for in one turn are one). */
  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pass();
    });
  }

  /** Places runnable tasks in policy order, leases them, starts and evicts replicas, and preempts where it must. */
  private pass(): void {
    const { book, sessions, clock, logger } = this.o;
    const now = clock();
    for (const { task, claim } of this.dispatcher.dispatch(now)) {
      const entry = book.live.get(task.id);
      if (!entry || entry.state !== S.QUEUED) {
        this.o.fleet.release(claim);
        this.dispatcher.release(task.id, now);
        continue;
      }
      sessions.assign(entry, claim).catch((err: unknown) => logger.error({ err, taskId: task.id }, 'assignment failed'));
    }
    // Replicas to load go out before the assignments to them (those wait for their commit).
    sessions.flushReplicaCommands();
    const preemption = this.dispatcher.preempt(now);
    const due = this.dispatcher.preemptionDueAtMs;
    // A full fleet triggers no pass by itself: come back when the blocked task may preempt.
    if (due !== undefined && (this.preemptionTimerAtMs === undefined || due < this.preemptionTimerAtMs)) {
      clearTimeout(this.preemptionTimer);
      this.preemptionTimerAtMs = due;
      this.preemptionTimer = setTimeout(() => {
        this.preemptionTimer = undefined;
        this.preemptionTimerAtMs = undefined;
        this.schedule();
      }, Math.max(0, due - now));
      this.preemptionTimer.unref();
    }
    if (preemption) {
      for (const victim of preemption.victims) {
        const entry = book.live.get(victim.id);
        const lost = lostWork(victim, now) / 1000;
        const reason = `preempted by ${preemption.preemptor.id} after ${((now - victim.startedAtMs) / 1000).toFixed(1)} s (${lost.toFixed(1)} GPU-s of work lost unless it checkpoints)`;
        if (entry?.lease) void sessions.preemptAttempt(entry, reason).catch((err: unknown) => logger.error({ err, taskId: victim.id }, 'preemption failed'));
      }
      logger.info(
        { taskId: preemption.preemptor.id, nodeId: preemption.nodeId, victims: preemption.victims.map((v) => v.id), lostGpuSeconds: Number(preemption.lostGpuSeconds.toFixed(3)) },
        'preempting work to make room',
      );
    }
  }
}
