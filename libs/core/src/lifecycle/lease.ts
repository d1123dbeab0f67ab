/**
 * Lease timing shared by decision and agents. Decision declares an agent lost
 * when it has heard nothing from it for a lease; the agent stops its work
 * (self-fencing) when it has heard nothing from decision for a lease minus one
 * heartbeat, which is sooner: so two agents never run the same attempt
 * because of a partition, only because of a slow agent still finishing one
 * decision has already taken back.
 */

/** How often decision sends a heartbeat on Connect: every second, or a third of the lease when that is shorter. */
export function heartbeatIntervalMs(leaseMs: number): number {
  return Math.max(50, Math.min(1000, Math.floor(leaseMs / 3)));
}

/** How long an agent may hear nothing from decision before it fences itself. */
export function selfFenceAfterMs(leaseMs: number, heartbeatMs: number): number {
  return Math.max(heartbeatMs, leaseMs - heartbeatMs);
}
