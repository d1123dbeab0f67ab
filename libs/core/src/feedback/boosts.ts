import type { SloReading } from './slo';

export interface BoostConfig {
  readonly enabled: boolean;
  /** Each raise multiplies the tenant's boost by this; each lowering divides by it. */
  readonly step: number;
  /** The most the loop multiplies a tenant's share by. */
  readonly max: number;
  /** At most one change per tenant this often: the last one must have had time to act. */
  readonly minIntervalMs: number;
  /** Lowered only after its SLOs have all been met this long (hysteresis). */
  readonly relaxAfterMs: number;
}

export const DEFAULT_BOOST_CONFIG: BoostConfig = Object.freeze({ enabled: true, step: 1.5, max: 4, minIntervalMs: 60_000, relaxAfterMs: 120_000 });

export interface BoostChange {
  readonly tenant: string;
  readonly from: number;
  readonly to: number;
  readonly reason: string;
}

/** A miss raises the boost only when it burns the error budget at least this fast (1: exactly as fast as the window allows). */
const RAISE_BURN_RATE = 1.1;
/** ... and it is lowered only while every series burns it at most this fast: met with room to spare, not just met thanks to the boost. */
const LOWER_BURN_RATE = 0.5;

interface TenantState {
  factor: number;
  changedAtMs: number;
  /** Whether the last change lowered it: raising it again then waits as long as lowering did (no ping-pong). */
  lowered: boolean;
  /** The attainment of its worst missed series when it was last raised. */
  attainmentAtRaise: number;
  /** Since when all its SLOs have been met within the lowering band without a break; undefined while one is not. */
  metSinceMs: number | undefined;
}

/**
 * Raises the share of a tenant that misses its queue-time SLOs while others meet theirs
 * (it is starved, not the fleet short: when every tenant misses, raising one
 * only moves the misses around, and the scale recommendation is the lever),
 * and lowers it back step by step once its SLOs have held for a while.
 */
export class TenantBoosts {
  private readonly tenants = new Map<string, TenantState>();

  constructor(readonly config: BoostConfig = DEFAULT_BOOST_CONFIG) {}

  /** The factor the loop applies to a tenant now (1 when none). */
  factor(tenant: string): number {
    return this.tenants.get(tenant)?.factor ?? 1;
  }

  /** Tenants with a factor above 1. */
  boosted(): Array<{ tenant: string; factor: number }> {
    return [...this.tenants].filter(([, s]) => s.factor > 1).map(([tenant, s]) => ({ tenant, factor: s.factor }));
  }

  evaluate(nowMs: number, readings: readonly SloReading[]): BoostChange[] {
    if (!this.config.enabled) return [];
    // Per tenant: the SLO series it misses, and whether it has any judged at all.
    const missing = new Map<string, SloReading[]>();
    const judged = new Set<string>();
    /** Tenants with a series met, but by less than the lowering band. */
    const tight = new Set<string>();
    for (const r of readings) {
      // A boost changes the order work is placed in: it can fix a wait, not a failure or a slow engine.
      if (r.met === undefined || r.indicator !== 'queue_time') continue;
      judged.add(r.tenant);
      if (r.burnRate > LOWER_BURN_RATE) tight.add(r.tenant);
      if (!r.met) {
        const list = missing.get(r.tenant) ?? [];
        list.push(r);
        missing.set(r.tenant, list);
      }
    }
    const starved = judged.size > missing.size;
    const changes: BoostChange[] = [];
    for (const tenant of new Set([...missing.keys(), ...this.tenants.keys()])) {
      const state = this.tenants.get(tenant) ?? { factor: 1, changedAtMs: -Infinity, lowered: false, attainmentAtRaise: NaN, metSinceMs: undefined };
      const misses = missing.get(tenant);
      const settled = nowMs - state.changedAtMs >= this.config.minIntervalMs;
      if (misses !== undefined) {
        const mayRaise = settled && (!state.lowered || nowMs - state.changedAtMs >= this.config.relaxAfterMs);
        state.metSinceMs = undefined;
        const to = Math.min(this.config.max, round(state.factor * this.config.step));
        const worst = misses.reduce((a, b) => (b.burnRate > a.burnRate ? b : a));
        // Futility: when the last raise brought no gain, its waits are for capacity, not for its
        // place in the order, and more boost would only push others back.
        const helped = state.factor === 1 || worst.attainment > state.attainmentAtRaise;
        // Hysteresis band: a raise needs the miss to burn the budget 10 % faster than it lasts,
        // so a series hovering at its objective does not flip the boost.
        const deep = worst.burnRate >= RAISE_BURN_RATE;
        if (starved && mayRaise && helped && deep && to > state.factor) {
          changes.push({ tenant, from: state.factor, to, reason: `misses SLO ${worst.slo} (${pct(worst.attainment)} good, objective ${pct(worst.objective)}) while other tenants meet theirs` });
          state.factor = to;
          state.changedAtMs = nowMs;
          state.lowered = false;
          state.attainmentAtRaise = worst.attainment;
        }
      } else if (state.factor > 1 && tight.has(tenant)) {
        // Met, but only just: the boost may be what holds it; the relax wait starts once it is met with room.
        state.metSinceMs = undefined;
      } else if (state.factor > 1) {
        state.metSinceMs ??= nowMs;
        if (settled && nowMs - state.metSinceMs >= this.config.relaxAfterMs) {
          const down = round(state.factor / this.config.step);
          // Back to exactly 1 at the end, whatever rounding left.
          const to = down < 1.05 ? 1 : down;
          changes.push({ tenant, from: state.factor, to, reason: `has met its SLOs for ${Math.round((nowMs - state.metSinceMs) / 1000)} s` });
          state.factor = to;
          state.changedAtMs = nowMs;
          state.lowered = true;
          // A later miss is a new episode: the futility check starts afresh.
          state.attainmentAtRaise = -Infinity;
          state.metSinceMs = nowMs;
        }
      }
      // Forgotten once back at 1 and past the wait a re-raise after a lowering owes (kept until then, or it would be raised again at once).
      if (state.factor <= 1 && misses === undefined && !(state.lowered && nowMs - state.changedAtMs < this.config.relaxAfterMs)) this.tenants.delete(tenant);
      else this.tenants.set(tenant, state);
    }
    return changes;
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(2)} %`;
}
