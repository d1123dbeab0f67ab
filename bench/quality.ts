// Replays the Azure LLM inference trace 2023 (conversation service), from the
// Azure Public Dataset, published with: Pratyush Patel, Esha Choukse, Chaojie
// Zhang, Aashaka Shah, Íñigo Goiri, Saeed Maleki, Ricardo Bianchini,
// "Splitwise: Efficient generative LLM inference using phase splitting", ISCA
// 2024. License: CC BY 4.0 (see ../shared/traces/azure-llm-2023/README.md).
import * as path from 'node:path';
import { PRESETS } from '@autoglm/core';
import { AZURE_TRACE_ATTRIBUTION, DEFAULT_AZURE_CONV_TRACE, loadAzureTrace } from './lib/azure-trace';
import { POLICY_DESCRIPTIONS, simulate, type PolicyName, type PolicyResult, type SimOptions } from './lib/quality-sim';
import { buildWorkload, type TenantMix, type WorkloadOptions } from './lib/quality-workload';
import { printTable, writeResult, flag } from './lib/report';

const GiB = 2 ** 30;
const POLICIES: PolicyName[] = ['fifo', 'static', 'dynamic'];
/** Three tenants with shares 3:2:1 submitting equal parts of the work, so fair share has something to correct. */
const TENANTS: TenantMix[] = [
  { name: 'product', share: 3, traffic: 1 },
  { name: 'research', share: 2, traffic: 1 },
  { name: 'internal', share: 1, traffic: 1 },
];
/** Requests a --quick run replays (the trace's first minutes). */
const QUICK_REQUESTS = 3000;

/** The seed documents' figures for FIFO → static → dynamic, and the issue's targets for the dynamic policy. */
const CLAIMED = { meanLatencyMs: [892, 513, 204], highPriorityPct: [43, 76, 94], utilisationPct: [67, 72, 88] };
const TARGET = { urgentLatencyRatio: 4.4, urgentSlo: 0.94, utilisation: 0.88 };

/**
 * Policy quality on a real arrival trace: FIFO, static priority and the
 * dynamic policy replay the same arrivals on the same simulated fleet
 * (bench/lib/quality-workload.ts says how a GPU serves work) and are compared
 * on queue time and time to first token per class, the urgent class's SLO,
 * tenant shares and GPU utilisation. A fake clock: a full run replays the
 * hour-long trace in well under a minute per policy.
 *
 * Flags: --trace PATH, --quick | --requests N, --load X (offered over
 * capacity, 1.3), --batch-fraction X (0.25 of the offered GPU time),
 * --nodes N (2), --gpus-per-node N (8), --slots N (sequences per GPU, 4),
 * --preset realtime|balanced|batch (the dynamic policy's, realtime),
 * --placement spread|pack (spread), --slo-ms N (urgent TTFT bound, 1000),
 * --seed N (1).
 */
export async function quality(args: string[]): Promise<void> {
  const tracePath = path.resolve(flag(args, '--trace') ?? DEFAULT_AZURE_CONV_TRACE);
  const requests = args.includes('--quick') ? QUICK_REQUESTS : Number(flag(args, '--requests') ?? Infinity);
  const preset = (flag(args, '--preset') ?? 'realtime') as keyof typeof PRESETS;
  if (!Object.hasOwn(PRESETS, preset)) throw new Error(`--preset: use one of ${Object.keys(PRESETS).join(', ')}`);
  const placement = flag(args, '--placement') ?? 'spread';
  if (placement !== 'spread' && placement !== 'pack') throw new Error('--placement: use spread or pack');
  const fleet = {
    nodes: Number(flag(args, '--nodes') ?? 2),
    gpusPerNode: Number(flag(args, '--gpus-per-node') ?? 8),
    slotsPerGpu: Number(flag(args, '--slots') ?? 4),
    gpuMemoryBytes: 80 * GiB,
    memoryFraction: 0.9,
  };
  const seed = Number(flag(args, '--seed') ?? 1);
  const workloadOptions: WorkloadOptions = {
    fleet,
    tenants: TENANTS,
    urgentFraction: 0.2,
    normalFraction: 0.6,
    offeredLoad: Number(flag(args, '--load') ?? 1.3),
    batchWorkFraction: Number(flag(args, '--batch-fraction') ?? 0.25),
    seed,
  };
  const sim: SimOptions = {
    fleet,
    tenants: TENANTS.map(({ name, share }) => ({ name, share })),
    placement,
    sloTtftMs: Number(flag(args, '--slo-ms') ?? 1000),
    preset,
    seed,
    shareWindowMs: 60_000,
  };

  const trace = loadAzureTrace(tracePath, requests);
  const workload = buildWorkload(trace, workloadOptions);
  const traceSpanS = (trace[trace.length - 1]!.atMs - trace[0]!.atMs) / 1000;
  console.log(`Trace: ${tracePath}\n  ${AZURE_TRACE_ATTRIBUTION}`);
  console.log(`  ${trace.length.toLocaleString('en')} requests over ${(traceSpanS / 60).toFixed(1)} min; replayed ${workload.timeScale.toFixed(2)}× faster: ${(workload.spanMs / 60_000).toFixed(1)} simulated min`);
  console.log(
    `Fleet: ${fleet.nodes} nodes × ${fleet.gpusPerNode} GPUs, ${fleet.slotsPerGpu} sequences per GPU (a one-GPU replica each); ${workload.batchJobs} background batch jobs of 1, 2 or 4 GPUs (preemptible, a preempted run is lost); placement ${placement}`,
  );
  const load = workload.offeredLoad;
  console.log(
    `Offered load over capacity: ${load.total.toFixed(2)}× (requests ${load.inference.toFixed(2)}×: urgent ${(load.byClass.urgent ?? 0).toFixed(2)}, normal ${(load.byClass.normal ?? 0).toFixed(2)}, background ${(load.byClass.background ?? 0).toFixed(2)}; batch jobs ${load.batch.toFixed(2)}×)`,
  );
  console.log(`Tenants (share/part of the work): ${TENANTS.map((t) => `${t.name} ${t.share}/${(t.traffic / TENANTS.reduce((s, x) => s + x.traffic, 0)).toFixed(2)}`).join(', ')}; classes urgent 20 %, normal 60 %, background 20 % of requests`);
  console.log(`Urgent SLO: time to first token ≤ ${sim.sloTtftMs} ms (TTFT = queue time + prefill)`);
  for (const p of POLICIES) console.log(`  ${p}: ${p === 'dynamic' ? POLICY_DESCRIPTIONS[p].replace('a preset', `preset ${preset}`) : POLICY_DESCRIPTIONS[p]}`);

  const results: PolicyResult[] = [];
  for (const p of POLICIES) results.push(simulate(workload, p, sim));

  const ms = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en') : '–');
  const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)} %` : '–');
  const classRows = results.flatMap((r) =>
    (['urgent', 'normal', 'background'] as const).map((c) => ({
      policy: r.policy,
      class: c,
      requests: r.byClass[c].count,
      'queue mean ms': ms(r.byClass[c].queueMeanMs),
      'queue p99 ms': ms(r.byClass[c].queueP99Ms),
      'TTFT mean ms': ms(r.byClass[c].ttftMeanMs),
      'TTFT p99 ms': ms(r.byClass[c].ttftP99Ms),
    })),
  );
  printTable('Requests: queue time and time to first token per class', classRows);
  printTable(
    'Background batch jobs',
    results.map((r) => ({
      policy: r.policy,
      jobs: r.batch.count,
      'first start mean s': (r.batch.firstStartMeanMs / 1000).toFixed(1),
      'final run queue mean s': (r.batch.queueMeanMs / 1000).toFixed(1),
      'final run queue p99 s': (r.batch.queueP99Ms / 1000).toFixed(1),
      'done after mean s': (r.batch.completionMeanMs / 1000).toFixed(1),
      preemptions: r.batch.preemptions,
      'GPU-s lost': r.batch.wastedGpuSeconds.toFixed(0),
    })),
  );
  printTable(
    'Per policy',
    results.map((r) => ({
      policy: r.policy,
      'urgent SLO': pct(r.urgentSloAttainment),
      'GPU util': pct(r.utilisation),
      'util w/o lost runs': pct(r.goodputUtilisation),
      'share err mean': pct(r.share.meanError),
      'share err max': pct(r.share.maxError),
      'windows': `${r.share.windowsCounted}/${r.share.windows}`,
      'GPU time by tenant': Object.entries(r.share.overall)
        .map(([t, s]) => `${t} ${(s * 100).toFixed(0)}%`)
        .join(' '),
      'all done at min': (r.makespanMs / 60_000).toFixed(1),
      'sim wall s': (r.wallMs / 1000).toFixed(1),
    })),
  );
  const [fifo, stat, dyn] = results as [PolicyResult, PolicyResult, PolicyResult];
  const ratio = (a: number, b: number) => (b > 0 ? a / b : NaN);
  const ratios = {
    fifoOverDynamicUrgentTtft: ratio(fifo.byClass.urgent.ttftMeanMs, dyn.byClass.urgent.ttftMeanMs),
    fifoOverDynamicUrgentQueue: ratio(fifo.byClass.urgent.queueMeanMs, dyn.byClass.urgent.queueMeanMs),
    fifoOverStaticUrgentTtft: ratio(fifo.byClass.urgent.ttftMeanMs, stat.byClass.urgent.ttftMeanMs),
  };
  const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
  printTable('Targets (FIFO → static → dynamic; claimed figures from the seed documents)', [
    {
      measure: 'urgent mean TTFT, ms',
      fifo: ms(fifo.byClass.urgent.ttftMeanMs),
      static: ms(stat.byClass.urgent.ttftMeanMs),
      dynamic: ms(dyn.byClass.urgent.ttftMeanMs),
      claimed: CLAIMED.meanLatencyMs.join(' → '),
      target: '',
      result: '',
    },
    {
      measure: 'FIFO / dynamic urgent mean TTFT',
      fifo: '',
      static: `${ratios.fifoOverStaticUrgentTtft.toFixed(1)}× (FIFO/static)`,
      dynamic: `${ratios.fifoOverDynamicUrgentTtft.toFixed(1)}×`,
      claimed: `${(CLAIMED.meanLatencyMs[0]! / CLAIMED.meanLatencyMs[2]!).toFixed(1)}×`,
      target: `≥ ${TARGET.urgentLatencyRatio.toFixed(1)}×`,
      result: met(ratios.fifoOverDynamicUrgentTtft >= TARGET.urgentLatencyRatio),
    },
    {
      measure: 'urgent SLO attainment',
      fifo: pct(fifo.urgentSloAttainment),
      static: pct(stat.urgentSloAttainment),
      dynamic: pct(dyn.urgentSloAttainment),
      claimed: CLAIMED.highPriorityPct.map((x) => `${x} %`).join(' → '),
      target: `≥ ${TARGET.urgentSlo * 100} %`,
      result: met(dyn.urgentSloAttainment >= TARGET.urgentSlo),
    },
    {
      measure: 'GPU utilisation',
      fifo: pct(fifo.utilisation),
      static: pct(stat.utilisation),
      dynamic: pct(dyn.utilisation),
      claimed: CLAIMED.utilisationPct.map((x) => `${x} %`).join(' → '),
      target: `≥ ${TARGET.utilisation * 100} %`,
      result: met(dyn.utilisation >= TARGET.utilisation),
    },
  ]);
  if (load.total > 1) {
    console.log(
      `\nThe fleet is offered ${load.total.toFixed(2)}× what it can serve for the whole span, so FIFO's queue (every class alike) grows until the last arrival: its latencies, and the ratios to them, measure that backlog. Static and dynamic serve urgent and normal requests (${((load.byClass.urgent ?? 0) + (load.byClass.normal ?? 0)).toFixed(2)}× together) first and push the excess onto background work.`,
    );
  }
  console.log(
    '\nQueue time: arrival to first placement. TTFT: queue time + prefill. Utilisation: occupied GPU-seconds (a sequence holds 1/slots of a GPU, a batch job its GPUs, preempted runs included) over GPU-seconds, from the first to the last trace arrival; "w/o lost runs" leaves out runs later preempted. Share error: per 60 s window, among tenants with queued work throughout it, the largest |part of their GPU time − part of their shares|.',
  );
  const file = writeResult('quality', {
    attribution: AZURE_TRACE_ATTRIBUTION,
    trace: { path: tracePath, requests: trace.length, spanSeconds: traceSpanS },
    workload: {
      ...workloadOptions,
      timeScale: workload.timeScale,
      simulatedSpanSeconds: workload.spanMs / 1000,
      offeredLoad: workload.offeredLoad,
      offeredGpuSeconds: workload.offeredGpuSeconds,
      batchJobs: workload.batchJobs,
    },
    simulation: sim,
    results,
    ratios,
    targets: {
      fifoOverDynamicUrgentTtft: { target: TARGET.urgentLatencyRatio, measured: ratios.fifoOverDynamicUrgentTtft, met: ratios.fifoOverDynamicUrgentTtft >= TARGET.urgentLatencyRatio },
      dynamicUrgentSlo: { target: TARGET.urgentSlo, measured: dyn.urgentSloAttainment, met: dyn.urgentSloAttainment >= TARGET.urgentSlo },
      dynamicUtilisation: { target: TARGET.utilisation, measured: dyn.utilisation, met: dyn.utilisation >= TARGET.utilisation },
    },
    claimed: CLAIMED,
  });
  console.log(`\n${file}`);
}
