import { PolicyUpdate, PriorityClass } from '@autoglm/proto';
import { applyPolicyUpdate, DEFAULT_POLICY, Dispatcher, FairShare, type Claim, type Fleet, type Policy } from '@autoglm/core';
import type { Work } from './quality-workload';

/**
 * The Dispatcher as decision drives it (as quality-dispatcher.ts's dynamic
 * policy: DEFAULT_POLICY, fair shares, a deadline for urgent requests,
 * preemption), with what the feedback loop changes at run time: tenant
 * boosts through a policy update, and the fleet's size when a node drains.
 */
export class LoopDispatcher {
  private readonly dispatcher: Dispatcher;
  private policy: Policy = { ...DEFAULT_POLICY, weights: { ...DEFAULT_POLICY.weights }, tenantBoosts: {} };
  private readonly byId = new Map<string, Work>();
  /** When each task first became runnable: a requeued task keeps its age, as in decision. */
  private readonly readySince = new Map<string, number>();
  private readonly preemptions = new Map<string, number>();

  constructor(
    private readonly fleet: Fleet,
    tenants: Array<{ name: string; share: number }>,
    private readonly gpusPerNode: number,
    private readonly sloTtftMs: number,
  ) {
    const fairShare = new FairShare(tenants, { halfLifeMs: this.policy.fairShareHalfLifeMs, nowMs: 0 });
    this.dispatcher = new Dispatcher({ fleet, fairShare, policy: this.policy, nowMs: 0, demandOf: (id) => this.byId.get(id)?.demand });
    this.dispatcher.fleetChanged(0);
  }

  get queued(): number {
    return this.dispatcher.size;
  }

  enqueue(work: Work, nowMs: number, predictedRunMs: number): void {
    this.byId.set(work.id, work);
    if (!this.readySince.has(work.id)) this.readySince.set(work.id, nowMs);
    const deadlineMs = work.priorityClass === PriorityClass.URGENT ? work.arrivalMs + this.sloTtftMs + predictedRunMs : undefined;
    this.dispatcher.enqueue(
      {
        id: work.id,
        tenant: work.tenant,
        priorityClass: work.priorityClass,
        priority: 0,
        readySinceMs: this.readySince.get(work.id)!,
        preemptions: this.preemptions.get(work.id) ?? 0,
        deadlineMs,
        predictedRunMs,
        resourceShare: work.gpus / this.gpusPerNode,
        preemptible: work.preemptible,
      },
      nowMs,
    );
  }

  place(nowMs: number, start: (work: Work, claim: Claim) => void): void {
    for (const p of this.dispatcher.dispatch(nowMs)) start(this.byId.get(p.task.id)!, p.claim);
  }

  released(work: Work, nowMs: number): void {
    this.dispatcher.release(work.id, nowMs);
  }

  preempt(nowMs: number): string[] {
    const victims = this.dispatcher.preempt(nowMs)?.victims.map((v) => v.id) ?? [];
    for (const id of victims) this.preemptions.set(id, (this.preemptions.get(id) ?? 0) + 1);
    return victims;
  }

  wakeAtMs(): number | undefined {
    return this.dispatcher.preemptionDueAtMs;
  }

  /** A tenant boost from the loop, applied as decision applies a PolicyUpdate. */
  boost(tenant: string, factor: number, nowMs: number): void {
    this.policy = applyPolicyUpdate(this.policy, PolicyUpdate.fromPartial({ tenantBoosts: { [tenant]: factor }, source: 'monitor' }));
    this.dispatcher.setPolicy(this.policy, nowMs);
  }

  /** A node drained or came back: fair shares are measured against the fleet's new size. */
  fleetChanged(nowMs: number): void {
    this.dispatcher.fleetChanged(nowMs);
  }
}
