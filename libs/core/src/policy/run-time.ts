import type { TaskSpec } from '@autoglm/proto';
import { decodeStepSeconds, prefillSeconds } from '../sim/latency-model';
import { durationToMillis } from '../time';

/** A batch job that says nothing about its length is assumed to take this long until jobs like it have run. */
const DEFAULT_BATCH_MS = 60_000;
/**
 * Output tokens assumed for a request before any like it has finished (when
 * its max_tokens allows that many): a conversational reply, not the cap,
 * which clients set far above what they get back.
 */
const DEFAULT_OUTPUT_TOKENS = 256;
/** Weight of the newest observation in the moving averages. */
const ALPHA = 0.2;
/** Weight of the newest output length in its moving average (outputs vary more than speeds). */
const OUTPUT_ALPHA = 0.05;
/** Observations far off the prior are clamped to this factor either way (one runaway job is not the norm). */
const MAX_RATIO = 20;
/** A tenant's own output history is used once it has this many observations (its model's before that). */
const MIN_TENANT_OBSERVATIONS = 8;

/** What a finished attempt tells the predictor besides its run time. */
export interface RunOutcome {
  /** Whose task it was: output lengths are learned per model and tenant. */
  tenant?: string;
  /** Tokens it generated (an inference task's completion tokens). */
  outputTokens?: number;
}

interface Ewma {
  value: number;
  observed: number;
}

/**
 * Predicts a task's run time from what is known when it is submitted, learned
 * online. No prediction ever sees how long the task itself will turn out to be.
 *
 * Inference: the simulator's public latency model (prefill of the prompt, then
 * one decode step per output token), for a predicted output length: the
 * moving average of what requests of the same model and tenant (the model's,
 * until the tenant has enough history) generated, never more than the
 * request's max_tokens. How much longer the model's requests really take than
 * that model says (slower GPUs, busy batches) is learned as a ratio, measured
 * against each finished request's real output so that speed and length are
 * learned apart.
 *
 * Batch: the duration its submitter expects, times what jobs of the same
 * program really took over their submitters' guesses (EWMA). So a model served
 * on slower GPUs, or a team whose guesses are always half the truth, is
 * corrected after a few tasks, which Slurm's user-supplied time limits never are.
 */
export class RunTimePredictor {
  private readonly ratios = new Map<string, Ewma>();
  private readonly outputs = new Map<string, Ewma>();

  /** Predicted run time (ms). */
  predict(spec: TaskSpec, tenant?: string): number {
    return priorMs(spec, this.outputTokensFor(spec, tenant)) * (this.ratios.get(kindOf(spec))?.value ?? 1);
  }

  /** Predicted output tokens of an inference request (0 for a batch job). */
  predictOutputTokens(spec: TaskSpec, tenant?: string): number {
    return isBatch(spec) ? 0 : this.outputTokensFor(spec, tenant);
  }

  /** Learns from a finished attempt's run time (and, for inference, what it generated). */
  observe(spec: TaskSpec, runMs: number, outcome: RunOutcome = {}): void {
    if (!(runMs > 0) || !Number.isFinite(runMs)) return;
    const generated = outcome.outputTokens;
    const known = !isBatch(spec) && generated !== undefined && Number.isFinite(generated) && generated >= 0;
    const prior = priorMs(spec, known ? Math.max(1, generated) : this.outputTokensFor(spec, outcome.tenant));
    if (!(prior > 0)) return;
    update(this.ratios, kindOf(spec), Math.min(MAX_RATIO, Math.max(1 / MAX_RATIO, runMs / prior)), ALPHA);
    if (known) {
      update(this.outputs, outputKey(spec.model, undefined), generated, OUTPUT_ALPHA);
      if (outcome.tenant !== undefined) update(this.outputs, outputKey(spec.model, outcome.tenant), generated, OUTPUT_ALPHA);
    }
  }

  /** How many run times of this kind it has learned from. */
  observations(spec: TaskSpec): number {
    return this.ratios.get(kindOf(spec))?.observed ?? 0;
  }

  private outputTokensFor(spec: TaskSpec, tenant: string | undefined): number {
    const own = tenant === undefined ? undefined : this.outputs.get(outputKey(spec.model, tenant));
    const learned = own && own.observed >= MIN_TENANT_OBSERVATIONS ? own : this.outputs.get(outputKey(spec.model, undefined));
    const expected = learned?.value ?? DEFAULT_OUTPUT_TOKENS;
    // max_tokens 0 leaves the length to the server: nothing caps the guess.
    return Math.max(1, spec.maxOutputTokens > 0 ? Math.min(spec.maxOutputTokens, expected) : expected);
  }
}

function update(map: Map<string, Ewma>, key: string, x: number, alpha: number): void {
  const s = map.get(key);
  if (!s) map.set(key, { value: x, observed: 1 });
  else {
    s.value += alpha * (x - s.value);
    s.observed += 1;
  }
}

function isBatch(spec: TaskSpec): boolean {
  return spec.payload?.$case === 'batch';
}

function kindOf(spec: TaskSpec): string {
  if (spec.payload?.$case === 'batch') return `batch:${spec.model}:${spec.payload.batch.command[0] ?? ''}`;
  return `model:${spec.model}`;
}

function outputKey(model: string, tenant: string | undefined): string {
  return tenant === undefined ? `model:${model}` : `model:${model}\u0000${tenant}`;
}

/** The run time the latency model gives (or the submitter expects), before learned corrections. */
function priorMs(spec: TaskSpec, outputTokens: number): number {
  if (spec.payload?.$case === 'batch') {
    const expected = spec.payload.batch.expectedDuration;
    return expected ? Math.max(1, durationToMillis(expected)) : DEFAULT_BATCH_MS;
  }
  const out = Math.max(1, outputTokens);
  // One sequence decoding with its context growing from the prompt to the prompt plus its output.
  const decode = out * decodeStepSeconds(1, spec.inputTokens + out / 2);
  return (prefillSeconds(spec.inputTokens) + decode) * 1000;
}
