import fc from 'fast-check';
import { PriorityClass } from '@autoglm/proto';
import { PolicyQueue } from '../scheduling/policy-queue';
import { parseExperiment, variantOf } from './experiment';
import { DEFAULT_POLICY } from './policy';

const experiment = (splitBy: string, percents = [50, 50]) =>
  parseExperiment(JSON.stringify({ name: 'exp', splitBy, variants: percents.map((percent, i) => ({ name: `v${i}`, percent, weights: i === 1 ? { class: 0 } : {} })) }))!;

describe('policy experiments', () => {
  it('splits traffic by the percents, stably, by tenant or by request id', () => {
    const e = experiment('request_id', [20, 30, 50]);
    const counts = [0, 0, 0];
    for (let i = 0; i < 20_000; i++) counts[variantOf(e, 'acme', `req-${i}`, `t-${i}`)]! += 1;
    for (const [i, c] of counts.entries()) expect(Math.abs(c / 20_000 - [0.2, 0.3, 0.5][i]!)).toBeLessThan(0.02);
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.string(), (tenant, a, b) => {
        const byTenant = experiment('tenant');
        expect(variantOf(byTenant, tenant, a, 'x')).toBe(variantOf(byTenant, tenant, b, 'y'));
        expect(variantOf(e, tenant, a, 'x')).toBe(variantOf(e, 'other', a, 'y'));
      }),
    );
  });

  it('refuses what it cannot run, naming the field', () => {
    expect(parseExperiment('')).toBeUndefined();
    const refused = (text: string) => {
      try {
        parseExperiment(text);
      } catch (e) {
        return (e as Error).message;
      }
      return 'accepted';
    };
    expect(refused('{')).toMatch(/^experiment: is not JSON/);
    expect(refused(JSON.stringify({ name: 'e', variants: [{ name: 'a', percent: 50 }, { name: 'b', percent: 40 }] }))).toBe('experiment.variants: percents add up to 90; make them add up to 100');
    expect(refused(JSON.stringify({ name: 'e', variants: [{ name: 'a', percent: 50 }, { name: 'a', percent: 50 }] }))).toMatch(/variants\[1\]\.name: "a" names another variant/);
    expect(refused(JSON.stringify({ name: 'e', variants: [{ name: 'a', percent: 50, weights: { age: 1 } }, { name: 'b', percent: 50 }] }))).toMatch(
      /^experiment\.variants\[0\]\.weights\.age: age is fleet-wide and cannot differ by variant/,
    );
    expect(refused(JSON.stringify({ name: 'e', splitBy: 'moon', variants: [] }))).toMatch(/^experiment\.splitBy: "moon" is not a split/);
  });

  it('orders each task by its variant’s weights', () => {
    const q = new PolicyQueue(DEFAULT_POLICY, 0);
    // Variant 1 ignores class and weighs the submitted priority heavily.
    q.setVariants([{}, { class: 0, business: 100_000 }], 0);
    q.push({ id: 'urgent-control', tenant: 't', priorityClass: PriorityClass.URGENT, priority: 0, readySinceMs: 0, variant: 0 }, 0);
    q.push({ id: 'background-treated', tenant: 't', priorityClass: PriorityClass.BACKGROUND, priority: 1000, readySinceMs: 0, variant: 1 }, 0);
    q.push({ id: 'urgent-treated', tenant: 't', priorityClass: PriorityClass.URGENT, priority: -1000, readySinceMs: 0, variant: 1 }, 0);
    expect(q.inOrder().map((t) => t.id)).toEqual(['background-treated', 'urgent-control', 'urgent-treated']);
    const why = q.explain('background-treated', 0, 0)!;
    expect(why.factors.find((f) => f.name === 'class')!.weight).toBe(0);
    expect(why.factors.find((f) => f.name === 'age')!.weight).toBe(DEFAULT_POLICY.weights.age);
  });
});
