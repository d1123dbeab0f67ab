import { DEFAULT_SIM_LOAD_BYTES_PER_SECOND, type ModelShape } from '@autoglm/core';

/**
 * The quality benchmark's workload recipe: who submits what, when the
 * workload changes, and what a submission says about itself. Shares of time
 * are fractions of the replayed span (0 = first trace arrival, 1 = last).
 * quality-workload.ts turns it into tasks; describeMix() prints it.
 */

export type ClassName = 'urgent' | 'normal' | 'background';

export interface TenantProfile {
  name: string;
  /** Fair-share weight. */
  share: number;
  /** Part of the trace's requests it sends. */
  requests: number;
  /** Its requests' classes. */
  classes: Record<ClassName, number>;
  /** max_tokens its clients send when the caller sets none (one client per request, evenly). */
  clientCaps: number[];
}

/**
 * Shares 3:2:1, and demand that does not follow them: product sends half the
 * requests, mostly interactive, and few batch jobs; research sends few
 * requests, mostly background, and most of the batch work; internal is
 * small by share but sends a third of the requests and floods with batch
 * jobs part-way (FLOOD).
 */
export const TENANTS: readonly TenantProfile[] = [
  { name: 'product', share: 3, requests: 0.5, classes: { urgent: 0.35, normal: 0.55, background: 0.1 }, clientCaps: [512, 1024] },
  { name: 'research', share: 2, requests: 0.2, classes: { urgent: 0.05, normal: 0.35, background: 0.6 }, clientCaps: [4096] },
  { name: 'internal', share: 1, requests: 0.3, classes: { urgent: 0.1, normal: 0.5, background: 0.4 }, clientCaps: [1024, 2048] },
];

/** A model served in one-GPU replicas, with what makes it differ from the latency model. */
export interface ServedModel {
  shape: ModelShape;
  /** Its prefill and decode steps over the latency model's (a larger model is slower). */
  stepFactor: number;
  /** Cold start: weights over the simulator's load bandwidth (AUTOGLM_SIM_LOAD_GBPS's default). */
  loadMs: number;
}

const GB = 1e9;
function served(name: string, weightBytes: number, stepFactor: number): ServedModel {
  // A 64 KiB/token KV cache leaves ~900k tokens per 80 GB GPU beside the weights: the
  // sequence cap (slots per GPU) binds long before the cache does.
  return { shape: Object.freeze({ name, weightBytes, kvBytesPerToken: 64 * 1024, contextLength: 32_768 }), stepFactor, loadMs: (weightBytes / DEFAULT_SIM_LOAD_BYTES_PER_SECOND) * 1000 };
}

export const MODELS: readonly ServedModel[] = [served('chat', 16 * GB, 1), served('code', 20 * GB, 1.25)];

/** `code` turns popular half-way: its part of the requests jumps, so its replicas must scale out (and chat's idle ones make way). */
export const POPULAR = { model: 'code', atSpan: 0.5, before: 0.2, after: 0.6 } as const;

/** A compressed-time burst on top of the trace's own: the trace's arrivals in [from, to) replayed `speedup`× faster from `from` (then a lull until `to`). */
export const BURST = { fromSpan: 0.2, toSpan: 0.26, speedup: 3 } as const;

/** One kind of batch job: its submitter, shape, length and how well its submitter guesses the length. */
export interface BatchProgram {
  name: string;
  tenant: string;
  /** GPUs per job (on one node) and their odds. */
  gpus: Array<[number, number]>;
  /** True run time, log-uniform between these (ms). */
  minMs: number;
  maxMs: number;
  /** Its part of the (non-flood) batch GPU time. */
  part: number;
  /**
   * The submitter's expected duration is truth × bias × lognormal(0, GUESS_SIGMA):
   * > 1 pads it as Slurm users pad time limits, < 1 is optimistic.
   */
  guessBias: number;
}

const MIN = 60_000;
export const PROGRAMS: readonly BatchProgram[] = [
  { name: 'train', tenant: 'research', gpus: [[4, 0.5], [8, 0.5]], minMs: 2 * MIN, maxMs: 8 * MIN, part: 0.35, guessBias: 2 },
  { name: 'sweep', tenant: 'research', gpus: [[1, 0.5], [2, 0.5]], minMs: 0.5 * MIN, maxMs: 3 * MIN, part: 0.2, guessBias: 1 },
  { name: 'finetune', tenant: 'internal', gpus: [[2, 0.5], [4, 0.5]], minMs: 1 * MIN, maxMs: 5 * MIN, part: 0.3, guessBias: 0.6 },
  { name: 'embed', tenant: 'product', gpus: [[1, 1]], minMs: 0.5 * MIN, maxMs: 2 * MIN, part: 0.15, guessBias: 1.5 },
];
/** Spread of the submitters' guesses: one sigma is a factor of e^0.5 ≈ 1.65 either way. */
export const GUESS_SIGMA = 0.5;

/** The flood: the tenant submits its program's jobs at `rateFactor` times its usual rate over [from, to). */
export const FLOOD = { tenant: 'internal', program: 'finetune', fromSpan: 0.4, toSpan: 0.55, rateFactor: 8 } as const;

/** The smallest power of two ≥ n. */
export function nextPowerOfTwo(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, n)));
}

/**
 * What a request's max_tokens is: the trace has none, so each request gets
 * its client's default cap, raised to the next power of two at or above its
 * true output when the cap is smaller (a client that always truncated would
 * not be in the trace). So max_tokens bounds the output and says little else.
 */
export function syntheticMaxTokens(clientCap: number, outputTokens: number): number {
  return clientCap >= outputTokens ? clientCap : nextPowerOfTwo(outputTokens);
}

/** The recipe in words, for the report. */
export function describeMix(): string[] {
  const pct = (x: number) => `${Math.round(x * 100)} %`;
  return [
    `Tenants (fair-share weight; part of requests; their classes urgent/normal/background; clients' default max_tokens):`,
    ...TENANTS.map((t) => `  ${t.name}: weight ${t.share}; ${pct(t.requests)} of requests; ${pct(t.classes.urgent)}/${pct(t.classes.normal)}/${pct(t.classes.background)}; max_tokens ${t.clientCaps.join(' or ')}`),
    `max_tokens: the client's default cap, raised to the next power of two ≥ the true output when smaller (the trace has none; the true output is never shown to a scheduler or predictor).`,
    `Models, one-GPU replicas: ${MODELS.map((m) => `${m.shape.name} (${(m.shape.weightBytes / GB).toFixed(0)} GB weights, cold start ${(m.loadMs / 1000).toFixed(1)} s, steps ×${m.stepFactor})`).join(', ')}; ` +
      `${POPULAR.model} gets ${pct(POPULAR.before)} of requests until ${pct(POPULAR.atSpan)} of the span, then ${pct(POPULAR.after)}.`,
    `Burst: the trace's arrivals in [${pct(BURST.fromSpan)}, ${pct(BURST.toSpan)}) of the span replayed ${BURST.speedup}× faster (a burst, then a lull), besides the trace's own.`,
    `Batch programs (tenant; GPUs; true run time log-uniform; part of batch GPU time; submitter's guess = truth × bias × lognormal σ ${GUESS_SIGMA}):`,
    ...PROGRAMS.map((p) => `  ${p.name}: ${p.tenant}; ${p.gpus.map(([g, w]) => `${g} (${pct(w)})`).join(' or ')} GPUs; ${p.minMs / MIN}–${p.maxMs / MIN} min; ${pct(p.part)}; bias ×${p.guessBias}`),
    `Flood: ${FLOOD.tenant} submits ${FLOOD.program} jobs at ${FLOOD.rateFactor}× its usual rate over [${pct(FLOOD.fromSpan)}, ${pct(FLOOD.toSpan)}) of the span.`,
    `Batch jobs are preemptible; a preempted run loses its work (no checkpoints) and is queued again at once.`,
  ];
}
