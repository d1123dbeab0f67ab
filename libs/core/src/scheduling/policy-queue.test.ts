import fc from 'fast-check';
import { PriorityClass } from '@autoglm/proto';
import { DEFAULT_POLICY, FACTORS, PRESETS, type FactorName, type Policy } from '../policy/policy';
import { seededRandom } from '../random';
import { PolicyQueue, type QueuedTaskInit } from './policy-queue';

const MIN = 60_000;
const T0 = 1_700_000_000_000;
const policy = (over: Partial<Policy> = {}): Policy => ({ ...DEFAULT_POLICY, ...over });

const task = (id: string, over: Partial<QueuedTaskInit> = {}): QueuedTaskInit => ({
  id,
  tenant: 'acme',
  priorityClass: PriorityClass.NORMAL,
  priority: 0,
  readySinceMs: T0,
  ...over,
});

/** Pops everything: the order the dispatcher would try tasks in. */
function drain(q: PolicyQueue): string[] {
  const out: string[] = [];
  for (let t = q.popBest(); t; t = q.popBest()) {
    out.push(t.id);
    q.remove(t.id);
  }
  return out;
}

const arbTask = (i: number) =>
  fc.record({
    id: fc.constant(`t${i}`),
    tenant: fc.constantFrom('a', 'b', 'c'),
    priorityClass: fc.constantFrom(PriorityClass.URGENT, PriorityClass.NORMAL, PriorityClass.BACKGROUND),
    priority: fc.integer({ min: -1000, max: 1000 }),
    readySinceMs: fc.integer({ min: T0 - 9 * MIN, max: T0 }),
    deadlineMs: fc.option(fc.integer({ min: T0 - MIN, max: T0 + 60 * MIN }), { nil: undefined }),
    predictedRunMs: fc.integer({ min: 0, max: 5 * MIN }),
    dependents: fc.nat({ max: 50 }),
    inheritedClass: fc.option(fc.constant(PriorityClass.URGENT), { nil: undefined }),
    resourceShare: fc.double({ min: 0, max: 1, noNaN: true }),
  });
const arbTasks = fc.integer({ min: 1, max: 40 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => arbTask(i))));
const arbWeights = fc.record(Object.fromEntries(FACTORS.map((f) => [f, fc.integer({ min: 0, max: 100_000 })])) as Record<FactorName, fc.Arbitrary<number>>);

describe('PolicyQueue ordering', () => {
  it('pops in non-increasing priority (as explained), for any weights, tenants and clock', () => {
    fc.assert(
      fc.property(arbTasks, arbWeights, fc.integer({ min: 0, max: 30 * MIN }), fc.array(fc.double({ min: 0, max: 3000, noNaN: true }), { minLength: 3, maxLength: 3 }), (tasks, weights, later, scores) => {
        const p = policy({ weights });
        const q = new PolicyQueue(p, T0 - 20 * MIN);
        for (const t of tasks) q.push(t, T0);
        const now = T0 + later;
        q.maintain(now);
        ['a', 'b', 'c'].forEach((tenant, i) => q.setTenantScore(tenant, scores[i]!));
        // Without usage, fair share explains as 1; the queue adds the tenant's score instead (none for urgent submissions).
        const priorityOf = (id: string) => {
          const t = q.get(id)!;
          return q.explain(id, now, undefined)!.priority - weights.fairshare + (t.priorityClass === PriorityClass.URGENT ? 0 : q.tenantScore(t.tenant));
        };
        const overdue = [...q.overdue()].map((t) => t.id);
        const heaped: number[] = [];
        for (let t = q.popBest(); t; t = q.popBest()) {
          heaped.push(priorityOf(t.id));
          q.remove(t.id);
        }
        // Deadline urgency is refreshed before it drifts by 1 % of its weight: that much is the queue's tolerance.
        const tolerance = 0.01 * weights.deadline;
        for (let i = 1; i < heaped.length; i++) expect(heaped[i]!).toBeLessThanOrEqual(heaped[i - 1]! + tolerance + 1e-6 * (1 + Math.abs(heaped[i - 1]!)));
        // Everything past the age bound is overdue, and nothing else.
        for (const t of tasks) expect(overdue.includes(t.id)).toBe(now - t.readySinceMs >= p.maxAgeMs);
      }),
    );
  });

  it('keeps first-come first-served among equal priorities', () => {
    const q = new PolicyQueue(policy({ weights: { ...PRESETS.balanced, age: 0 } }), T0);
    for (const id of ['a', 'b', 'c', 'd']) q.push(task(id), T0);
    expect(drain(q)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('lets age lift an older task over a newer one by exactly its weight', () => {
    const weights = { ...PRESETS.balanced, age: 1000, business: 1000 };
    const q = new PolicyQueue(policy({ weights, maxAgeMs: 10 * MIN }), T0);
    // 0.1 of business (200 of 2000) is worth 100; age of 2 min is worth 200.
    q.push(task('old-low', { readySinceMs: T0, priority: -200 }), T0);
    q.push(task('new-high', { readySinceMs: T0 + 2 * MIN }), T0 + 2 * MIN);
    q.maintain(T0 + 2 * MIN);
    expect(drain(q)).toEqual(['old-low', 'new-high']);
  });

  it('ranks by fair share between tenants without touching their tasks', () => {
    const q = new PolicyQueue(policy(), T0);
    q.push(task('a1', { tenant: 'a' }), T0);
    q.push(task('b1', { tenant: 'b' }), T0);
    q.setTenantScore('a', 0);
    q.setTenantScore('b', 100);
    expect(q.positionOf('b1')).toBe(1);
    expect(drain(q)).toEqual(['b1', 'a1']);
  });

  it('raises a task whose deadline nears, as time passes, without a new push', () => {
    const q = new PolicyQueue(policy({ weights: { ...PRESETS.realtime }, maxAgeMs: 24 * 60 * MIN }), T0);
    // Far from its deadline (slack 290 min: urgency 68), its lower business priority (-150) counts more.
    q.push(task('deadline', { deadlineMs: T0 + 300 * MIN, predictedRunMs: 10 * MIN, priority: -300 }), T0);
    q.push(task('plain', { readySinceMs: T0 }), T0);
    q.maintain(T0);
    expect(q.inOrder().map((t) => t.id)).toEqual(['plain', 'deadline']);
    q.maintain(T0 + 289 * MIN);
    expect(q.inOrder().map((t) => t.id)).toEqual(['deadline', 'plain']);
  });

  it('lends an urgent class to a dependency (priority inheritance) and takes it back', () => {
    const q = new PolicyQueue(policy(), T0);
    q.push(task('urgent-peer', { priorityClass: PriorityClass.URGENT }), T0);
    q.push(task('dep', { priorityClass: PriorityClass.BACKGROUND }), T0);
    expect(q.positionOf('dep')).toBe(2);
    q.update('dep', { inheritedClass: PriorityClass.URGENT, dependents: 3 }, T0);
    expect(q.positionOf('dep')).toBe(1);
    q.update('dep', { inheritedClass: undefined, dependents: 0 }, T0);
    expect(q.positionOf('dep')).toBe(2);
  });

  it('moves tasks past the age bound to the overdue list, oldest first, ahead in position', () => {
    const q = new PolicyQueue(policy({ maxAgeMs: 10 * MIN }), T0);
    q.push(task('urgent', { priorityClass: PriorityClass.URGENT, readySinceMs: T0 + 9 * MIN }), T0 + 9 * MIN);
    q.push(task('bg2', { priorityClass: PriorityClass.BACKGROUND, readySinceMs: T0 + MIN }), T0 + 9 * MIN);
    q.push(task('bg1', { priorityClass: PriorityClass.BACKGROUND, readySinceMs: T0 }), T0 + 9 * MIN);
    q.maintain(T0 + 11 * MIN);
    expect([...q.overdue()].map((t) => t.id)).toEqual(['bg1', 'bg2']);
    expect(q.get('bg1')!.overdue).toBe(true);
    expect(q.positionOf('urgent')).toBe(3);
    expect(q.popBest()!.id).toBe('urgent');
  });

  it('finds every task reaching the age bound, oldest first, after thousands of removals and pops', () => {
    const maxAgeMs = 10 * MIN;
    const q = new PolicyQueue(policy({ maxAgeMs }), T0);
    const random = seededRandom(7);
    const kept = new Set<string>();
    for (let i = 0; i < 6000; i++) {
      q.push(task(`t${i}`, { readySinceMs: T0 + i, priority: Math.floor(random() * 2001) - 1000, tenant: `x${i % 5}` }), T0 + i);
      kept.add(`t${i}`);
      // Most leave again, by removal or by being placed, in no order of age.
      if (random() < 0.4) {
        const id = `t${Math.floor(random() * (i + 1))}`;
        expect(q.remove(id)).toBe(kept.delete(id));
      }
      if (random() < 0.4) {
        const best = q.popBest()!;
        q.remove(best.id);
        kept.delete(best.id);
      }
    }
    const ready = (id: string) => Number(id.slice(1));
    const due = (through: number) => [...kept].filter((id) => ready(id) <= through).sort((a, b) => ready(a) - ready(b));
    q.maintain(T0 + maxAgeMs + 2500);
    expect([...q.overdue()].map((t) => t.id)).toEqual(due(2500));
    q.maintain(T0 + maxAgeMs + 6000);
    expect([...q.overdue()].map((t) => t.id)).toEqual(due(6000));
    expect(q.size).toBe(kept.size);
  });

  it('puts popped tasks back where they were', () => {
    const q = new PolicyQueue(policy(), T0);
    for (const [i, c] of [PriorityClass.URGENT, PriorityClass.NORMAL, PriorityClass.BACKGROUND].entries()) q.push(task(`t${i}`, { priorityClass: c }), T0);
    const first = q.popBest()!;
    const second = q.popBest()!;
    q.restore([second, first], T0);
    expect(q.inOrder().map((t) => t.id)).toEqual(['t0', 't1', 't2']);
    expect(q.size).toBe(3);
  });

  it('re-keys everything on a new policy', () => {
    const q = new PolicyQueue(policy({ weights: PRESETS.realtime }), T0);
    q.push(task('cheap-bg', { priorityClass: PriorityClass.BACKGROUND, resourceShare: 0 }), T0);
    q.push(task('costly-urgent', { priorityClass: PriorityClass.URGENT, resourceShare: 1 }), T0);
    expect(q.positionOf('costly-urgent')).toBe(1);
    q.setPolicy(policy({ weights: { ...PRESETS.realtime, class: 0, cost: 5000 } }), T0);
    expect(q.positionOf('costly-urgent')).toBe(2);
  });

  it('removes tasks from anywhere: heap, overdue list, or popped', () => {
    const q = new PolicyQueue(policy({ maxAgeMs: MIN }), T0);
    q.push(task('old', { readySinceMs: T0 - 2 * MIN }), T0);
    q.push(task('a'), T0);
    q.push(task('b'), T0);
    const popped = q.popBest()!;
    expect(q.remove(popped.id)).toBe(true);
    expect(q.remove('old')).toBe(true);
    expect(q.remove('nope')).toBe(false);
    expect(q.inOrder().map((t) => t.id)).toEqual(['b']);
    expect(q.size).toBe(1);
  });

  it('stays consistent under random pushes, pops, updates and removals', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('push', 'pop', 'remove', 'update', 'tick'), fc.nat({ max: 30 }), fc.integer({ min: -1000, max: 1000 })), { maxLength: 200 }),
        (ops) => {
          const q = new PolicyQueue(policy({ maxAgeMs: 5 * MIN }), T0);
          const model = new Set<string>();
          let now = T0;
          for (const [op, n, p] of ops) {
            const id = `t${n}`;
            if (op === 'push') {
              q.push(task(id, { priority: p, readySinceMs: now, tenant: `x${n % 3}` }), now);
              model.add(id);
            } else if (op === 'pop') {
              const t = q.popBest();
              if (t) {
                q.remove(t.id);
                model.delete(t.id);
              }
            } else if (op === 'remove') {
              expect(q.remove(id)).toBe(model.delete(id));
            } else if (op === 'update') q.update(id, { priority: p, dependents: n }, now);
            else {
              now += n * 20_000;
              q.maintain(now);
            }
            expect(q.size).toBe(model.size);
          }
          expect(new Set(q.inOrder().map((t) => t.id))).toEqual(model);
        },
      ),
    );
  });
});
