/**
 * Step latency of an LLM engine doing continuous batching, in seconds.
 *
 * Source: the coefficients are the public ones of the Kubernetes Gateway API
 * Inference Extension's former simulator (kubernetes-sigs/gateway-api-inference-extension,
 * since removed from that repository), a linear fit to vLLM step times. We reuse
 * them rather than fit our own so the simulator's numbers can be checked against
 * a published reference; they describe one model on one GPU class, so treat
 * absolute times as plausible, not as a prediction for any particular model.
 */

/** Prefill never takes less than this: kernel launches and scheduling dominate short prompts. */
export const PREFILL_FLOOR_SECONDS = 0.04;
/** Fixed cost of a prefill step. */
export const PREFILL_BASE_SECONDS = 0.01969;
/** Cost per prompt token in a prefill step. */
export const PREFILL_SECONDS_PER_TOKEN = 6.77e-5;
/** Fixed cost of a decode step. */
export const DECODE_BASE_SECONDS = 0.014;
/** Cost per sequence in a decode step. */
export const DECODE_SECONDS_PER_SEQUENCE = 1.03e-4;
/** Cost per context token (prompt + generated so far, over the whole batch) in a decode step. */
export const DECODE_SECONDS_PER_CONTEXT_TOKEN = 5.35e-7;

/** Seconds to prefill `tokens` prompt tokens (summed over the sequences prefilled together). */
export function prefillSeconds(tokens: number): number {
  return Math.max(PREFILL_FLOOR_SECONDS, PREFILL_BASE_SECONDS + PREFILL_SECONDS_PER_TOKEN * tokens);
}

/**
 * Seconds for one decode step that produces one token for each of `batch`
 * sequences holding `contextTokens` tokens of context between them.
 */
export function decodeStepSeconds(batch: number, contextTokens: number): number {
  return DECODE_BASE_SECONDS + DECODE_SECONDS_PER_SEQUENCE * batch + DECODE_SECONDS_PER_CONTEXT_TOKEN * contextTokens;
}
