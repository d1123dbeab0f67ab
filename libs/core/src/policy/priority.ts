import { PriorityClass } from '@autoglm/proto';
import { FACTORS, type FactorName, type Weights } from './policy';

/**
 * Multi-factor priority, in the style of Slurm's multifactor plugin: each
 * factor is normalised to [0, 1] and weighted by an integer weight, so each
 * one's influence is explicit, tunable and explainable. The resource-cost
 * factor is a penalty: its contribution is subtracted.
 *
 * This module only computes; what feeds it (usage decay, run-time prediction,
 * dependency counts) lives with its owner.
 */

/** What the priority of one runnable task depends on. */
export interface PriorityInputs {
  priorityClass: PriorityClass;
  /**
   * Time spent runnable (ms). The caller does not count time spent waiting
   * for dependencies, so age is frozen while they are unmet.
   */
  waitMs: number;
  /**
   * Slack (ms): deadline - now - predicted run time; negative when the
   * deadline can no longer be met. Undefined for a task without a deadline.
   */
  slackMs?: number;
  /** How many tasks wait (directly or not) on this one. */
  dependents: number;
  /** The submission's priority within its class, -1000..1000 (negative: sheddable). */
  priority: number;
  /** The tenant's boost from the policy, 0..100. */
  tenantBoost: number;
  /**
   * The tenant's decayed usage divided by its fair share (0 unused, 1 exactly
   * its share, 2 twice its share). Undefined when shares are not in use.
   */
  usageOverShare?: number;
  /** The task's share of one node's resources, 0..1 (GPUs and GPU memory, the larger). */
  resourceShare: number;
}

/** How the factors are shaped: where each curve reaches its midpoint. */
export interface PriorityShape {
  /** Age reaches 1 after this long (Slurm's PriorityMaxAge). */
  maxAgeMs: number;
  /** Deadline urgency is 0.5 when this much slack is left, 1 when none is. */
  deadlineHorizonMs: number;
  /** The dependency factor is 0.5 with this many dependents. */
  dependentsHalf: number;
}

export const DEFAULT_PRIORITY_SHAPE: PriorityShape = {
  maxAgeMs: 7 * 24 * 3600 * 1000,
  deadlineHorizonMs: 5 * 60 * 1000,
  dependentsHalf: 8,
};

/** One factor's part in a priority. */
export interface FactorContribution {
  name: FactorName;
  /** Normalised value in [0, 1]. */
  value: number;
  weight: number;
  /** weight * value; negative for the cost penalty. */
  contribution: number;
}

const clamp01 = (x: number): number => (Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0);

/** Each factor's normalised value. */
export function priorityFactors(inputs: PriorityInputs, shape: PriorityShape = DEFAULT_PRIORITY_SHAPE): Record<FactorName, number> {
  const slack = inputs.slackMs;
  return {
    class: inputs.priorityClass === PriorityClass.URGENT ? 1 : inputs.priorityClass === PriorityClass.BACKGROUND ? 0 : 0.5,
    age: clamp01(inputs.waitMs / shape.maxAgeMs),
    // Smooth and monotone: 0 far from the deadline, 0.5 at the horizon, 1 once there is no slack.
    deadline: slack === undefined ? 0 : slack <= 0 ? 1 : clamp01(shape.deadlineHorizonMs / (shape.deadlineHorizonMs + slack)),
    dependency: clamp01(inputs.dependents / (inputs.dependents + shape.dependentsHalf)),
    business: clamp01((inputs.priority + 1000) / 2000 + inputs.tenantBoost / 200),
    // Slurm's classic fair-share curve: 1 unused, 0.5 at the share, halving with each further share.
    fairshare: inputs.usageOverShare === undefined ? 0.5 : clamp01(2 ** -Math.max(0, inputs.usageOverShare)),
    cost: clamp01(inputs.resourceShare),
  };
}

/** The priority and each factor's part in it, in FACTORS order. */
export function explainPriority(inputs: PriorityInputs, weights: Weights, shape: PriorityShape = DEFAULT_PRIORITY_SHAPE): { priority: number; factors: FactorContribution[] } {
  const values = priorityFactors(inputs, shape);
  const factors = FACTORS.map((name) => {
    const weight = weights[name];
    const sign = name === 'cost' ? -1 : 1;
    return { name, value: values[name], weight, contribution: sign * weight * values[name] };
  });
  return { priority: factors.reduce((sum, f) => sum + f.contribution, 0), factors };
}

/** The priority alone (the hot path: no explanation objects). */
export function priorityOf(inputs: PriorityInputs, weights: Weights, shape: PriorityShape = DEFAULT_PRIORITY_SHAPE): number {
  const v = priorityFactors(inputs, shape);
  return (
    weights.class * v.class +
    weights.age * v.age +
    weights.deadline * v.deadline +
    weights.dependency * v.dependency +
    weights.business * v.business +
    weights.fairshare * v.fairshare -
    weights.cost * v.cost
  );
}

/** Negative submitted priority marks work that may be shed under overload and preempted first. */
export function isSheddable(priority: number): boolean {
  return priority < 0;
}
