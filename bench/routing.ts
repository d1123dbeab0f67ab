import { AZURE_TRACE_ATTRIBUTION, DEFAULT_AZURE_CONV_TRACE, loadAzureTrace, type TraceRequest } from './lib/azure-trace';
import { flag, printTable, writeResult } from './lib/report';
import { ROUTERS, simulateRouting, type GpuClass, type Router, type RoutingRequest, type RoutingResult } from './lib/routing-sim';

const GiB = 2 ** 30;

/** mistral-7b (catalog): 14.5 GB of bf16 weights, 128 KiB of KV cache a token, a 32k context. */
const MODEL = { name: 'mistral-7b', weightBytes: 14_496_047_104, kvBytesPerToken: 131_072, contextLength: 32_768 };

/** The trace's own cap on output tokens (no request generates more): what its clients asked for as max_tokens. */
const MAX_TOKENS = 1000;

const FLEETS: Record<string, GpuClass[]> = {
  // One kind of GPU: where round-robin has least to lose.
  'uniform: 16 x H100 80GB': [{ name: 'h100', count: 16, memoryBytes: 80 * GiB, speed: 1 }],
  // Three generations, as fleets grow: speed is each GPU's memory bandwidth over an H100's
  // (A100 40GB 1.6 TB/s, A10 24GB 0.6 TB/s, against 3.35 TB/s); the A10s' KV cache holds ~18 requests.
  'mixed: 4 x H100 80GB, 6 x A100 40GB, 6 x A10 24GB': [
    { name: 'h100', count: 4, memoryBytes: 80 * GiB, speed: 1 },
    { name: 'a100', count: 6, memoryBytes: 40 * GiB, speed: 0.48 },
    { name: 'a10', count: 6, memoryBytes: 24 * GiB, speed: 0.18 },
  ],
};

/**
 * `npm run bench -- routing [--requests 4000] [--seeds 8] [--loads 0.7,0.8,0.9,1.1] [--quick]`:
 * the Azure conversation trace's requests (a window of `requests` consecutive
 * ones per seed) replayed on a simulated fleet serving one model, once per
 * router, at each offered load: a fraction of the fleet's capacity, measured
 * first by saturating it (all requests at once, least-loaded routing). TTFT
 * p50/p99, mean response time, output tokens/s, GPU utilisation (time the
 * engines spent in steps over the run) and requests that failed (no token
 * within 30 s: the client's timeout), as means over the seeds with 95 %
 * confidence intervals.
 */
export async function routing(args: string[]): Promise<void> {
  const quick = args.includes('--quick');
  const perRun = Number(flag(args, '--requests') ?? (quick ? 1500 : 4000));
  const seeds = Number(flag(args, '--seeds') ?? (quick ? 3 : 8));
  const loads = (flag(args, '--loads') ?? '0.7,0.8,0.9,1.1').split(',').map(Number);
  const trace = loadAzureTrace(flag(args, '--trace') ?? DEFAULT_AZURE_CONV_TRACE);
  const timeoutMs = 30_000;
  const results: Record<string, unknown> = { attribution: AZURE_TRACE_ATTRIBUTION, model: MODEL.name, maxTokens: MAX_TOKENS, timeoutMs, perRun, seeds, loads, fleets: {} };
  console.log(`Requests: ${AZURE_TRACE_ATTRIBUTION}`);
  for (const [fleetName, fleet] of Object.entries(FLEETS)) {
    const options = { model: MODEL, fleet, maxTokens: MAX_TOKENS, timeoutMs };
    // Capacity: requests/s the fleet finishes when every request is there at once.
    const sample = window(trace, 0, perRun).map((r) => ({ ...r, arrivalMs: 0 }));
    const saturated = simulateRouting(sample, 'least-loaded', { ...options, timeoutMs: Infinity });
    const capacity = (perRun * 1000) / saturated.makespanMs;
    const rows: Array<Record<string, string | number>> = [];
    const perLoad: Record<string, Record<Router, RoutingResult[]>> = {};
    for (const load of loads) {
      const runs = Object.fromEntries(ROUTERS.map((r) => [r, [] as RoutingResult[]])) as Record<Router, RoutingResult[]>;
      for (let seed = 0; seed < seeds; seed++) {
        // Each seed replays another stretch of the trace, its bursts and lulls kept, at the load's mean rate.
        const requests = atRate(window(trace, Math.floor(((seed + 1) * trace.length) / (seeds + 2)), perRun), load * capacity);
        for (const router of ROUTERS) runs[router].push(simulateRouting(requests, router, options));
      }
      perLoad[load] = runs;
      for (const router of ROUTERS) {
        const rs = runs[router];
        rows.push({
          load,
          router,
          'TTFT p50 ms': meanCi(rs.map((r) => r.ttftP50Ms)),
          'TTFT p99 ms': meanCi(rs.map((r) => r.ttftP99Ms)),
          'mean response ms': meanCi(rs.map((r) => r.meanResponseMs)),
          'output tok/s': meanCi(rs.map((r) => r.outputTokensPerSecond)),
          'GPU util %': meanCi(rs.map((r) => 100 * r.gpuUtilization)),
          'failed %': meanCi(rs.map((r) => (100 * r.failed) / r.requests)),
        });
      }
    }
    printTable(`${fleetName}: ${MODEL.name}, capacity ${capacity.toFixed(1)} requests/s; ${seeds} seeds x ${perRun} requests per load (mean ± 95 % CI)`, rows);
    // Each seed's routers saw the same arrivals: their ratios are paired, seed by seed.
    const ratios: Array<Record<string, string | number>> = [];
    for (const load of loads) {
      const runs = perLoad[load]!;
      const ratio = (base: Router, f: (r: RoutingResult) => number) => meanCi(runs[base].map((r, i) => f(r) / f(runs.claims[i]!)), 2);
      const diff = (base: Router, f: (r: RoutingResult) => number) => meanCi(runs.claims.map((r, i) => f(r) - f(runs[base][i]!)), 1);
      ratios.push({
        load,
        'RR / claims: mean response': ratio('round-robin', (r) => r.meanResponseMs),
        'RR / claims: TTFT p99': ratio('round-robin', (r) => r.ttftP99Ms),
        'LL / claims: mean response': ratio('least-loaded', (r) => r.meanResponseMs),
        'LL / claims: TTFT p99': ratio('least-loaded', (r) => r.ttftP99Ms),
        'claims - RR: GPU util pts': diff('round-robin', (r) => 100 * r.gpuUtilization),
        'claims - RR: success pts': diff('round-robin', (r) => -(100 * r.failed) / r.requests),
      });
    }
    printTable(`${fleetName}: paired ratios, seed by seed (mean ± 95 % CI); above 1: claims is faster`, ratios);
    (results.fleets as Record<string, unknown>)[fleetName] = { fleet, capacityPerSecond: capacity, perLoad };
  }
  console.log(`\nwrote ${writeResult('routing', results)}`);
}

function window(trace: TraceRequest[], from: number, n: number): RoutingRequest[] {
  const slice = trace.slice(from, from + n);
  const t0 = slice[0]?.atMs ?? 0;
  return slice.map((r) => ({ arrivalMs: r.atMs - t0, promptTokens: r.contextTokens, outputTokens: Math.max(1, Math.min(MAX_TOKENS, r.generatedTokens)) }));
}

/** The same arrivals, time-scaled to a mean rate of `perSecond`. */
function atRate(requests: RoutingRequest[], perSecond: number): RoutingRequest[] {
  const span = requests[requests.length - 1]!.arrivalMs || 1;
  const scale = requests.length / (perSecond * (span / 1000));
  return requests.map((r) => ({ ...r, arrivalMs: r.arrivalMs * scale }));
}

/** "mean ± half-width of the 95 % interval" (Student t, n - 1 degrees of freedom). */
function meanCi(xs: number[], digits?: number): string {
  const n = xs.length;
  const mean = xs.reduce((s, x) => s + x, 0) / n;
  const d = digits ?? (Math.abs(mean) < 10 ? 1 : 0);
  if (n < 2) return mean.toFixed(d);
  const sd = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1));
  const t = [12.71, 4.3, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26][n - 2] ?? 1.96;
  return `${mean.toFixed(d)} ± ${((t * sd) / Math.sqrt(n)).toFixed(d)}`;
}
