import type { TaskSpec } from '@autoglm/proto';
import { decodeStepSeconds, prefillSeconds } from '../sim/latency-model';
import { durationToMillis } from '../time';

/** A batch job that says nothing about its length is assumed to take this long until jobs like it have run. */
const DEFAULT_BATCH_MS = 60_000;
/** Weight of the newest observation in the moving average. */
const ALPHA = 0.2;
/** Observations far off the prior are clamped to this factor either way (one runaway job is not the norm). */
const MAX_RATIO = 20;

/**
 * Predicts a task's run time, for deadline slack, learned online.
 *
 * Each task has a prior: for inference, the simulator's public latency model
 * (prefill of its input plus one decode step per output token); for a batch
 * job, the duration its submitter expects. What tasks of the same kind (model,
 * or batch program) actually took, over their prior, is averaged (EWMA), and
 * the prediction is prior × that ratio. So a model served on slower GPUs, or a
 * team whose guesses are always half the truth, is corrected after a few tasks,
 * which Slurm's user-supplied time limits never are.
 */
export class RunTimePredictor {
  private readonly ratios = new Map<string, { ratio: number; observed: number }>();

  /** Predicted run time (ms). */
  predict(spec: TaskSpec): number {
    return priorMs(spec) * (this.ratios.get(kindOf(spec))?.ratio ?? 1);
  }

  /** Learns from a finished attempt's run time. */
  observe(spec: TaskSpec, runMs: number): void {
    if (!(runMs > 0) || !Number.isFinite(runMs)) return;
    const prior = priorMs(spec);
    if (!(prior > 0)) return;
    const ratio = Math.min(MAX_RATIO, Math.max(1 / MAX_RATIO, runMs / prior));
    const kind = kindOf(spec);
    const s = this.ratios.get(kind);
    if (!s) this.ratios.set(kind, { ratio, observed: 1 });
    else {
      s.ratio += ALPHA * (ratio - s.ratio);
      s.observed += 1;
    }
  }

  /** How many run times of this kind it has learned from. */
  observations(spec: TaskSpec): number {
    return this.ratios.get(kindOf(spec))?.observed ?? 0;
  }
}

function kindOf(spec: TaskSpec): string {
  if (spec.payload?.$case === 'batch') return `batch:${spec.model}:${spec.payload.batch.command[0] ?? ''}`;
  return `model:${spec.model}`;
}

function priorMs(spec: TaskSpec): number {
  if (spec.payload?.$case === 'batch') {
    const expected = spec.payload.batch.expectedDuration;
    return expected ? Math.max(1, durationToMillis(expected)) : DEFAULT_BATCH_MS;
  }
  const out = Math.max(1, spec.maxOutputTokens);
  // One sequence decoding with its context growing from the prompt to the prompt plus its output.
  const decode = out * decodeStepSeconds(1, spec.inputTokens + out / 2);
  return (prefillSeconds(spec.inputTokens) + decode) * 1000;
}
