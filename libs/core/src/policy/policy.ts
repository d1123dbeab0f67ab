import type { Duration, PolicyUpdate } from '@autoglm/proto';
import { InvalidArgumentError } from '../errors';
import { durationToMillis } from '../time';

const DAY_MS = 24 * 3600 * 1000;

/** The priority factors of docs/architecture.md, "Policy". */
export const FACTORS = ['class', 'age', 'deadline', 'dependency', 'business', 'fairshare', 'size', 'cost'] as const;
export type FactorName = (typeof FACTORS)[number];

export type Weights = Record<FactorName, number>;

/**
 * Named starting points, Slurm-style integer weights. In each, `size` is
 * worth (size / age) × the age bound of waiting: the longest work overtakes
 * the shortest after that long (realtime: 3 age bounds), so short work goes
 * first and long work's wait stays bounded. Fair share weighs at least
 * twice age (see fairShareValue).
 */
export const PRESETS: Record<'realtime' | 'batch' | 'balanced', Weights> = {
  realtime: { class: 10000, age: 500, deadline: 4000, dependency: 500, business: 1000, fairshare: 1000, size: 1500, cost: 0 },
  batch: { class: 2000, age: 3000, deadline: 1000, dependency: 2000, business: 1000, fairshare: 20000, size: 3000, cost: 500 },
  balanced: { class: 5000, age: 1500, deadline: 2500, dependency: 1000, business: 1000, fairshare: 3000, size: 3000, cost: 0 },
};

/** How the factors are shaped over time and counts. */
export interface PriorityShape {
  /**
   * The age bound: age grows linearly to 1 over this much runnable time (and
   * stops there). A task that has waited this long is overdue: overdue tasks
   * get a share of the placements ahead of priority order, and the oldest one
   * that fits nowhere has a node reserved for it. @default 10 minutes
   */
  maxAgeMs: number;
  /** Deadline urgency is 0.5 when this much slack is left, 1 when none is. @default 5 minutes */
  deadlineHorizonMs: number;
  /** The dependency factor is 0.5 with this many tasks waiting behind. @default 8 */
  dependentsHalf: number;
  /**
   * The size factor (predicted run time, short first) is 0 at one second or
   * less and reaches 1, on a log scale, at this much. @default 1 hour
   */
  sizeHorizonMs: number;
}

export interface Policy extends PriorityShape {
  version: number;
  preset: keyof typeof PRESETS;
  weights: Weights;
  /** Multipliers on a tenant's fair share (1 when absent), 0..100. */
  tenantBoosts: Record<string, number>;
  /** Fair share: past usage counts half after this long. @default 10 minutes */
  fairShareHalfLifeMs: number;
  /** At least this fraction of placements goes to overdue tasks while there are any. @default 0.1 */
  overdueShare: number;
  /**
   * Work below the urgent class preempts only after waiting this long
   * runnable: capacity often frees by itself sooner than that, without
   * throwing away a preemptible job's progress. @default 1 second
   */
  preemptAfterMs: number;
  /** As preemptAfterMs, for urgent work. @default 250 ms */
  urgentPreemptAfterMs: number;
  /**
   * Rank preemption (higher class or priority) stops only attempts that have
   * run less than this: what preempting throws away stays small, and work
   * that has got going is left to finish. Quota reclaim is not limited by it.
   * @default 10 seconds
   */
  preemptMaxRunMs: number;
  /**
   * A task waiting for capacity this long gets a reservation: GPUs whose
   * running work is predicted to end soonest are kept for it from then on,
   * and only work predicted to end before it starts may use them meanwhile
   * (backfill). Large jobs so start within the age bound without GPUs held
   * idle. @default 5 minutes (half the age bound)
   */
  reserveAfterMs: number;
  /**
   * Batch jobs below urgent (not overdue or reserved) start only where they
   * leave open as many GPUs as inference used more, at its peak over this
   * window, than it uses now: a burst that just ended tends to come back,
   * and a job started in the lull would hold its GPUs through it. 0: off.
   * @default 2 minutes
   */
  inferenceHeadroomMs: number;
}

export const DEFAULT_PRIORITY_SHAPE: PriorityShape = {
  maxAgeMs: 10 * 60_000,
  deadlineHorizonMs: 5 * 60_000,
  dependentsHalf: 8,
  sizeHorizonMs: 3600_000,
};

export const DEFAULT_POLICY: Policy = {
  version: 1,
  preset: 'balanced',
  weights: { ...PRESETS.balanced },
  tenantBoosts: {},
  ...DEFAULT_PRIORITY_SHAPE,
  fairShareHalfLifeMs: 10 * 60_000,
  overdueShare: 0.1,
  preemptAfterMs: 1000,
  urgentPreemptAfterMs: 250,
  preemptMaxRunMs: 10_000,
  reserveAfterMs: 5 * 60_000,
  inferenceHeadroomMs: 2 * 60_000,
};

/** Most replicas of one model an update may ask to keep warm. */
export const MAX_WARM_REPLICAS = 64;

/** Validates an update's warm_replicas (per model, 0 removes): the fleet's run-time keep-warm floors. */
export function parseWarmReplicas(warm: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [model, n] of Object.entries(warm)) {
    if (model.trim() === '') throw new InvalidArgumentError('update.warm_replicas', 'a model name is empty; name the model whose replicas to keep warm');
    if (!Number.isInteger(n) || n < 0 || n > MAX_WARM_REPLICAS) {
      throw new InvalidArgumentError(`update.warm_replicas["${model}"]`, `must be a whole number from 0 to ${MAX_WARM_REPLICAS}, got ${n}`);
    }
    out[model] = n;
  }
  return out;
}

/** The most a tenant's boost may be (an operator's, and with the feedback loop's factor on it). */
const MAX_BOOST = 100;

/** The feedback loop's whole state as the monitor sends it: its factors on tenants' boosts, and warm floors. */
export interface Feedback {
  readonly boosts: Readonly<Record<string, number>>;
  readonly floors: Readonly<Record<string, number>>;
}

/**
 * Validates the monitor's update: the loop's whole state, tenant_boosts (its
 * factors, multiplying the operators' boosts) and warm_replicas, and nothing
 * an operator sets.
 */
export function parseFeedback(update: PolicyUpdate): Feedback {
  const operatorOnly = update.preset !== '' || Object.keys(update.weights).length > 0 || update.maxAge !== undefined || update.fairShareHalfLife !== undefined ||
    update.preemptAfter !== undefined || update.urgentPreemptAfter !== undefined || update.preemptMaxRun !== undefined || update.reserveAfter !== undefined || update.inferenceHeadroom !== undefined;
  if (operatorOnly) throw new InvalidArgumentError('update', "the monitor's updates carry tenant_boosts and warm_replicas only; the rest of the policy is the operators'");
  const boosts: Record<string, number> = {};
  for (const [tenant, factor] of Object.entries(update.tenantBoosts)) {
    if (!Number.isFinite(factor) || factor <= 0 || factor > MAX_BOOST) {
      throw new InvalidArgumentError(`update.tenant_boosts["${tenant}"]`, `a feedback factor must be above 0 and at most ${MAX_BOOST}, got ${factor}`);
    }
    boosts[tenant] = factor;
  }
  return { boosts, floors: parseWarmReplicas(update.warmReplicas) };
}

/** The boosts in force: each operator's boost times the feedback loop's factor for the tenant, at most MAX_BOOST. */
export function combinedBoosts(operator: Readonly<Record<string, number>>, feedback: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(Object.entries(operator));
  for (const [tenant, factor] of Object.entries(feedback)) out[tenant] = Math.min(MAX_BOOST, (operator[tenant] ?? 1) * factor);
  return out;
}

/** Applies an update to a policy, validating every field; returns the new policy (version + 1). */
export function applyPolicyUpdate(policy: Policy, update: PolicyUpdate): Policy {
  let next: Policy = { ...policy, weights: { ...policy.weights }, tenantBoosts: { ...policy.tenantBoosts } };
  if (update.preset) {
    if (!Object.hasOwn(PRESETS, update.preset)) {
      throw new InvalidArgumentError('update.preset', `unknown preset "${update.preset}"; use one of ${Object.keys(PRESETS).join(', ')}`);
    }
    const preset = update.preset as keyof typeof PRESETS;
    next = { ...next, preset, weights: { ...PRESETS[preset] } };
  }
  for (const [name, value] of Object.entries(update.weights)) {
    if (!(FACTORS as readonly string[]).includes(name)) {
      throw new InvalidArgumentError(`update.weights["${name}"]`, `unknown factor; known: ${FACTORS.join(', ')}`);
    }
    if (!Number.isFinite(value) || value < 0 || value > 100000) {
      throw new InvalidArgumentError(`update.weights["${name}"]`, `weight must be between 0 and 100000, got ${value}`);
    }
    next.weights[name as FactorName] = value;
  }
  for (const [tenant, boost] of Object.entries(update.tenantBoosts)) {
    if (!Number.isFinite(boost) || boost < 0 || boost > MAX_BOOST) {
      throw new InvalidArgumentError(`update.tenant_boosts["${tenant}"]`, `boost must be between 0 and 100, got ${boost}`);
    }
    next.tenantBoosts[tenant] = boost;
  }
  if (update.maxAge) next.maxAgeMs = durationIn(update.maxAge, 'update.max_age', 1000, 7 * DAY_MS);
  if (update.fairShareHalfLife) next.fairShareHalfLifeMs = durationIn(update.fairShareHalfLife, 'update.fair_share_half_life', 1000, 30 * DAY_MS);
  if (update.preemptAfter) next.preemptAfterMs = durationIn(update.preemptAfter, 'update.preempt_after', 0, DAY_MS);
  if (update.urgentPreemptAfter) next.urgentPreemptAfterMs = durationIn(update.urgentPreemptAfter, 'update.urgent_preempt_after', 0, DAY_MS);
  if (update.preemptMaxRun) next.preemptMaxRunMs = durationIn(update.preemptMaxRun, 'update.preempt_max_run', 0, DAY_MS);
  if (update.reserveAfter) next.reserveAfterMs = durationIn(update.reserveAfter, 'update.reserve_after', 0, 7 * DAY_MS);
  if (update.inferenceHeadroom) next.inferenceHeadroomMs = durationIn(update.inferenceHeadroom, 'update.inference_headroom', 0, DAY_MS);
  next.version = policy.version + 1;
  return next;
}

function durationIn(d: Duration, field: string, minMs: number, maxMs: number): number {
  const ms = durationToMillis(d);
  if (!Number.isFinite(ms) || ms < minMs || ms > maxMs) {
    throw new InvalidArgumentError(field, `must be between ${minMs / 1000} s and ${maxMs / DAY_MS} days, got ${ms / 1000} s`);
  }
  return ms;
}
