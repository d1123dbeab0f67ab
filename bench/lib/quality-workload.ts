import { PriorityClass, TaskKind, TaskSpec } from '@autoglm/proto';
import { decodeStepSeconds, prefillSeconds, seededRandom, toDuration, type Demand } from '@autoglm/core';
import type { TraceRequest } from './azure-trace';
import { BURST, FLOOD, GUESS_SIGMA, MODELS, POPULAR, PROGRAMS, syntheticMaxTokens, TENANTS, type BatchProgram, type ClassName, type ServedModel } from './quality-mix';

/**
 * The simulated fleet and how one GPU serves work, in the claim model the
 * live service places by (libs/core Fleet).
 *
 * Inference runs in one-GPU replicas (quality-mix.ts MODELS), each running
 * up to `slotsPerGpu` sequences at once (the replica's maxSequences); its KV
 * cache never binds (the cap does). A sequence's service time is the
 * simulator's latency model (libs/core/src/sim/latency-model.ts) for a full
 * batch, times its model's step factor: one prefill of its prompt, then one
 * decode step per output token, each step costed for `slotsPerGpu` sequences
 * of its own context length (prompt plus half its output). That is what the
 * steps cost on a busy GPU; on one running fewer sequences the real steps
 * would be somewhat shorter. A replica serves only once its weights are
 * loaded (the model's cold start); sequences placed on it meanwhile wait.
 *
 * A batch job holds whole GPUs of one node, alone; a replica's GPU holds no
 * batch job, and an idle replica is evicted when a job needs its GPU.
 */
export interface FleetShape {
  nodes: number;
  gpusPerNode: number;
  slotsPerGpu: number;
  gpuMemoryBytes: number;
  /** The placement's memory headroom (maxGpuMemoryFraction). */
  memoryFraction: number;
}

export interface WorkloadOptions {
  fleet: FleetShape;
  /** Offered work over fleet capacity, averaged over the replayed span (requests and batch jobs together). */
  offeredLoad: number;
  /** Part of the offered GPU time that is batch jobs, before the flood adds its own. */
  batchWorkFraction: number;
  seed: number;
}

/** One unit of work: a trace request or a batch job. Times are simulated ms from the first arrival. */
export interface Work {
  id: string;
  kind: 'inference' | 'batch';
  priorityClass: PriorityClass;
  className: ClassName;
  tenant: string;
  arrivalMs: number;
  /** How long one attempt runs: the truth, which no scheduler or predictor sees before it has run. */
  serviceMs: number;
  /** Inference: the prefill part of serviceMs (its first token comes this long after it starts). */
  prefillMs: number;
  /** What was submitted: all a predictor may read (max_tokens, not the output; the submitter's guess, not the run time). */
  spec: TaskSpec;
  /** Inference: the true output length, learned when it finishes. */
  outputTokens: number;
  /** Inference: the model's cold start, for a replica started for it. */
  loadMs: number;
  demand: Demand;
  /** GPUs it occupies while running: 1/slotsPerGpu for a sequence, its GPU count for a batch job. */
  gpus: number;
  preemptible: boolean;
  /** Batch: its program; inference: its model. */
  program: string;
  /** Submitted by the flood. */
  flood: boolean;
}

export interface Workload {
  work: Work[];
  /** Trace time over simulated time: > 1 compresses the trace. */
  timeScale: number;
  /** Simulated ms from the first arrival to the end of the arrival span. */
  spanMs: number;
  fleetGpus: number;
  /** The flood's window, simulated ms. */
  floodMs: { from: number; to: number };
  /** GPU-seconds offered, per kind. */
  offeredGpuSeconds: { inference: number; batch: number; flood: number };
  /** Offered GPU time over capacity during the span. */
  offeredLoad: { inference: number; batch: number; total: number; byClass: Record<ClassName, number> };
  batchJobs: number;
  floodJobs: number;
}

/** Sequence service time (ms) under the model of FleetShape. */
export function sequenceServiceMs(contextTokens: number, generatedTokens: number, slotsPerGpu: number, stepFactor: number): { serviceMs: number; prefillMs: number } {
  const prefill = prefillSeconds(contextTokens) * stepFactor;
  const out = Math.max(1, generatedTokens);
  const step = decodeStepSeconds(slotsPerGpu, slotsPerGpu * (contextTokens + out / 2)) * stepFactor;
  return { serviceMs: (prefill + out * step) * 1000, prefillMs: prefill * 1000 };
}

const CLASSES: Record<ClassName, PriorityClass> = { urgent: PriorityClass.URGENT, normal: PriorityClass.NORMAL, background: PriorityClass.BACKGROUND };

/**
 * The trace's requests with tenants, classes, models and max_tokens drawn
 * (seeded) by the recipe of quality-mix.ts, batch jobs by program, the flood,
 * and the time scale that makes the offered load `offeredLoad` times what
 * the fleet can serve. The same seed gives the same tasks at every load:
 * only the time scale differs.
 */
export function buildWorkload(trace: TraceRequest[], o: WorkloadOptions): Workload {
  if (trace.length === 0) throw new Error('the trace is empty');
  const { fleet } = o;
  const fleetGpus = fleet.nodes * fleet.gpusPerNode;
  const traceSpanMs = Math.max(1, trace[trace.length - 1]!.atMs - trace[0]!.atMs);
  // Separate streams, so that changing the batch recipe does not redraw the requests.
  const requests = drawRequests(trace, traceSpanMs, fleet, seededRandom(o.seed * 7919 + 1));
  const inferenceGpuMs = requests.reduce((s, w) => s + w.serviceMs * w.gpus, 0);
  const batchGpuMs = (inferenceGpuMs * o.batchWorkFraction) / (1 - o.batchWorkFraction);
  const usable = Math.floor(fleet.gpuMemoryBytes * fleet.memoryFraction);
  const batchRandom = seededRandom(o.seed * 7919 + 2);
  // Arrivals as fractions of the span for now; scaled below.
  const jobs: Work[] = [];
  for (const p of PROGRAMS) jobs.push(...drawJobs(p, p.part * batchGpuMs, 0, 1, false, usable, batchRandom));
  const floodProgram = PROGRAMS.find((p) => p.name === FLOOD.program && p.tenant === FLOOD.tenant)!;
  const floodTarget = (FLOOD.rateFactor - 1) * floodProgram.part * batchGpuMs * (FLOOD.toSpan - FLOOD.fromSpan);
  const floodJobs = drawJobs(floodProgram, floodTarget, FLOOD.fromSpan, FLOOD.toSpan, true, usable, batchRandom);
  jobs.push(...floodJobs);

  const gpuMs = (ws: Work[]) => ws.reduce((s, w) => s + w.serviceMs * w.gpus, 0);
  const offered = inferenceGpuMs + gpuMs(jobs);
  const spanMs = offered / (o.offeredLoad * fleetGpus);
  const timeScale = traceSpanMs / spanMs;
  for (const w of requests) w.arrivalMs /= timeScale;
  for (const j of jobs) j.arrivalMs *= spanMs;
  // Arrival order, requests before batch jobs at the same instant (a stable sort keeps trace order).
  const work = [...requests, ...jobs].sort((a, b) => a.arrivalMs - b.arrivalMs);
  const capacityMs = fleetGpus * spanMs;
  const classLoad = (c: ClassName) => gpuMs(requests.filter((w) => w.className === c)) / capacityMs;
  return {
    work,
    timeScale,
    spanMs,
    fleetGpus,
    floodMs: { from: FLOOD.fromSpan * spanMs, to: FLOOD.toSpan * spanMs },
    offeredGpuSeconds: { inference: inferenceGpuMs / 1000, batch: gpuMs(jobs.filter((j) => !j.flood)) / 1000, flood: gpuMs(floodJobs) / 1000 },
    offeredLoad: {
      inference: inferenceGpuMs / capacityMs,
      batch: gpuMs(jobs) / capacityMs,
      total: offered / capacityMs,
      byClass: { urgent: classLoad('urgent'), normal: classLoad('normal'), background: classLoad('background') },
    },
    batchJobs: jobs.length,
    floodJobs: floodJobs.length,
  };
}

/** The trace's requests as tasks; arrivals in trace ms (the burst applied), scaled by the caller. */
function drawRequests(trace: TraceRequest[], traceSpanMs: number, fleet: FleetShape, random: () => number): Work[] {
  const pickTenant = weightedPicker(TENANTS.map((t) => [t, t.requests] as [(typeof TENANTS)[number], number]));
  const models = new Map(MODELS.map((m) => [m.shape.name, m]));
  const popular = models.get(POPULAR.model)!;
  const others = MODELS.filter((m) => m !== popular);
  const out: Work[] = [];
  for (const [i, r] of trace.entries()) {
    const at = (r.atMs - trace[0]!.atMs) / traceSpanMs;
    const tenant = pickTenant(random());
    const className = weightedPicker(Object.entries(tenant.classes) as Array<[ClassName, number]>)(random());
    const popularPart = at < POPULAR.atSpan ? POPULAR.before : POPULAR.after;
    const model: ServedModel = random() < popularPart ? popular : others[Math.floor(random() * others.length)]!;
    const clientCap = tenant.clientCaps[Math.floor(random() * tenant.clientCaps.length)]!;
    const maxTokens = syntheticMaxTokens(clientCap, r.generatedTokens);
    const { serviceMs, prefillMs } = sequenceServiceMs(r.contextTokens, r.generatedTokens, fleet.slotsPerGpu, model.stepFactor);
    const burst = at >= BURST.fromSpan && at < BURST.toSpan;
    const arrivalSpan = burst ? BURST.fromSpan + (at - BURST.fromSpan) / BURST.speedup : at;
    out.push({
      id: `req-${i}`,
      kind: 'inference',
      priorityClass: CLASSES[className],
      className,
      tenant: tenant.name,
      arrivalMs: arrivalSpan * traceSpanMs,
      serviceMs,
      prefillMs,
      spec: TaskSpec.fromPartial({ kind: TaskKind.INFERENCE, model: model.shape.name, inputTokens: r.contextTokens, maxOutputTokens: maxTokens, gpuCount: 1, priorityClass: CLASSES[className] }),
      outputTokens: r.generatedTokens,
      loadMs: model.loadMs,
      // The parser reserves the prompt and the whole generation budget.
      demand: { kind: 'sequence', model: model.shape.name, gpuCount: 1, gpuMemoryBytes: 0, tokens: r.contextTokens + maxTokens, cpuMillis: 0, memoryBytes: 0 },
      gpus: 1 / fleet.slotsPerGpu,
      preemptible: false,
      program: model.shape.name,
      flood: false,
    });
  }
  return out;
}

/** A program's jobs until their GPU time reaches `targetGpuMs`, arriving uniformly over [from, to) of the span (fractions; scaled by the caller). */
function drawJobs(p: BatchProgram, targetGpuMs: number, from: number, to: number, flood: boolean, gpuMemoryBytes: number, random: () => number): Work[] {
  const pickGpus = weightedPicker(p.gpus);
  const out: Work[] = [];
  for (let total = 0; total < targetGpuMs; ) {
    const gpuCount = pickGpus(random());
    const serviceMs = p.minMs * (p.maxMs / p.minMs) ** random();
    const expectedMs = serviceMs * p.guessBias * Math.exp(GUESS_SIGMA * normal(random));
    total += serviceMs * gpuCount;
    out.push({
      id: `${flood ? 'flood' : 'batch'}-${p.name}-${out.length}`,
      kind: 'batch',
      priorityClass: PriorityClass.BACKGROUND,
      className: 'background',
      tenant: p.tenant,
      arrivalMs: from + (to - from) * random(),
      serviceMs,
      prefillMs: 0,
      spec: TaskSpec.fromPartial({
        kind: TaskKind.BATCH,
        gpuCount,
        priorityClass: PriorityClass.BACKGROUND,
        preemptible: true,
        payload: { $case: 'batch', batch: { command: [p.name], env: {}, expectedDuration: toDuration(expectedMs) } },
      }),
      outputTokens: 0,
      loadMs: 0,
      demand: { kind: 'gpus', model: '', gpuCount, gpuMemoryBytes, tokens: 0, cpuMillis: 0, memoryBytes: 0 },
      gpus: gpuCount,
      preemptible: true,
      program: p.name,
      flood,
    });
  }
  return out;
}

/** A standard normal draw (Box–Muller). */
function normal(random: () => number): number {
  const u = Math.max(Number.EPSILON, random());
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** Maps u in [0, 1) to a value with the given weights. */
function weightedPicker<T>(choices: Array<[T, number]>): (u: number) => T {
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
