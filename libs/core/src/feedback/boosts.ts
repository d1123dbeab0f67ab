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

export const DEFAULT_BOOST_CONFIG: BoostConfig = Object.freeze({ enabled: true, step: 1.5, max: 4, minIntervalMs: 30_000, relaxAfterMs: 120_000 });

export interface BoostChange {
  readonly tenant: string;
  readonly from: number;
  readonly to: number;
  readonly reason: string;
}

interface TenantState {
  factor: number;
  changedAtMs: number;
  /** When all its SLOs were last seen met without a break; undefined while one misses. */
  metSinceMs: number | undefined;
}

/**
 * Raises the share of a tenant that misses its SLOs while others meet theirs
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
    for (const r of readings) {
      if (r.tenant === '*' || r.met === undefined) continue;
      judged.add(r.tenant);
      if (!r.met) {
        const list = missing.get(r.tenant) ?? [];
        list.push(r);
        missing.set(r.tenant, list);
      }
    }
    const starved = judged.size > missing.size;
    const changes: BoostChange[] = [];
    for (const tenant of new Set([...missing.keys(), ...this.tenants.keys()])) {
      const state = this.tenants.get(tenant) ?? { factor: 1, changedAtMs: -Infinity, metSinceMs: undefined };
      const misses = missing.get(tenant);
      const settled = nowMs - state.changedAtMs >= this.config.minIntervalMs;
      if (misses !== undefined) {
        state.metSinceMs = undefined;
        const to = Math.min(this.config.max, round(state.factor * this.config.step));
        if (starved && settled && to > state.factor) {
          const worst = misses.reduce((a, b) => (b.burnRate > a.burnRate ? b : a));
          changes.push({ tenant, from: state.factor, to, reason: `misses SLO ${worst.slo} (${pct(worst.attainment)} good, objective ${pct(worst.objective)}) while other tenants meet theirs` });
          state.factor = to;
          state.changedAtMs = nowMs;
        }
      } else if (state.factor > 1) {
        state.metSinceMs ??= nowMs;
        if (settled && nowMs - state.metSinceMs >= this.config.relaxAfterMs) {
          const down = round(state.factor / this.config.step);
          // Back to exactly 1 at the end, whatever rounding left.
          const to = down < 1.05 ? 1 : down;
          changes.push({ tenant, from: state.factor, to, reason: `has met its SLOs for ${Math.round((nowMs - state.metSinceMs) / 1000)} s` });
          state.factor = to;
          state.changedAtMs = nowMs;
          state.metSinceMs = nowMs;
        }
      }
      if (state.factor <= 1 && misses === undefined) this.tenants.delete(tenant);
      else this.tenants.set(tenant, state);
    }
    return changes;
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)} %`;
}
