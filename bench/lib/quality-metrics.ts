import { measureFairness, type FairnessStats } from './quality-fairness';
import type { ClassName } from './quality-mix';
import type { PredictionError } from './prediction-error';
import type { PolicyName, RunTrace, Timeline } from './quality-sim';
import type { Workload } from './quality-workload';
import { mean, percentileOf } from './stats';

/** Queue time (arrival to placement) and time to first token of a set of requests. */
export interface RequestStats {
  count: number;
  queueMeanMs: number;
  queueP99Ms: number;
  ttftMeanMs: number;
  ttftP99Ms: number;
}

export interface BatchStats {
  count: number;
  /** Arrival to the first start, preempted or not. */
  firstQueueMeanMs: number;
  firstQueueP99Ms: number;
  /** Arrival to the start of the run that completed (runs lost to preemption count as waiting). */
  queueMeanMs: number;
  queueP99Ms: number;
  queueMaxMs: number;
  /** The longest single wait runnable (from arrival, or from a preemption, to the next start): what the age bound bounds. */
  longestWaitMs: number;
  /** (completion − arrival) / run time. */
  slowdownMean: number;
  slowdownP99: number;
  completionMeanMs: number;
  preemptions: number;
  /** GPU-seconds of runs that were preempted (their work is lost). */
  lostGpuSeconds: number;
}

/** One policy's run on one (load, seed): everything the report aggregates. */
export interface RunMetrics {
  policy: PolicyName;
  requests: Record<ClassName | 'all', RequestStats>;
  /** Urgent requests with TTFT within the SLO. */
  urgentSloAttainment: number;
  batch: BatchStats;
  /** Occupied GPU-seconds (preempted runs included) over GPU-seconds, from 0 to the last completion. */
  utilisation: number;
  /** The same without runs that were preempted. */
  goodput: number;
  makespanMs: number;
  coldStarts: { replicas: number; gpuSeconds: number };
  fairness: FairnessStats;
  predictions: Record<string, PredictionError>;
  wallMs: number;
}

/**
 * Measures a run: every request (queue = arrival → the start of its run,
 * which waits for a cold replica to load; TTFT = queue + its prefill) and
 * every batch job, to the last completion.
 */
export function measureRun(run: RunTrace, workload: Workload, tenants: ReadonlyArray<{ name: string; share: number }>, sloTtftMs: number, windowMs: number): RunMetrics {
  const requests = run.timelines.filter((t) => t.work.kind === 'inference');
  const jobs = run.timelines.filter((t) => t.work.kind === 'batch');
  for (const t of run.timelines) if (!(t.doneMs >= 0)) throw new Error(`${run.policy}: ${t.work.id} never finished`);
  const ttft = (t: Timeline) => t.attempts[0]!.runStartMs - t.work.arrivalMs + t.work.prefillMs;
  const urgent = requests.filter((t) => t.work.className === 'urgent');
  let busy = 0;
  let kept = 0;
  for (const t of run.timelines) {
    for (const a of t.attempts) {
      const gpuMs = (a.endMs - a.runStartMs) * t.work.gpus;
      busy += gpuMs;
      if (!a.preempted) kept += gpuMs;
    }
  }
  const capacityMs = workload.fleetGpus * run.makespanMs;
  return {
    policy: run.policy,
    requests: {
      all: requestStats(requests, ttft),
      urgent: requestStats(urgent, ttft),
      normal: requestStats(
        requests.filter((t) => t.work.className === 'normal'),
        ttft,
      ),
      background: requestStats(
        requests.filter((t) => t.work.className === 'background'),
        ttft,
      ),
    },
    urgentSloAttainment: urgent.filter((t) => ttft(t) <= sloTtftMs).length / Math.max(1, urgent.length),
    batch: batchStats(jobs),
    utilisation: busy / capacityMs,
    goodput: kept / capacityMs,
    makespanMs: run.makespanMs,
    coldStarts: run.coldStarts,
    fairness: measureFairness(run.timelines, tenants, workload.fleetGpus, run.makespanMs, windowMs, workload.floodMs),
    predictions: run.predictions,
    wallMs: run.wallMs,
  };
}

function requestStats(ts: Timeline[], ttft: (t: Timeline) => number): RequestStats {
  // Waiting ends when it is served: a request placed on a replica still loading waits for the load too.
  const queue = ts.map((t) => t.attempts[0]!.runStartMs - t.work.arrivalMs);
  const first = ts.map(ttft);
  return { count: ts.length, queueMeanMs: mean(queue), queueP99Ms: percentileOf(queue, 99), ttftMeanMs: mean(first), ttftP99Ms: percentileOf(first, 99) };
}

function batchStats(jobs: Timeline[]): BatchStats {
  const first = jobs.map((t) => t.attempts[0]!.placedMs - t.work.arrivalMs);
  const final = jobs.map((t) => t.attempts[t.attempts.length - 1]!.placedMs - t.work.arrivalMs);
  const slowdown = jobs.map((t) => (t.doneMs - t.work.arrivalMs) / t.work.serviceMs);
  let longestWaitMs = 0;
  let preemptions = 0;
  let lostGpuMs = 0;
  for (const t of jobs) {
    let readyMs = t.work.arrivalMs;
    for (const a of t.attempts) {
      longestWaitMs = Math.max(longestWaitMs, a.placedMs - readyMs);
      readyMs = a.endMs;
      if (!a.preempted) continue;
      preemptions += 1;
      lostGpuMs += (a.endMs - a.runStartMs) * t.work.gpus;
    }
  }
  return {
    count: jobs.length,
    firstQueueMeanMs: mean(first),
    firstQueueP99Ms: percentileOf(first, 99),
    queueMeanMs: mean(final),
    queueP99Ms: percentileOf(final, 99),
    queueMaxMs: Math.max(...final),
    longestWaitMs,
    slowdownMean: mean(slowdown),
    slowdownP99: percentileOf(slowdown, 99),
    completionMeanMs: mean(jobs.map((t) => t.doneMs - t.work.arrivalMs)),
    preemptions,
    lostGpuSeconds: lostGpuMs / 1000,
  };
}
