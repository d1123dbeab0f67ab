import { percentile } from './report';

/** One stream as its client saw it, on `performance.now()`'s clock (ms). */
export interface StreamTiming {
  /** When the request was sent (the gRPC call opened, the HTTP request written, the sequence submitted). */
  startedAt: number;
  /** When the mesh said the task is durable and queued (InferAccepted; the OpenAI door's response headers). */
  acceptedAt?: number;
  /** When each token arrived; tokens read in one socket read share a time. */
  tokenAt: number[];
  /** Why it failed, if it did (it counts in neither TTFT nor gaps). */
  error?: string;
}

/** How a round drives its streams: a fixed number open at all times, measured once they have settled. */
export interface LaneOptions {
  /** Streams open at once: each lane starts its next stream when its last one ends. */
  lanes: number;
  /** Lanes start evenly over this long, so the streams do not all start (and end) in step. */
  rampMs: number;
  /** Streams that start in this window, after the ramp, are measured. */
  measureMs: number;
}

/** A round's figures: every measured stream's first token, and every gap between two tokens of one. */
export interface RoundSummary {
  /** Concurrent streams. */
  streams: number;
  /** Streams measured (started in the window). */
  measured: number;
  failed: number;
  /** Tokens delivered in the window, by any stream. */
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  ttftMs: { p50: number; p99: number };
  /** Request to InferAccepted (or response headers): parsing, auth and the durable enqueue. */
  acceptMs: { p50: number; p99: number };
  gapMs: { p50: number; p99: number };
  /** A failure's message, to say why a round came out short. */
  firstError?: string;
}

/**
 * Runs `o.lanes` streams at a time in a closed loop for the ramp and the
 * measurement window, then waits for the last ones to end. `onWindow` is
 * called as the window opens and as it closes (CPU readings).
 */
export async function runLanes(o: LaneOptions, stream: () => Promise<StreamTiming>, onWindow: (edge: 'open' | 'close') => void): Promise<RoundSummary> {
  const t0 = performance.now();
  const windowStart = t0 + o.rampMs;
  const windowEnd = windowStart + o.measureMs;
  const timings: StreamTiming[] = [];
  const opened = setTimeout(() => onWindow('open'), o.rampMs);
  const closed = setTimeout(() => onWindow('close'), o.rampMs + o.measureMs);
  const lane = async (i: number): Promise<void> => {
    await new Promise((resolve) => setTimeout(resolve, (i / o.lanes) * o.rampMs));
    while (performance.now() < windowEnd) timings.push(await stream());
  };
  try {
    await Promise.all(Array.from({ length: o.lanes }, (_, i) => lane(i)));
  } finally {
    clearTimeout(opened);
    clearTimeout(closed);
  }
  return summarize(o.lanes, timings, windowStart, windowEnd);
}

function summarize(lanes: number, timings: readonly StreamTiming[], windowStart: number, windowEnd: number): RoundSummary {
  const inWindow = timings.filter((t) => t.startedAt >= windowStart && t.startedAt < windowEnd);
  const ok = inWindow.filter((t) => t.error === undefined && t.tokenAt.length > 0);
  const ttft = ok.map((t) => t.tokenAt[0]! - t.startedAt).sort((a, b) => a - b);
  const accept = ok.filter((t) => t.acceptedAt !== undefined).map((t) => t.acceptedAt! - t.startedAt).sort((a, b) => a - b);
  const gaps: number[] = [];
  for (const t of ok) for (let i = 1; i < t.tokenAt.length; i++) gaps.push(t.tokenAt[i]! - t.tokenAt[i - 1]!);
  gaps.sort((a, b) => a - b);
  let tokens = 0;
  for (const t of timings) for (const at of t.tokenAt) if (at >= windowStart && at < windowEnd) tokens += 1;
  const seconds = (windowEnd - windowStart) / 1000;
  const firstError = inWindow.find((t) => t.error !== undefined)?.error;
  return {
    streams: lanes,
    measured: inWindow.length,
    failed: inWindow.length - ok.length,
    tokens,
    seconds,
    tokensPerSecond: tokens / seconds,
    ttftMs: { p50: percentile(ttft, 50), p99: percentile(ttft, 99) },
    acceptMs: { p50: percentile(accept, 50), p99: percentile(accept, 99) },
    gapMs: { p50: percentile(gaps, 50), p99: percentile(gaps, 99) },
    ...(firstError === undefined ? {} : { firstError }),
  };
}

/** Median of a few rounds' values (the mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
