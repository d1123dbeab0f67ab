import { PriorityClass } from '@autoglm/proto';
import type { Claim, Resources } from '../placement/claim';
import type { Demand } from '../placement/demand';
import type { Fleet } from '../placement/fleet';

/** A running attempt, as preemption sees it. */
export interface RunningAttempt {
  id: string;
  tenant: string;
  /** What it holds: the room preempting it gives back. */
  claim: Claim;
  preemptible: boolean;
  /** preemptionRank of its class and priority. */
  rank: number;
  startedAtMs: number;
  /**
   * Placed because it had waited past the age bound, or on its reservation:
   * never preempted, or the age bound would promise nothing to preemptible work.
   */
  guaranteed?: boolean;
  /** How many times its task was preempted before this attempt (a task is preempted at most MAX_PREEMPTIONS times). */
  preemptions?: number;
}

/**
 * A task is preempted at most this many times: after that it runs to its
 * end. Every preemption uses up one of a finite number of chances, so no
 * set of rules (rank, fair share) can stop and restart work for ever.
 */
export const MAX_PREEMPTIONS = 1;

/** A tenant this far over its fair share may lose young preemptible work to a tenant within its own, at equal rank. */
export const FAIR_SHARE_PREEMPT_OVER = 2;

/** What makes preemption pay: only young work is stopped for rank (below urgent) or fair share. */
export interface PreemptionLimits {
  nowMs: number;
  /** Rank and fair-share preemption stop only attempts that have run less than this (policy.preemptMaxRunMs). */
  maxRunMs: number;
  /**
   * The preemptor is urgent: its rank preemption has neither limit (an
   * urgent task is not left waiting behind hours of batch work; victims are
   * still the ones that lose the least).
   */
  urgent?: boolean;
  /**
   * Tenants' usage over their fair share (FairShare.usageOverShare): with it,
   * a task whose tenant is within its share may preempt, at equal rank, young
   * work of a tenant at FAIR_SHARE_PREEMPT_OVER times its share or more.
   */
  usageOverShare?: (tenant: string) => number;
}

/**
 * The rank preemption compares: class first, then the submission's priority.
 * It is static (no age, fair share or deadline in it), so "A may preempt B"
 * (A's rank strictly above B's) is a strict order that never changes while
 * the tasks live: a chain of preemptions can never come back to its start,
 * which is what rules out preemption loops.
 */
export function preemptionRank(priorityClass: PriorityClass, priority: number): number {
  const tier = priorityClass === PriorityClass.URGENT ? 2 : priorityClass === PriorityClass.BACKGROUND ? 0 : 1;
  return tier * 4096 + Math.max(-2000, Math.min(2000, priority));
}

/** Where the preempting task's tenant stands against its nominal quota, once the task is placed. */
export interface QuotaStanding {
  /** Within its nominal quota: it may reclaim from tenants borrowing beyond theirs, whatever their rank. */
  reclaims?: boolean;
  /** Beyond its nominal quota: it may preempt only its own tenant's work. */
  borrows?: boolean;
  /** Its tenant. */
  tenant?: string;
  /** What a tenant uses beyond its nominal quota, per resource (0 within it): reclaim takes no more than that from it. */
  borrowed?: (tenant: string) => Resources;
}

/**
 * Whether a running attempt may be stopped for a task of `rank`, and by
 * which rule (false: it may not). It must be preemptible, not placed past the
 * age bound or on a reservation, and either
 * - 'rank': of strictly lower rank, when the preemptor's tenant would not be
 *   borrowing beyond its nominal quota (a borrower preempts only its own
 *   tenant's work), or
 * - 'reclaim': for a preemptor whose tenant stays within its nominal quota,
 *   of a tenant borrowing beyond its own, whatever the rank (as Kueue's
 *   reclaimWithinCohort).
 * Capacity so moves down in rank, or back to a tenant's nominal quota, never
 * to a borrower from another tenant. An attempt both rules allow counts as
 * 'rank' (reclaim's limit on what it takes from a tenant does not apply).
 *
 * With `limits` (the dispatcher always passes them), rank preemption below
 * urgent pays only where little is thrown away: the victim has run less than
 * `limits.maxRunMs` and has not been preempted MAX_PREEMPTIONS times; and
 * a third rule applies:
 * - 'fairshare': of equal or lower rank, of another tenant at
 *   FAIR_SHARE_PREEMPT_OVER times its fair share or more, for a preemptor
 *   whose tenant is within its own (young and not yet preempted, as rank).
 * Reclaim is a quota's guarantee and has no such limit.
 */
export function mayPreempt(r: RunningAttempt, rank: number, isBorrowing: (tenant: string) => boolean, quota: QuotaStanding, limits?: PreemptionLimits): 'rank' | 'reclaim' | 'fairshare' | false {
  if (!r.preemptible || r.guaranteed) return false;
  const cheap = !limits || (limits.nowMs - r.startedAtMs < limits.maxRunMs && (r.preemptions ?? 0) < MAX_PREEMPTIONS);
  if ((cheap || limits?.urgent) && r.rank < rank && (!quota.borrows || r.tenant === quota.tenant)) return 'rank';
  if (quota.reclaims && r.tenant !== quota.tenant && isBorrowing(r.tenant)) return 'reclaim';
  const share = limits?.usageOverShare;
  if (cheap && share && !quota.borrows && quota.tenant !== undefined && r.tenant !== quota.tenant && r.rank <= rank && share(quota.tenant) <= 1 && share(r.tenant) >= FAIR_SHARE_PREEMPT_OVER) {
    return 'fairshare';
  }
  return false;
}

const RESOURCE_KEYS = ['gpus', 'gpuMemoryBytes', 'cpus'] as const satisfies ReadonlyArray<keyof Resources>;

/** An attempt mayPreempt allows, with what the victim order needs computed once. */
interface Candidate {
  attempt: RunningAttempt;
  by: 'rank' | 'reclaim' | 'fairshare';
  borrowing: boolean;
  /** GPU-time run so far (the work preempting it throws away). */
  lost: number;
}

export interface VictimChoice {
  nodeId: string;
  victims: RunningAttempt[];
}

/**
 * Chooses what to preempt so that `demand` (of rank `rank`) fits, or
 * undefined when no set of allowed victims makes room. "Fits" is the
 * fleet's own feasibility test (`Fleet.fitsAfter`, the one placement uses)
 * with the victims' claims released, so the room is exactly what placement
 * will find once they stop. Allowed victims are
 * those `mayPreempt` allows (reclaim taking a victim only while its tenant
 * still borrows, beyond its nominal quota, some resource the victim holds and
 * the preemptor needs). On each node they are taken in order
 * (lowest rank first; among equals, tenants borrowing beyond their nominal
 * quota first, then the least work lost: GPU-time run so far) until the
 * demand fits, then a reverse pass drops every victim the fit does not need.
 * The node where the victims lose the least work (then the fewest victims,
 * then the least rank) wins.
 */
export function chooseVictims(
  fleet: Fleet,
  demand: Demand,
  rank: number,
  running: Iterable<RunningAttempt>,
  isBorrowing: (tenant: string) => boolean,
  nowMs: number,
  quota: QuotaStanding = {},
  holder?: string,
  limits?: PreemptionLimits,
): VictimChoice | undefined {
  const byNode = new Map<string, Candidate[]>();
  for (const r of running) {
    const by = mayPreempt(r, rank, isBorrowing, quota, limits);
    if (!by) continue;
    const c: Candidate = { attempt: r, by, borrowing: isBorrowing(r.tenant), lost: lostWork(r, nowMs) };
    const list = byNode.get(r.claim.nodeId);
    if (list) list.push(c);
    else byNode.set(r.claim.nodeId, [c]);
  }
  // Reclaim gives back only what the preemptor needs: a borrower's cores are not taken for GPUs.
  const needs = fleet.estimateResources(demand);
  let best: VictimChoice | undefined;
  let bestCost: [number, number, number] | undefined;
  for (const [nodeId, candidates] of byNode) {
    candidates.sort((a, b) => a.attempt.rank - b.attempt.rank || Number(b.borrowing) - Number(a.borrowing) || a.lost - b.lost);
    const chosen: RunningAttempt[] = [];
    // What each tenant still borrows once the victims chosen so far (by either rule) have
    // stopped: reclaim takes a victim only while its tenant still borrows some resource the
    // victim holds and the preemptor needs, so it stops once the tenant is back at its nominal
    // quota of it (the last victim, whole, may take it below by less than its own size).
    const stillBorrowed = new Map<string, Resources>();
    const fits = (victims: RunningAttempt[]) => fleet.fitsAfter(nodeId, demand, victims.map((v) => v.claim), holder);
    for (const { attempt: c, by } of candidates) {
      if (fits(chosen)) break;
      const left = stillBorrowed.get(c.tenant) ?? quota.borrowed?.(c.tenant);
      if (left) {
        if (by === 'reclaim' && !RESOURCE_KEYS.some((r) => needs[r] > 0 && c.claim.resources[r] > 0 && left[r] > 0)) continue;
        stillBorrowed.set(c.tenant, { gpus: left.gpus - c.claim.resources.gpus, gpuMemoryBytes: left.gpuMemoryBytes - c.claim.resources.gpuMemoryBytes, cpus: left.cpus - c.claim.resources.cpus });
      }
      chosen.push(c);
    }
    if (!fits(chosen)) continue;
    // Reverse pass: keep only the victims the fit needs.
    for (let i = chosen.length - 1; i >= 0; i--) {
      const without = chosen.filter((_, j) => j !== i);
      if (fits(without)) chosen.splice(i, 1);
    }
    // Fitting with no victim: what blocks it is not claims (telemetry, holds), and preempting would not help.
    if (chosen.length === 0) continue;
    const cost: [number, number, number] = [chosen.reduce((s, v) => s + lostWork(v, nowMs), 0), chosen.length, chosen.reduce((s, v) => s + v.rank, 0)];
    if (!bestCost || cost[0] < bestCost[0] || (cost[0] === bestCost[0] && (cost[1] < bestCost[1] || (cost[1] === bestCost[1] && cost[2] < bestCost[2])))) {
      best = { nodeId, victims: chosen };
      bestCost = cost;
    }
  }
  return best;
}

/** How much a core weighs against a GPU in lost work: a GPU host has about 16 cores per GPU (a DGX H100: 112 over 8). */
const CORES_PER_GPU = 16;

/**
 * GPU-time an attempt has run by `nowMs` (a sequence's share of its
 * replica's; a job without GPUs its cores' worth): the work preempting it
 * throws away.
 */
export function lostWork(r: RunningAttempt, nowMs: number): number {
  return Math.max(0, nowMs - r.startedAtMs) * Math.max(r.claim.resources.gpus, r.claim.resources.cpus / CORES_PER_GPU);
}
