import type { RunMetrics } from './quality-metrics';
import type { CellResult } from './quality-run';
import type { PolicyName } from './quality-sim';
import { estimate, type Estimate } from './stats';

/** A number read off one run, aggregated over seeds. */
export interface Measure {
  label: string;
  /** How a value prints (the unit is in the label). */
  digits: number;
  get: (m: RunMetrics) => number;
}

const s = (ms: number) => ms / 1000;

export const MEASURES = {
  allQueueMs: { label: 'all requests: mean queue, ms', digits: 0, get: (m) => m.requests.all.queueMeanMs },
  allQueueP99Ms: { label: 'all requests: p99 queue, ms', digits: 0, get: (m) => m.requests.all.queueP99Ms },
  allTtftMs: { label: 'all requests: mean TTFT, ms', digits: 0, get: (m) => m.requests.all.ttftMeanMs },
  allTtftP99Ms: { label: 'all requests: p99 TTFT, ms', digits: 0, get: (m) => m.requests.all.ttftP99Ms },
  urgentQueueMs: { label: 'urgent: mean queue, ms', digits: 0, get: (m) => m.requests.urgent.queueMeanMs },
  urgentTtftMs: { label: 'urgent: mean TTFT, ms', digits: 0, get: (m) => m.requests.urgent.ttftMeanMs },
  urgentTtftP99Ms: { label: 'urgent: p99 TTFT, ms', digits: 0, get: (m) => m.requests.urgent.ttftP99Ms },
  urgentSloPct: { label: 'urgent: TTFT within the SLO, %', digits: 1, get: (m) => 100 * m.urgentSloAttainment },
  normalQueueMs: { label: 'normal: mean queue, ms', digits: 0, get: (m) => m.requests.normal.queueMeanMs },
  normalTtftP99Ms: { label: 'normal: p99 TTFT, ms', digits: 0, get: (m) => m.requests.normal.ttftP99Ms },
  backgroundQueueMs: { label: 'background requests: mean queue, ms', digits: 0, get: (m) => m.requests.background.queueMeanMs },
  backgroundQueueP99Ms: { label: 'background requests: p99 queue, ms', digits: 0, get: (m) => m.requests.background.queueP99Ms },
  batchFirstQueueMeanS: { label: 'batch: mean queue to first start, s', digits: 1, get: (m) => s(m.batch.firstQueueMeanMs) },
  batchQueueMeanS: { label: 'batch: mean queue to final run, s', digits: 1, get: (m) => s(m.batch.queueMeanMs) },
  batchQueueP99S: { label: 'batch: p99 queue to final run, s', digits: 1, get: (m) => s(m.batch.queueP99Ms) },
  batchQueueMaxS: { label: 'batch: max queue to final run, s', digits: 1, get: (m) => s(m.batch.queueMaxMs) },
  batchLongestWaitS: { label: 'batch: longest single wait, s', digits: 1, get: (m) => s(m.batch.longestWaitMs) },
  batchSlowdown: { label: 'batch: mean slowdown', digits: 2, get: (m) => m.batch.slowdownMean },
  batchSlowdownP99: { label: 'batch: p99 slowdown', digits: 2, get: (m) => m.batch.slowdownP99 },
  batchCompletionS: { label: 'batch: mean completion, s', digits: 1, get: (m) => s(m.batch.completionMeanMs) },
  preemptions: { label: 'batch: preemptions', digits: 1, get: (m) => m.batch.preemptions },
  lostGpuS: { label: 'batch: GPU-s lost to preemption', digits: 0, get: (m) => m.batch.lostGpuSeconds },
  fairnessMeanPp: { label: 'fairness: mean |measured − max-min|, pp', digits: 1, get: (m) => m.fairness.meanErrorPp },
  fairnessMaxPp: { label: 'fairness: max |measured − max-min|, pp', digits: 1, get: (m) => m.fairness.maxErrorPp },
  floodPp: { label: 'fairness over the flood, pp', digits: 1, get: (m) => m.fairness.floodErrorPp },
  utilisationPct: { label: 'utilisation to the last completion, %', digits: 1, get: (m) => 100 * m.utilisation },
  goodputPct: { label: 'the same without lost runs, %', digits: 1, get: (m) => 100 * m.goodput },
  makespanS: { label: 'last completion, s', digits: 0, get: (m) => s(m.makespanMs) },
  coldStarts: { label: 'replica cold starts', digits: 0, get: (m) => m.coldStarts.replicas },
} satisfies Record<string, Measure>;

export type MeasureKey = keyof typeof MEASURES;

/** Per load and policy: each measure's per-seed values (in seed order) and their estimate. */
export type Aggregate = Map<number, Map<PolicyName, Record<MeasureKey, { values: number[]; estimate: Estimate }>>>;

/** Groups the cells by load and policy, seeds in the same order for every policy (so values pair up). */
export function aggregate(cells: readonly CellResult[], loads: readonly number[], policies: readonly PolicyName[]): Aggregate {
  const out: Aggregate = new Map();
  for (const load of loads) {
    const byPolicy = new Map<PolicyName, Record<MeasureKey, { values: number[]; estimate: Estimate }>>();
    const atLoad = cells.filter((c) => c.load === load).sort((a, b) => a.seed - b.seed);
    for (const policy of policies) {
      const runs = atLoad.map((c) => c.runs.find((r) => r.policy === policy)!);
      const record = {} as Record<MeasureKey, { values: number[]; estimate: Estimate }>;
      for (const [key, measure] of Object.entries(MEASURES) as Array<[MeasureKey, Measure]>) {
        const values = runs.map(measure.get);
        record[key] = { values, estimate: estimate(values) };
      }
      byPolicy.set(policy, record);
    }
    out.set(load, byPolicy);
  }
  return out;
}

/** "mean ± half" with the measure's digits (– for no value). */
export function formatEstimate(e: Estimate, digits: number): string {
  if (!Number.isFinite(e.mean)) return '–';
  const f = (x: number) => x.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return Number.isFinite(e.half) ? `${f(e.mean)} ± ${f(e.half)}` : f(e.mean);
}
