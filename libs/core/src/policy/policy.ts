import { PriorityClass, type PolicyUpdate } from '@autoglm/proto';
import { InvalidArgumentError } from '../errors';

/** The priority factors of docs/architecture.md, "Policy". */
export const FACTORS = ['class', 'age', 'deadline', 'dependency', 'business', 'fairshare', 'cost'] as const;
export type FactorName = (typeof FACTORS)[number];

export type Weights = Record<FactorName, number>;

/** Named starting points, Slurm-style integer weights. */
export const PRESETS: Record<'realtime' | 'batch' | 'balanced', Weights> = {
  realtime: { class: 10000, age: 500, deadline: 4000, dependency: 500, business: 1000, fairshare: 1000, cost: 200 },
  batch: { class: 2000, age: 3000, deadline: 1000, dependency: 2000, business: 1000, fairshare: 3000, cost: 500 },
  balanced: { class: 5000, age: 1500, deadline: 2500, dependency: 1000, business: 1000, fairshare: 2000, cost: 300 },
};

export interface Policy {
  version: number;
  preset: keyof typeof PRESETS;
  weights: Weights;
  tenantBoosts: Record<string, number>;
  /** Age reaches 1.0 after this long. @default 7 days, as Slurm's PriorityMaxAge */
  maxAgeMs: number;
}

export const DEFAULT_POLICY: Policy = {
  version: 1,
  preset: 'balanced',
  weights: { ...PRESETS.balanced },
  tenantBoosts: {},
  maxAgeMs: 7 * 24 * 3600 * 1000,
};

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
    if (!Number.isFinite(boost) || boost < 0 || boost > 100) {
      throw new InvalidArgumentError(`update.tenant_boosts["${tenant}"]`, `boost must be between 0 and 100, got ${boost}`);
    }
    next.tenantBoosts[tenant] = boost;
  }
  next.version = policy.version + 1;
  return next;
}

/** The normalised class factor: urgent 1, normal 0.5, background 0. */
export function classFactor(priorityClass: PriorityClass): number {
  if (priorityClass === PriorityClass.URGENT) return 1;
  if (priorityClass === PriorityClass.BACKGROUND) return 0;
  return 0.5;
}

/** The normalised age factor: linear in runnable wait time, capped at 1. */
export function ageFactor(waitMs: number, maxAgeMs: number): number {
  return Math.max(0, Math.min(1, waitMs / maxAgeMs));
}
