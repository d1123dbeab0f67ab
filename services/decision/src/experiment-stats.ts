import type { Task, TaskSpec, VariantStats } from '@autoglm/proto';
import type { DeadlineOutcome, PolicyExperiment } from '@autoglm/core';

interface Counts {
  submitted: number;
  placed: number;
  queueMs: number;
  met: number;
  missed: number;
}

/** What each variant of the running policy experiment's tasks saw, since this decision started. */
export class ExperimentStats {
  private readonly counts: Counts[] = [];

  constructor(readonly experiment: PolicyExperiment | undefined) {
    for (const _ of experiment?.variants ?? []) this.counts.push({ submitted: 0, placed: 0, queueMs: 0, met: 0, missed: 0 });
  }

  /** The variant a task was put in (undefined: none, or one of an experiment no longer running). */
  variantIndex(spec: TaskSpec): number | undefined {
    const experiment = this.experiment;
    if (!experiment || !spec.policyVariant.startsWith(`${experiment.name}/`)) return undefined;
    const i = experiment.variants.findIndex((v) => spec.policyVariant === `${experiment.name}/${v.name}`);
    return i >= 0 ? i : undefined;
  }

  /** A task this process schedules from now on counts as submitted to its variant (so placements never outnumber submissions). */
  submitted(task: Task): void {
    const i = this.variantIndex(task.spec!);
    if (i !== undefined) this.counts[i]!.submitted += 1;
  }

  /** A first attempt placed after `queueMs` in the queue. */
  placed(spec: TaskSpec, queueMs: number): void {
    const i = this.variantIndex(spec);
    if (i === undefined) return;
    this.counts[i]!.placed += 1;
    this.counts[i]!.queueMs += queueMs;
  }

  deadline(spec: TaskSpec, outcome: DeadlineOutcome | undefined): void {
    const i = this.variantIndex(spec);
    if (i === undefined) return;
    if (outcome === 'met') this.counts[i]!.met += 1;
    if (outcome === 'missed') this.counts[i]!.missed += 1;
  }

  report(): VariantStats[] {
    const experiment = this.experiment;
    if (!experiment) return [];
    return experiment.variants.map((v, i) => {
      const c = this.counts[i]!;
      return {
        experiment: experiment.name,
        variant: v.name,
        percent: v.percent,
        submitted: c.submitted,
        placed: c.placed,
        meanQueueSeconds: c.placed > 0 ? c.queueMs / c.placed / 1000 : 0,
        deadlinesMet: c.met,
        deadlinesMissed: c.missed,
      };
    });
  }
}
