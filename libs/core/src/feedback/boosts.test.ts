import { TenantBoosts } from './boosts';
import type { SloReading } from './slo';

function reading(tenant: string, met: boolean | undefined, attainment = met ? 0.99 : 0.5): SloReading {
  return { slo: 'urgent-queue', indicator: 'queue_time', tenant, priorityClass: 'urgent', good: attainment * 100, total: 100, attainment, objective: 0.95, met, burnRate: (1 - attainment) / 0.05 };
}

describe('TenantBoosts', () => {
  const config = { enabled: true, step: 1.5, max: 3, minIntervalMs: 30_000, relaxAfterMs: 120_000 };

  it('raises a starved tenant step by step within the cap, no faster than the interval, then lowers it back to 1', () => {
    const b = new TenantBoosts(config);
    // Each raise helps a little, not yet enough.
    const starved = (attainment: number) => [reading('acme', false, attainment), reading('globex', true)];
    expect(b.evaluate(0, starved(0.5))).toEqual([expect.objectContaining({ tenant: 'acme', from: 1, to: 1.5 })]);
    expect(b.evaluate(10_000, starved(0.55))).toEqual([]);
    expect(b.evaluate(30_000, starved(0.6)).map((c) => c.to)).toEqual([2.25]);
    expect(b.evaluate(60_000, starved(0.7)).map((c) => c.to)).toEqual([3]);
    expect(b.evaluate(90_000, starved(0.8))).toEqual([]);
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

  it('after lowering, even back to 1, raises again only once as long has passed as lowering took', () => {
    const b = new TenantBoosts(config);
    b.evaluate(0, [reading('acme', false, 0.5), reading('globex', true)]);
    b.evaluate(30_000, [reading('acme', true), reading('globex', true)]);
    expect(b.evaluate(150_000, [reading('acme', true), reading('globex', true)]).map((c) => c.to)).toEqual([1]);
    // Relaxed to 1 at 150 s: a miss soon after may be the lowering's doing, so it waits as any lowering does (until 270 s).
    expect(b.evaluate(160_000, [reading('acme', false, 0.4), reading('globex', true)])).toEqual([]);
    expect(b.evaluate(270_000, [reading('acme', false, 0.4), reading('globex', true)]).map((c) => c.to)).toEqual([1.5]);
    // Once that wait is over, a tenant back at 1 is forgotten.
    const d = new TenantBoosts(config);
    d.evaluate(0, [reading('acme', false, 0.5), reading('globex', true)]);
    d.evaluate(30_000, [reading('acme', true), reading('globex', true)]);
    d.evaluate(150_000, [reading('acme', true), reading('globex', true)]);
    d.evaluate(270_000, [reading('acme', true), reading('globex', true)]);
    expect(d.evaluate(280_000, [reading('acme', false, 0.4), reading('globex', true)]).map((c) => c.to)).toEqual([1.5]);
    const c = new TenantBoosts(config);
    c.evaluate(0, [reading('acme', false, 0.5), reading('globex', true)]);
    c.evaluate(30_000, [reading('acme', false, 0.6), reading('globex', true)]);
    c.evaluate(60_000, [reading('acme', true), reading('globex', true)]);
    expect(c.evaluate(180_000, [reading('acme', true), reading('globex', true)]).map((x) => x.to)).toEqual([1.5]);
    // Lowered to 1.5 at 180 s: a miss 60 s later waits until 300 s.
    expect(c.evaluate(240_000, [reading('acme', false, 0.4), reading('globex', true)])).toEqual([]);
    expect(c.evaluate(300_000, [reading('acme', false, 0.4), reading('globex', true)]).map((x) => x.to)).toEqual([2.25]);
  });

  it('keeps the boost while its SLO is met only just (the boost may be what holds it), and lowers it once met with room', () => {
    const b = new TenantBoosts(config);
    b.evaluate(0, [reading('acme', false, 0.5), reading('globex', true)]);
    // 96 % against 95 %: met, burning 80 % of the budget.
    const tight = [reading('acme', true, 0.96), reading('globex', true)];
    for (let t = 30_000; t <= 600_000; t += 30_000) expect(b.evaluate(t, tight)).toEqual([]);
    expect(b.factor('acme')).toBe(1.5);
    const roomy = [reading('acme', true, 0.99), reading('globex', true)];
    expect(b.evaluate(630_000, roomy)).toEqual([]);
    expect(b.evaluate(750_000, roomy).map((c) => c.to)).toEqual([1]);
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

  it('stops raising when the last raise brought no gain (the waits are for capacity, not order)', () => {
    const b = new TenantBoosts(config);
    b.evaluate(0, [reading('acme', false, 0.5), reading('globex', true)]);
    expect(b.evaluate(30_000, [reading('acme', false, 0.5), reading('globex', true)])).toEqual([]);
    expect(b.evaluate(60_000, [reading('acme', false, 0.48), reading('globex', true)])).toEqual([]);
    expect(b.factor('acme')).toBe(1.5);
  });

  it('acts on queue-time SLOs only: a boost cannot fix failures or a slow engine', () => {
    const b = new TenantBoosts(config);
    const failing = { ...reading('acme', false), slo: 'success', indicator: 'success' as const };
    expect(b.evaluate(0, [failing, reading('globex', true)])).toEqual([]);
  });

  it('does not raise for a series hovering just under its objective (hysteresis band)', () => {
    const b = new TenantBoosts(config);
    // 94.6 % against 95 %: burns the budget 1.08× as fast, inside the band.
    expect(b.evaluate(0, [reading('acme', false, 0.946), reading('globex', true)])).toEqual([]);
    expect(b.evaluate(10_000, [reading('acme', false, 0.94), reading('globex', true)]).map((c) => c.to)).toEqual([1.5]);
  });

  it('boosts nobody when every tenant misses (the fleet is short) or when off', () => {
    const all = [reading('acme', false), reading('globex', false)];
    expect(new TenantBoosts(config).evaluate(0, all)).toEqual([]);
    expect(new TenantBoosts({ ...config, enabled: false }).evaluate(0, [reading('acme', false), reading('globex', true)])).toEqual([]);
  });
});
