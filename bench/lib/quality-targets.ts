import { formatEstimate, MEASURES, type Aggregate, type MeasureKey } from './quality-measures';
import { estimate, noWorse, pairedRatio, type Estimate } from './stats';

/** Loads at which dynamic must cut the mean request queue to 0.6× static's, and loads at which it must be no worse. */
const CUT_LOADS = [0.9, 0.95];
const NO_WORSE_LOADS = [0.7, 0.8];
const CUT_RATIO = 0.6;
/** Target (d): GPU time during the flood within this many percentage points of max-min fair. */
const FLOOD_PP = 5;

/** The rules, in words, for the report. */
export const TARGET_RULES = [
  `(a) mean queue over all requests ≤ ${CUT_RATIO}× static's at loads ${CUT_LOADS.join(' and ')} with the 95 % intervals apart (dynamic's upper end below static's lower end); no worse at ${NO_WORSE_LOADS.join(' and ')}`,
  `(b) urgent mean and p99 TTFT no worse than static's, at every load`,
  `(c) batch p99 queue (to the final run) no worse than static's, and no job's single wait past the age bound in any seed, at every load`,
  `(d) during the flood, every tenant's part of the GPU time within ${FLOOD_PP} pp of max-min fair: the upper end of the 95 % interval ≤ ${FLOOD_PP} pp, at every load`,
  `"No worse": over the paired seeds, mean(dynamic − static) ≤ the half-width of its 95 % interval (Student t, n − 1 df): the runs do not show dynamic worse at 95 %.`,
];

export interface TargetRow {
  target: string;
  load: number;
  measure: string;
  static: string;
  dynamic: string;
  /** Per-seed dynamic / static, mean ± 95 % interval (and the values in the JSON). */
  ratio: string;
  rule: string;
  met: boolean;
  detail: { static?: number[]; dynamic: number[]; ratios?: number[]; difference?: Estimate };
}

/** Dynamic against static on the same runs, seed by seed. */
export function evaluateTargets(agg: Aggregate, maxAgeMs: number): TargetRow[] {
  const rows: TargetRow[] = [];
  const near = (a: number, b: number) => Math.abs(a - b) < 1e-9;
  for (const [load, byPolicy] of agg) {
    const stat = byPolicy.get('static');
    const dyn = byPolicy.get('dynamic');
    if (!stat || !dyn) continue;
    const compare = (target: string, key: MeasureKey, rule: string, met: (s: Estimate, d: Estimate, sv: number[], dv: number[]) => boolean): void => {
      const sv = stat[key].values;
      const dv = dyn[key].values;
      const ratio = pairedRatio(dv, sv);
      const digits = MEASURES[key].digits;
      rows.push({
        target,
        load,
        measure: MEASURES[key].label,
        static: formatEstimate(stat[key].estimate, digits),
        dynamic: formatEstimate(dyn[key].estimate, digits),
        ratio: formatEstimate(ratio.estimate, 2),
        rule,
        met: met(stat[key].estimate, dyn[key].estimate, sv, dv),
        detail: { static: sv, dynamic: dv, ratios: ratio.ratios, difference: noWorse(dv, sv).difference },
      });
    };
    const noWorseRule = 'no worse';
    const isNoWorse = (_s: Estimate, _d: Estimate, sv: number[], dv: number[]) => noWorse(dv, sv).holds;
    if (CUT_LOADS.some((l) => near(l, load))) {
      compare('(a)', 'allQueueMs', `≤ ${CUT_RATIO}×, intervals apart`, (s, d) => d.mean <= CUT_RATIO * s.mean && d.mean + d.half < s.mean - s.half);
    } else if (NO_WORSE_LOADS.some((l) => near(l, load))) {
      compare('(a)', 'allQueueMs', noWorseRule, isNoWorse);
    }
    compare('(b)', 'urgentTtftMs', noWorseRule, isNoWorse);
    compare('(b)', 'urgentTtftP99Ms', noWorseRule, isNoWorse);
    compare('(c)', 'batchQueueP99S', noWorseRule, isNoWorse);
    const waits = dyn.batchLongestWaitS.values;
    const longest = Math.max(...waits);
    rows.push({
      target: '(c)',
      load,
      measure: `${MEASURES.batchLongestWaitS.label}, worst seed`,
      static: `${Math.max(...stat.batchLongestWaitS.values).toFixed(0)}`,
      dynamic: `${longest.toFixed(0)}`,
      ratio: '',
      rule: `≤ ${(maxAgeMs / 1000).toFixed(0)} s (age bound)`,
      met: longest * 1000 <= maxAgeMs,
      detail: { static: stat.batchLongestWaitS.values, dynamic: waits },
    });
    const flood: Estimate = estimate(dyn.floodPp.values);
    rows.push({
      target: '(d)',
      load,
      measure: MEASURES.floodPp.label,
      static: formatEstimate(stat.floodPp.estimate, 1),
      dynamic: formatEstimate(flood, 1),
      ratio: '',
      rule: `≤ ${FLOOD_PP} pp (upper end)`,
      met: flood.mean + (Number.isFinite(flood.half) ? flood.half : 0) <= FLOOD_PP,
      detail: { static: stat.floodPp.values, dynamic: dyn.floodPp.values },
    });
  }
  return rows;
}
