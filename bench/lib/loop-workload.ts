import { PriorityClass, TaskKind, TaskSpec } from '@autoglm/proto';
import { seededRandom, toDuration } from '@autoglm/core';
import type { TraceRequest } from './azure-trace';
import { MODELS, syntheticMaxTokens, type ClassName, type ServedModel } from './quality-mix';
import { sequenceServiceMs, type FleetShape, type Work } from './quality-workload';

/**
 * The closed-loop experiment's workload: a steady mix of requests (the Azure
 * trace, compressed to the run) and batch jobs from three tenants, with one
 * shock laid over it at `shockMs`. Each scenario is the same base (per seed)
 * plus its shock, so the loop on and off replay identical arrivals.
 */

export type ScenarioName = 'burst' | 'popularity' | 'failing-agent';
export const SCENARIOS: readonly ScenarioName[] = ['burst', 'popularity', 'failing-agent'];

const MIN = 60_000;

/**
 * The run: 35 min simulated. The fleet starts empty, so the loop is attached
 * only after a warm-up (as a monitor that has been running all along would
 * not see the fleet's first cold starts); the shock comes 10 min later, when
 * SLO windows, forecasts and fair-share usage have settled.
 */
export const SPAN_MS = 35 * MIN;
export const WARMUP_MS = 5 * MIN;
export const SHOCK_MS = 15 * MIN;

interface LoopTenant {
  name: string;
  share: number;
  /** Part of the requests it sends, and their classes. */
  requests: number;
  classes: Record<ClassName, number>;
  clientCaps: number[];
}

/**
 * product: the interactive API (big share, most requests); research: long
 * background training; internal: small share, normal-class evaluation jobs
 * (its normal-class work is mostly jobs, so its queue-time SLO sees them).
 */
export const LOOP_TENANTS: readonly LoopTenant[] = [
  { name: 'product', share: 3, requests: 0.55, classes: { urgent: 0.4, normal: 0.55, background: 0.05 }, clientCaps: [512, 1024] },
  { name: 'research', share: 2, requests: 0.25, classes: { urgent: 0.05, normal: 0.35, background: 0.6 }, clientCaps: [4096] },
  { name: 'internal', share: 1, requests: 0.2, classes: { urgent: 0.3, normal: 0.1, background: 0.6 }, clientCaps: [1024, 2048] },
];

interface LoopProgram {
  name: string;
  tenant: string;
  className: ClassName;
  gpus: Array<[number, number]>;
  /** True run time, log-uniform between these (ms). */
  minMs: number;
  maxMs: number;
  /** GPU time offered, as a fraction of the fleet's, while it submits. */
  load: number;
}

/** The steady batch work: 60 % of the fleet's GPU time on top of ~20 % in requests. */
export const PROGRAMS: readonly LoopProgram[] = [
  { name: 'train', tenant: 'research', className: 'background', gpus: [[4, 0.5], [8, 0.5]], minMs: 3 * MIN, maxMs: 10 * MIN, load: 0.35 },
  { name: 'embed', tenant: 'product', className: 'background', gpus: [[1, 1]], minMs: 0.5 * MIN, maxMs: 2 * MIN, load: 0.1 },
  { name: 'eval', tenant: 'internal', className: 'normal', gpus: [[1, 0.5], [2, 0.5]], minMs: 0.5 * MIN, maxMs: 2 * MIN, load: 0.15 },
];

/** (a) product's backfill at normal priority for 6 min, on top of everything else (its load: ShockSettings.floodLoad). */
export const BURST = { program: { name: 'backfill', tenant: 'product', className: 'normal', gpus: [[1, 0.25], [2, 0.25], [4, 0.5]], minMs: 1 * MIN, maxMs: 4 * MIN, load: 0 } as LoopProgram, durationMs: 6 * MIN, victim: 'internal' } as const;

/** (b) `code` requests at ShockSettings.popularFactor times their base rate for `onMs`, then the base rate for `offMs`, repeating. */
export const POPULARITY = { model: 'code', basePart: 0.05, onMs: 3 * MIN, offMs: 4 * MIN } as const;

/** How hard the shocks hit. */
export interface ShockSettings {
  /** (a): the flood's GPU time over the fleet's while it lasts. */
  floodLoad: number;
  /** (b): the popular model's rate in its on-phases over its base rate. */
  popularFactor: number;
}

export const DEFAULT_SHOCKS: ShockSettings = { floodLoad: 0.6, popularFactor: 5 };

/** (c) the agent that starts failing: this part of its attempts fail, partway through their run. */
export const FAILING = { nodeId: 'node-1', failureRate: 0.3 } as const;

/** A served model and its cold start in this experiment: weights at the simulator's load bandwidth plus the engine's start. */
export interface LoopModel extends ServedModel {
  coldStartMs: number;
}

export function loopModels(engineStartMs: number): LoopModel[] {
  return MODELS.map((m) => ({ ...m, coldStartMs: m.loadMs + engineStartMs }));
}

export interface LoopWorkload {
  scenario: ScenarioName;
  work: Work[];
  spanMs: number;
  shockMs: number;
  /** (b): the on-phases of the popular model. */
  phases: Array<{ fromMs: number; toMs: number }>;
  /** Offered GPU time over fleet capacity, before the shock. */
  baseLoad: { inference: number; batch: number };
  requests: number;
  jobs: number;
}

const CLASSES: Record<ClassName, PriorityClass> = { urgent: PriorityClass.URGENT, normal: PriorityClass.NORMAL, background: PriorityClass.BACKGROUND };

/**
 * The scenario's arrivals for a seed. The trace's requests are compressed to
 * the run (the trace's ~58 min in 30 min: ~10.7 requests/s), each given a
 * tenant, class and model by seeded draws; batch jobs arrive uniformly. The
 * same seed gives the same base in every scenario.
 */
export function buildLoopWorkload(trace: TraceRequest[], scenario: ScenarioName, seed: number, fleet: FleetShape, models: readonly LoopModel[], shocks: ShockSettings = DEFAULT_SHOCKS): LoopWorkload {
  const fleetGpus = fleet.nodes * fleet.gpusPerNode;
  const traceSpan = Math.max(1, trace[trace.length - 1]!.atMs - trace[0]!.atMs);
  const byName = new Map(models.map((m) => [m.shape.name, m]));
  const popular = byName.get(POPULARITY.model)!;
  const others = models.filter((m) => m !== popular);
  const requestRandom = seededRandom(seed * 7919 + 11);
  const pick = tenantPicker(requestRandom);
  const work: Work[] = [];
  for (const [i, r] of trace.entries()) {
    const arrivalMs = ((r.atMs - trace[0]!.atMs) / traceSpan) * SPAN_MS;
    const model = requestRandom() < POPULARITY.basePart ? popular : others[Math.floor(requestRandom() * others.length)]!;
    work.push(request(`req-${i}`, r, arrivalMs, model, pick(), fleet));
  }
  const inferenceGpuMs = work.reduce((s, w) => s + w.serviceMs * w.gpus, 0);
  const jobRandom = seededRandom(seed * 7919 + 12);
  const usable = Math.floor(fleet.gpuMemoryBytes * fleet.memoryFraction);
  for (const p of PROGRAMS) work.push(...jobs(p, 0, SPAN_MS, fleetGpus, usable, jobRandom));
  const batchGpuMs = work.reduce((s, w) => s + (w.kind === 'batch' ? w.serviceMs * w.gpus : 0), 0);
  const phases: Array<{ fromMs: number; toMs: number }> = [];
  // Each shock draws from its own stream, so the base is the same in every scenario.
  const shockRandom = seededRandom(seed * 7919 + 13);
  if (scenario === 'burst') {
    work.push(...jobs({ ...BURST.program, load: shocks.floodLoad }, SHOCK_MS, SHOCK_MS + BURST.durationMs, fleetGpus, usable, shockRandom));
  } else if (scenario === 'popularity') {
    // The extra requests: trace rows drawn at random, Poisson arrivals at (factor - 1) × the base rate of the model.
    const extraRate = ((shocks.popularFactor - 1) * POPULARITY.basePart * trace.length) / SPAN_MS;
    const pickExtra = tenantPicker(shockRandom);
    for (let from = SHOCK_MS; from < SPAN_MS; from += POPULARITY.onMs + POPULARITY.offMs) {
      const to = Math.min(SPAN_MS, from + POPULARITY.onMs);
      phases.push({ fromMs: from, toMs: to });
      for (let t = from - Math.log(1 - shockRandom()) / extraRate; t < to; t -= Math.log(1 - shockRandom()) / extraRate) {
        const row = trace[Math.floor(shockRandom() * trace.length)]!;
        work.push(request(`surge-${work.length}`, row, t, popular, pickExtra(), fleet));
      }
    }
  }
  work.sort((a, b) => a.arrivalMs - b.arrivalMs);
  const capacity = fleetGpus * SPAN_MS;
  return {
    scenario,
    work,
    spanMs: SPAN_MS,
    shockMs: SHOCK_MS,
    phases,
    baseLoad: { inference: inferenceGpuMs / capacity, batch: batchGpuMs / capacity },
    requests: work.filter((w) => w.kind === 'inference').length,
    jobs: work.filter((w) => w.kind === 'batch').length,
  };
}

function tenantPicker(random: () => number): () => { tenant: LoopTenant; className: ClassName; cap: number } {
  const tenants = weighted(LOOP_TENANTS.map((t) => [t, t.requests] as [LoopTenant, number]));
  return () => {
    const tenant = tenants(random());
    const className = weighted(Object.entries(tenant.classes) as Array<[ClassName, number]>)(random());
    const cap = tenant.clientCaps[Math.floor(random() * tenant.clientCaps.length)]!;
    return { tenant, className, cap };
  };
}

function request(id: string, r: TraceRequest, arrivalMs: number, model: LoopModel, who: { tenant: LoopTenant; className: ClassName; cap: number }, fleet: FleetShape): Work {
  const maxTokens = syntheticMaxTokens(who.cap, r.generatedTokens);
  const { serviceMs, prefillMs } = sequenceServiceMs(r.contextTokens, r.generatedTokens, fleet.slotsPerGpu, model.stepFactor);
  const priorityClass = CLASSES[who.className];
  return {
    id,
    kind: 'inference',
    priorityClass,
    className: who.className,
    tenant: who.tenant.name,
    arrivalMs,
    serviceMs,
    prefillMs,
    spec: TaskSpec.fromPartial({ kind: TaskKind.INFERENCE, model: model.shape.name, inputTokens: r.contextTokens, maxOutputTokens: maxTokens, gpuCount: 1, priorityClass }),
    outputTokens: r.generatedTokens,
    loadMs: model.coldStartMs,
    demand: { kind: 'sequence', model: model.shape.name, gpuCount: 1, gpuMemoryBytes: 0, tokens: r.contextTokens + maxTokens, cpuMillis: 0, memoryBytes: 0 },
    gpus: 1 / fleet.slotsPerGpu,
    preemptible: false,
    program: model.shape.name,
    flood: false,
  };
}

/** A program's jobs over [fromMs, toMs): GPU time `load` × the fleet's over that span, arrivals uniform. */
function jobs(p: LoopProgram, fromMs: number, toMs: number, fleetGpus: number, gpuMemoryBytes: number, random: () => number): Work[] {
  const target = p.load * fleetGpus * (toMs - fromMs);
  const pickGpus = weighted(p.gpus);
  const out: Work[] = [];
  const priorityClass = CLASSES[p.className];
  for (let total = 0; total < target; ) {
    const gpuCount = pickGpus(random());
    const serviceMs = p.minMs * (p.maxMs / p.minMs) ** random();
    total += serviceMs * gpuCount;
    out.push({
      id: `${p.name}-${fromMs}-${out.length}`,
      kind: 'batch',
      priorityClass,
      className: p.className,
      tenant: p.tenant,
      arrivalMs: fromMs + (toMs - fromMs) * random(),
      serviceMs,
      prefillMs: 0,
      spec: TaskSpec.fromPartial({
        kind: TaskKind.BATCH,
        gpuCount,
        priorityClass,
        preemptible: true,
        // The submitter's guess: the truth within a factor of ~1.6 either way.
        payload: { $case: 'batch', batch: { command: [p.name], env: {}, expectedDuration: toDuration(serviceMs * Math.exp(0.5 * (random() - 0.5))) } },
      }),
      outputTokens: 0,
      loadMs: 0,
      demand: { kind: 'gpus', model: '', gpuCount, gpuMemoryBytes, tokens: 0, cpuMillis: 0, memoryBytes: 0 },
      gpus: gpuCount,
      preemptible: true,
      program: p.name,
      flood: p.name === BURST.program.name,
    });
  }
  return out;
}

function weighted<T>(choices: Array<[T, number]>): (u: number) => T {
  const total = choices.reduce((s, [, w]) => s + w, 0);
  return (u) => {
    let acc = 0;
    for (const [value, w] of choices) {
      acc += w / total;
      if (u < acc) return value;
    }
    return choices[choices.length - 1]![0];
  };
}

/** The recipe in words, for the report. */
export function describeLoopWorkload(models: readonly LoopModel[], fleet: FleetShape, traceRequests: number, shocks: ShockSettings = DEFAULT_SHOCKS): string[] {
  const pct = (x: number) => `${Math.round(x * 100)} %`;
  const min = (ms: number) => `${ms / MIN} min`;
  return [
    `Fleet: ${fleet.nodes} nodes × ${fleet.gpusPerNode} GPUs (80 GB), ${fleet.slotsPerGpu} sequences per one-GPU replica; the core Fleet and Dispatcher (DEFAULT_POLICY) place everything.`,
    `Requests: the Azure trace's rows in order, compressed to ${min(SPAN_MS)} (~${(traceRequests / (SPAN_MS / 1000)).toFixed(1)}/s); tenants (share; part of requests; urgent/normal/background): ` +
      LOOP_TENANTS.map((t) => `${t.name} (${t.share}; ${pct(t.requests)}; ${pct(t.classes.urgent)}/${pct(t.classes.normal)}/${pct(t.classes.background)})`).join(', ') + '.',
    `Models: ${models.map((m) => `${m.shape.name} (cold start ${(m.coldStartMs / 1000).toFixed(1)} s: weights ${(m.loadMs / 1000).toFixed(1)} s + engine start)`).join(', ')}; ${POPULARITY.model} gets ${pct(POPULARITY.basePart)} of requests.`,
    `Batch (preemptible, arrivals uniform, GPU time as part of the fleet's): ` + PROGRAMS.map((p) => `${p.name} (${p.tenant}, ${p.className}, ${p.gpus.map(([g]) => g).join('/')} GPUs, ${min(p.minMs)}–${min(p.maxMs)}, ${pct(p.load)})`).join(', ') + '.',
    `The loop is attached after a ${min(WARMUP_MS)} warm-up (the fleet starts empty); shock at ${min(SHOCK_MS)} of ${min(SPAN_MS)}:`,
    `  (a) burst: ${BURST.program.tenant} submits normal-class ${BURST.program.name} jobs (${BURST.program.gpus.map(([g]) => g).join('/')} GPUs, ${min(BURST.program.minMs)}–${min(BURST.program.maxMs)}) offering ${pct(shocks.floodLoad)} of the fleet for ${min(BURST.durationMs)}; watched: ${BURST.victim}'s normal-queue SLO.`,
    `  (b) popularity: ${POPULARITY.model} requests at ${shocks.popularFactor}× their rate for ${min(POPULARITY.onMs)}, then ${min(POPULARITY.offMs)} at the base rate, repeating; watched: urgent-ttft (every tenant's series).`,
    `  (c) failing agent: ${FAILING.nodeId} fails ${pct(FAILING.failureRate)} of the attempts it starts from then on, partway through (a failed attempt is retried, up to 3 times); watched: success (every tenant's series).`,
  ];
}
