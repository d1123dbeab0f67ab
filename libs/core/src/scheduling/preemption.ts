import { PriorityClass } from '@autoglm/proto';
import type { Demand, Fleet, Reservation } from '../placement/fleet';

/** A running attempt, as preemption sees it. */
export interface RunningAttempt {
  id: string;
  tenant: string;
  reservation: Reservation;
  preemptible: boolean;
  /** preemptionRank of its class and priority. */
  rank: number;
  startedAtMs: number;
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

export interface VictimChoice {
  nodeId: string;
  victims: RunningAttempt[];
}

/**
 * Chooses what to preempt so that `demand` (of rank `rank`) fits, or
 * undefined when no set of allowed victims makes room. Allowed victims are
 * preemptible attempts of strictly lower rank. On each node they are taken in
 * order (lowest rank first; among equals, tenants borrowing beyond their
 * nominal quota first, then the most recently started) until the demand fits,
 * then a reverse pass drops every victim the fit does not need. The node
 * needing the fewest victims (then the least rank) wins.
 */
export function chooseVictims(
  fleet: Fleet,
  demand: Demand,
  rank: number,
  running: Iterable<RunningAttempt>,
  isBorrowing: (tenant: string) => boolean = () => false,
): VictimChoice | undefined {
  const byNode = new Map<string, RunningAttempt[]>();
  for (const r of running) {
    if (!r.preemptible || r.rank >= rank) continue;
    const list = byNode.get(r.reservation.nodeId);
    if (list) list.push(r);
    else byNode.set(r.reservation.nodeId, [r]);
  }
  let best: VictimChoice | undefined;
  let bestCost = Infinity;
  for (const [nodeId, candidates] of byNode) {
    candidates.sort((a, b) => a.rank - b.rank || Number(isBorrowing(b.tenant)) - Number(isBorrowing(a.tenant)) || b.startedAtMs - a.startedAtMs);
    const chosen: RunningAttempt[] = [];
    for (const c of candidates) {
      if (fleet.fitsAfter(nodeId, demand, chosen.map((v) => v.reservation))) break;
      chosen.push(c);
    }
    if (!fleet.fitsAfter(nodeId, demand, chosen.map((v) => v.reservation))) continue;
    // Reverse pass: keep only the victims the fit needs.
    for (let i = chosen.length - 1; i >= 0; i--) {
      const without = chosen.filter((_, j) => j !== i);
      if (fleet.fitsAfter(nodeId, demand, without.map((v) => v.reservation))) chosen.splice(i, 1);
    }
    const cost = chosen.length * 1e6 + chosen.reduce((s, v) => s + v.rank, 0);
    // Fitting with no victim: what blocks it is not reservations (telemetry), and preempting would not help.
    if (chosen.length > 0 && cost < bestCost) {
      best = { nodeId, victims: chosen };
      bestCost = cost;
    }
  }
  return best;
}
