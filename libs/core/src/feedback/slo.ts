import { InvalidArgumentError } from '../errors';
import { RollingCounts } from './window';

/**
 * What an SLO measures:
 * - queue_time: per wait to be placed, good when it ended in a placement
 *   within `thresholdSeconds`; a wait that outlasts the threshold counts bad
 *   as soon as it does, placed or not (a starved tenant shows while it starves);
 *
 * and per finished task (or attempt):
 * - ttft: good when its first token came at most `thresholdSeconds` after it was submitted;
 * - deadline: good when a task with a deadline finished by it;
 * - success: good when the attempt succeeded (each failed attempt counts bad).
 */
export type SloIndicator = 'queue_time' | 'ttft' | 'deadline' | 'success';
export const SLO_INDICATORS: readonly SloIndicator[] = ['queue_time', 'ttft', 'deadline', 'success'];

/** Priority classes as the monitor labels them, most urgent first. */
export const CLASS_LABELS = ['urgent', 'normal', 'background'] as const;
export type ClassLabel = (typeof CLASS_LABELS)[number];

/** A service-level objective: `objective` of the events it counts are good, over a rolling window. */
export interface SloSpec {
  /** Unique; names the series, the alert and the Prometheus rule ("urgent-ttft"). */
  readonly name: string;
  readonly indicator: SloIndicator;
  /** The tenant it binds, or '*': each tenant separately (one series per tenant). */
  readonly tenant: string;
  /** The class it binds, or '*' for all classes together. */
  readonly priorityClass: ClassLabel | '*';
  /** queue_time and ttft: the most an event may take and count good. */
  readonly thresholdSeconds: number;
  /** Share of events that must be good, in (0, 1). */
  readonly objective: number;
  readonly windowMs: number;
  /** With fewer events in the window the SLO is not judged (one slow request is not a breach). */
  readonly minEvents: number;
  /** Its alert fires once it has been missed this long (Prometheus's `for:`). */
  readonly alertForMs: number;
}

/** The SLOs a mesh starts with: what a platform team would promise first. */
export const DEFAULT_SLOS: readonly SloSpec[] = Object.freeze([
  slo({ name: 'urgent-ttft', indicator: 'ttft', priorityClass: 'urgent', thresholdSeconds: 2.5, objective: 0.95 }),
  slo({ name: 'urgent-queue', indicator: 'queue_time', priorityClass: 'urgent', thresholdSeconds: 1, objective: 0.95 }),
  slo({ name: 'normal-queue', indicator: 'queue_time', priorityClass: 'normal', thresholdSeconds: 60, objective: 0.9 }),
  slo({ name: 'deadlines', indicator: 'deadline', priorityClass: '*', objective: 0.95 }),
  slo({ name: 'success', indicator: 'success', priorityClass: '*', objective: 0.99 }),
]);

function slo(s: Pick<SloSpec, 'name' | 'indicator' | 'priorityClass' | 'objective'> & Partial<SloSpec>): SloSpec {
  return Object.freeze({ tenant: '*', thresholdSeconds: 0, windowMs: 300_000, minEvents: 20, alertForMs: 60_000, ...s });
}

const NAME = /^[a-z][a-z0-9-]{0,62}$/;

/**
 * Checks SLOs read from configuration (already shaped, e.g. by zod) for what a
 * shape cannot say: unique names, a threshold where the indicator needs one,
 * an objective strictly between 0 and 1.
 */
export function validateSlos(slos: readonly SloSpec[]): readonly SloSpec[] {
  const seen = new Set<string>();
  slos.forEach((s, i) => {
    const at = `slos[${i}]`;
    if (!NAME.test(s.name)) throw new InvalidArgumentError(`${at}.name`, `"${s.name}" must be lower-case letters, digits and dashes, starting with a letter`);
    if (seen.has(s.name)) throw new InvalidArgumentError(`${at}.name`, `"${s.name}" is used twice; SLO names must be unique`);
    seen.add(s.name);
    if (!SLO_INDICATORS.includes(s.indicator)) throw new InvalidArgumentError(`${at}.indicator`, `must be one of ${SLO_INDICATORS.join(', ')}`);
    if ((s.indicator === 'queue_time' || s.indicator === 'ttft') && !(s.thresholdSeconds > 0)) {
      throw new InvalidArgumentError(`${at}.thresholdSeconds`, `a ${s.indicator} SLO needs a threshold above 0 seconds`);
    }
    if (!(s.objective > 0 && s.objective < 1)) throw new InvalidArgumentError(`${at}.objective`, 'must be between 0 and 1 exclusive, e.g. 0.99');
    if (!(s.windowMs >= 10_000)) throw new InvalidArgumentError(`${at}.windowMs`, 'must be at least 10000 (10 s)');
    if (s.priorityClass !== '*' && !CLASS_LABELS.includes(s.priorityClass)) throw new InvalidArgumentError(`${at}.priorityClass`, `must be '*' or one of ${CLASS_LABELS.join(', ')}`);
  });
  return slos;
}

/** One finished attempt as SLOs see it. */
export interface TaskOutcome {
  readonly atMs: number;
  readonly tenant: string;
  readonly priorityClass: ClassLabel;
  readonly model: string;
  /** The node the attempt ran on ('' when it never ran). */
  readonly nodeId: string;
  readonly succeeded: boolean;
  /** The attempt was stopped by a cancel or a preemption: no one's failure. */
  readonly stopped: boolean;
  readonly queueSeconds: number | undefined;
  readonly ttftSeconds: number | undefined;
  readonly runSeconds: number | undefined;
  /** Prompt plus generated tokens (inference). */
  readonly tokens: number | undefined;
  /** Generated tokens (inference). */
  readonly outputTokens?: number;
  /** Whether it finished by its deadline; undefined without one. */
  readonly deadlineMet: boolean | undefined;
}

/** Whether an SLO binds a tenant's work of a class. */
export function binds(spec: SloSpec, tenant: string, priorityClass: ClassLabel): boolean {
  return (spec.tenant === '*' || spec.tenant === tenant) && (spec.priorityClass === '*' || spec.priorityClass === priorityClass);
}

/** Whether an outcome counts for an SLO, and as good or bad (queue-time SLOs count waits instead: SloTracker.waitStarted). */
export function judge(spec: SloSpec, o: TaskOutcome): boolean | undefined {
  if (!binds(spec, o.tenant, o.priorityClass)) return undefined;
  switch (spec.indicator) {
    case 'queue_time':
      return undefined;
    case 'ttft':
      return o.ttftSeconds === undefined || !o.succeeded ? undefined : (o.queueSeconds ?? 0) + o.ttftSeconds <= spec.thresholdSeconds;
    case 'deadline':
      return o.deadlineMet;
    case 'success':
      return o.stopped ? undefined : o.succeeded;
  }
}

/** One SLO series as of now. */
export interface SloReading {
  readonly slo: string;
  readonly indicator: SloIndicator;
  /** The tenant of this series: each tenant's own for an SLO over each tenant, the named one for an SLO that binds one. */
  readonly tenant: string;
  readonly priorityClass: ClassLabel | '*';
  readonly good: number;
  readonly total: number;
  /** good / total; NaN with no events. */
  readonly attainment: number;
  readonly objective: number;
  /** Met, missed, or undefined when the window holds fewer than minEvents. */
  readonly met: boolean | undefined;
  /** How fast the error budget burns: (1 - attainment) / (1 - objective); 1 spends it exactly over the window. */
  readonly burnRate: number;
}

/** One event an SLO counted. */
export interface SloEvent {
  readonly slo: SloSpec;
  readonly tenant: string;
  readonly good: boolean;
}

/** The waits a queue-time SLO watches: open ones oldest first, and those already counted bad. */
interface WaitWatch {
  readonly open: Map<string, { readonly tenant: string; readonly sinceMs: number }>;
  readonly overdue: Set<string>;
}

/**
 * Per-series tallies of every SLO, over each SLO's window. Bounded: at most
 * `maxSeries` tenant series per SLO, and at most `maxWaits` waits watched per
 * queue-time SLO (beyond that a new wait is not counted).
 */
export class SloTracker {
  private readonly series = new Map<string, Map<string, RollingCounts>>();
  /** The queue-time SLOs and the waits each watches (an array: walked for every task event). */
  private readonly waits: Array<{ readonly spec: SloSpec; readonly watch: WaitWatch }> = [];
  private listener: ((e: SloEvent) => void) | undefined;

  constructor(
    readonly slos: readonly SloSpec[],
    private readonly maxSeries = 200,
    private readonly maxWaits = 500_000,
  ) {
    for (const s of slos) {
      this.series.set(s.name, new Map());
      if (s.indicator === 'queue_time') this.waits.push({ spec: s, watch: { open: new Map(), overdue: new Set() } });
    }
  }

  /** Tells `listener` of every event any SLO counts (for counters kept elsewhere, such as Prometheus's). */
  listen(listener: (e: SloEvent) => void): void {
    this.listener = listener;
  }

  /** Counts one outcome in every SLO it falls under. */
  record(o: TaskOutcome): void {
    for (const spec of this.slos) {
      const good = judge(spec, o);
      if (good !== undefined) this.count(spec, o.tenant, o.atMs, good);
    }
  }

  /** A task became runnable at `atMs` (not earlier than any wait before it): the queue-time SLOs that bind it watch its wait. */
  waitStarted(taskId: string, tenant: string, priorityClass: ClassLabel, atMs: number): void {
    for (const { spec, watch } of this.waits) {
      if (!binds(spec, tenant, priorityClass) || watch.overdue.has(taskId)) continue;
      if (watch.open.size >= this.maxWaits && !watch.open.has(taskId)) continue;
      watch.open.delete(taskId);
      watch.open.set(taskId, { tenant, sinceMs: atMs });
    }
  }

  /**
   * A task's wait ended at `atMs`: placed (after `waitedSeconds`, decision's
   * own figure where it sent one), or out of the queue unplaced (cancelled,
   * given up). A wait already counted bad is not counted again.
   */
  waitEnded(taskId: string, atMs: number, placed: boolean, waitedSeconds?: number): void {
    for (const { spec, watch } of this.waits) {
      if (watch.overdue.delete(taskId)) continue;
      const wait = watch.open.get(taskId);
      if (wait === undefined) continue;
      watch.open.delete(taskId);
      const waited = waitedSeconds ?? (atMs - wait.sinceMs) / 1000;
      const good = waited <= spec.thresholdSeconds;
      // An unplaced wait counts only once it has outlasted the threshold: one cancelled early says nothing.
      if (placed || !good) this.count(spec, wait.tenant, atMs, good);
    }
  }

  /** Forgets every open wait (the waits still open are about to be told again, from a snapshot); those counted bad stay so. */
  clearWaits(): void {
    for (const { watch } of this.waits) watch.open.clear();
  }

  /** Every series with events in its window, SLO by SLO in configured order, tenants sorted. */
  readings(nowMs: number): SloReading[] {
    this.countOverdueWaits(nowMs);
    const out: SloReading[] = [];
    for (const spec of this.slos) {
      const bySeries = this.series.get(spec.name)!;
      for (const tenant of [...bySeries.keys()].sort()) {
        const { good, total } = bySeries.get(tenant)!.totals(nowMs);
        if (total === 0) {
          bySeries.delete(tenant);
          continue;
        }
        const attainment = good / total;
        out.push({
          slo: spec.name,
          indicator: spec.indicator,
          tenant,
          priorityClass: spec.priorityClass,
          good,
          total,
          attainment,
          objective: spec.objective,
          met: total < spec.minEvents ? undefined : attainment >= spec.objective,
          burnRate: (1 - attainment) / (1 - spec.objective),
        });
      }
    }
    return out;
  }

  /** Waits still open past their SLO's threshold count bad now, once (the oldest come first, so the sweep stops at the first in time). */
  private countOverdueWaits(nowMs: number): void {
    for (const { spec, watch } of this.waits) {
      const dueMs = nowMs - spec.thresholdSeconds * 1000;
      for (const [taskId, wait] of watch.open) {
        if (wait.sinceMs >= dueMs) break;
        watch.open.delete(taskId);
        if (watch.overdue.size >= this.maxWaits) watch.overdue.delete(watch.overdue.values().next().value!);
        watch.overdue.add(taskId);
        this.count(spec, wait.tenant, nowMs, false);
      }
    }
  }

  private count(spec: SloSpec, tenant: string, atMs: number, good: boolean): void {
    const bySeries = this.series.get(spec.name)!;
    // One series per tenant the SLO binds (for an SLO naming one tenant, that one).
    const key = tenant;
    let counts = bySeries.get(key);
    if (counts === undefined) {
      if (bySeries.size >= this.maxSeries) this.dropIdle(bySeries, atMs);
      if (bySeries.size >= this.maxSeries) return;
      counts = new RollingCounts(spec.windowMs);
      bySeries.set(key, counts);
    }
    counts.add(atMs, good);
    this.listener?.({ slo: spec, tenant, good });
  }

  private dropIdle(bySeries: Map<string, RollingCounts>, nowMs: number): void {
    for (const [key, counts] of bySeries) if (counts.isEmpty(nowMs)) bySeries.delete(key);
  }
}
