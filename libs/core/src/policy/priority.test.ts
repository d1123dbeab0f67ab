import fc from 'fast-check';
import { PriorityClass } from '@autoglm/proto';
import { DEFAULT_PRIORITY_SHAPE, FACTORS, PRESETS, type FactorName, type Weights } from './policy';
import { explainPriority, isSheddable, priorityFactors, priorityOf, type PriorityInputs } from './priority';

const base: PriorityInputs = { priorityClass: PriorityClass.NORMAL, waitMs: 0, dependents: 0, priority: 0, resourceShare: 0 };
const HOUR = 3600_000;

const inputs = fc.record({
  priorityClass: fc.constantFrom(PriorityClass.URGENT, PriorityClass.NORMAL, PriorityClass.BACKGROUND),
  waitMs: fc.double({ min: 0, max: 30 * 24 * HOUR, noNaN: true }),
  slackMs: fc.option(fc.double({ min: -HOUR, max: 24 * HOUR, noNaN: true }), { nil: undefined }),
  dependents: fc.nat({ max: 10_000 }),
  priority: fc.integer({ min: -1000, max: 1000 }),
  usageOverShare: fc.option(fc.double({ min: 0, max: 50, noNaN: true }), { nil: undefined }),
  resourceShare: fc.double({ min: 0, max: 1, noNaN: true }),
});
const weights = fc.record(Object.fromEntries(FACTORS.map((f) => [f, fc.integer({ min: 0, max: 100_000 })])) as Record<FactorName, fc.Arbitrary<number>>);

describe('priority factors', () => {
  it('are each in [0, 1], whatever the inputs, even absurd ones', () => {
    fc.assert(
      fc.property(inputs, (i) => {
        for (const v of Object.values(priorityFactors(i))) expect(v >= 0 && v <= 1).toBe(true);
      }),
    );
    const absurd = priorityFactors({ ...base, waitMs: Infinity, slackMs: NaN, dependents: -5, priority: 1e9, usageOverShare: -1, resourceShare: 7 });
    for (const v of Object.values(absurd)) expect(v >= 0 && v <= 1).toBe(true);
  });

  it('shape deadline urgency by slack: none without a deadline, 0.5 at the horizon, 1 once it cannot be met', () => {
    const h = DEFAULT_PRIORITY_SHAPE.deadlineHorizonMs;
    expect(priorityFactors(base).deadline).toBe(0);
    expect(priorityFactors({ ...base, slackMs: h }).deadline).toBeCloseTo(0.5);
    expect(priorityFactors({ ...base, slackMs: 0 }).deadline).toBe(1);
    expect(priorityFactors({ ...base, slackMs: -1000 }).deadline).toBe(1);
  });

  it('give fair share 1 to a tenant within its share, halving with each quarter share it uses beyond', () => {
    const share = (usageOverShare: number) => priorityFactors({ ...base, usageOverShare }).fairshare;
    expect([share(0), share(0.7), share(1), share(1.25), share(1.5), share(2)]).toEqual([1, 1, 1, 0.5, 0.25, 1 / 16]);
    // Past 1.25 times its share, a tenant loses more to fair share than age can give back.
    for (const w of Object.values(PRESETS)) expect(w.fairshare * (1 - share(1.25))).toBeGreaterThanOrEqual(w.age);
  });

  it('shape size by predicted run time on a log scale: 0 up to a second, 1 at the horizon, longer work lower', () => {
    const h = DEFAULT_PRIORITY_SHAPE.sizeHorizonMs;
    const size = (predictedRunMs?: number) => priorityFactors({ ...base, predictedRunMs }).size;
    expect([size(undefined), size(0), size(1000), size(h), size(10 * h)]).toEqual([0, 0, 0, 1, 1]);
    expect(size(Math.sqrt(1000 * h))).toBeCloseTo(0.5);
    expect(size(60_000)).toBeGreaterThan(size(5_000));
    const w = { ...PRESETS.realtime };
    expect(priorityOf({ ...base, predictedRunMs: 5_000 }, w)).toBeGreaterThan(priorityOf({ ...base, predictedRunMs: 600_000 }, w));
  });

  it('cap age at 1 after the maximum age', () => {
    expect(priorityFactors({ ...base, waitMs: DEFAULT_PRIORITY_SHAPE.maxAgeMs * 3 }).age).toBe(1);
  });
});

describe('priorityOf', () => {
  it('is the sum of the contributions explainPriority reports, with cost subtracted', () => {
    fc.assert(
      fc.property(inputs, weights, (i, w) => {
        const { priority, factors } = explainPriority(i, w);
        expect(priorityOf(i, w)).toBeCloseTo(priority, 6);
        expect(factors.map((f) => f.name)).toEqual([...FACTORS]);
        expect(factors.find((f) => f.name === 'cost')!.contribution).toBeLessThanOrEqual(0);
      }),
    );
  });

  it('never falls when a task waits longer, nears its deadline, gains dependents or business weight; never rises with usage or cost', () => {
    fc.assert(
      fc.property(inputs, weights, fc.double({ min: 0, max: HOUR, noNaN: true }), (i, w, more) => {
        const p = priorityOf(i, w);
        const eps = 1e-9 * (1 + Math.abs(p));
        expect(priorityOf({ ...i, waitMs: i.waitMs + more }, w)).toBeGreaterThanOrEqual(p - eps);
        if (i.slackMs !== undefined) expect(priorityOf({ ...i, slackMs: i.slackMs - more }, w)).toBeGreaterThanOrEqual(p - eps);
        expect(priorityOf({ ...i, dependents: i.dependents + 1 }, w)).toBeGreaterThanOrEqual(p - eps);
        expect(priorityOf({ ...i, priority: Math.min(1000, i.priority + 1) }, w)).toBeGreaterThanOrEqual(p - eps);
        if (i.usageOverShare !== undefined) expect(priorityOf({ ...i, usageOverShare: i.usageOverShare + 0.5 }, w)).toBeLessThanOrEqual(p + eps);
        expect(priorityOf({ ...i, resourceShare: Math.min(1, i.resourceShare + 0.1) }, w)).toBeLessThanOrEqual(p + eps);
      }),
    );
  });

  it('orders tasks exactly by a factor when only that factor has weight', () => {
    fc.assert(
      fc.property(fc.constantFrom(...FACTORS), fc.array(inputs, { minLength: 2, maxLength: 30 }), (factor, tasks) => {
        const only = Object.fromEntries(FACTORS.map((f) => [f, f === factor ? 1000 : 0])) as Weights;
        const sign = factor === 'cost' ? -1 : 1;
        const byPriority = tasks.map((t) => priorityOf(t, only) + 0);
        // (+ 0: a cost of zero is -0, which toEqual tells from 0.)
        const byFactor = tasks.map((t) => sign * 1000 * priorityFactors(t)[factor] + 0);
        expect(byPriority).toEqual(byFactor);
      }),
    );
  });

  it('puts a fresh urgent task ahead of any background task without a deadline under the realtime preset', () => {
    fc.assert(
      fc.property(inputs, (background) => {
        const waiting = { ...background, priorityClass: PriorityClass.BACKGROUND, slackMs: undefined, priority: Math.min(0, background.priority) };
        const urgent = { ...base, priorityClass: PriorityClass.URGENT, resourceShare: 1 };
        expect(priorityOf(urgent, PRESETS.realtime)).toBeGreaterThan(priorityOf(waiting, PRESETS.realtime));
      }),
    );
  });

  it('calls negative priority sheddable', () => {
    expect([isSheddable(-1), isSheddable(0), isSheddable(5)]).toEqual([true, false, false]);
  });
});
