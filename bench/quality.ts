// Replays the Azure LLM inference trace 2023 (conversation service), from the
// Azure Public Dataset, published with: Pratyush Patel, Esha Choukse, Chaojie
// Zhang, Aashaka Shah, Íñigo Goiri, Saeed Maleki, Ricardo Bianchini,
// "Splitwise: Efficient generative LLM inference using phase splitting", ISCA
// 2024. License: CC BY 4.0 (see ../shared/traces/azure-llm-2023/README.md).
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_PLACEMENT_POLICY, DEFAULT_POLICY, PRESETS, type Policy } from '@autoglm/core';
import { AZURE_TRACE_ATTRIBUTION, DEFAULT_AZURE_CONV_TRACE, loadAzureTrace } from './lib/azure-trace';
import { BASELINE_DESCRIPTIONS } from './lib/quality-baselines';
import { DISPATCHER_DESCRIPTIONS } from './lib/quality-dispatcher';
import { aggregate, formatEstimate, MEASURES, type Aggregate, type MeasureKey } from './lib/quality-measures';
import { describeMix, TENANTS } from './lib/quality-mix';
import { runCells } from './lib/quality-pool';
import { POLICIES, type CellJob, type CellResult } from './lib/quality-run';
import type { PolicyName, SimOptions } from './lib/quality-sim';
import { evaluateTargets, TARGET_RULES } from './lib/quality-targets';
import { estimate } from './lib/stats';
import { flag, printTable, writeResult } from './lib/report';

const GiB = 2 ** 30;
const DEFAULT_LOADS = [0.7, 0.8, 0.9, 0.95, 1.1];
const QUICK = { requests: 4000, seeds: 3, loads: [0.8, 0.95] };
const POLICY_DESCRIPTIONS: Record<PolicyName, string> = { ...BASELINE_DESCRIPTIONS, ...DISPATCHER_DESCRIPTIONS };

/** The per-load table's columns. */
const LOAD_COLUMNS: Array<[string, MeasureKey]> = [
  ['all req queue ms', 'allQueueMs'],
  ['urgent TTFT ms', 'urgentTtftMs'],
  ['urgent TTFT p99 ms', 'urgentTtftP99Ms'],
  ['normal queue ms', 'normalQueueMs'],
  ['batch p99 queue s', 'batchQueueP99S'],
  [`batch max wait s (bound ${DEFAULT_POLICY.maxAgeMs / 1000})`, 'batchLongestWaitS'],
  ['batch slowdown', 'batchSlowdown'],
  ['fair err pp', 'fairnessMeanPp'],
  ['util %', 'utilisationPct'],
];
const DETAIL_COLUMNS: Array<[string, MeasureKey]> = [
  ['background queue ms', 'backgroundQueueMs'],
  ['urgent in SLO %', 'urgentSloPct'],
  ['batch 1st start s', 'batchFirstQueueMeanS'],
  ['batch max queue s', 'batchQueueMaxS'],
  ['preemptions', 'preemptions'],
  ['GPU-s lost', 'lostGpuS'],
  ['goodput %', 'goodputPct'],
  ['flood err pp', 'floodPp'],
  ['cold starts', 'coldStarts'],
  ['done at s', 'makespanS'],
];

/**
 * Policy quality on a real arrival trace. Every policy replays the same
 * arrivals on the same simulated fleet per (load, seed): strict FIFO, FIFO
 * with EASY backfill (Slurm's default), static priority and the dynamic
 * policy (the project's Dispatcher). The workload is the Azure conversation
 * trace with tenants, classes, two models, a popularity shift, bursts, batch
 * jobs of 1–8 GPUs and a flooding tenant laid over it (bench/lib/quality-mix.ts
 * has the recipe, and it is printed), time-scaled to each offered load; run
 * times are predicted from submissions only. Reported per load: means over
 * seeds with 95 % intervals, for requests (queue, TTFT per class), batch jobs
 * (queue, longest wait, slowdown, preemptions), tenant fairness against
 * max-min fair shares, utilisation; then dynamic's targets against static.
 *
 * Flags: --trace PATH; --quick (4,000 requests, 3 seeds, loads 0.8,0.95) |
 * --requests N (all); --loads X,Y,… (0.7,0.8,0.9,0.95,1.1; --load X for one);
 * --seeds N (8) and --seed N (the first, 1); --policies fifo,fifo-easy,static,dynamic
 * (all); --batch-fraction X (part of the offered GPU time in batch jobs
 * before the flood, 0.3); --nodes N (4), --gpus-per-node N (8), --slots N
 * (sequences per replica, 4); --preset realtime|balanced|batch (the dynamic
 * policy's weights; default DEFAULT_POLICY's own); --placement pack|spread
 * (DEFAULT_PLACEMENT_POLICY's, pack); --slo-ms N (urgent TTFT bound, 1000);
 * --window-s N (fairness window, 60); --workers N (threads, one per CPU up
 * to 8); --policy JSON (settings of the dynamic policy instead of
 * DEFAULT_POLICY's, e.g. '{"reserveAfterMs":120000,"weights":{"size":0}}').
 */
export async function quality(args: string[]): Promise<void> {
  const started = Date.now();
  const quick = args.includes('--quick');
  const tracePath = path.resolve(flag(args, '--trace') ?? DEFAULT_AZURE_CONV_TRACE);
  const requests = Number(flag(args, '--requests') ?? (quick ? QUICK.requests : Infinity));
  const loads = numbers(flag(args, '--loads') ?? flag(args, '--load')) ?? (quick ? QUICK.loads : DEFAULT_LOADS);
  const seedCount = Number(flag(args, '--seeds') ?? (quick ? QUICK.seeds : 8));
  const firstSeed = Number(flag(args, '--seed') ?? 1);
  const policies = (flag(args, '--policies')?.split(',') ?? [...POLICIES]) as PolicyName[];
  for (const p of policies) if (!POLICIES.includes(p)) throw new Error(`--policies: ${p} is not one of ${POLICIES.join(', ')}`);
  const presetFlag = flag(args, '--preset');
  if (presetFlag !== undefined && !Object.hasOwn(PRESETS, presetFlag)) throw new Error(`--preset: use one of ${Object.keys(PRESETS).join(', ')}`);
  const placement = flag(args, '--placement') ?? DEFAULT_PLACEMENT_POLICY.mode;
  if (placement !== 'spread' && placement !== 'pack') throw new Error('--placement: use spread or pack');
  const workers = Number(flag(args, '--workers') ?? Math.min(8, os.availableParallelism()));
  const windowMs = Number(flag(args, '--window-s') ?? 60) * 1000;
  const batchWorkFraction = Number(flag(args, '--batch-fraction') ?? 0.3);
  if (!(seedCount >= 1) || !(batchWorkFraction >= 0 && batchWorkFraction < 1) || loads.some((l) => !(l > 0))) throw new Error('--seeds, --batch-fraction or --loads out of range');
  const sim: SimOptions = {
    fleet: {
      nodes: Number(flag(args, '--nodes') ?? 4),
      gpusPerNode: Number(flag(args, '--gpus-per-node') ?? 8),
      slotsPerGpu: Number(flag(args, '--slots') ?? 4),
      gpuMemoryBytes: 80 * GiB,
      memoryFraction: 0.9,
    },
    tenants: TENANTS.map(({ name, share }) => ({ name, share })),
    placement,
    sloTtftMs: Number(flag(args, '--slo-ms') ?? 1000),
    preset: presetFlag as keyof typeof PRESETS | undefined,
    policy: policyFlag(flag(args, '--policy')),
  };
  const seeds = Array.from({ length: seedCount }, (_, i) => firstSeed + i);
  const jobs: CellJob[] = loads.flatMap((load) => seeds.map((seed) => ({ load, seed, batchWorkFraction, policies, sim, windowMs })));

  const trace = loadAzureTrace(tracePath, requests);
  const traceSpanS = (trace[trace.length - 1]!.atMs - trace[0]!.atMs) / 1000;
  const { fleet } = sim;
  console.log(`Trace: ${tracePath}\n  ${AZURE_TRACE_ATTRIBUTION}`);
  console.log(`  ${trace.length.toLocaleString('en')} requests over ${(traceSpanS / 60).toFixed(1)} min, time-scaled to each offered load.`);
  console.log(`Fleet: ${fleet.nodes} nodes × ${fleet.gpusPerNode} GPUs (80 GB), ${fleet.slotsPerGpu} sequences per one-GPU replica; placement ${placement}.`);
  console.log(`Loads ${loads.join(', ')} × seeds ${seeds[0]}–${seeds[seeds.length - 1]}; every policy on the same arrivals and fleet per (load, seed). Batch jobs: ${(batchWorkFraction * 100).toFixed(0)} % of the offered GPU time before the flood.`);
  console.log('Workload recipe:');
  for (const line of describeMix()) console.log(`  ${line}`);
  const weights = presetFlag ? PRESETS[presetFlag as keyof typeof PRESETS] : DEFAULT_POLICY.weights;
  const dynamicWeights = `${presetFlag ? `preset ${presetFlag}` : `DEFAULT_POLICY's (preset ${DEFAULT_POLICY.preset})`}: ${Object.entries(weights)
    .map(([f, w]) => `${f} ${w}`)
    .join(', ')}`;
  console.log(`Run time: core's RunTimePredictor, fed only what a submission says and what finished work taught it (one per run, same for every policy).`);
  console.log(`Urgent SLO: TTFT ≤ ${sim.sloTtftMs} ms. Age bound (DEFAULT_POLICY.maxAgeMs): ${(DEFAULT_POLICY.maxAgeMs / 60_000).toFixed(0)} min.`);
  for (const p of policies) console.log(`  ${p}: ${p === 'dynamic' ? `${POLICY_DESCRIPTIONS[p]}; weights ${dynamicWeights}` : POLICY_DESCRIPTIONS[p]}`);

  const cells = await runCells(jobs, { path: tracePath, limit: requests }, workers, (r) =>
    process.stderr.write(`  load ${r.load} seed ${r.seed}: ${r.runs.map((m) => `${m.policy} ${(m.wallMs / 1000).toFixed(1)} s`).join(', ')}\n`),
  );
  const agg = aggregate(cells, loads, policies);
  printLoadTables(cells, agg, loads, policies);
  printPredictionErrors(cells);
  const targets = policies.includes('static') && policies.includes('dynamic') ? evaluateTargets(agg, DEFAULT_POLICY.maxAgeMs) : [];
  if (targets.length > 0) {
    printTable(
      'Targets: dynamic against static, same runs, all seeds (mean ± 95 % interval; ratio = per-seed dynamic/static)',
      targets.map((t) => ({ target: t.target, load: t.load, measure: t.measure, static: t.static, dynamic: t.dynamic, 'dyn/static': t.ratio, rule: t.rule, result: t.met ? 'met' : 'MISSED' })),
    );
    for (const rule of TARGET_RULES) console.log(`  ${rule}`);
  }
  console.log(
    `\nRequest queue: arrival to the start of its run (a sequence placed on a replica still loading waits for the load). TTFT: queue + prefill. Batch queue: arrival to the start of the run that completed; longest wait: the longest single runnable wait (from arrival or a preemption), what the age bound bounds. Slowdown: (completion − arrival) / run time. Utilisation: occupied GPU-seconds over GPU-seconds from 0 to the last completion (goodput: without runs later preempted). Fairness: per window, |part of GPU time used − part of the weighted max-min allocation of the window given each tenant’s demand|, largest over tenants, mean over ${windowMs / 1000} s windows where at least two tenants have demand; flood: the flood's whole period as one window (bench/lib/quality-fairness.ts defines demand).`,
  );
  const wallS = (Date.now() - started) / 1000;
  const file = writeResult('quality', {
    attribution: AZURE_TRACE_ATTRIBUTION,
    trace: { path: tracePath, requests: trace.length, spanSeconds: traceSpanS },
    recipe: describeMix(),
    options: { loads, seeds, policies, batchWorkFraction, windowMs, workers, simulation: sim, dynamicWeights, maxAgeMs: DEFAULT_POLICY.maxAgeMs },
    policies: Object.fromEntries(policies.map((p) => [p, POLICY_DESCRIPTIONS[p]])),
    measures: Object.fromEntries(Object.entries(MEASURES).map(([k, m]) => [k, m.label])),
    aggregate: Object.fromEntries([...agg].map(([load, byPolicy]) => [load, Object.fromEntries(byPolicy)])),
    targets: { rules: TARGET_RULES, rows: targets },
    cells,
    wallSeconds: wallS,
  });
  console.log(`\nWall time ${wallS.toFixed(0)} s on ${Math.min(workers, jobs.length)} worker thread(s). ${file}`);
}

function printLoadTables(cells: readonly CellResult[], agg: Aggregate, loads: readonly number[], policies: readonly PolicyName[]): void {
  for (const load of loads) {
    const byPolicy = agg.get(load)!;
    const w = cells.find((c) => c.load === load)!.workload;
    const o = w.offeredLoad;
    const n = byPolicy.get(policies[0]!)!.allQueueMs.values.length;
    const title =
      `Load ${load} (${n} seeds; mean ± 95 % interval): offered ${o.total.toFixed(2)}× = requests ${o.inference.toFixed(2)} (urgent ${o.byClass.urgent.toFixed(2)}, normal ${o.byClass.normal.toFixed(2)}, background ${o.byClass.background.toFixed(2)}) + batch ${o.batch.toFixed(2)}; ` +
      `${w.batchJobs} batch jobs (${w.floodJobs} in the flood); trace ${w.timeScale.toFixed(2)}× faster, ${(w.spanMs / 60_000).toFixed(1)} min of arrivals`;
    const row = (columns: Array<[string, MeasureKey]>) => (policy: PolicyName) =>
      Object.fromEntries([['policy', policy], ...columns.map(([name, key]) => [name, formatEstimate(byPolicy.get(policy)![key].estimate, MEASURES[key].digits)])]) as Record<string, string>;
    printTable(title, policies.map(row(LOAD_COLUMNS)));
    printTable(`Load ${load}, more`, policies.map(row(DETAIL_COLUMNS)));
  }
}

/** How far the predictor was off, over every run (each policy's predictor learns from its own finished work). */
function printPredictionErrors(cells: readonly CellResult[]): void {
  const names = new Set(cells.flatMap((c) => c.runs.flatMap((r) => Object.keys(r.predictions))));
  const runs = cells.flatMap((c) => c.runs);
  printTable(
    'Prediction error at submission, over all runs (mean ± 95 % interval over runs)',
    [...names].map((name) => {
      const errors = runs.map((r) => r.predictions[name]).filter((e) => e !== undefined);
      return {
        prediction: name,
        'mean |ln(pred/actual)|': formatEstimate(estimate(errors.map((e) => e.meanAbsLog)), 2),
        'median pred/actual': formatEstimate(estimate(errors.map((e) => e.medianRatio)), 2),
      };
    }),
  );
}

function numbers(list: string | undefined): number[] | undefined {
  return list === undefined ? undefined : list.split(',').map(Number);
}

/** --policy: a JSON object of Policy fields (libs/core policy.ts) for the dynamic policy. */
function policyFlag(json: string | undefined): Partial<Policy> | undefined {
  if (json === undefined) return undefined;
  const parsed: unknown = JSON.parse(json);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('--policy: give a JSON object of policy settings');
  for (const key of Object.keys(parsed)) if (!Object.hasOwn(DEFAULT_POLICY, key)) throw new Error(`--policy: ${key} is not a policy setting; use ${Object.keys(DEFAULT_POLICY).join(', ')}`);
  return parsed as Partial<Policy>;
}
