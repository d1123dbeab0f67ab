import { PriorityClass } from '@autoglm/proto';
import { decodeStepSeconds, prefillSeconds, seededRandom, type Demand, type ModelShape } from '@autoglm/core';
import type { TraceRequest } from './azure-trace';

/**
 * The simulated fleet and how one GPU serves work, in the claim model the
 * live service places by (libs/core Fleet).
 *
 * Inference runs in one-GPU replicas of BENCH_MODEL, each running up to
 * `slotsPerGpu` sequences at once (the replica's maxSequences), like an
 * engine whose batch is capped at that many sequences; its KV cache never
 * binds (the cap does). A sequence's service time is the simulator's latency model
 * (libs/core/src/sim/latency-model.ts) for a full batch: one prefill of its
 * prompt, then one decode step per output token, each step costed for
 * `slotsPerGpu` sequences of its own context length (prompt plus half its
 * output). That is what the steps cost when the fleet is oversubscribed,
 * which is the case measured here; on a GPU running fewer sequences the real
 * steps would be somewhat shorter. Prefill does not stall the batch's
 * decoding in this model.
 *
 * A batch job holds whole GPUs, alone; a replica's GPU holds no batch job,
 * and an idle replica is evicted when a job needs its GPU.
 */
export interface FleetShape {
  nodes: number;
  gpusPerNode: number;
  slotsPerGpu: number;
  gpuMemoryBytes: number;
  /** The placement's memory headroom (maxGpuMemoryFraction). */
  memoryFraction: number;
}

export interface TenantMix {
  name: string;
  share: number;
  /** Its part of the submitted work (requests and batch jobs alike). */
  traffic: number;
}

export interface WorkloadOptions {
  fleet: FleetShape;
  tenants: TenantMix[];
  /** Fractions of the trace's requests per class; the rest are background. */
  urgentFraction: number;
  normalFraction: number;
  /** Offered work over fleet capacity, averaged over the replayed span (requests and batch jobs together). */
  offeredLoad: number;
  /** Part of the offered GPU time that is background batch jobs. */
  batchWorkFraction: number;
  seed: number;
}

/** One unit of work: a trace request or a batch job. Times are simulated ms from the first arrival. */
export interface Work {
  id: string;
  kind: 'inference' | 'batch';
  priorityClass: PriorityClass;
  tenant: string;
  arrivalMs: number;
  /** How long one attempt runs. */
  serviceMs: number;
  /** Inference: the prefill part of serviceMs (time to first token once started). */
  prefillMs: number;
  contextTokens: number;
  generatedTokens: number;
  demand: Demand;
  /** GPUs it occupies while running: 1/slotsPerGpu for a sequence, gpuCount for a batch job. */
  gpus: number;
  preemptible: boolean;
  /** Batch: the duration its submitter expects (ms). */
  expectedMs: number;
}

export interface Workload {
  work: Work[];
  /** Trace time over simulated time: > 1 compresses the trace. */
  timeScale: number;
  /** Simulated ms from the first arrival to the last trace arrival. */
  spanMs: number;
  fleetGpus: number;
  /** GPU-seconds offered, per kind. */
  offeredGpuSeconds: { inference: number; batch: number };
  /** Offered GPU time over capacity during the span, by kind and in all. */
  offeredLoad: { inference: number; batch: number; total: number; byClass: Record<string, number> };
  batchJobs: number;
}

/** A batch job's GPUs: one (50 %), two (30 %) or four (20 %) on one node. */
/** The model every simulated request asks for: small weights, and a KV cache the sequence cap binds before. */
export const BENCH_MODEL: ModelShape = Object.freeze({ name: 'bench-model', weightBytes: 1, kvBytesPerToken: 1, contextLength: 1 });

const BATCH_GPUS: Array<[number, number]> = [
  [1, 0.5],
  [2, 0.3],
  [4, 0.2],
];
/** Batch job lengths before scaling: log-uniform between these. */
const BATCH_MIN_MS = 30_000;
const BATCH_MAX_MS = 300_000;

/** Sequence service time (ms) under the model of FleetShape. */
export function sequenceServiceMs(contextTokens: number, generatedTokens: number, slotsPerGpu: number): { serviceMs: number; prefillMs: number } {
  const prefill = prefillSeconds(contextTokens);
  const out = Math.max(1, generatedTokens);
  const step = decodeStepSeconds(slotsPerGpu, slotsPerGpu * (contextTokens + out / 2));
  return { serviceMs: (prefill + out * step) * 1000, prefillMs: prefill * 1000 };
}

/**
 * Classes and tenants drawn (seeded) for each trace request, background batch
 * jobs arriving steadily, and the time scale that makes the offered load
 * `offeredLoad` times what the fleet can serve.
 */
export function buildWorkload(trace: TraceRequest[], o: WorkloadOptions): Workload {
  if (trace.length === 0) throw new Error('the trace is empty');
  const random = seededRandom(o.seed);
  const { fleet } = o;
  const fleetGpus = fleet.nodes * fleet.gpusPerNode;
  const usable = Math.floor(fleet.gpuMemoryBytes * fleet.memoryFraction);
  const pickTenant = weightedPicker(o.tenants.map((t) => [t.name, t.traffic] as [string, number]));
  const work: Work[] = [];
  let inferenceGpuMs = 0;
  const byClassGpuMs = new Map<PriorityClass, number>();
  for (const [i, r] of trace.entries()) {
    const u = random();
    const priorityClass = u < o.urgentFraction ? PriorityClass.URGENT : u < o.urgentFraction + o.normalFraction ? PriorityClass.NORMAL : PriorityClass.BACKGROUND;
    const { serviceMs, prefillMs } = sequenceServiceMs(r.contextTokens, r.generatedTokens, fleet.slotsPerGpu);
    const gpus = 1 / fleet.slotsPerGpu;
    inferenceGpuMs += serviceMs * gpus;
    byClassGpuMs.set(priorityClass, (byClassGpuMs.get(priorityClass) ?? 0) + serviceMs * gpus);
    work.push({
      id: `req-${i}`,
      kind: 'inference',
      priorityClass,
      tenant: pickTenant(random()),
      arrivalMs: r.atMs, // scaled below
      serviceMs,
      prefillMs,
      contextTokens: r.contextTokens,
      generatedTokens: r.generatedTokens,
      demand: { kind: 'sequence', model: BENCH_MODEL.name, gpuCount: 1, gpuMemoryBytes: 0, tokens: 1, cpuMillis: 0, memoryBytes: 0 },
      gpus,
      preemptible: false,
      expectedMs: serviceMs,
    });
  }
  const traceSpanMs = Math.max(1, trace[trace.length - 1]!.atMs - trace[0]!.atMs);
  // Batch GPU time in proportion to the requests', then the scale that puts both at offeredLoad.
  const batchGpuMs = (inferenceGpuMs * o.batchWorkFraction) / (1 - o.batchWorkFraction);
  const timeScale = (o.offeredLoad * fleetGpus * traceSpanMs) / (inferenceGpuMs + batchGpuMs);
  const spanMs = traceSpanMs / timeScale;
  for (const w of work) w.arrivalMs /= timeScale;

  // Batch jobs: shapes drawn, lengths then scaled so their GPU time is exactly batchGpuMs; arrivals steady (one per slot of the span, jittered).
  const pickGpus = weightedPicker(BATCH_GPUS);
  const meanGpus = BATCH_GPUS.reduce((s, [g, p]) => s + g * p, 0);
  const meanMs = (BATCH_MAX_MS - BATCH_MIN_MS) / Math.log(BATCH_MAX_MS / BATCH_MIN_MS);
  const jobs = batchGpuMs > 0 ? Math.max(1, Math.round(batchGpuMs / (meanGpus * meanMs))) : 0;
  const shapes = Array.from({ length: jobs }, () => ({ gpuCount: pickGpus(random()), ms: BATCH_MIN_MS * (BATCH_MAX_MS / BATCH_MIN_MS) ** random(), u: random(), tenant: pickTenant(random()) }));
  const drawn = shapes.reduce((s, j) => s + j.gpuCount * j.ms, 0);
  for (const [i, j] of shapes.entries()) {
    const serviceMs = (j.ms * batchGpuMs) / drawn;
    work.push({
      id: `batch-${i}`,
      kind: 'batch',
      priorityClass: PriorityClass.BACKGROUND,
      tenant: j.tenant,
      arrivalMs: ((i + j.u) * spanMs) / jobs,
      serviceMs,
      prefillMs: 0,
      contextTokens: 0,
      generatedTokens: 0,
      demand: { kind: 'gpus', model: '', gpuCount: j.gpuCount, gpuMemoryBytes: usable, tokens: 0, cpuMillis: 0, memoryBytes: 0 },
      gpus: j.gpuCount,
      preemptible: true,
      expectedMs: serviceMs,
    });
  }
  // Arrival order, requests before batch jobs at the same instant (a stable sort keeps trace order).
  work.sort((a, b) => a.arrivalMs - b.arrivalMs);
  const capacityMs = fleetGpus * spanMs;
  return {
    work,
    timeScale,
    spanMs,
    fleetGpus,
    offeredGpuSeconds: { inference: inferenceGpuMs / 1000, batch: batchGpuMs / 1000 },
    offeredLoad: {
      inference: inferenceGpuMs / capacityMs,
      batch: batchGpuMs / capacityMs,
      total: (inferenceGpuMs + batchGpuMs) / capacityMs,
      byClass: Object.fromEntries([...byClassGpuMs].map(([c, ms]) => [className(c), ms / capacityMs])),
    },
    batchJobs: jobs,
  };
}

export function className(c: PriorityClass): string {
  return c === PriorityClass.URGENT ? 'urgent' : c === PriorityClass.BACKGROUND ? 'background' : 'normal';
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
