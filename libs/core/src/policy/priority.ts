import { PriorityClass } from '@autoglm/proto';
import { DEFAULT_PRIORITY_SHAPE, FACTORS, type FactorName, type PriorityShape, type Weights } from './policy';

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
  /** Its class, or a higher one lent by a waiting dependent (priority inheritance). */
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
  /**
   * The tenant's decayed usage divided by its fair share (0 unused, 1 exactly
   * its share, 2 twice its share). Undefined when shares are not in use.
   */
  usageOverShare?: number;
  /** The task's share of one node's resources, 0..1 (GPUs and GPU memory, the larger). */
  resourceShare: number;
  /** Its predicted run time (ms), learned online (RunTimePredictor); unknown counts as short. */
  predictedRunMs?: number;
}

/** One factor's part in a priority. */
export interface FactorContribution {
  name: FactorName;
  /** Normalised value in [0, 1]. */
  value: number;
  weight: number;
  /** weight * value; negative for the size and cost penalties. */
  contribution: number;
}

const clamp01 = (x: number): number => (Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0);

/** Urgent 1, normal 0.5, background 0 (unknown classes count as normal). */
export function classValue(priorityClass: PriorityClass): number {
  return priorityClass === PriorityClass.URGENT ? 1 : priorityClass === PriorityClass.BACKGROUND ? 0 : 0.5;
}

/** Linear in runnable wait, capped at 1 at the age bound. */
export function ageValue(waitMs: number, maxAgeMs: number): number {
  return clamp01(waitMs / maxAgeMs);
}

/** Smooth and monotone: 0 without a deadline or far from it, 0.5 at the horizon, 1 once there is no slack. */
export function deadlineValue(slackMs: number | undefined, horizonMs: number): number {
  if (slackMs === undefined || Number.isNaN(slackMs)) return 0;
  return slackMs <= 0 ? 1 : clamp01(horizonMs / (horizonMs + slackMs));
}

/** 0 with nothing waiting behind, 0.5 at `half` dependents, towards 1 with more. */
export function dependencyValue(dependents: number, half: number): number {
  return clamp01(dependents / (dependents + half));
}

/** The submission's priority, -1000..1000, mapped onto [0, 1]. */
export function businessValue(priority: number): number {
  return clamp01((priority + 1000) / 2000);
}

/** Fair share halves with each quarter of its share a tenant uses beyond it. */
const FAIR_SHARE_STEEPNESS = 4;

/**
 * Fair share: 1 for a tenant within its share, halving with each quarter of
 * a share it uses beyond (0.5 at 1.25 times its share, 1/16 at twice it); 1
 * without shares. The presets weigh fair share at least twice age, so a
 * tenant at 1.25 times its share or more loses more than any age can give
 * back: its backlog, however old, does not pass a tenant within its share.
 * Tenants within
 * their shares are not told apart: a tenant asking for less than its share
 * gets what it asks (the max-min fair allocation), and among tenants that
 * all contend, only those over their share fall behind. So fair share moves
 * capacity from a tenant that floods to those it crowds out, and otherwise
 * leaves the order to the other factors rather than imposing a tenant order.
 */
export function fairShareValue(usageOverShare: number | undefined): number {
  return usageOverShare === undefined ? 1 : clamp01(2 ** -(FAIR_SHARE_STEEPNESS * Math.max(0, usageOverShare - 1)));
}

/** Run times the size factor tells apart from the shortest: a second or less is 0. */
const SIZE_FLOOR_MS = 1000;

/** Predicted run time on a log scale: 0 up to a second, 1 at the horizon and beyond (short work first). */
export function sizeValue(predictedRunMs: number | undefined, horizonMs: number): number {
  if (predictedRunMs === undefined || !(predictedRunMs > SIZE_FLOOR_MS)) return 0;
  return clamp01(Math.log(predictedRunMs / SIZE_FLOOR_MS) / Math.log(Math.max(2, horizonMs / SIZE_FLOOR_MS)));
}

/** Each factor's normalised value. */
export function priorityFactors(inputs: PriorityInputs, shape: PriorityShape = DEFAULT_PRIORITY_SHAPE): Record<FactorName, number> {
  return {
    class: classValue(inputs.priorityClass),
    age: ageValue(inputs.waitMs, shape.maxAgeMs),
    deadline: deadlineValue(inputs.slackMs, shape.deadlineHorizonMs),
    dependency: dependencyValue(inputs.dependents, shape.dependentsHalf),
    business: businessValue(inputs.priority),
    fairshare: fairShareValue(inputs.usageOverShare),
    size: sizeValue(inputs.predictedRunMs, shape.sizeHorizonMs),
    cost: clamp01(inputs.resourceShare),
  };
}

/** The priority and each factor's part in it, in FACTORS order. */
export function explainPriority(inputs: PriorityInputs, weights: Weights, shape: PriorityShape = DEFAULT_PRIORITY_SHAPE): { priority: number; factors: FactorContribution[] } {
  const values = priorityFactors(inputs, shape);
  const factors = FACTORS.map((name) => {
    const weight = weights[name];
    const sign = name === 'cost' || name === 'size' ? -1 : 1;
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
    weights.size * v.size -
    weights.cost * v.cost
  );
}

/** Negative submitted priority marks work that may be shed under overload and preempted first. */
export function isSheddable(priority: number): boolean {
  return priority < 0;
}
