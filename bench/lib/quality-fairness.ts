import type { Timeline } from './quality-sim';
import type { Work } from './quality-workload';

/**
 * Tenant fairness against the max-min fair allocation given each tenant's
 * demand, per window:
 *
 * - demand of a tenant in a window: the GPU-seconds its work present in the
 *   window (queued or running at some point of it) could have used in it,
 *   each task counting its GPUs × the lesser of its remaining run time (at
 *   the window's start, or its arrival if later: a queued or preempted task
 *   has its whole run left, as lost work is redone) and its time present in
 *   the window; capped at the window's capacity (GPUs × window length);
 * - the max-min fair allocation: weighted water-filling of the window's
 *   capacity over those demands with the tenants' fair-share weights (no
 *   tenant gets more than its demand; what one cannot use goes to the others
 *   in proportion to their weights);
 * - measured: each tenant's part of the GPU-seconds used in the window
 *   (running attempts, preempted ones included: they held the GPUs), against
 *   its part of the allocation.
 *
 * A window counts when at least two tenants have demand in it (they
 * contend for the fleet; where their demands fit together, max-min fair is
 * each one's demand, and a tenant served less than it is treated unfairly
 * all the same). Its error is the largest |measured − fair| part over the
 * tenants, in percentage points. Windows where demand exceeds capacity are
 * counted too (contendedWindows). Jobs that run for minutes make single
 * windows lumpy for any policy that does not preempt (one tenant's job runs
 * through a window while another's waits for the next one).
 * The flood figure takes the flood's whole period as one window, the same
 * way (demand, max-min allocation, usage over the period).
 */
export interface FairnessStats {
  windowMs: number;
  windows: number;
  /** Windows with at least two tenants with demand: those the errors are over. */
  countedWindows: number;
  /** Of those, windows where total demand exceeded the capacity. */
  contendedWindows: number;
  /** Mean over counted windows of the largest |measured − max-min| part, percentage points. */
  meanErrorPp: number;
  maxErrorPp: number;
  /** Over the flood's windows together: the largest |measured − max-min| part, percentage points. */
  floodErrorPp: number;
  /** Each tenant's part of the GPU time used during the flood, measured and max-min fair. */
  flood: Record<string, { measured: number; fair: number }>;
}

export function measureFairness(
  timelines: readonly Timeline[],
  tenants: ReadonlyArray<{ name: string; share: number }>,
  fleetGpus: number,
  makespanMs: number,
  windowMs: number,
  floodMs: { from: number; to: number },
): FairnessStats {
  const windows = Math.max(1, Math.ceil(makespanMs / windowMs));
  const index = new Map(tenants.map((t, i) => [t.name, i]));
  const used = tenants.map(() => new Float64Array(windows));
  const demand = tenants.map(() => new Float64Array(windows));
  for (const tl of timelines) {
    const i = index.get(tl.work.tenant);
    if (i === undefined) continue;
    for (const a of tl.attempts) spread(used[i]!, a.runStartMs, a.endMs, tl.work.gpus, windowMs);
    addDemand(demand[i]!, tl, windowMs);
  }
  const weights = tenants.map((t) => t.share);
  const errors: number[] = [];
  let contended = 0;
  for (let w = 0; w < windows; w++) {
    const length = Math.min(windowMs, makespanMs - w * windowMs);
    if (!(length > 0)) continue;
    const capacity = fleetGpus * length;
    const d = demand.map((series) => Math.min(capacity, series[w]!));
    const fair = maxMinFair(capacity, d, weights);
    const u = used.map((series) => series[w]!);
    const usedSum = u.reduce((s, x) => s + x, 0);
    const fairSum = fair.reduce((s, x) => s + x, 0);
    if (d.filter((x) => x > 0).length < 2 || !(usedSum > 0) || !(fairSum > 0)) continue;
    if (d.reduce((s, x) => s + x, 0) > capacity * (1 + 1e-9)) contended += 1;
    errors.push(100 * Math.max(...u.map((x, t) => Math.abs(x / usedSum - fair[t]! / fairSum))));
  }
  const floodParts = periodParts(timelines, tenants, fleetGpus, floodMs.from, floodMs.to);
  return {
    windowMs,
    windows,
    countedWindows: errors.length,
    contendedWindows: contended,
    meanErrorPp: errors.length > 0 ? errors.reduce((s, x) => s + x, 0) / errors.length : NaN,
    maxErrorPp: errors.length > 0 ? Math.max(...errors) : NaN,
    floodErrorPp: 100 * Math.max(...floodParts.map((p) => Math.abs(p.measured - p.fair))),
    flood: Object.fromEntries(tenants.map((t, i) => [t.name, floodParts[i]!])),
  };
}

/** Each tenant's part of the GPU time used over [fromMs, toMs), and its part of the max-min fair allocation of that period as one window. */
function periodParts(timelines: readonly Timeline[], tenants: ReadonlyArray<{ name: string; share: number }>, fleetGpus: number, fromMs: number, toMs: number): Array<{ measured: number; fair: number }> {
  const index = new Map(tenants.map((t, i) => [t.name, i]));
  const used = tenants.map(() => 0);
  const demand = tenants.map(() => 0);
  for (const tl of timelines) {
    const i = index.get(tl.work.tenant);
    if (i === undefined) continue;
    for (const a of tl.attempts) used[i]! += tl.work.gpus * Math.max(0, Math.min(toMs, a.endMs) - Math.max(fromMs, a.runStartMs));
    demand[i]! += demandIn(tl, fromMs, toMs);
  }
  const capacity = fleetGpus * (toMs - fromMs);
  const fair = maxMinFair(
    capacity,
    demand.map((d) => Math.min(capacity, d)),
    tenants.map((t) => t.share),
  );
  const usedSum = used.reduce((s, x) => s + x, 0);
  const fairSum = fair.reduce((s, x) => s + x, 0);
  return tenants.map((_, t) => ({ measured: used[t]! / usedSum, fair: fair[t]! / fairSum }));
}

/**
 * Weighted max-min fair shares of `capacity` (water-filling): every tenant
 * gets weight × a common level, or its whole demand when that is less, and
 * what those leave is shared again among the rest.
 */
export function maxMinFair(capacity: number, demands: readonly number[], weights: readonly number[]): number[] {
  const alloc = demands.map(() => 0);
  let active = demands.map((_, i) => i).filter((i) => demands[i]! > 0);
  let left = capacity;
  while (active.length > 0 && left > 0) {
    const level = left / active.reduce((s, i) => s + weights[i]!, 0);
    const satisfied = active.filter((i) => demands[i]! <= level * weights[i]!);
    if (satisfied.length === 0) {
      for (const i of active) alloc[i] = level * weights[i]!;
      break;
    }
    for (const i of satisfied) {
      alloc[i] = demands[i]!;
      left -= demands[i]!;
    }
    active = active.filter((i) => !satisfied.includes(i));
  }
  return alloc;
}

/** Adds gpus × the overlap of [fromMs, toMs) with each window. */
function spread(series: Float64Array, fromMs: number, toMs: number, gpus: number, windowMs: number): void {
  for (let w = Math.floor(fromMs / windowMs); w < series.length && w * windowMs < toMs; w++) {
    const overlap = Math.min(toMs, (w + 1) * windowMs) - Math.max(fromMs, w * windowMs);
    if (overlap > 0) series[w]! += overlap * gpus;
  }
}

/** A task's demand in each window it is present in (see FairnessStats). */
function addDemand(series: Float64Array, tl: Timeline, windowMs: number): void {
  for (let w = Math.floor(tl.work.arrivalMs / windowMs); w < series.length && w * windowMs < tl.doneMs; w++) series[w]! += demandIn(tl, w * windowMs, (w + 1) * windowMs);
}

/** GPU-ms a task could have used in [fromMs, toMs): its GPUs × the lesser of its run time left and its time present there. */
function demandIn(tl: Timeline, fromMs: number, toMs: number): number {
  const from = Math.max(fromMs, tl.work.arrivalMs);
  const to = Math.min(toMs, tl.doneMs);
  return to > from ? tl.work.gpus * Math.min(remainingAt(tl, tl.work, from), to - from) : 0;
}

/** Run time left at `atMs`: what the running attempt has left, else the whole run (queued, or preempted and redone). */
function remainingAt(tl: Timeline, work: Work, atMs: number): number {
  for (const a of tl.attempts) {
    if (atMs < a.placedMs || atMs >= a.endMs) continue;
    const done = Math.max(0, atMs - a.runStartMs);
    return Math.max(0, work.serviceMs - done);
  }
  return work.serviceMs;
}
