import { TenantBoosts } from './boosts';
import type { SloReading } from './slo';

function reading(tenant: string, met: boolean | undefined, attainment = met ? 0.99 : 0.5): SloReading {
  return { slo: 'urgent-queue', indicator: 'queue_time', tenant, priorityClass: 'urgent', good: attainment * 100, total: 100, attainment, objective: 0.95, met, burnRate: (1 - attainment) / 0.05 };
}

describe('TenantBoosts', () => {
  const config = { enabled: true, step: 1.5, max: 3, minIntervalMs: 30_000, relaxAfterMs: 120_000 };

  it('raises a starved tenant step by step within the cap, no faster than the interval, then lowers it back to 1', () => {
    const b = new TenantBoosts(config);
    const starved = [reading('acme', false), reading('globex', true)];
    expect(b.evaluate(0, starved)).toEqual([expect.objectContaining({ tenant: 'acme', from: 1, to: 1.5 })]);
    expect(b.evaluate(10_000, starved)).toEqual([]);
    expect(b.evaluate(30_000, starved).map((c) => c.to)).toEqual([2.25]);
    expect(b.evaluate(60_000, starved).map((c) => c.to)).toEqual([3]);
    expect(b.evaluate(90_000, starved)).toEqual([]);
    expect(b.factor('acme')).toBe(3);
    // Met again: nothing until it has held for relaxAfterMs, then one step at a time.
    const fine = [reading('acme', true), reading('globex', true)];
    expect(b.evaluate(100_000, fine)).toEqual([]);
    expect(b.evaluate(200_000, fine)).toEqual([]);
    expect(b.evaluate(220_000, fine).map((c) => c.to)).toEqual([2]);
    expect(b.evaluate(250_000, fine)).toEqual([]);
    expect(b.evaluate(340_000, fine).map((c) => c.to)).toEqual([1.333]);
    expect(b.evaluate(460_000, fine).map((c) => c.to)).toEqual([1]);
    expect(b.boosted()).toEqual([]);
  });

  it('a miss during the relax wait restarts it (hysteresis: no ping-pong)', () => {
    const b = new TenantBoosts(config);
    b.evaluate(0, [reading('acme', false), reading('globex', true)]);
    b.evaluate(100_000, [reading('acme', true), reading('globex', true)]);
    b.evaluate(150_000, [reading('acme', undefined), reading('globex', true)]);
    // Missed again at 200 s: the met clock restarts, so no lowering at 230 s.
    b.evaluate(200_000, [reading('acme', false), reading('globex', true)]);
    expect(b.evaluate(230_000, [reading('acme', true), reading('globex', true)]).every((c) => c.to > c.from)).toBe(true);
  });

  it('boosts nobody when every tenant misses (the fleet is short) or when off', () => {
    const all = [reading('acme', false), reading('globex', false)];
    expect(new TenantBoosts(config).evaluate(0, all)).toEqual([]);
    expect(new TenantBoosts({ ...config, enabled: false }).evaluate(0, [reading('acme', false), reading('globex', true)])).toEqual([]);
  });
});
