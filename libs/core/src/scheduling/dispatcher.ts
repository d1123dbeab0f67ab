import { PriorityClass } from '@autoglm/proto';
import type { Claim, Resources } from '../placement/claim';
import type { Demand } from '../placement/demand';
import type { Fleet, NoFit } from '../placement/fleet';
import type { FairShare } from '../policy/fair-share';
import type { Policy } from '../policy/policy';
import { fairShareValue, type FactorContribution } from '../policy/priority';
import { PolicyQueue, type QueuedTask, type QueuedTaskInit, type QueuedTaskPatch } from './policy-queue';
import { chooseVictims, lostWork, preemptionRank, type PreemptionLimits, type QuotaStanding, type RunningAttempt } from './preemption';
import { describeNoFit } from '../placement/describe';

/** What keeps a queued task from running (WaitingCause in the proto). */
export type WaitCause = 'priority' | 'capacity' | 'quota' | 'no-model';

export interface DispatcherOptions {
  fleet: Fleet;
  fairShare: FairShare;
  policy: Policy;
  nowMs: number;
  /** What a queued task needs; undefined when it is gone (it is dropped from the queue). */
  demandOf: (id: string) => Demand | undefined;
  /** A pass gives up after this many tasks in a row that fit nowhere. @default 64 */
  maxMisses?: number;
}

export interface Placed {
  task: QueuedTask;
  claim: Claim;
}

/** Running attempts to stop so that a higher-ranked queued task fits (the caller revokes and requeues them). */
export interface Preemption {
  preemptor: QueuedTask;
  nodeId: string;
  victims: RunningAttempt[];
  /** GPU-seconds the victims had run (a sequence's share of its replica's): the work preempting them throws away, unless they checkpoint. */
  lostGpuSeconds: number;
}

export interface WaitExplanation {
  priority: number;
  factors: FactorContribution[];
  /** 1-based, 0 when not queued. */
  position: number;
  overdue: boolean;
  usageOverShare: number;
  cause: WaitCause;
  /** The cause in words. */
  detail: string;
  /** The node held for it, if any. */
  heldNode?: string;
  /** When its reservation is predicted to let it start (work predicted to end before then may use the reserved GPUs), if it has one. */
  reservedStartMs?: number;
  /** Running attempts being stopped to make room for it (preemption), if any. */
  preempting: string[];
}

/** Fair-share scores are refreshed at most this often by dispatch passes (explanations always refresh). */
const TENANT_REFRESH_MS = 100;
/**
 * Quota misses after which a tenant's queue sits out the rest of a dispatch
 * pass (at once when not even one GPU more fits its quota).
 */
const QUOTA_MISSES_PER_TENANT = 16;
const ONE_GPU: Resources = { gpus: 1, gpuMemoryBytes: 0, cpus: 0 };
/**
 * Reservations at once, as EASY backfill has (Slurm's default): one. Each
 * keeps GPUs idle but for backfill until its start; in the quality benchmark
 * more of them (up to a quarter of the fleet) cut batch waits a little more
 * and cost requests far more.
 */
const MAX_RESERVATIONS = 1;

/** A queued task preempt() tries to make room for. */
interface PreemptionCandidate {
  task: QueuedTask;
  demand: Demand | undefined;
  /** Its tenant has a nominal quota and stays within it with the task placed (so it may reclaim). */
  reclaims: boolean;
}

/** What one preempt() call works from, whichever candidate it tries. */
interface PreemptionPass {
  nowMs: number;
  /** Whether any tenant has a quota. */
  quotas: boolean;
  borrowed: (tenant: string) => Resources;
  /** Borrowing beyond its nominal quota (on GPUs, or any resource). */
  borrowing: (tenant: string) => boolean;
  /** Running attempts, collected by the first candidate that gets as far as choosing victims. */
  running?: RunningAttempt[];
  /** What makes preemption pay (young victims; fair share's rule). */
  limits: PreemptionLimits;
}

/**
 * What runs next: the policy queue, fair share and quotas, placement, and the
 * no-starvation rules, as one pure component that decision and the quality
 * benchmark drive alike (the caller makes placements durable and tells the
 * agents).
 *
 * A pass: overdue tasks first while they have credit (a share of the
 * placements, policy.overdueShare), then tasks in priority order. A task that
 * does not fit, or whose tenant is at its quota, does not block the ones
 * behind it (no head-of-line blocking); a pass stops after a run of misses.
 * A job that has waited policy.reserveAfterMs (or is overdue) and fits
 * nowhere gets a reservation (Fleet.reserve): GPUs whose work is predicted
 * to end by its age bound are kept for it from then, and only work predicted
 * to end before that may use them meanwhile (backfill): large jobs start
 * within the age bound without GPUs held idle for them. Not for a tenant at
 * or over its share while another with work queued is within its own
 * (FairShare.crowdsOthers): a tenant that floods cannot turn its backlog into
 * priority over the tenants it crowds out. MAX_RESERVATIONS at once.
 *
 * Batch jobs below urgent (not overdue or reserved) leave open as many GPUs
 * as inference used more at its peak over policy.inferenceHeadroomMs than it
 * uses now: a burst that just ended tends to come back, and a job started in
 * the lull would hold its GPUs through it.
 *
 * An urgent task that fits nowhere gets GPUs held at once (so background
 * work cannot keep taking the capacity it waits for), and a task that
 * preempted gets what it preempted for; one such hold at a time. A sequence
 * preempts only when more sequences of its model wait than warm slots are
 * predicted to free before a replica on preempted GPUs would load.
 */
export class Dispatcher {
  readonly queue: PolicyQueue;
  private readonly fleet: Fleet;
  private readonly fairShare: FairShare;
  private policy: Policy;
  private readonly demandOf: (id: string) => Demand | undefined;
  private readonly maxMisses: number;
  /** Placements owed to overdue tasks, 0..1. */
  private credit = 1;
  private readonly allocations = new Map<string, { tenant: string; resources: Resources; attempt?: RunningAttempt }>();
  /** The highest-priority task the last pass could not fit for want of capacity. */
  private blocked?: QueuedTask;
  /** Queued tasks that preempted work, with their victims: what it freed stays held for them until they run. */
  private readonly preemptedFor = new Map<string, { nodeId: string; victims: string[]; claims: Claim[] }>();
  /** Running attempts that may be preempted: with none, preemption is not looked for. */
  private preemptibleRunning = 0;
  /** Why a task was last passed over (only tasks tried and still queued). */
  private readonly passedOver = new Map<string, { cause: WaitCause; detail: string }>();
  private heldFor?: string;
  /** GPUs kept open for inference in this pass (inferenceHeadroom), and the GPUs open to jobs in it. */
  private headroom = 0;
  private headroomAtMs = -Infinity;
  private openGpus: number | undefined;
  /** Queued inference requests by model, and each one's model: how many wait for its replicas. */
  private readonly queuedSequences = new Map<string, number>();
  private readonly sequenceModels = new Map<string, string>();
  /** Recent GPUs in inference use, as (time, GPUs) with falling GPUs: the window's peak first. */
  private inferencePeaks: Array<[number, number]> = [];
  /** Tasks with a reservation (Fleet.reserve), oldest first. */
  private readonly reservations = new Set<string>();
  /**
   * Set by preempt() when the task it would preempt for has not waited long
   * enough yet: when a pass should run again (a full fleet triggers none by
   * itself).
   */
  preemptionDueAtMs: number | undefined;
  /** When tenants' fair-share scores were last refreshed (they move slowly: half-lives are minutes). */
  private scoresAtMs = -Infinity;
  private readonly scoredTenants = new Set<string>();

  constructor(options: DispatcherOptions) {
    this.fleet = options.fleet;
    this.fairShare = options.fairShare;
    this.policy = options.policy;
    this.demandOf = options.demandOf;
    this.maxMisses = options.maxMisses ?? 64;
    this.queue = new PolicyQueue(options.policy, options.nowMs);
    this.fairShare.setBoosts(options.policy.tenantBoosts);
  }

  get size(): number {
    return this.queue.size;
  }

  /** Queues a runnable task. */
  enqueue(task: QueuedTaskInit, nowMs: number): void {
    if (!this.queue.has(task.id)) {
      this.fairShare.queued(task.tenant, 1);
      const demand = this.demandOf(task.id);
      if (demand?.kind === 'sequence') {
        this.sequenceModels.set(task.id, demand.model);
        this.queuedSequences.set(demand.model, (this.queuedSequences.get(demand.model) ?? 0) + 1);
      }
    }
    // A tenant new to the queue gets its score at the next pass, not up to TENANT_REFRESH_MS later.
    if (!this.scoredTenants.has(task.tenant)) this.scoresAtMs = -Infinity;
    this.queue.push(task, nowMs);
  }

  /** Takes a task out of the queue (cancelled, or gone); returns whether it was queued. */
  dequeue(id: string): boolean {
    const task = this.queue.get(id);
    if (!task) return false;
    this.queue.remove(id);
    this.forget(task);
    return true;
  }

  update(id: string, patch: QueuedTaskPatch, nowMs: number): void {
    this.queue.update(id, patch, nowMs);
  }

  setPolicy(policy: Policy, nowMs: number): void {
    this.policy = policy;
    this.fairShare.setBoosts(policy.tenantBoosts);
    this.fairShare.setHalfLife(policy.fairShareHalfLifeMs, nowMs);
    this.queue.setPolicy(policy, nowMs);
    this.scoresAtMs = -Infinity;
  }

  /** The fleet's size changed (a node joined, left or drains): fair shares are measured against it. */
  fleetChanged(nowMs: number): void {
    this.fairShare.setCapacity(this.fleet.capacity(), nowMs);
  }

  /**
   * Counts a running attempt's claim against its tenant (a placement made
   * here, or one restored after a restart). With `attempt` it can be preempted.
   */
  allocate(id: string, tenant: string, claim: Claim, nowMs: number, attempt?: RunningAttempt): void {
    if (this.allocations.has(id)) return;
    const resources = claim.resources;
    this.allocations.set(id, { tenant, resources, attempt });
    if (attempt?.preemptible) this.preemptibleRunning += 1;
    this.fairShare.allocate(tenant, resources, nowMs);
  }

  /**
   * Preemption, after a dispatch pass: when the highest-priority task that
   * fit nowhere could fit by stopping preemptible work of strictly lower rank
   * (preemption.ts; a task whose tenant stays within its nominal quota may
   * also reclaim capacity from tenants borrowing beyond theirs, and such a
   * task is looked for among the tenants' best even when it is not first),
   * returns those victims and holds their node for it, once
   * that task has waited policy.preemptAfterMs runnable (urgentPreemptAfterMs
   * for urgent work; until then preemptionDueAtMs says when to look again).
   * The caller stops and requeues the victims, then releases them here.
   * `nowMs` is the time of the dispatch pass it follows.
   */
  preempt(nowMs: number): Preemption | undefined {
    const blocked = this.blocked;
    this.blocked = undefined;
    this.preemptionDueAtMs = undefined;
    if (this.preemptibleRunning === 0) return undefined;
    // With quotas, work moves between tenants only by reclaim (to a tenant within its nominal
    // quota, from tenants borrowing beyond theirs; a tenant without a quota has a nominal of 0):
    // otherwise tenants could take capacity back and forth for ever.
    const quotas = this.fairShare.anyQuota();
    const candidates: PreemptionCandidate[] = [];
    if (blocked) {
      const demand = this.demandOf(blocked.id);
      const reclaims = quotas && demand !== undefined && this.fairShare.hasQuota(blocked.tenant) && this.fairShare.withinNominal(blocked.tenant, this.fleet.estimateResources(demand));
      candidates.push({ task: blocked, demand, reclaims });
    }
    // Quota reclaim: the best task of each tenant with a nominal quota that it would stay
    // within, waiting for capacity (tried and missed, or the fleet is full).
    for (const tenant of this.queue.tenantNames()) {
      if (!this.fairShare.hasQuota(tenant)) continue;
      const head = this.queue.headOf(tenant);
      if (!head || head === blocked) continue;
      const demand = this.demandOf(head.id);
      if (!demand || (this.fleet.hasRoom(demand.kind) && this.passedOver.get(head.id)?.cause !== 'capacity')) continue;
      if (this.fairShare.withinNominal(tenant, this.fleet.estimateResources(demand))) candidates.push({ task: head, demand, reclaims: quotas });
    }
    let usage: Map<string, number> | undefined;
    const pass: PreemptionPass = {
      nowMs,
      quotas,
      borrowed: (t) => this.fairShare.borrowed(t),
      borrowing: (t) => {
        const b = this.fairShare.borrowed(t);
        return b.gpus > 0 || b.gpuMemoryBytes > 0 || b.cpus > 0;
      },
      limits: {
        nowMs,
        maxRunMs: this.policy.preemptMaxRunMs,
        // With quotas, capacity moves between tenants by reclaim alone (quotas say what is fair then).
        usageOverShare: quotas ? undefined : (t) => (usage ??= this.fairShare.usageOverShares(nowMs)).get(t) ?? 0,
      },
    };
    for (const candidate of candidates) {
      const preemption = this.preemptFor(candidate, pass);
      if (preemption) return preemption;
    }
    return undefined;
  }

  private preemptFor({ task: preemptor, demand, reclaims }: PreemptionCandidate, pass: PreemptionPass): Preemption | undefined {
    if (!this.queue.has(preemptor.id)) return undefined;
    // A short wait is usually cheaper than the progress preemption throws away.
    const urgent = preemptor.priorityClass === PriorityClass.URGENT || preemptor.inheritedClass === PriorityClass.URGENT;
    const dueAtMs = preemptor.readySinceMs + (urgent ? this.policy.urgentPreemptAfterMs : this.policy.preemptAfterMs);
    if (pass.nowMs < dueAtMs) {
      this.preemptionDueAtMs = Math.min(this.preemptionDueAtMs ?? Infinity, dueAtMs);
      return undefined;
    }
    // Room made elsewhere would not help a tenant held back by its own quota.
    if (!demand || this.fairShare.quotaBlock(preemptor.tenant, this.fleet.estimateResources(demand))) return undefined;
    // Sequences wait for slots of warm replicas while no more of them wait than slots are
    // predicted to free before a replica started on preempted GPUs would have loaded.
    if (demand.kind === 'sequence' && (this.queuedSequences.get(demand.model) ?? 0) <= this.fleet.warmSlotsBeforeColdStart(demand.model, preemptor.id)) return undefined;
    const made = this.preemptedFor.get(preemptor.id);
    if (made) {
      // Room was already made for it: while it is still coming (victims stopping in their grace),
      // wait for it rather than stop more work, holding it again if the hold was lost. A node
      // whose telemetry is late is waited for too (a lost one leaves the fleet).
      if (this.fleet.get(made.nodeId)?.health === 'ready' && !this.fleet.isFresh(made.nodeId)) return undefined;
      if (this.fleet.fitsAfter(made.nodeId, demand, made.claims, preemptor.id)) {
        if (this.fleet.heldNode(preemptor.id) === undefined) {
          this.releaseHold();
          if (this.fleet.holdAfter(made.nodeId, demand, made.claims, preemptor.id)) this.heldFor = preemptor.id;
        }
        return undefined;
      }
      // The room is gone (its node left, or something outside the claims uses it): make room afresh.
      this.preemptedFor.delete(preemptor.id);
      if (this.heldFor === preemptor.id) this.releaseHold();
    }
    // Every running attempt, collected once per pass (only once a candidate gets this far).
    if (!pass.running) {
      pass.running = [];
      for (const a of this.allocations.values()) if (a.attempt) pass.running.push(a.attempt);
    }
    const quota: QuotaStanding = pass.quotas ? { tenant: preemptor.tenant, reclaims, borrows: !reclaims, borrowed: pass.borrowed } : { tenant: preemptor.tenant };
    const limits = urgent ? { ...pass.limits, urgent } : pass.limits;
    const choice = chooseVictims(this.fleet, demand, preemptionRank(preemptor.priorityClass, preemptor.priority), pass.running, pass.borrowing, pass.nowMs, quota, preemptor.id, limits);
    if (!choice) return undefined;
    this.preemptedFor.set(preemptor.id, { nodeId: choice.nodeId, victims: choice.victims.map((v) => v.id), claims: choice.victims.map((v) => v.claim) });
    // What preemption frees is held for it instead of any reservation it had.
    if (this.reservations.delete(preemptor.id)) this.fleet.unhold(preemptor.id);
    // The room made is the preemptor's: what it will take there is held for it until it is
    // placed (holdAfter drops whatever the preemptor held before, as does releaseHold).
    this.releaseHold();
    if (this.fleet.holdAfter(choice.nodeId, demand, choice.victims.map((v) => v.claim), preemptor.id)) this.heldFor = preemptor.id;
    const lostGpuSeconds = choice.victims.reduce((sum, v) => sum + lostWork(v, pass.nowMs), 0) / 1000;
    return { preemptor, nodeId: choice.nodeId, victims: choice.victims, lostGpuSeconds };
  }

  /** The running attempt counted for a task (placed here or restored), if any. */
  runningAttempt(id: string): RunningAttempt | undefined {
    return this.allocations.get(id)?.attempt;
  }

  /** The attempt ended (or lost its node): its tenant's usage stops growing. */
  release(id: string, nowMs: number): void {
    const a = this.allocations.get(id);
    if (!a) return;
    this.allocations.delete(id);
    if (a.attempt?.preemptible) this.preemptibleRunning -= 1;
    this.fairShare.release(a.tenant, a.resources, nowMs);
  }

  usageOverShare(tenant: string, nowMs: number): number {
    return this.fairShare.usageOverShare(tenant, nowMs);
  }

  /** Places what can run now, in policy order. */
  dispatch(nowMs: number): Placed[] {
    const placed: Placed[] = [];
    this.fleet.ensureWarm();
    // Inference's use is sampled at every pass, queue or not (its peak sets the headroom).
    this.headroom = this.inferenceHeadroom(nowMs);
    this.openGpus = undefined;
    if (this.queue.size === 0) return placed;
    if (nowMs - this.scoresAtMs >= TENANT_REFRESH_MS) this.refreshTenantScores(nowMs);
    this.queue.maintain(nowMs);
    this.serveOverdue(nowMs, placed, false);
    this.serveReservations(nowMs, placed);
    const skipped: QueuedTask[] = [];
    let misses = 0;
    // A tenant at its quota is passed over without counting against the pass's
    // misses (its backlog must not hide other tenants' work); it sits the rest
    // of the pass out once not even one GPU more fits, or after
    // QUOTA_MISSES_PER_TENANT such misses.
    let quotaMisses: Map<string, number> | undefined;
    let atQuota: Set<string> | undefined;
    this.blocked = undefined;
    let exhausted = false;
    while (this.fleet.hasRoom() && misses < this.maxMisses) {
      const task = this.queue.popBest(atQuota);
      if (!task) {
        // (What tenants at quota still have queued cannot take the capacity either.)
        exhausted = true;
        break;
      }
      const claim = this.tryPlace(task, nowMs);
      if (claim) {
        placed.push({ task, claim });
        this.credit = Math.min(1, this.credit + this.policy.overdueShare);
      } else if (this.queue.has(task.id)) {
        skipped.push(task);
        const cause = this.passedOver.get(task.id)?.cause;
        if (cause === 'quota') {
          quotaMisses ??= new Map();
          const n = (quotaMisses.get(task.tenant) ?? 0) + 1;
          quotaMisses.set(task.tenant, n);
          if (n >= QUOTA_MISSES_PER_TENANT || this.fairShare.quotaBlock(task.tenant, ONE_GPU)) (atQuota ??= new Set()).add(task.tenant);
          continue;
        }
        misses += 1;
        if (!this.blocked && cause === 'capacity') this.blocked = task;
        // Urgent work that fits nowhere has GPUs held at once: background work
        // must not keep taking the capacity it is waiting for. A job waiting
        // long gets a reservation.
        this.holdFor(task, nowMs);
      }
    }
    this.queue.restore(skipped, nowMs);
    // A full fleet tries nobody: the head of the order is the one preemption would make room for.
    if (!this.blocked && !exhausted && this.preemptibleRunning > 0 && !this.fleet.hasRoom()) {
      const head = this.queue.popBest();
      if (head) {
        this.queue.restore([head], nowMs);
        this.blocked = head;
      }
    }
    // Nothing else wants the capacity (or what was tried cannot use it): overdue tasks take it whatever their credit.
    if (exhausted || (misses >= this.maxMisses && this.fleet.hasRoom())) this.serveOverdue(nowMs, placed, true);
    return placed;
  }

  /** Why a queued task is where it is, and what keeps it from running. */
  explain(id: string, nowMs: number): WaitExplanation | undefined {
    const task = this.queue.get(id);
    if (!task) return undefined;
    this.refreshTenantScores(nowMs);
    this.queue.maintain(nowMs);
    const usageOverShare = this.fairShare.usageOverShare(task.tenant, nowMs);
    const { priority, factors } = this.queue.explain(id, nowMs, usageOverShare)!;
    const position = this.queue.positionOf(id);
    const heldNode = this.heldFor === id || this.reservations.has(id) ? this.fleet.heldNode(id) : undefined;
    const reservedStartMs = this.reservations.has(id) ? this.fleet.reservedStart(id) : undefined;
    const missed = this.passedOver.get(id);
    const demand = this.demandOf(id);
    let cause: WaitCause;
    let detail: string;
    if (demand && !this.fleet.servesModel(demand.model, demand.kind)) {
      cause = 'no-model';
      detail = describeNoFit(demand, 'no-model');
    } else if (missed?.cause === 'quota') {
      ({ cause, detail } = missed);
    } else if (missed?.cause === 'capacity' || (demand && !this.fleet.hasRoom(demand.kind))) {
      cause = 'capacity';
      detail = missed?.detail ?? (demand ? describeNoFit(demand, 'no-capacity') : 'no node has room for it now');
      const victims = this.preemptedFor.get(id)?.victims;
      if (victims && heldNode) detail += `; preempting ${victims.length} task(s) on node ${heldNode} for it (${victims.join(', ')}): it starts when they stop`;
      if (heldNode && this.reservations.has(id)) {
        detail +=
          reservedStartMs === undefined
            ? `; ${this.describeHold(id, heldNode)} reserved for it (when what runs there ends is not known: nothing else starts there)`
            : `; ${this.describeHold(id, heldNode)} reserved for it from ${new Date(reservedStartMs).toISOString()} (predicted); work predicted to end before then may use them`;
      } else if (heldNode) detail += `; ${this.describeHold(id, heldNode)} held for it until it fits`;
      for (const other of this.reservations) {
        const node = other === id ? undefined : this.fleet.heldNode(other);
        const startMs = this.fleet.reservedStart(other);
        if (node === undefined || startMs === undefined) continue;
        detail += `; ${this.describeHold(other, node)} reserved for task ${other} from ${new Date(startMs).toISOString()}: work predicted to end by then may use them`;
      }
    } else {
      cause = 'priority';
      detail = position > 1 ? `lower priority than ${position - 1} tasks ahead of it` : 'next to be placed';
    }
    return { priority, factors, position, overdue: task.overdue, usageOverShare, cause, detail, heldNode, reservedStartMs, preempting: this.preemptedFor.get(id)?.victims ?? [] };
  }

  private describeHold(id: string, nodeId: string): string {
    const replica = this.fleet.heldReplica(id);
    if (replica !== undefined) return `replica ${replica} on node ${nodeId} is`;
    const gpus = this.fleet.heldGpus(id) ?? [];
    return gpus.length > 0 ? `GPU(s) ${gpus.join(', ')} of node ${nodeId} are` : `the cores it needs on node ${nodeId} are`;
  }

  // ---- internals ---------------------------------------------------------

  private refreshTenantScores(nowMs: number): void {
    const usage = this.fairShare.usageOverShares(nowMs);
    const w = this.policy.weights.fairshare;
    this.scoresAtMs = nowMs;
    for (const tenant of this.queue.tenantNames()) {
      this.queue.setTenantScore(tenant, w * fairShareValue(usage.get(tenant) ?? 0));
      this.scoredTenants.add(tenant);
    }
  }

  private serveOverdue(nowMs: number, placed: Placed[], unlimited: boolean): void {
    // A hold ends when its task no longer qualifies, or its node left the fleet (one is found again below).
    if (this.heldFor !== undefined && (!this.mayHold(this.queue.get(this.heldFor)) || this.fleet.heldNode(this.heldFor) === undefined)) this.releaseHold();
    // A reservation whose node left the fleet is made again (elsewhere) at the task's next miss.
    for (const id of this.reservations) if (this.fleet.heldNode(id) === undefined) this.reservations.delete(id);
    if (this.queue.overdueCount === 0) return;
    let misses = 0;
    for (const task of this.queue.overdue()) {
      if (!this.fleet.hasRoom() || misses >= this.maxMisses) break;
      if (!unlimited && this.credit < 1) break;
      // The age bound does not let a tenant over its share (one that floods) crowd out a tenant
      // within its own: such overdue work waits for room nobody else wants, as fair share says.
      if (!unlimited && this.fairShare.crowdsOthers(task.tenant)) continue;
      const claim = this.tryPlace(task, nowMs);
      if (claim) {
        placed.push({ task, claim });
        if (!unlimited) this.credit -= 1;
        continue;
      }
      misses += 1;
      // An overdue task that fits nowhere: GPUs reserved (a job) or held for it.
      this.holdFor(task, nowMs);
    }
  }

  /**
   * Tasks whose reservation has started (or that never had a known start)
   * are tried first: what is reserved is theirs, and a pass that gives up
   * after a run of misses must not leave them behind.
   */
  private serveReservations(nowMs: number, placed: Placed[]): void {
    for (const id of [...this.reservations]) {
      const task = this.queue.get(id);
      if (!task) continue;
      const startMs = this.fleet.reservedStart(id);
      if (startMs !== undefined && startMs > nowMs) continue;
      const claim = this.tryPlace(task, nowMs);
      if (claim) placed.push({ task, claim });
    }
  }

  /** Overdue tasks and urgent ones may have a node held for them. */
  private mayHold(task: QueuedTask | undefined): boolean {
    return task !== undefined && (task.overdue || task.priorityClass === PriorityClass.URGENT || task.inheritedClass === PriorityClass.URGENT || this.preemptedFor.has(task.id));
  }

  /**
   * For a task that fits nowhere for want of capacity: a reservation for a
   * job that has waited policy.reserveAfterMs or is overdue (up to
   * MAX_RESERVATIONS), else a plain hold for an urgent or overdue task when
   * no other task has one.
   */
  private holdFor(task: QueuedTask, nowMs: number): void {
    if (this.passedOver.get(task.id)?.cause !== 'capacity') return;
    const demand = this.demandOf(task.id);
    if (!demand) return;
    const urgent = task.priorityClass === PriorityClass.URGENT || task.inheritedClass === PriorityClass.URGENT;
    // Nothing is kept for a tenant crowding out another within its share (but for urgent work).
    if (!urgent && this.fairShare.crowdsOthers(task.tenant)) return;
    if (demand.kind === 'gpus' && (task.overdue || nowMs - task.readySinceMs >= this.policy.reserveAfterMs) && this.heldFor !== task.id) {
      if (this.reservations.has(task.id) || this.reservations.size >= MAX_RESERVATIONS) return;
      if (this.fleet.reserve(demand, task.id, task.readySinceMs + this.policy.maxAgeMs)) this.reservations.add(task.id);
      return;
    }
    if (this.heldFor !== undefined || !this.mayHold(task)) return;
    if (this.fleet.hold(demand, task.id)) this.heldFor = task.id;
  }

  /**
   * GPUs to keep open for inference: how many more it used at its peak over
   * the last policy.inferenceHeadroomMs than it uses now (it tends to come
   * back), 0 when off.
   */
  private inferenceHeadroom(nowMs: number): number {
    const windowMs = this.policy.inferenceHeadroomMs;
    if (!(windowMs > 0)) return 0;
    // Sampled at most every TENANT_REFRESH_MS: a scan of the fleet's replicas, for a window of minutes.
    if (nowMs - this.headroomAtMs < TENANT_REFRESH_MS) return this.headroom;
    this.headroomAtMs = nowMs;
    const now = this.fleet.gpuUse().inference;
    const peaks = this.inferencePeaks;
    while (peaks.length > 0 && peaks[peaks.length - 1]![1] <= now) peaks.pop();
    peaks.push([nowMs, now]);
    while (peaks.length > 0 && peaks[0]![0] < nowMs - windowMs) peaks.shift();
    return Math.max(0, (peaks[0]?.[1] ?? now) - now);
  }

  private releaseHold(): void {
    if (this.heldFor === undefined) return;
    this.fleet.unhold(this.heldFor);
    this.heldFor = undefined;
  }

  private tryPlace(task: QueuedTask, nowMs: number): Claim | undefined {
    const demand = this.demandOf(task.id);
    if (!demand) {
      this.dequeue(task.id);
      return undefined;
    }
    const keepsHeadroom = this.headroom > 0 && demand.kind === 'gpus' && !task.overdue && !this.reservations.has(task.id) && task.priorityClass !== PriorityClass.URGENT;
    if (keepsHeadroom) {
      // Counted once a pass, less what the pass's jobs take (new replicas' GPUs are not counted).
      this.openGpus ??= this.fleet.gpuUse().open;
      if (this.openGpus - demand.gpuCount < this.headroom) {
        this.passedOver.set(task.id, { cause: 'capacity', detail: `held back: inference used ${this.headroom} GPU(s) more than now within the last ${Math.round(this.policy.inferenceHeadroomMs / 1000)} s, kept open for it` });
        return undefined;
      }
    }
    const quota = this.fairShare.quotaBlock(task.tenant, this.fleet.estimateResources(demand));
    if (quota) {
      this.passedOver.set(task.id, { cause: 'quota', detail: quota });
      return undefined;
    }
    const placed = this.fleet.place(demand, task.id, task.predictedRunMs > 0 ? nowMs + task.predictedRunMs : undefined);
    if (typeof placed === 'string') {
      this.passedOver.set(task.id, { cause: causeOf(placed), detail: describeNoFit(demand, placed) });
      return undefined;
    }
    if (this.openGpus !== undefined && demand.kind === 'gpus') this.openGpus -= placed.gpuIndices.length;
    // Placed past the age bound or on its reservation: it is not preempted (the bound is kept).
    const guaranteed = task.overdue || this.reservations.has(task.id);
    this.queue.remove(task.id);
    this.forget(task);
    this.allocate(task.id, task.tenant, placed, nowMs, {
      id: task.id,
      tenant: task.tenant,
      claim: placed,
      preemptible: task.preemptible === true,
      rank: preemptionRank(task.priorityClass, task.priority),
      startedAtMs: nowMs,
      guaranteed,
      preemptions: task.preemptions,
    });
    return placed;
  }

  private forget(task: QueuedTask): void {
    this.fairShare.queued(task.tenant, -1);
    const model = this.sequenceModels.get(task.id);
    if (model !== undefined) {
      this.sequenceModels.delete(task.id);
      const n = (this.queuedSequences.get(model) ?? 1) - 1;
      if (n > 0) this.queuedSequences.set(model, n);
      else this.queuedSequences.delete(model);
    }
    this.passedOver.delete(task.id);
    this.preemptedFor.delete(task.id);
    if (this.heldFor === task.id) this.releaseHold();
    if (this.reservations.delete(task.id)) this.fleet.unhold(task.id);
  }
}

/** The wait cause of a placement that found no room: a model nobody serves, or capacity (busy, or too large for any node now connected). */
function causeOf(why: NoFit): WaitCause {
  return why === 'no-model' || why === 'no-node' ? 'no-model' : 'capacity';
}
