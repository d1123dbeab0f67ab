import { binds, DEFAULT_SLOS, judge, type SloReading, type SloSpec, type TaskOutcome } from '@autoglm/core';
import type { LoopTrace } from './loop-sim';
import { BURST, FAILING, type ScenarioName } from './loop-workload';

/** What a scenario watches: one SLO, for one tenant's series or all of them. */
export interface Watched {
  slo: SloSpec;
  /** undefined: every tenant's series (met only when all judged ones are). */
  tenant: string | undefined;
}

export function watchedOf(scenario: ScenarioName): Watched {
  const slo = (name: string) => DEFAULT_SLOS.find((s) => s.name === name)!;
  if (scenario === 'burst') return { slo: slo('normal-queue'), tenant: BURST.victim };
  if (scenario === 'popularity') return { slo: slo('urgent-ttft'), tenant: undefined };
  return { slo: slo('success'), tenant: undefined };
}

/** After the shock, the window attainment is measured over. */
export const AFTER_MS = 10 * 60_000;
/** Met again and held this long counts as recovered. */
export const HOLD_MS = 60_000;
/** Two opposite changes of one boost or floor within this long are a reversal (ping-pong). */
export const REVERSAL_MS = 120_000;
/** The short window of the outcome-based recovery. */
const SHORT_MS = 60_000;

export interface RunMeasures {
  /** Attainment of the watched SLO over the run and over AFTER_MS after the shock (events judged). */
  attainmentRun: number;
  attainmentAfter: number;
  /** Seconds after the shock the loop's reading was first missed; undefined: never missed. */
  firstMissS: number | undefined;
  /** Seconds from that miss until the reading is met and stays met HOLD_MS; null: never; undefined: never missed. */
  recoverS: number | null | undefined;
  /** The same on the attainment of the last minute's outcomes (what the reading's 5-min window lags behind). */
  firstMissShortS: number | undefined;
  recoverShortS: number | null | undefined;
  /** Minutes after the shock with the reading missed, and in the 5 min before it (the base should be healthy). */
  minutesMissed: number;
  minutesMissedBefore: number;
  /** The watched reading at each evaluation: the lowest attainment of its judged series (NaN: none judged). */
  timeline: Array<[number, number]>;
  coldStarts: number;
  coldStartsAfter: number;
  /** Urgent requests that waited for a cold start, after the shock. */
  urgentColdWaitsAfter: number;
  failedAttempts: number;
  /** (c): failed attempts on the failing node until its first quarantine (all of them without one). */
  failedBeforeQuarantine: number;
  /** (c): seconds after the shock of the failing node's first quarantine decided (applied or not). */
  quarantineS: number | undefined;
  quarantines: number;
  /** Quarantines of nodes that were not failing. */
  falseQuarantines: number;
  boostChanges: number;
  maxBoost: number;
  warmChanges: number;
  maxWarm: number;
  /** Direction reversals of a boost or a floor within REVERSAL_MS (ping-pong). */
  reversals: number;
  /** Shortest time between two opposite changes of the same boost or floor, s; undefined: none. */
  shortestReversalS: number | undefined;
  gaveUp: number;
  alertsFired: number;
}

export function measure(trace: LoopTrace, scenario: ScenarioName, t: { attachMs: number; shockMs: number; tickMs: number }): RunMeasures {
  const { attachMs, shockMs, tickMs } = t;
  const w = watchedOf(scenario);
  const counted = trace.outcomes
    .filter((o) => w.tenant === undefined || o.tenant === w.tenant)
    .map((o) => ({ atMs: o.atMs, good: truth(w.slo, o) }))
    .filter((e): e is { atMs: number; good: boolean } => e.good !== undefined);
  const attainment = (from: number, to: number) => {
    let good = 0;
    let total = 0;
    for (const e of counted) {
      if (e.atMs < from || e.atMs >= to) continue;
      total += 1;
      if (e.good) good += 1;
    }
    return total === 0 ? NaN : good / total;
  };
  const after = trace.ticks.filter((t) => t.atMs >= shockMs);
  // The loop's reading: missed when a judged series is missed.
  const readingMissed = after.map((t) => ({ atMs: t.atMs, missed: missed(t.slos, w) }));
  // The last minute's outcomes against the objective (no events: not missed).
  const shortMissed = after.map((t) => {
    const a = attainment(t.atMs - SHORT_MS, t.atMs + 1e-9);
    return { atMs: t.atMs, missed: Number.isFinite(a) && a < w.slo.objective };
  });
  const reading = recovery(readingMissed, shockMs, tickMs);
  const short = recovery(shortMissed, shockMs, tickMs);

  const quarantines = trace.verdicts.filter((v) => v.kind === 'quarantine');
  // The failing node's first quarantine once it fails (an earlier one, for latency, is not for its failures).
  const firstQuarantine = scenario === 'failing-agent' ? quarantines.find((v) => v.nodeId === FAILING.nodeId && v.atMs >= shockMs) : undefined;
  const onFailing = trace.failures.filter((f) => f.nodeId === FAILING.nodeId);
  const cutoff = firstQuarantine?.applied ? firstQuarantine.atMs : Infinity;
  const reversals = [...reversalsOf(trace.boosts.map((b) => ({ key: b.tenant, atMs: b.atMs, dir: Math.sign(b.to - b.from) }))), ...reversalsOf(trace.warm.map((c) => ({ key: c.model, atMs: c.atMs, dir: Math.sign(c.to - c.from) })))];
  return {
    attainmentRun: attainment(attachMs, Infinity),
    attainmentAfter: attainment(shockMs, shockMs + AFTER_MS),
    firstMissS: reading.firstMissS,
    recoverS: reading.recoverS,
    firstMissShortS: short.firstMissS,
    recoverShortS: short.recoverS,
    minutesMissed: (readingMissed.filter((r) => r.missed).length * tickMs) / 60_000,
    minutesMissedBefore: (trace.ticks.filter((k) => k.atMs < shockMs && k.atMs >= shockMs - 5 * 60_000 && missed(k.slos, w)).length * tickMs) / 60_000,
    timeline: trace.ticks.map((k) => [k.atMs / 1000, Math.round(lowest(k.slos, w) * 1000) / 1000]),
    coldStarts: trace.coldStarts.length,
    coldStartsAfter: trace.coldStarts.filter((c) => c.atMs >= shockMs).length,
    urgentColdWaitsAfter: trace.coldWaits.filter((c) => c.atMs >= shockMs && c.className === 'urgent').length,
    failedAttempts: trace.failures.length,
    failedBeforeQuarantine: onFailing.filter((f) => f.atMs <= cutoff).length,
    quarantineS: firstQuarantine ? (firstQuarantine.atMs - shockMs) / 1000 : undefined,
    quarantines: quarantines.length,
    falseQuarantines: quarantines.filter((v) => scenario !== 'failing-agent' || v.nodeId !== FAILING.nodeId).length,
    boostChanges: trace.boosts.length,
    maxBoost: trace.boosts.reduce((m, b) => Math.max(m, b.to), 1),
    warmChanges: trace.warm.length,
    maxWarm: trace.warm.reduce((m, c) => Math.max(m, c.to), 0),
    reversals: reversals.filter((gap) => gap <= REVERSAL_MS).length,
    shortestReversalS: reversals.length === 0 ? undefined : Math.min(...reversals) / 1000,
    gaveUp: trace.gaveUp,
    alertsFired: trace.alertsFired,
  };
}

/** Whether an attempt met the SLO, judged after the fact: a queue-time SLO on the wait that placed it (the loop counts waits as they go). */
function truth(slo: SloSpec, o: TaskOutcome): boolean | undefined {
  if (slo.indicator !== 'queue_time') return judge(slo, o);
  return !binds(slo, o.tenant, o.priorityClass) || o.stopped || o.queueSeconds === undefined ? undefined : o.queueSeconds <= slo.thresholdSeconds;
}

function missed(readings: readonly SloReading[], w: Watched): boolean {
  return readings.some((r) => r.slo === w.slo.name && (w.tenant === undefined || r.tenant === w.tenant) && r.met === false);
}

function lowest(readings: readonly SloReading[], w: Watched): number {
  let low = NaN;
  for (const r of readings) {
    if (r.slo !== w.slo.name || (w.tenant !== undefined && r.tenant !== w.tenant) || r.met === undefined) continue;
    low = Number.isNaN(low) ? r.attainment : Math.min(low, r.attainment);
  }
  return low;
}

/** The first miss after the shock, and how long until not missed for HOLD_MS. */
function recovery(series: Array<{ atMs: number; missed: boolean }>, shockMs: number, tickMs: number): { firstMissS: number | undefined; recoverS: number | null | undefined } {
  const first = series.findIndex((s) => s.missed);
  if (first < 0) return { firstMissS: undefined, recoverS: undefined };
  const holdTicks = Math.ceil(HOLD_MS / tickMs);
  for (let i = first + 1; i + holdTicks < series.length; i++) {
    let held = true;
    for (let j = i; j <= i + holdTicks; j++) if (series[j]!.missed) held = false;
    if (held) return { firstMissS: (series[first]!.atMs - shockMs) / 1000, recoverS: (series[i]!.atMs - series[first]!.atMs) / 1000 };
  }
  return { firstMissS: (series[first]!.atMs - shockMs) / 1000, recoverS: null };
}

/** Gaps (ms) between consecutive changes of the same key that go opposite ways. */
function reversalsOf(changes: Array<{ key: string; atMs: number; dir: number }>): number[] {
  const last = new Map<string, { atMs: number; dir: number }>();
  const gaps: number[] = [];
  for (const c of [...changes].sort((a, b) => a.atMs - b.atMs)) {
    const prev = last.get(c.key);
    if (prev && prev.dir !== 0 && c.dir !== 0 && prev.dir !== c.dir) gaps.push(c.atMs - prev.atMs);
    last.set(c.key, c);
  }
  return gaps;
}
