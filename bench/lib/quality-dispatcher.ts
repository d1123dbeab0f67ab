import { PriorityClass } from '@autoglm/proto';
import { DEFAULT_POLICY, Dispatcher, FACTORS, FairShare, PRESETS, type Claim, type Fleet, type Policy, type Weights } from '@autoglm/core';
import type { Scheduler, SimOptions } from './quality-sim';
import type { Work } from './quality-workload';

/** The Dispatcher's policies, in words, for the report. */
export const DISPATCHER_DESCRIPTIONS = {
  static: 'static priority: the Dispatcher with the class weight only (FIFO within a class; no age, deadline, fair share or cost; no age bound; no preemption)',
  dynamic:
    "the Dispatcher as the project configures it (DEFAULT_POLICY of @autoglm/core, or --preset's weights), fed what decision feeds it: every task's predicted run time, a deadline for urgent requests (arrival + SLO + predicted run), tenants' fair-share weights; it may preempt batch jobs",
};

/** Far enough never to come in a run. */
const NEVER_MS = 365 * 24 * 3600_000;

/**
 * Static priority: the class weight alone (every other factor, whichever
 * the project defines, at 0), so the order is class, then arrival; no task
 * ever becomes overdue, no waiting-time rule (the age bound, a
 * reservation after waiting) ever fires, and batch jobs take any free GPU
 * (no headroom kept for inference).
 */
function staticPolicy(): Policy {
  const weights = Object.fromEntries(FACTORS.map((f) => [f, f === 'class' ? 10_000 : 0])) as Weights;
  return { ...DEFAULT_POLICY, weights, maxAgeMs: NEVER_MS, overdueShare: 0, reserveAfterMs: NEVER_MS, inferenceHeadroomMs: 0 };
}

/** Static priority and the dynamic policy: the project's Dispatcher, FairShare and Fleet, as decision drives them. */
export class DispatcherScheduler implements Scheduler {
  private readonly dispatcher: Dispatcher;
  private readonly dynamic: boolean;
  private readonly byId = new Map<string, Work>();
  /** When each task first became runnable: a preempted task keeps its age, as in decision. */
  private readonly readySince = new Map<string, number>();
  /** Times each task was preempted (decision counts them from its attempts). */
  private readonly preemptions = new Map<string, number>();

  constructor(
    fleet: Fleet,
    policyName: 'static' | 'dynamic',
    private readonly o: SimOptions,
  ) {
    this.dynamic = policyName === 'dynamic';
    const base: Policy =
      o.preset === undefined ? { ...DEFAULT_POLICY, weights: { ...DEFAULT_POLICY.weights } } : { ...DEFAULT_POLICY, preset: o.preset, weights: { ...PRESETS[o.preset] } };
    const policy: Policy = this.dynamic ? { ...base, ...o.policy, weights: { ...base.weights, ...o.policy?.weights } } : staticPolicy();
    const fairShare = new FairShare(o.tenants, { halfLifeMs: policy.fairShareHalfLifeMs, nowMs: 0 });
    this.dispatcher = new Dispatcher({ fleet, fairShare, policy, nowMs: 0, demandOf: (id) => this.byId.get(id)?.demand });
    this.dispatcher.fleetChanged(0);
  }

  get queued(): number {
    return this.dispatcher.size;
  }

  enqueue(work: Work, nowMs: number, predictedRunMs: number): void {
    this.byId.set(work.id, work);
    if (!this.readySince.has(work.id)) this.readySince.set(work.id, nowMs);
    // An interactive request's deadline: its first token within the SLO, so done by then plus its predicted run.
    // (Inference is never preempted, so this is set once per request.)
    const deadlineMs = this.dynamic && work.priorityClass === PriorityClass.URGENT ? work.arrivalMs + this.o.sloTtftMs + predictedRunMs : undefined;
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
        resourceShare: work.gpus / this.o.fleet.gpusPerNode,
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
    if (!this.dynamic) return [];
    const victims = this.dispatcher.preempt(nowMs)?.victims.map((v) => v.id) ?? [];
    for (const id of victims) this.preemptions.set(id, (this.preemptions.get(id) ?? 0) + 1);
    return victims;
  }

  wakeAtMs(): number | undefined {
    return this.dispatcher.preemptionDueAtMs;
  }
}
