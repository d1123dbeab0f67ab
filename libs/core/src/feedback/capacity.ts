/** What the loop knows of one model's demand and replicas at an evaluation. */
export interface ModelDemand {
  readonly model: string;
  /** Forecast arrivals per second over the horizon: the mean, and a conservative bound. */
  readonly ratePerSecond: number;
  readonly upperRatePerSecond: number;
  /** Mean run time of its requests lately (seconds on a replica, first token to last). */
  readonly meanRunSeconds: number;
  /** Mean prompt plus output tokens of its requests lately (KV cache each one holds). */
  readonly meanTokens: number;
  /** Tokens per second its requests are forecast to ask for (prompt plus output budget), for the dashboard and metrics. */
  readonly tokensPerSecond?: number;
  /** Requests the mean forecast expects over the horizon (under 1, with none in flight: no demand to plan for). */
  readonly expectedInHorizon: number;
  /** Requests of the model queued or running now. */
  readonly inFlight: number;
  /** Replicas of the model now (loading or ready). */
  readonly replicas: number;
  /** KV-cache tokens one replica holds; 0 when no replica has reported it. */
  readonly replicaCapacityTokens: number;
  /** Sequences one replica runs at once. */
  readonly sequencesPerReplica: number;
  /** GPUs one replica takes. */
  readonly gpusPerReplica: number;
}

/**
 * Replicas that serve the demand at `targetLoad` of their capacity: by
 * Little's law, requests in flight = arrival rate × time each spends running;
 * never fewer than what is in flight now. A replica fits as many sequences as
 * its slots allow and its KV cache holds at the mean request's size. A model
 * with nothing in flight and not one request expected over the horizon needs
 * none (the bound's tail alone never keeps a replica).
 */
export function replicasNeeded(d: ModelDemand, targetLoad: number): number {
  if (d.inFlight === 0 && d.expectedInHorizon < 1) return 0;
  // The upper bound: capacity planned for the mean would be short half the time.
  const concurrency = Math.max(d.upperRatePerSecond * d.meanRunSeconds, d.inFlight);
  if (concurrency <= 0) return 0;
  const byTokens = d.replicaCapacityTokens > 0 && d.meanTokens > 0 ? d.replicaCapacityTokens / d.meanTokens : Infinity;
  const perReplica = Math.max(1, targetLoad * Math.min(d.sequencesPerReplica, byTokens));
  return Math.ceil(concurrency / perReplica);
}

export interface WarmConfig {
  readonly enabled: boolean;
  /** How far ahead demand is forecast for pre-warming (a cold start must fit in it). */
  readonly horizonMs: number;
  /** Share of a replica's capacity planned for. */
  readonly targetLoad: number;
  /** The most replicas the loop keeps warm for one model. */
  readonly maxPerModel: number;
  /** The most of the fleet's GPUs the loop's warm replicas may take together. */
  readonly maxGpuFraction: number;
  /** A floor is lowered only after demand has stayed below it this long (kept warm while it lasts). */
  readonly holdMs: number;
  /** At most one change per model this often. */
  readonly minIntervalMs: number;
}

export const DEFAULT_WARM_CONFIG: WarmConfig = Object.freeze({
  enabled: true,
  horizonMs: 120_000,
  targetLoad: 0.8,
  maxPerModel: 4,
  maxGpuFraction: 0.5,
  holdMs: 300_000,
  minIntervalMs: 30_000,
});

export interface WarmChange {
  readonly model: string;
  readonly from: number;
  readonly to: number;
  readonly reason: string;
}

interface Floor {
  replicas: number;
  changedAtMs: number;
  /** Since when the need has stayed below the floor; undefined while it does not. */
  belowSinceMs: number | undefined;
  /** The most the need reached since then: what the floor comes down to. */
  belowPeak: number;
}

/**
 * Keeps replicas warm ahead of predicted demand: a model's floor (replicas
 * never evicted below, started while GPUs are free) rises as soon as the
 * forecast needs more, and falls only after the need has stayed lower for
 * `holdMs`, so a model that comes and goes is not loaded and evicted at
 * every swing.
 */
export class WarmPlanner {
  private readonly floors = new Map<string, Floor>();

  constructor(readonly config: WarmConfig = DEFAULT_WARM_CONFIG) {}

  /** The floors the loop holds now, by model. */
  current(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [model, f] of this.floors) if (f.replicas > 0) out[model] = f.replicas;
    return out;
  }

  evaluate(nowMs: number, demands: readonly ModelDemand[], fleetGpus: number): WarmChange[] {
    if (!this.config.enabled) return [];
    const changes: WarmChange[] = [];
    let budget = Math.floor(fleetGpus * this.config.maxGpuFraction);
    // The busiest models first: under the GPU cap, they keep theirs.
    const ordered = [...demands].sort((a, b) => b.upperRatePerSecond * b.meanRunSeconds - a.upperRatePerSecond * a.meanRunSeconds);
    const seen = new Set<string>();
    for (const d of ordered) {
      seen.add(d.model);
      const floor = this.floors.get(d.model) ?? { replicas: 0, changedAtMs: -Infinity, belowSinceMs: undefined, belowPeak: 0 };
      // A floor held through its hold can outlast the fleet that afforded it (the fleet shrank): the budget
      // left may be below 0, and a later model then affords none, never fewer than none (decision rejects a
      // negative floor, and the whole ApplyPolicy with it).
      const affordable = Math.max(0, Math.floor(budget / Math.max(1, d.gpusPerReplica)));
      const need = Math.min(this.config.maxPerModel, affordable, replicasNeeded(d, this.config.targetLoad));
      const settled = nowMs - floor.changedAtMs >= this.config.minIntervalMs;
      let to = floor.replicas;
      let reason = '';
      if (need > floor.replicas) {
        floor.belowSinceMs = undefined;
        if (settled) {
          to = need;
          reason = `forecast ${d.upperRatePerSecond.toFixed(2)} requests/s (upper bound) over the next ${Math.round(this.config.horizonMs / 1000)} s at ${d.meanRunSeconds.toFixed(1)} s each needs ${need} replica(s)`;
        }
      } else if (need < floor.replicas) {
        if (floor.belowSinceMs === undefined) {
          floor.belowSinceMs = nowMs;
          floor.belowPeak = need;
        }
        floor.belowPeak = Math.max(floor.belowPeak, need);
        // Down to the most the hold needed, not to this moment's need: a dip does not take away what a swing back needs.
        if (settled && nowMs - floor.belowSinceMs >= this.config.holdMs) {
          to = floor.belowPeak;
          reason = `demand has needed at most ${floor.belowPeak} replica(s) for ${Math.round((nowMs - floor.belowSinceMs) / 1000)} s`;
        }
      } else {
        floor.belowSinceMs = undefined;
      }
      if (to !== floor.replicas) {
        changes.push({ model: d.model, from: floor.replicas, to, reason });
        floor.replicas = to;
        floor.changedAtMs = nowMs;
        floor.belowSinceMs = undefined;
      }
      budget -= floor.replicas * Math.max(1, d.gpusPerReplica);
      if (floor.replicas > 0 || floor.belowSinceMs !== undefined) this.floors.set(d.model, floor);
      else this.floors.delete(d.model);
    }
    // A model no longer seen at all has no demand: its floor goes after the hold like any other.
    for (const [model, floor] of this.floors) {
      if (seen.has(model)) continue;
      if (floor.belowSinceMs === undefined) {
        floor.belowSinceMs = nowMs;
        floor.belowPeak = 0;
      }
      if (nowMs - floor.belowSinceMs >= this.config.holdMs) {
        changes.push({ model, from: floor.replicas, to: 0, reason: `no demand for ${Math.round((nowMs - floor.belowSinceMs) / 1000)} s` });
        this.floors.delete(model);
      }
    }
    return changes;
  }
}

export interface ScaleConfig {
  /** Share of capacity recommendations plan for. */
  readonly targetLoad: number;
  /** Recommendations fall to the highest raw value seen over this window (up fast, down slow, as Kubernetes' HPA). */
  readonly scaleDownWindowMs: number;
  /** GPUs one agent brings, when the fleet does not say (its mean otherwise). */
  readonly gpusPerAgent: number;
  readonly minAgents: number;
  readonly maxAgents: number;
}

export const DEFAULT_SCALE_CONFIG: ScaleConfig = Object.freeze({ targetLoad: 0.7, scaleDownWindowMs: 300_000, gpusPerAgent: 8, minAgents: 1, maxAgents: 1000 });

export interface ScaleRecommendation {
  /** A model's replicas, or the agents of a pool. */
  readonly kind: 'model' | 'pool';
  readonly name: string;
  readonly current: number;
  readonly desired: number;
  readonly reason: string;
}

/** What the fleet looks like to the scale advisor. */
export interface FleetView {
  readonly agents: number;
  readonly gpus: number;
  /** GPUs batch jobs hold now, and GPUs queued jobs ask for. */
  readonly batchGpusInUse: number;
  readonly batchGpusQueued: number;
  /** A class-wide queue-time or TTFT SLO is missed (every tenant of two or more misses it): more capacity is the lever. */
  readonly sloPressure: boolean;
}

/**
 * Desired replicas per model and agents per pool, from the forecast and the
 * SLOs, stabilised: a rise is recommended at once, a fall only once every raw
 * value over the scale-down window agrees (the window's maximum), so a dip
 * does not remove capacity a returning peak needs.
 */
export class ScaleAdvisor {
  private readonly history = new Map<string, Array<{ atMs: number; value: number }>>();
  private latest: ScaleRecommendation[] = [];
  /** The SLO pressure under way: the agents when it began, and when it was last seen. */
  private pressure: { baseAgents: number; lastMs: number } | undefined;

  constructor(readonly config: ScaleConfig = DEFAULT_SCALE_CONFIG) {}

  recommendations(): readonly ScaleRecommendation[] {
    return this.latest;
  }

  /** The recommendation for one model ('model') or pool ('pool'), if any. */
  find(kind: 'model' | 'pool', name: string): ScaleRecommendation | undefined {
    return this.latest.find((r) => r.kind === kind && r.name === name);
  }

  evaluate(nowMs: number, demands: readonly ModelDemand[], fleet: FleetView): readonly ScaleRecommendation[] {
    const out: ScaleRecommendation[] = [];
    let replicaGpus = 0;
    for (const d of [...demands].sort((a, b) => a.model.localeCompare(b.model))) {
      const raw = replicasNeeded(d, this.config.targetLoad);
      const desired = this.stabilise(`model:${d.model}`, nowMs, raw);
      replicaGpus += desired * Math.max(1, d.gpusPerReplica);
      out.push({
        kind: 'model',
        name: d.model,
        current: d.replicas,
        desired,
        reason: desired > raw ? `held at the ${Math.round(this.config.scaleDownWindowMs / 1000)} s peak (${desired}); now ${raw} would do` : `forecast ${d.upperRatePerSecond.toFixed(2)} requests/s × ${d.meanRunSeconds.toFixed(1)} s each at ${pct(this.config.targetLoad)} load`,
      });
    }
    const perAgent = fleet.agents > 0 && fleet.gpus > 0 ? fleet.gpus / fleet.agents : this.config.gpusPerAgent;
    const gpus = replicaGpus + fleet.batchGpusInUse + fleet.batchGpusQueued;
    let raw = Math.ceil(gpus / perAgent);
    let why = `${gpus} GPUs wanted (${replicaGpus} for replicas, ${fleet.batchGpusInUse + fleet.batchGpusQueued} for batch jobs) at ${perAgent} per agent`;
    // One agent more than when the pressure began, not than now: an agent added since that has not ended the
    // miss does not earn another (else the target climbs to maxAgents). The pressure ends once it has been gone
    // for the scale-down window, so a miss that flickers in and out of judgement does not restart it either.
    if (this.pressure !== undefined && nowMs - this.pressure.lastMs > this.config.scaleDownWindowMs) this.pressure = undefined;
    if (fleet.sloPressure) {
      const base = this.pressure?.baseAgents ?? fleet.agents;
      this.pressure = { baseAgents: base, lastMs: nowMs };
      if (raw <= base) {
        raw = base + 1;
        why = `a class-wide SLO is missed: one agent more than the ${base} when the miss began`;
      }
    }
    raw = Math.min(this.config.maxAgents, Math.max(this.config.minAgents, raw));
    const desired = this.stabilise('pool:default', nowMs, raw);
    out.push({ kind: 'pool', name: 'default', current: fleet.agents, desired, reason: desired > raw ? `held at the ${Math.round(this.config.scaleDownWindowMs / 1000)} s peak (${desired}); now ${raw} would do` : why });
    this.latest = out;
    return out;
  }

  private stabilise(key: string, nowMs: number, raw: number): number {
    const h = this.history.get(key) ?? [];
    h.push({ atMs: nowMs, value: raw });
    while (h.length > 0 && h[0]!.atMs < nowMs - this.config.scaleDownWindowMs) h.shift();
    this.history.set(key, h);
    let max = 0;
    for (const p of h) max = Math.max(max, p.value);
    return max;
  }
}

function pct(x: number): string {
  return `${Math.round(x * 100)} %`;
}
