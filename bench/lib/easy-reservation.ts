import type { Claim, Demand, Fleet, FleetNode } from '@autoglm/core';
import type { RunningAttemptView } from './quality-sim';

/** Where and from when a task is predicted to fit, and the running claims predicted gone by then. */
export interface Reservation {
  nodeId: string;
  shadowMs: number;
  freed: Claim[];
}

/**
 * The earliest predicted start of `demand` on any node, by the claim model:
 * a batch job needs N whole GPUs of one node free of replicas (a job's GPU
 * frees at its predicted end; a replica's when its last sequence is
 * predicted to end, as an idle replica is evicted for a job); a sequence
 * needs a slot in a replica of its model (one frees at the soonest predicted
 * end among its sequences) or a GPU for a new replica. Running work past its
 * predicted end is taken to end now. The estimate is checked with the
 * Fleet's own what-if (fitsAfter); where the two disagree, the fewest claims
 * (in predicted-end order) whose release lets it fit are searched for.
 */
export function earliestReservation(fleet: Fleet, demand: Demand, holder: string, running: (nodeId: string) => Iterable<RunningAttemptView>, nowMs: number): Reservation | undefined {
  let best: Reservation | undefined;
  for (const node of fleet.nodes()) {
    const attempts = [...running(node.nodeId)].map((a) => ({ claim: a.claim, endMs: Math.max(nowMs, a.predictedEndMs) }));
    const estimate = estimateStart(node, demand, holder, attempts, nowMs);
    if (estimate === undefined || (best && estimate >= best.shadowMs)) continue;
    let reservation: Reservation | undefined = { nodeId: node.nodeId, shadowMs: estimate, freed: attempts.filter((a) => a.endMs <= estimate).map((a) => a.claim) };
    if (!fleet.fitsAfter(node.nodeId, demand, reservation.freed, holder)) reservation = searchStart(fleet, node.nodeId, demand, holder, attempts, nowMs);
    if (reservation && (!best || reservation.shadowMs < best.shadowMs)) best = reservation;
  }
  return best;
}

/** The estimate from GPU and replica free times alone; undefined when the node could never take it. */
function estimateStart(node: FleetNode, demand: Demand, holder: string, attempts: Array<{ claim: Claim; endMs: number }>, nowMs: number): number | undefined {
  if (demand.kind === 'cpu' || node.health !== 'ready') return undefined;
  // Predicted ends: of each job, and of each replica's first and last sequence.
  const jobEnd = new Map<number, number>();
  const replicaEnds = new Map<string, { first: number; last: number }>();
  for (const a of attempts) {
    const id = a.claim.replicaId;
    if (id === undefined) {
      jobEnd.set(a.claim.key, a.endMs);
      continue;
    }
    const ends = replicaEnds.get(id);
    if (!ends) replicaEnds.set(id, { first: a.endMs, last: a.endMs });
    else {
      ends.first = Math.min(ends.first, a.endMs);
      ends.last = Math.max(ends.last, a.endMs);
    }
  }
  const gpuFree: number[] = [];
  for (const g of node.gpus) {
    if (g.heldFor !== undefined && g.heldFor !== holder) continue;
    if (g.job) gpuFree.push(jobEnd.get(g.job.key) ?? nowMs);
    else if (g.replica) gpuFree.push(replicaEnds.get(g.replica.id)?.last ?? nowMs);
    else gpuFree.push(nowMs);
  }
  gpuFree.sort((a, b) => a - b);
  if (demand.kind === 'gpus') return gpuFree.length >= demand.gpuCount ? gpuFree[demand.gpuCount - 1] : undefined;
  // A sequence: a slot in a replica of its model, or one GPU for a new replica.
  let soonest = gpuFree[0] ?? Infinity;
  for (const r of node.replicas.values()) {
    if (r.model !== demand.model || (r.heldFor !== undefined && r.heldFor !== holder)) continue;
    if (r.sequences < r.maxSequences) return nowMs;
    soonest = Math.min(soonest, replicaEnds.get(r.id)?.first ?? nowMs);
  }
  return Number.isFinite(soonest) ? soonest : undefined;
}

/** The fewest running claims, in predicted-end order, whose release lets it fit (releasing more never leaves less room). */
function searchStart(fleet: Fleet, nodeId: string, demand: Demand, holder: string, attempts: Array<{ claim: Claim; endMs: number }>, nowMs: number): Reservation | undefined {
  const sorted = [...attempts].sort((a, b) => a.endMs - b.endMs);
  const claims = sorted.map((a) => a.claim);
  if (!fleet.fitsAfter(nodeId, demand, claims, holder)) return undefined;
  let lo = 0;
  let hi = claims.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (fleet.fitsAfter(nodeId, demand, claims.slice(0, mid), holder)) hi = mid;
    else lo = mid + 1;
  }
  return { nodeId, shadowMs: lo === 0 ? nowMs : sorted[lo - 1]!.endMs, freed: claims.slice(0, lo) };
}
