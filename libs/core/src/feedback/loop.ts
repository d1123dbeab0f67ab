import { AlertBook, type Alert, type AlertCondition } from './alerts';
import { DEFAULT_BOOST_CONFIG, TenantBoosts, type BoostChange, type BoostConfig } from './boosts';
import {
  DEFAULT_SCALE_CONFIG,
  DEFAULT_WARM_CONFIG,
  ScaleAdvisor,
  WarmPlanner,
  type ModelDemand,
  type ScaleConfig,
  type ScaleRecommendation,
  type WarmChange,
  type WarmConfig,
} from './capacity';
import { DemandForecaster } from './forecast';
import { DEFAULT_QUARANTINE_CONFIG, NodeWatch, type NodeVerdict, type QuarantineConfig } from './quarantine';
import { backlogConditions, DEFAULT_BACKLOG_RULES, quarantineCondition, sloConditions, type BacklogRule } from './rules';
import { DEFAULT_SLOS, SloTracker, type SloReading, type SloSpec, type TaskOutcome } from './slo';

/** Everything the feedback loop may do, each part switchable off. */
export interface FeedbackConfig {
  /** Off: SLOs, alerts, forecasts and recommendations are still computed, but nothing is sent to decision. */
  readonly enabled: boolean;
  readonly boost: BoostConfig;
  readonly warm: WarmConfig;
  readonly quarantine: QuarantineConfig;
  readonly scale: ScaleConfig;
}

export const DEFAULT_FEEDBACK_CONFIG: FeedbackConfig = Object.freeze({
  enabled: true,
  boost: DEFAULT_BOOST_CONFIG,
  warm: DEFAULT_WARM_CONFIG,
  quarantine: DEFAULT_QUARANTINE_CONFIG,
  scale: DEFAULT_SCALE_CONFIG,
});

/** A request or job that arrived, for the forecast. */
export interface Arrival {
  readonly atMs: number;
  readonly tenant: string;
  /** The model, or '' for work that names none. */
  readonly model: string;
  readonly inference: boolean;
  /** Tokens it asks for: prompt plus its output budget (inference). */
  readonly tokens?: number;
}

/** A tenant's forecast arrivals (all its work, requests and jobs). */
export interface TenantDemand {
  readonly tenant: string;
  readonly ratePerSecond: number;
  readonly upperRatePerSecond: number;
}

/** The fleet as the loop needs it at an evaluation. */
export interface FleetSnapshot {
  /** Nodes in the fleet (ready, draining or quarantined; not lost); `out`: not taking work now (draining, quarantined by anyone). */
  readonly nodes: ReadonlyArray<{ readonly nodeId: string; readonly gpus: number; readonly out?: boolean }>;
  /** Replicas by model: how many, and what one holds. */
  readonly replicas: ReadonlyMap<string, { readonly count: number; readonly capacityTokens: number; readonly gpus: number }>;
  /** Requests in flight (queued or running) by model. */
  readonly inFlightByModel: ReadonlyMap<string, number>;
  /** Tasks pending by class label. */
  readonly pendingByClass: ReadonlyMap<string, number>;
  readonly batchGpusInUse: number;
  readonly batchGpusQueued: number;
  /** Sequences one replica runs at once (decision's placement setting). */
  readonly sequencesPerReplica: number;
}

/** What one evaluation found and decided. The caller applies the changes (when the loop is enabled). */
export interface FeedbackResult {
  readonly atMs: number;
  readonly slos: readonly SloReading[];
  /** Alerts that changed state at this evaluation. */
  readonly alertChanges: readonly Alert[];
  readonly boosts: readonly BoostChange[];
  readonly warm: readonly WarmChange[];
  readonly nodes: readonly NodeVerdict[];
  readonly scale: readonly ScaleRecommendation[];
  readonly demand: readonly ModelDemand[];
  readonly tenants: readonly TenantDemand[];
}

const EWMA = 0.1;
/** Until a model has finished requests, assume this much (a short chat turn). */
const DEFAULT_RUN_SECONDS = 5;
const DEFAULT_TOKENS = 1000;
const MAX_MODELS = 500;

/**
 * The monitor's feedback loop, pure: fed arrivals and finished attempts as
 * they happen, evaluated every few seconds against a snapshot of the fleet.
 * Each evaluation judges the SLOs, moves alerts through pending → firing →
 * resolved, and decides bounded, rate-limited changes with hysteresis:
 * tenant boosts, warm-replica floors, node quarantines, and scale
 * recommendations. The same object runs in the monitor and in the
 * closed-loop experiment (bench/loop.ts).
 */
export class FeedbackLoop {
  readonly sloTracker: SloTracker;
  readonly alerts = new AlertBook();
  readonly boosts: TenantBoosts;
  readonly warm: WarmPlanner;
  readonly nodeWatch: NodeWatch;
  readonly scale: ScaleAdvisor;
  /** Request arrivals by model (what warm floors and scale recommendations plan from). */
  readonly forecaster: DemandForecaster;
  /** Tokens asked for by model, and arrivals by tenant: forecast for the dashboard and the metrics. */
  readonly tokenForecaster: DemandForecaster;
  readonly tenantForecaster: DemandForecaster;
  private readonly runSeconds = new Map<string, number>();
  private readonly tokens = new Map<string, number>();
  private readonly quarantineReasons = new Map<string, string>();

  constructor(
    readonly config: FeedbackConfig = DEFAULT_FEEDBACK_CONFIG,
    readonly slos: readonly SloSpec[] = DEFAULT_SLOS,
    readonly backlogRules: readonly BacklogRule[] = DEFAULT_BACKLOG_RULES,
    intervalMs = 10_000,
  ) {
    this.sloTracker = new SloTracker(slos);
    this.boosts = new TenantBoosts(config.boost);
    this.warm = new WarmPlanner(config.warm);
    this.nodeWatch = new NodeWatch(config.quarantine);
    this.scale = new ScaleAdvisor(config.scale);
    this.forecaster = new DemandForecaster({ intervalMs });
    this.tokenForecaster = new DemandForecaster({ intervalMs });
    this.tenantForecaster = new DemandForecaster({ intervalMs });
  }

  arrived(a: Arrival): void {
    this.tenantForecaster.record(a.tenant, a.atMs);
    if (!a.inference || a.model === '') return;
    this.forecaster.record(a.model, a.atMs);
    if (a.tokens !== undefined && a.tokens > 0) this.tokenForecaster.record(a.model, a.atMs, a.tokens);
  }

  finished(o: TaskOutcome): void {
    this.sloTracker.record(o);
    this.nodeWatch.record(o);
    if (o.succeeded && o.runSeconds !== undefined && o.tokens !== undefined && o.model !== 'none') {
      if (!this.runSeconds.has(o.model) && this.runSeconds.size >= MAX_MODELS) return;
      this.runSeconds.set(o.model, ewma(this.runSeconds.get(o.model), o.runSeconds));
      this.tokens.set(o.model, ewma(this.tokens.get(o.model), o.tokens));
    }
  }

  /** A node left the fleet for good. */
  nodeGone(nodeId: string): void {
    this.nodeWatch.forget(nodeId);
    this.quarantineReasons.delete(nodeId);
  }

  evaluate(nowMs: number, fleet: FleetSnapshot): FeedbackResult {
    this.forecaster.advance(nowMs);
    this.tokenForecaster.advance(nowMs);
    this.tenantForecaster.advance(nowMs);
    const slos = this.sloTracker.readings(nowMs);
    const demand = this.demand(nowMs, fleet);
    const fleetGpus = fleet.nodes.reduce((n, node) => n + node.gpus, 0);
    const boosts = this.boosts.evaluate(nowMs, slos);
    const warm = this.warm.evaluate(nowMs, demand, fleetGpus);
    const nodes = this.nodeWatch.judge(
      nowMs,
      fleet.nodes.map((n) => n.nodeId),
      fleet.nodes.filter((n) => n.out === true).map((n) => n.nodeId),
    );
    for (const v of nodes) {
      if (v.kind === 'quarantine') this.quarantineReasons.set(v.nodeId, v.reason);
      else this.quarantineReasons.delete(v.nodeId);
    }
    const scale = this.scale.evaluate(nowMs, demand, {
      agents: fleet.nodes.length,
      gpus: fleetGpus,
      batchGpusInUse: fleet.batchGpusInUse,
      batchGpusQueued: fleet.batchGpusQueued,
      sloPressure: classWideMiss(slos),
    });
    const holding: AlertCondition[] = [
      ...sloConditions(this.slos, slos),
      ...backlogConditions(this.backlogRules, fleet.pendingByClass),
      ...[...this.quarantineReasons].map(([nodeId, reason]) => quarantineCondition(nodeId, reason)),
    ];
    const alertChanges = this.alerts.evaluate(nowMs, holding);
    const horizon = this.config.warm.horizonMs;
    const tenants: TenantDemand[] = [];
    for (const tenant of this.tenantForecaster.keys()) {
      const f = this.tenantForecaster.forecast(tenant, nowMs, horizon);
      if (f !== undefined) tenants.push({ tenant, ratePerSecond: f.ratePerSecond, upperRatePerSecond: f.upperRatePerSecond });
    }
    return { atMs: nowMs, slos, alertChanges, boosts, warm, nodes, scale, demand, tenants };
  }

  private demand(nowMs: number, fleet: FleetSnapshot): ModelDemand[] {
    const models = new Set([...this.forecaster.keys(), ...fleet.inFlightByModel.keys(), ...fleet.replicas.keys()]);
    const out: ModelDemand[] = [];
    for (const model of models) {
      const f = this.forecaster.forecast(model, nowMs, this.config.warm.horizonMs);
      const replicas = fleet.replicas.get(model);
      out.push({
        model,
        ratePerSecond: f?.ratePerSecond ?? 0,
        upperRatePerSecond: f?.upperRatePerSecond ?? 0,
        expectedInHorizon: ((f?.ratePerSecond ?? 0) * this.config.warm.horizonMs) / 1000,
        tokensPerSecond: this.tokenForecaster.forecast(model, nowMs, this.config.warm.horizonMs)?.ratePerSecond ?? 0,
        meanRunSeconds: this.runSeconds.get(model) ?? DEFAULT_RUN_SECONDS,
        meanTokens: this.tokens.get(model) ?? DEFAULT_TOKENS,
        inFlight: fleet.inFlightByModel.get(model) ?? 0,
        replicas: replicas?.count ?? 0,
        replicaCapacityTokens: replicas?.capacityTokens ?? 0,
        sequencesPerReplica: fleet.sequencesPerReplica,
        gpusPerReplica: replicas?.gpus ?? 1,
      });
    }
    return out;
  }
}

/**
 * Every tenant with a judged series of some queue-time or TTFT SLO misses it,
 * and at least two are judged: the fleet is short, not one tenant starved.
 * Only waits are counted: capacity shortens them, while failures and missed
 * deadlines (a buggy job) would only get more agents to fail on. An SLO
 * naming one tenant has one series: it never counts.
 */
function classWideMiss(readings: readonly SloReading[]): boolean {
  const bySlo = new Map<string, { judged: number; missed: number }>();
  for (const r of readings) {
    if (r.met === undefined || (r.indicator !== 'queue_time' && r.indicator !== 'ttft')) continue;
    const t = bySlo.get(r.slo) ?? { judged: 0, missed: 0 };
    t.judged += 1;
    if (!r.met) t.missed += 1;
    bySlo.set(r.slo, t);
  }
  for (const t of bySlo.values()) if (t.judged >= 2 && t.missed === t.judged) return true;
  return false;
}

function ewma(previous: number | undefined, sample: number): number {
  return previous === undefined ? sample : previous + EWMA * (sample - previous);
}
