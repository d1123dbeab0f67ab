import { DemandForecaster, seededRandom } from '@autoglm/core';
import { AZURE_TRACE_ATTRIBUTION, DEFAULT_AZURE_CONV_TRACE, loadAzureTrace } from './lib/azure-trace';
import { flag, printTable, writeResult } from './lib/report';

const HORIZON_MINUTES = [1, 5, 10];
const MINUTE = 60_000;
/** The moving-average baseline's window. */
const MOVING_AVERAGE_MS = 5 * MINUTE;

/** Something that happened: `amount` (1 an arrival, or its tokens) for a key at a time. */
interface Event {
  atMs: number;
  key: string;
  amount: number;
}

/** Events in time order, the keys whose series are scored, and the season the workload has (0: none). */
interface Workload {
  events: Event[];
  keys: Array<{ key: string; unit: string }>;
  seasonLength: number;
  /** Intervals before the first origin: every method has the history it needs from there on. */
  warmupIntervals: number;
}

/** A way to forecast a key's mean amount per interval over the next `steps` intervals, from intervals before `t` only. */
interface Method {
  name: string;
  predict(key: string, t: number, steps: number): { mean: number; upper?: number };
}

/** Sums over one series, method and horizon. */
interface Score {
  n: number;
  absolute: number;
  squared: number;
  bounded: number;
  covered: number;
  /** Sums of the bound's margin over the mean, and of the actual rate, where there was a bound. */
  margin: number;
  actual: number;
}

type Scores = Map<string, { unit: string; byMethod: Map<string, Score[]> }>;

/**
 * `npm run bench -- forecast [--interval-ms 10000] [--seeds 5] [--season-min 60] [--trace path]`:
 * backtests the demand forecaster (libs/core DemandForecaster: Holt-Winters
 * fitted per key) with a rolling origin. At each interval boundary every
 * method forecasts the mean rate over the next 1, 5 and 10 minutes from what
 * happened before it (the forecasters are fed the events before the origin,
 * and nothing else), and is scored against what then arrived.
 *
 * Series: the Azure conversation trace's arrivals and tokens (prompt +
 * output) per interval, whole and split into two pseudo-models by a hash of
 * the row; and synthetic Poisson arrivals, several seeds each, with a daily
 * shape compressed to `season-min` (so several cycles fit a short run and the
 * forecaster's kept history), a ramp, and a step with bursts.
 *
 * Baselines: the last interval (naive), the mean of the last 5 min, simple
 * exponential smoothing (the same forecaster with trend and season off, alpha
 * fitted alike), and, where there is a season, the same phase one season back.
 * Measures: MAE and RMSE of the rate, MAE over naive's, the share of origins
 * where the actual rate stayed at or below the forecaster's upper bound, and
 * how far above the mean that bound was (its mean margin over the mean actual
 * rate: what pre-warming to the bound costs).
 */
export async function forecast(args: string[]): Promise<void> {
  const intervalMs = Number(flag(args, '--interval-ms') ?? 10_000);
  const seeds = Number(flag(args, '--seeds') ?? 5);
  const seasonMinutes = Number(flag(args, '--season-min') ?? 60);
  const traceFile = flag(args, '--trace') ?? DEFAULT_AZURE_CONV_TRACE;
  const horizonSteps = HORIZON_MINUTES.map((m) => Math.max(1, Math.round((m * MINUTE) / intervalMs)));
  const seasonLength = Math.round((seasonMinutes * MINUTE) / intervalMs);
  console.log(`Requests: ${AZURE_TRACE_ATTRIBUTION}`);

  const started = performance.now();
  const cost = { forecasterMs: 0, events: 0, forecasts: 0 };
  const results: Record<string, unknown> = { attribution: AZURE_TRACE_ATTRIBUTION, intervalMs, horizonMinutes: HORIZON_MINUTES, seeds, seasonMinutes, series: {} };
  const groups: Array<{ title: string; scores: Scores }> = [];

  const trace = traceWorkload(traceFile, intervalMs);
  groups.push({ title: 'Azure conversation trace (1 h)', scores: backtest(trace, intervalMs, horizonSteps, new Map(), cost) });

  const synthetic: Array<[string, (seed: number) => Workload]> = [
    [`daily shape, period ${seasonMinutes} min`, (seed) => dailyWorkload(seed, intervalMs, seasonLength)],
    ['ramp 2 -> 20 /s', (seed) => rampWorkload(seed, intervalMs)],
    ['step 3 -> 9 /s, 1-min bursts x4', (seed) => stepWorkload(seed, intervalMs)],
  ];
  for (const [title, make] of synthetic) {
    const scores: Scores = new Map();
    for (let seed = 1; seed <= seeds; seed++) backtest(make(seed), intervalMs, horizonSteps, scores, cost);
    groups.push({ title: `synthetic: ${title}, ${seeds} seeds pooled`, scores });
  }

  for (const { title, scores } of groups) {
    for (const [series, { unit, byMethod }] of scores) {
      const naive = byMethod.get('naive')!;
      const rows = [...byMethod].map(([method, perHorizon]) => {
        const row: Record<string, string | number> = { method };
        HORIZON_MINUTES.forEach((m, i) => {
          const s = perHorizon[i]!;
          row[`${m}m MAE`] = s.absolute / s.n;
          row[`${m}m RMSE`] = Math.sqrt(s.squared / s.n);
          row[`${m}m /naive`] = s.absolute / naive[i]!.absolute;
          row[`${m}m cover% (+bound)`] = s.bounded > 0 ? `${((100 * s.covered) / s.bounded).toFixed(1)} (+${((100 * s.margin) / s.actual).toFixed(0)}%)` : '-';
        });
        return row;
      });
      const origins = naive[0]!.n;
      printTable(`${title}: ${series} (${unit}), ${origins} origins; MAE/RMSE of the mean rate over the horizon`, rows);
      (results.series as Record<string, unknown>)[`${title}: ${series}`] = {
        unit,
        origins,
        methods: Object.fromEntries([...byMethod].map(([method, perHorizon]) => [method, perHorizon.map((s) => ({ ...s, mae: s.absolute / s.n, rmse: Math.sqrt(s.squared / s.n) }))])),
      };
    }
  }
  const wallMs = performance.now() - started;
  results.cost = { ...cost, wallMs };
  console.log(
    `\nholt-winters forecasters: ${(cost.forecasterMs / 1000).toFixed(2)} s for ${cost.events} records and ${cost.forecasts} forecasts ` +
      `(fits included); the whole bench ${(wallMs / 1000).toFixed(1)} s`,
  );
  console.log(`wrote ${writeResult('forecast', results)}`);
}

/**
 * Runs every method over the workload, origin by origin, adding its errors to
 * `scores` (rates per second). The forecasters see the events before each
 * origin only; the baselines read the per-interval series before it only.
 */
function backtest(workload: Workload, intervalMs: number, horizonSteps: number[], scores: Scores, cost: { forecasterMs: number; events: number; forecasts: number }): Scores {
  const { events, keys, seasonLength, warmupIntervals } = workload;
  const intervals = Math.floor(events[events.length - 1]!.atMs / intervalMs);
  const series = new Map(keys.map(({ key }) => [key, new Float64Array(intervals)]));
  for (const e of events) {
    const t = Math.floor(e.atMs / intervalMs);
    const s = series.get(e.key);
    if (s && t < intervals) s[t]! += e.amount;
  }
  const at = (key: string) => series.get(key)!;
  const movingWindow = Math.max(1, Math.round(MOVING_AVERAGE_MS / intervalMs));

  const forecasters: Array<[string, DemandForecaster]> = [
    [seasonLength > 0 ? 'holt-winters, season' : 'holt-winters', new DemandForecaster({ intervalMs, seasonLength })],
    ...(seasonLength > 0 ? [['holt-winters, no season', new DemandForecaster({ intervalMs })] as [string, DemandForecaster]] : []),
    ['exp smoothing', new DemandForecaster({ intervalMs, grid: { beta: [0], gamma: [0] } })],
  ];
  const perSecond = 1000 / intervalMs;
  const methods: Method[] = [
    ...forecasters.map(([name, f]): Method => ({
      name,
      predict(key, t, steps) {
        const began = performance.now();
        const r = f.forecast(key, t * intervalMs, steps * intervalMs)!;
        cost.forecasterMs += performance.now() - began;
        cost.forecasts += 1;
        return { mean: r.ratePerSecond / perSecond, upper: r.upperRatePerSecond / perSecond };
      },
    })),
    ...(seasonLength > 0
      ? [
          {
            name: 'seasonal naive',
            // Each step ahead: the same phase in the last whole season before the origin.
            predict: (key: string, t: number, steps: number) => ({ mean: mean(steps, (k) => at(key)[t + k - seasonLength * Math.ceil((k + 1) / seasonLength)]!) }),
          },
        ]
      : []),
    { name: `moving avg ${MOVING_AVERAGE_MS / MINUTE} min`, predict: (key, t) => ({ mean: mean(movingWindow, (k) => at(key)[t - 1 - k]!) }) },
    { name: 'naive', predict: (key, t) => ({ mean: at(key)[t - 1]! }) },
  ];

  for (const { key, unit } of keys) {
    if (!scores.has(key)) scores.set(key, { unit, byMethod: new Map() });
    const byMethod = scores.get(key)!.byMethod;
    for (const m of methods) if (!byMethod.has(m.name)) byMethod.set(m.name, horizonSteps.map(() => ({ n: 0, absolute: 0, squared: 0, bounded: 0, covered: 0, margin: 0, actual: 0 })));
  }

  const longest = Math.max(...horizonSteps);
  let next = 0;
  for (let t = warmupIntervals; t + longest <= intervals; t++) {
    const began = performance.now();
    for (; next < events.length && events[next]!.atMs < t * intervalMs; next++) {
      const e = events[next]!;
      for (const [, f] of forecasters) f.record(e.key, e.atMs, e.amount);
      cost.events += forecasters.length;
    }
    cost.forecasterMs += performance.now() - began;
    for (const { key } of keys) {
      const byMethod = scores.get(key)!.byMethod;
      horizonSteps.forEach((steps, h) => {
        const actual = mean(steps, (k) => at(key)[t + k]!) * perSecond;
        for (const m of methods) {
          const p = m.predict(key, t, steps);
          const error = p.mean * perSecond - actual;
          const s = byMethod.get(m.name)![h]!;
          s.n += 1;
          s.absolute += Math.abs(error);
          s.squared += error * error;
          if (p.upper !== undefined) {
            s.bounded += 1;
            s.margin += (p.upper - p.mean) * perSecond;
            s.actual += actual;
            if (actual <= p.upper * perSecond + 1e-9) s.covered += 1;
          }
        }
      });
    }
  }
  return scores;
}

function mean(n: number, value: (k: number) => number): number {
  let total = 0;
  for (let k = 0; k < n; k++) total += value(k);
  return total / n;
}

/** The trace's arrivals and tokens per interval, whole and per pseudo-model (a third of the rows, by a hash of the row, are model-b). */
function traceWorkload(file: string, intervalMs: number): Workload {
  const events: Event[] = [];
  loadAzureTrace(file).forEach((r, i) => {
    const model = hashRow(i) % 3 === 0 ? 'model-b' : 'model-a';
    const tokens = r.contextTokens + r.generatedTokens;
    events.push(
      { atMs: r.atMs, key: 'all arrivals', amount: 1 },
      { atMs: r.atMs, key: 'all tokens', amount: tokens },
      { atMs: r.atMs, key: `${model} arrivals`, amount: 1 },
      { atMs: r.atMs, key: `${model} tokens`, amount: tokens },
    );
  });
  const keys = ['all', 'model-a', 'model-b'].flatMap((m) => [
    { key: `${m} arrivals`, unit: 'requests/s' },
    { key: `${m} tokens`, unit: 'tokens/s' },
  ]);
  return { events, keys, seasonLength: 0, warmupIntervals: Math.round(MOVING_AVERAGE_MS / intervalMs) };
}

/** A fixed integer hash of a row number (murmur3's finaliser), so the split is the same every run. */
function hashRow(i: number): number {
  let h = i >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Arrivals of a Poisson process with a time-varying rate (per second, at most maxRate), by thinning. */
function poissonArrivals(seed: number, durationMs: number, maxRate: number, rate: (ms: number) => number): number[] {
  const random = seededRandom(seed);
  const out: number[] = [];
  for (let t = 0; ; ) {
    t += (-Math.log(1 - random()) / maxRate) * 1000;
    if (t >= durationMs) return out;
    if (random() * maxRate < rate(t)) out.push(t);
  }
}

function arrivals(key: string, times: number[]): Event[] {
  return times.map((atMs) => ({ atMs, key, amount: 1 }));
}

/** 4/s on average, ±70 % over a period of seasonLength intervals; five periods, scored from the third. */
function dailyWorkload(seed: number, intervalMs: number, seasonLength: number): Workload {
  const periodMs = seasonLength * intervalMs;
  const times = poissonArrivals(seed, 5 * periodMs, 6.8, (t) => 4 * (1 + 0.7 * Math.sin((2 * Math.PI * t) / periodMs)));
  return { events: arrivals('daily', times), keys: [{ key: 'daily', unit: 'requests/s' }], seasonLength, warmupIntervals: 2 * seasonLength };
}

/** 2/s for 30 min, up linearly to 20/s at 120 min, then flat to 150 min. */
function rampWorkload(seed: number, intervalMs: number): Workload {
  const rate = (t: number) => (t < 30 * MINUTE ? 2 : t < 120 * MINUTE ? 2 + (18 * (t - 30 * MINUTE)) / (90 * MINUTE) : 20);
  const times = poissonArrivals(seed, 150 * MINUTE, 20, rate);
  return { events: arrivals('ramp', times), keys: [{ key: 'ramp', unit: 'requests/s' }], seasonLength: 0, warmupIntervals: Math.round(MOVING_AVERAGE_MS / intervalMs) };
}

/** 3/s, 9/s from 48 min on, over 2 h; bursts of 4x the rate for a minute, ~every 20 min at random. */
function stepWorkload(seed: number, intervalMs: number): Workload {
  const random = seededRandom(seed + 1_000_000);
  const bursts: number[] = [];
  for (let t = -Math.log(1 - random()) * 20 * MINUTE; t < 120 * MINUTE; t += -Math.log(1 - random()) * 20 * MINUTE) bursts.push(t);
  const inBurst = (t: number) => bursts.some((b) => t >= b && t < b + MINUTE);
  const times = poissonArrivals(seed, 120 * MINUTE, 36, (t) => (t < 48 * MINUTE ? 3 : 9) * (inBurst(t) ? 4 : 1));
  return { events: arrivals('step', times), keys: [{ key: 'step', unit: 'requests/s' }], seasonLength: 0, warmupIntervals: Math.round(MOVING_AVERAGE_MS / intervalMs) };
}
