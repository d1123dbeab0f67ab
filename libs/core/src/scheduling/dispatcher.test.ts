import fc from 'fast-check';
import { PriorityClass } from '@autoglm/proto';
import type { Claim } from '../placement/claim';
import type { Demand } from '../placement/demand';
import { DEFAULT_PLACEMENT_POLICY, Fleet } from '../placement/fleet';
import { addNode, gpuJob, sequence, testFleet } from '../placement/test-fleet';
import { FairShare, type TenantConfig } from '../policy/fair-share';
import { DEFAULT_POLICY, PRESETS, type Policy } from '../policy/policy';
import { Dispatcher } from './dispatcher';
import type { QueuedTaskInit } from './policy-queue';

const GiB = 2 ** 30;
const SEC = 1000;
const MIN = 60 * SEC;

interface SimTask extends QueuedTaskInit {
  demand: Demand;
  runMs: number;
}

const small: Demand = gpuJob(1, GiB);
const large: Demand = gpuJob(4, GiB);

/**
 * A fake-clock cluster: nodes of `gpusPerNode` GPUs, one task per GPU, driven
 * by the dispatcher. Tasks arrive at their readySinceMs and run for runMs.
 */
class Cluster {
  now = 0;
  readonly fleet: Fleet;
  readonly dispatcher: Dispatcher;
  readonly fairShare: FairShare;
  readonly tasks = new Map<string, SimTask>();
  readonly started = new Map<string, number>();
  readonly claims = new Map<string, Claim>();
  private readonly running: Array<{ id: string; endMs: number; release: () => void }> = [];
  /** GPU-milliseconds run per tenant since `measureFrom`. */
  readonly gpuMs = new Map<string, number>();
  measureFrom = 0;
  /** Called after every dispatch pass (to watch reservations). */
  onDispatch?: () => void;

  constructor(nodes: number, gpusPerNode: number, policy: Policy, tenants: TenantConfig[] = []) {
    this.fleet = new Fleet({ ...DEFAULT_PLACEMENT_POLICY, maxGpuUtilization: 1, maxGpuMemoryFraction: 1, staleTelemetryMs: Infinity }, () => this.now);
    for (let n = 0; n < nodes; n++) {
      this.fleet.upsert({
        nodeId: `n${n}`,
        address: '',
        models: ['*'],
        backends: ['sim'],
        cpuMillis: 0,
        memoryBytes: 0,
        gpus: Array.from({ length: gpusPerNode }, (_, i) => ({ index: i, memoryTotalBytes: 80 * GiB })),
      });
    }
    this.fairShare = new FairShare(tenants, { halfLifeMs: policy.fairShareHalfLifeMs });
    this.dispatcher = new Dispatcher({ fleet: this.fleet, fairShare: this.fairShare, policy, nowMs: 0, demandOf: (id) => this.tasks.get(id)?.demand });
    this.dispatcher.fleetChanged(0);
  }

  submit(task: SimTask): void {
    this.tasks.set(task.id, task);
    this.dispatcher.enqueue(task, this.now);
  }

  /** Moves time to `t`, finishing work and dispatching at every finish. */
  runUntil(t: number, onFinish?: (task: SimTask) => void): void {
    for (;;) {
      this.dispatch();
      this.running.sort((a, b) => a.endMs - b.endMs);
      const next = this.running[0];
      if (!next || next.endMs > t) break;
      this.running.shift();
      this.now = next.endMs;
      next.release();
      onFinish?.(this.tasks.get(next.id)!);
    }
    this.now = t;
    this.dispatch();
  }

  private dispatch(): void {
    for (const { task, claim } of this.dispatcher.dispatch(this.now)) {
      const sim = this.tasks.get(task.id)!;
      const start = this.now;
      this.started.set(task.id, start);
      this.claims.set(task.id, claim);
      this.running.push({
        id: task.id,
        endMs: start + sim.runMs,
        release: () => {
          this.fleet.release(claim);
          this.dispatcher.release(task.id, this.now);
          const from = Math.max(start, this.measureFrom);
          if (this.now > from) this.gpuMs.set(sim.tenant, (this.gpuMs.get(sim.tenant) ?? 0) + (this.now - from) * sim.demand.gpuCount);
        },
      });
    }  this.onDispatch?.();
  }
}

/** A fleet of one node of `gpus` GPUs that runs jobs for `models`, on a clock standing at 0. */
function jobFleet(nodeId: string, models: string[], gpus: number): Fleet {
  const fleet = new Fleet({ ...DEFAULT_PLACEMENT_POLICY, maxGpuUtilization: 1, maxGpuMemoryFraction: 1, staleTelemetryMs: Infinity }, () => 0);
  fleet.upsert({ nodeId, address: '', models, backends: ['sim'], cpuMillis: 0, memoryBytes: 0, gpus: Array.from({ length: gpus }, (_, i) => ({ index: i, memoryTotalBytes: 80 * GiB })) });
  return fleet;
}

let seq = 0;
const simTask = (over: Partial<SimTask> = {}): SimTask => ({
  id: `t${seq++}`,
  tenant: 'acme',
  priorityClass: PriorityClass.NORMAL,
  priority: 0,
  readySinceMs: 0,
  demand: small,
  runMs: 10 * SEC,
  ...over,
});

describe('Dispatcher', () => {
  it('places in priority order: urgent first, then normal, then background', () => {
    const c = new Cluster(1, 2, { ...DEFAULT_POLICY, weights: PRESETS.realtime });
    const ids = [PriorityClass.BACKGROUND, PriorityClass.NORMAL, PriorityClass.URGENT].map((priorityClass) => {
      const t = simTask({ priorityClass });
      c.submit(t);
      return t.id;
    });
    c.runUntil(0);
    expect([...c.started.keys()]).toEqual([ids[2], ids[1]]);
    expect(c.dispatcher.explain(ids[0]!, 0)).toMatchObject({ cause: 'capacity', position: 1 });
  });

  it('does not let a task too large to fit block smaller ones behind it', () => {
    const c = new Cluster(1, 4, DEFAULT_POLICY);
    c.submit(simTask({ id: 'busy', runMs: 5 * MIN }));
    c.runUntil(0);
    c.submit(simTask({ id: 'big', demand: large, priority: 500 }));
    c.submit(simTask({ id: 'small' }));
    c.runUntil(SEC);
    expect(c.started.has('small')).toBe(true);
    expect(c.started.has('big')).toBe(false);
    expect(c.dispatcher.explain('big', SEC)).toMatchObject({ cause: 'capacity', heldNode: undefined });
  });

  it('holds a node at once for urgent work that does not fit, so background work cannot keep taking its capacity', () => {
    const c = new Cluster(2, 4, DEFAULT_POLICY);
    // Node n0 runs busy-0..3 (ending at 10, 20, 30, 40 s), n1 busy-4..7 (ending at 5, 15, 25, 35 s).
    for (let i = 0; i < 8; i++) c.submit(simTask({ id: `busy-${i}`, runMs: i < 4 ? (i + 1) * 10 * SEC : (i - 4) * 10 * SEC + 5 * SEC, priorityClass: PriorityClass.BACKGROUND }));
    c.runUntil(0);
    c.submit(simTask({ id: 'urgent-big', demand: large, priorityClass: PriorityClass.URGENT }));
    for (let i = 0; i < 20; i++) c.submit(simTask({ id: `bg-${i}`, runMs: MIN, priorityClass: PriorityClass.BACKGROUND }));
    // At 5 s the first GPU frees (on n1): too little for it, and n1 is held.
    c.runUntil(15 * SEC);
    const why = c.dispatcher.explain('urgent-big', 15 * SEC)!;
    expect(why.heldNode).toBe('n1');
    expect(why.detail).toMatch(/GPU\(s\) \d(, \d)* of node n\d are held for it until it fits/);
    c.runUntil(10 * MIN);
    // n1 drains at 35 s and takes the urgent task; background work backfilled only n0 meanwhile (at 10, 20 and 30 s).
    expect(c.started.get('urgent-big')).toBe(35 * SEC);
    const before = [...c.started.entries()].filter(([id, at]) => id.startsWith('bg-') && at < 35 * SEC).map(([, at]) => at);
    expect(before).toEqual([10 * SEC, 20 * SEC, 30 * SEC]);
  });

  it('holds a node for a large task once it is overdue, so a stream of small tasks cannot starve it', () => {
    const policy: Policy = { ...DEFAULT_POLICY, maxAgeMs: 2 * MIN };
    const c = new Cluster(2, 4, policy);
    // A steady stream of small tasks keeps every GPU busy; each GPU frees every 30 s in turn.
    let at = 0;
    const feed = (until: number) => {
      for (; at < until; at += 4 * SEC) c.submit(simTask({ readySinceMs: at, runMs: 30 * SEC, priorityClass: PriorityClass.URGENT }));
    };
    feed(SEC);
    c.runUntil(0);
    c.submit(simTask({ id: 'big', demand: large, priorityClass: PriorityClass.BACKGROUND }));
    for (let t = SEC; t <= 10 * MIN; t += SEC) {
      feed(t);
      c.runUntil(t);
      if (c.started.has('big')) break;
    }
    const started = c.started.get('big');
    expect(started).toBeDefined();
    // Overdue at 2 min; the held node drains within one 30 s run.
    expect(started!).toBeLessThanOrEqual(2 * MIN + 31 * SEC);
  });

  it('skips a tenant at its quota and says so, while other tenants run', () => {
    const tenants: TenantConfig[] = [{ name: 'capped', quota: { gpus: { nominal: 1, borrowingLimit: 1 } } }];
    const c = new Cluster(1, 8, DEFAULT_POLICY, tenants);
    for (let i = 0; i < 4; i++) c.submit(simTask({ id: `capped-${i}`, tenant: 'capped', priorityClass: PriorityClass.URGENT }));
    c.submit(simTask({ id: 'other', tenant: 'other' }));
    c.runUntil(0);
    expect([...c.started.keys()].sort()).toEqual(['capped-0', 'capped-1', 'other']);
    const why = c.dispatcher.explain('capped-2', 0)!;
    expect(why.cause).toBe('quota');
    expect(why.detail).toMatch(/tenant capped would use 3 of gpus, over its quota of 1 nominal \+ 1 borrowing/);
  });

  it("does not let a capped tenant's backlog hide other tenants' work behind it", () => {
    const tenants: TenantConfig[] = [{ name: 'capped', quota: { gpus: { nominal: 1, borrowingLimit: 0 } } }];
    const c = new Cluster(1, 8, DEFAULT_POLICY, tenants);
    // Far more urgent tasks at quota than a pass's run of misses, all ahead of the other tenant's work.
    for (let i = 0; i < 500; i++) c.submit(simTask({ id: `capped-${i}`, tenant: 'capped', priorityClass: PriorityClass.URGENT }));
    for (let i = 0; i < 3; i++) c.submit(simTask({ id: `other-${i}`, tenant: 'other', priorityClass: PriorityClass.BACKGROUND }));
    c.runUntil(0);
    expect([...c.started.keys()].sort()).toEqual(['capped-0', 'other-0', 'other-1', 'other-2']);
  });

  it('banks credit for at most one overdue placement while an overdue task cannot be placed, so overdue work cannot later take everything', () => {
    const fleet = jobFleet('n0', ['*'], 16);
    const demands = new Map<string, Demand>();
    const policy: Policy = { ...DEFAULT_POLICY, maxAgeMs: MIN, overdueShare: 0.1 };
    const d = new Dispatcher({ fleet, fairShare: new FairShare([], { halfLifeMs: MIN }), policy, nowMs: 0, demandOf: (id) => demands.get(id) });
    d.fleetChanged(0);
    const add = (id: string, demand: Demand, readySinceMs: number, priorityClass = PriorityClass.NORMAL) => {
      demands.set(id, demand);
      d.enqueue({ id, tenant: 't', priorityClass, priority: 0, readySinceMs, predictedRunMs: 1000 }, readySinceMs);
    };
    // Overdue, and too large for the only node: it will never be placed.
    add('stuck', { ...small, gpuCount: 32 }, 0);
    let now = 2 * MIN;
    for (let i = 0; i < 1000; i++) {
      add(`n-${i}`, small, now);
      for (const p of d.dispatch(now)) {
        fleet.release(p.claim);
        d.release(p.task.id, now);
      }
      now += 1;
    }
    // Now sixteen small overdue tasks and sixteen urgent ones want the sixteen GPUs.
    for (let i = 0; i < 16; i++) add(`old-${i}`, small, 0);
    for (let i = 0; i < 16; i++) add(`urgent-${i}`, small, now, PriorityClass.URGENT);
    const first = d.dispatch(now).map((p) => p.task.id);
    expect(first.filter((id) => id.startsWith('urgent-')).length).toBeGreaterThanOrEqual(14);
  });

  it('gives overdue work capacity the tasks tried could not use, even without credit', () => {
    const fleet = jobFleet('x', ['model-x'], 1);
    const demands = new Map<string, Demand>();
    const d = new Dispatcher({ fleet, fairShare: new FairShare([], { halfLifeMs: MIN }), policy: { ...DEFAULT_POLICY, maxAgeMs: MIN }, nowMs: 0, demandOf: (id) => demands.get(id) });
    d.fleetChanged(0);
    // 70 tasks for a model no node serves, ahead in priority; one overdue task that fits.
    for (let i = 0; i < 70; i++) {
      demands.set(`y-${i}`, { ...small, model: 'model-y' });
      d.enqueue({ id: `y-${i}`, tenant: 't', priorityClass: PriorityClass.URGENT, priority: 0, readySinceMs: 2 * MIN }, 2 * MIN);
    }
    demands.set('old-x', { ...small, model: 'model-x' });
    d.enqueue({ id: 'old-x', tenant: 't', priorityClass: PriorityClass.BACKGROUND, priority: 0, readySinceMs: 0 }, 2 * MIN);
    expect(d.dispatch(2 * MIN).map((p) => p.task.id)).toEqual(['old-x']);
  });

  it("tries a capped tenant's small tasks behind its large quota-blocked ones", () => {
    const tenants: TenantConfig[] = [{ name: 'capped', quota: { gpus: { nominal: 4, borrowingLimit: 0 } } }];
    const c = new Cluster(1, 8, DEFAULT_POLICY, tenants);
    for (let i = 0; i < 4; i++) c.submit(simTask({ id: `big-${i}`, tenant: 'capped', priorityClass: PriorityClass.URGENT, demand: { ...small, gpuCount: 5 } }));
    for (let i = 0; i < 2; i++) c.submit(simTask({ id: `small-${i}`, tenant: 'capped' }));
    c.runUntil(0);
    expect([...c.started.keys()].sort()).toEqual(['small-0', 'small-1']);
  });

  it('never lets a task wait past the age bound by more than the overdue share allows, under a stream of higher-priority work', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.integer({ min: 0, max: 8 * MIN }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: -1000, max: 1000 }), { minLength: 1, maxLength: 20 }),
        (gpus, lowArrivals, urgentPriorities) => {
          const policy: Policy = { ...DEFAULT_POLICY, weights: PRESETS.realtime, maxAgeMs: 2 * MIN, overdueShare: 0.25 };
          const c = new Cluster(1, gpus, policy);
          const runMs = 10 * SEC;
          // Urgent work arrives exactly as fast as it is served, so the GPUs never go idle and
          // strict priority would starve the background tasks for ever.
          let next = 0;
          let k = 0;
          // A backlog of two runs, then one task per GPU per run.
          for (let i = 0; i < 2 * gpus; i++) c.submit(simTask({ runMs, priorityClass: PriorityClass.URGENT, priority: urgentPriorities[k++ % urgentPriorities.length]! }));
          const feed = (until: number) => {
            for (; next <= until; next += runMs) {
              for (let i = 0; i < gpus; i++) c.submit(simTask({ readySinceMs: next, runMs, priorityClass: PriorityClass.URGENT, priority: urgentPriorities[k++ % urgentPriorities.length]! }));
            }
          };
          const low = [...lowArrivals].sort((a, b) => a - b).map((at) => simTask({ readySinceMs: at, runMs, priorityClass: PriorityClass.BACKGROUND, priority: -1000 }));
          let li = 0;
          for (let t = 0; t <= 20 * MIN; t += SEC) {
            while (li < low.length && low[li]!.readySinceMs <= t) c.submit(low[li++]!);
            feed(t);
            c.runUntil(t);
          }
          // A slot frees every runMs / gpus; an overdue task needs at most 1 / share of them.
          const slack = Math.ceil(1 / policy.overdueShare) * (runMs / gpus) + runMs + SEC;
          for (const t of low) {
            const started = c.started.get(t.id);
            expect(started).toBeDefined();
            expect(started! - t.readySinceMs).toBeLessThanOrEqual(policy.maxAgeMs + slack * low.length);
          }
        },
      ),
      { numRuns: 25 },
    );
  });

  it('converges tenants to their shares within 5 % under sustained contention', () => {
    const tenants: TenantConfig[] = [
      { name: 'a', share: 1 },
      { name: 'b', share: 2 },
      { name: 'c', share: 1 },
    ];
    const c = new Cluster(4, 4, { ...DEFAULT_POLICY, weights: PRESETS.batch, fairShareHalfLifeMs: 5 * MIN }, tenants);
    // Every tenant always has more work queued than the fleet can run.
    const topUp = () => {
      for (const t of tenants) {
        const queued = [...c.tasks.values()].filter((x) => x.tenant === t.name && !c.started.has(x.id)).length;
        for (let i = queued; i < 40; i++) c.submit(simTask({ tenant: t.name, readySinceMs: c.now, runMs: 5 * SEC + ((seq * 7919) % 25) * SEC }));
      }
    };
    for (let t = 0; t <= 120 * MIN; t += 10 * SEC) {
      topUp();
      c.runUntil(t);
      if (t === 60 * MIN) {
        c.gpuMs.clear();
        c.measureFrom = t;
      }
    }
    const total = [...c.gpuMs.values()].reduce((a, b) => a + b, 0);
    for (const t of tenants) {
      const want = t.share! / 4;
      const got = (c.gpuMs.get(t.name) ?? 0) / total;
      expect(Math.abs(got - want) / want).toBeLessThan(0.05);
    }
  });
});

describe('Dispatcher: reservations, short work first, max-min fair share', () => {
  it('never lets backfill delay a reservation: with exact predictions, a reserved job starts by its reserved start', () => {
    let kept = 0;
    fc.assert(
      fc.property(
        fc.array(fc.record({ gapMs: fc.integer({ min: 0, max: 20 * SEC }), gpus: fc.constantFrom(1, 1, 2, 4), runMs: fc.integer({ min: SEC, max: 3 * MIN }), urgent: fc.boolean() }), {
          minLength: 1,
          maxLength: 60,
        }),
        (arrivals) => {
          const policy: Policy = { ...DEFAULT_POLICY, weights: PRESETS.realtime, reserveAfterMs: 30 * SEC };
          const c = new Cluster(2, 4, policy);
          const promised = new Map<string, number>();
          c.onDispatch = () => {
            for (const t of c.tasks.values()) {
              if (c.started.has(t.id) || promised.has(t.id)) continue;
              const start = c.fleet.reservedStart(t.id);
              if (start === undefined) continue;
              promised.set(t.id, start);
            }
          };
          let at = 0;
          for (const a of arrivals) {
            at += a.gapMs;
            c.runUntil(at);
            c.submit(simTask({ readySinceMs: at, demand: gpuJob(a.gpus, GiB), runMs: a.runMs, predictedRunMs: a.runMs, priorityClass: a.urgent ? PriorityClass.URGENT : PriorityClass.BACKGROUND }));
          }
          c.runUntil(at + 60 * MIN);
          for (const [id, start] of promised) expect(c.started.get(id)).toBeLessThanOrEqual(start);
          for (const t of c.tasks.values()) expect(c.started.has(t.id)).toBe(true);
          kept += promised.size;
        },
      ),
      { numRuns: 150 },
    );
    // The property was put to the test: reservations were made (and kept).
    expect(kept).toBeGreaterThan(20);
  });

  it('starts a starving 4-GPU job on its reservation while short jobs keep the other GPUs busy, and lets short jobs backfill it', () => {
    const policy: Policy = { ...DEFAULT_POLICY, weights: PRESETS.realtime, reserveAfterMs: MIN, maxAgeMs: 10 * MIN };
    const c = new Cluster(1, 4, policy);
    // 1-GPU jobs of 60 s, one every 15 s (staggered: the node is never empty by chance), and a 5-s job every 15 s.
    const big = simTask({ id: 'big', readySinceMs: 15 * SEC, demand: large, runMs: 5 * MIN, predictedRunMs: 5 * MIN, priorityClass: PriorityClass.BACKGROUND });
    let backfilled = 0;
    let guaranteed: boolean | undefined;
    for (let t = 0; t < 20 * MIN; t += 15 * SEC) {
      c.runUntil(t);
      if (t === 15 * SEC) c.submit(big);
      c.submit(simTask({ readySinceMs: t, runMs: MIN, predictedRunMs: MIN }));
      const s = simTask({ readySinceMs: t, runMs: 5 * SEC, predictedRunMs: 5 * SEC });
      c.submit(s);
      const reserved = c.fleet.reservedStart('big') !== undefined;
      c.runUntil(t);
      if (reserved && c.started.get(s.id) === t && !c.started.has('big') && c.fleet.heldGpus('big')?.includes(c.claims.get(s.id)!.gpuIndices[0]!)) backfilled += 1;
      // Placed on its reservation: never preempted (checked while it runs).
      if (guaranteed === undefined && c.started.has('big')) guaranteed = c.dispatcher.runningAttempt('big')?.guaranteed;
    }
    const waited = c.started.get('big')! - big.readySinceMs;
    expect(waited).toBeGreaterThanOrEqual(MIN);
    expect(waited).toBeLessThan(policy.maxAgeMs);
    expect(backfilled).toBeGreaterThan(0);
    expect(guaranteed).toBe(true);
  });

  it('explains a reservation: the GPUs, and when the job is predicted to start', () => {
    const policy: Policy = { ...DEFAULT_POLICY, reserveAfterMs: 0 };
    const c = new Cluster(1, 2, policy);
    c.submit(simTask({ id: 'running', runMs: MIN, predictedRunMs: MIN }));
    c.runUntil(0);
    c.submit(simTask({ id: 'pair', demand: gpuJob(2, GiB), runMs: MIN, predictedRunMs: MIN }));
    c.runUntil(SEC);
    const why = c.dispatcher.explain('pair', SEC)!;
    expect(why.cause).toBe('capacity');
    expect(why.reservedStartMs).toBe(MIN);
    expect(why.detail).toMatch(/GPU\(s\) 0, 1 of node n0 are reserved for it from 1970-01-01T00:01:00.000Z \(predicted\); work predicted to end before then may use them/);
    expect(why.factors.map((f) => f.name)).toContain('size');
    // Another job waiting sees the reservation it cannot backfill.
    c.submit(simTask({ id: 'long', runMs: 10 * MIN, predictedRunMs: 10 * MIN }));
    c.runUntil(2 * SEC);
    expect(c.dispatcher.explain('long', 2 * SEC)!.detail).toMatch(/GPU\(s\) 0, 1 of node n0 are reserved for task pair from 1970-01-01T00:01:00.000Z: work predicted to end by then may use them/);
  });

  it('runs short work first within a class, and lets long work overtake once it has waited (size / age) x the age bound', () => {
    // Size worth less than the age bound, so aging (not the bound) is what lets long work through.
    const policy: Policy = { ...DEFAULT_POLICY, weights: { ...PRESETS.balanced, fairshare: 0, size: 1000 }, maxAgeMs: 10 * MIN };
    const c = new Cluster(1, 1, policy);
    c.submit(simTask({ id: 'blocker', runMs: 30 * MIN, predictedRunMs: 30 * MIN }));
    c.runUntil(0);
    c.submit(simTask({ id: 'long', readySinceMs: 0, runMs: 30 * MIN, predictedRunMs: 30 * MIN }));
    c.submit(simTask({ id: 'short-early', readySinceMs: 0, runMs: 5 * SEC, predictedRunMs: 5 * SEC }));
    const order = () => c.dispatcher.queue.inOrder().map((t) => t.id);
    expect(order()).toEqual(['short-early', 'long']);
    // Short work submitted later still goes first, until the long task has waited out its size.
    const sizeGap = Math.log(30 * 60) / Math.log(3600) - Math.log(5) / Math.log(3600);
    const catchUpMs = ((policy.weights.size * sizeGap) / policy.weights.age) * policy.maxAgeMs;
    c.submit(simTask({ id: 'short-late', readySinceMs: catchUpMs - 10 * SEC, runMs: 5 * SEC, predictedRunMs: 5 * SEC }));
    c.dispatcher.queue.maintain(catchUpMs - 10 * SEC);
    expect(order().indexOf('short-late')).toBeLessThan(order().indexOf('long'));
    c.submit(simTask({ id: 'short-later', readySinceMs: catchUpMs + 10 * SEC, runMs: 5 * SEC, predictedRunMs: 5 * SEC }));
    expect(order().indexOf('long')).toBeLessThan(order().indexOf('short-later'));
    expect(catchUpMs).toBeLessThan(policy.maxAgeMs);
  });

  it('keeps open for inference the GPUs it used more at its peak in the headroom window than now: a batch job waits out the lull', () => {
    const { fleet, advance, now } = testFleet({ staleTelemetryMs: Infinity });
    addNode(fleet, 'a', { gpus: 4, maxSequences: 1 });
    const demands = new Map<string, Demand>();
    const policy: Policy = { ...DEFAULT_POLICY, inferenceHeadroomMs: 60_000 };
    const d = new Dispatcher({ fleet, fairShare: new FairShare([], { halfLifeMs: 60_000 }), policy, nowMs: now(), demandOf: (id) => demands.get(id) });
    d.fleetChanged(now());
    // A burst: three sequences, each in a replica of its own (one sequence per replica).
    for (let i = 0; i < 3; i++) {
      demands.set(`seq-${i}`, sequence());
      d.enqueue({ id: `seq-${i}`, tenant: 't', priorityClass: PriorityClass.NORMAL, priority: 0, readySinceMs: now(), predictedRunMs: 5_000 }, now());
    }
    const burst = d.dispatch(now());
    expect(burst).toHaveLength(3);
    fleet.takeCommands();
    fleet.observe('a', [], [...fleet.get('a')!.replicas.values()].map((r) => ({ id: r.id, model: r.model, gpuIndices: [...r.gpuIndices], ready: true, external: false, capacityTokens: 0, running: 1, waiting: 0, kvCacheUsage: 0 })));
    // The next pass (inference's use is sampled at most every 100 ms) sees the burst's three GPUs.
    advance(200);
    d.dispatch(now());
    // The burst ends; a 2-GPU batch job arrives in the lull: 4 GPUs are open, but inference used 3 a moment ago.
    advance(5_000);
    for (const p of burst) {
      fleet.release(p.claim);
      d.release(p.task.id, now());
    }
    demands.set('job', gpuJob(2));
    d.enqueue({ id: 'job', tenant: 't', priorityClass: PriorityClass.BACKGROUND, priority: 0, readySinceMs: now(), predictedRunMs: 600_000 }, now());
    expect(d.dispatch(now())).toHaveLength(0);
    expect(d.explain('job', now())!.detail).toMatch(/held back: inference used 3 GPU\(s\) more than now within the last 60 s/);
    // A 1-GPU job fits beside the headroom; once the peak leaves the window, the 2-GPU one starts.
    demands.set('small', gpuJob(1));
    d.enqueue({ id: 'small', tenant: 't', priorityClass: PriorityClass.BACKGROUND, priority: 0, readySinceMs: now(), predictedRunMs: 600_000 }, now());
    expect(d.dispatch(now()).map((p) => p.task.id)).toEqual(['small']);
    advance(61_000);
    expect(d.dispatch(now()).map((p) => p.task.id)).toEqual(['job']);
  });

  it('gives a tenant asking for less than its share all it asks while another floods (max-min fair), and the flood the rest', () => {
    const tenants: TenantConfig[] = [
      { name: 'flood', share: 1 },
      { name: 'light', share: 1 },
    ];
    const c = new Cluster(1, 8, { ...DEFAULT_POLICY, weights: PRESETS.balanced, fairShareHalfLifeMs: 5 * MIN }, tenants);
    const lightWaits: number[] = [];
    for (let t = 0; t <= 60 * MIN; t += 10 * SEC) {
      // The flood keeps 100 jobs queued; the light tenant submits one 30-s job every 10 s (3 GPUs' worth, under its 4).
      const queued = [...c.tasks.values()].filter((x) => x.tenant === 'flood' && !c.started.has(x.id)).length;
      for (let i = queued; i < 100; i++) c.submit(simTask({ tenant: 'flood', readySinceMs: t, runMs: 40 * SEC, predictedRunMs: 40 * SEC }));
      c.submit(simTask({ id: `light-${t}`, tenant: 'light', readySinceMs: t, runMs: 30 * SEC, predictedRunMs: 30 * SEC }));
      c.runUntil(t);
      if (t === 20 * MIN) {
        c.gpuMs.clear();
        c.measureFrom = t;
      }
    }
    c.runUntil(61 * MIN);
    for (const [id, start] of c.started) if (id.startsWith('light-') && Number(id.slice(6)) >= 20 * MIN) lightWaits.push(start - Number(id.slice(6)));
    const total = [...c.gpuMs.values()].reduce((a, b) => a + b, 0);
    // Max-min: light's demand is 3 of 8 GPUs (37.5 %), within its share; the flood gets the other 62.5 %.
    expect(Math.abs((c.gpuMs.get('light') ?? 0) / total - 0.375)).toBeLessThan(0.05);
    // Light waits only for a GPU to free (jobs of 40 s on 8 GPUs: one frees every 5 s or so).
    expect(Math.max(...lightWaits)).toBeLessThanOrEqual(40 * SEC);
  });
});

describe('FairShare', () => {
  it('decays usage with its half-life', () => {
    const fs = new FairShare([{ name: 'a' }, { name: 'b' }], { halfLifeMs: MIN });
    fs.setCapacity({ gpus: 10, gpuMemoryBytes: 800 * GiB, cpus: 0 }, 0);
    fs.allocate('a', { gpus: 5, gpuMemoryBytes: 0, cpus: 0 }, 0);
    fs.queued('a', 1);
    fs.queued('b', 1);
    const early = fs.usageOverShare('a', MIN);
    fs.release('a', { gpus: 5, gpuMemoryBytes: 0, cpus: 0 }, MIN);
    fs.allocate('b', { gpus: 5, gpuMemoryBytes: 0, cpus: 0 }, MIN);
    // a used the fleet alone for a minute: twice its share (of two).
    expect(early).toBeCloseTo(2, 5);
    // After b runs as much for a minute, a's older usage has halved: a < b.
    expect(fs.usageOverShare('a', 2 * MIN)).toBeLessThan(fs.usageOverShare('b', 2 * MIN));
  });

  it('measures the dominant resource (memory when that is the larger share)', () => {
    const fs = new FairShare([], { halfLifeMs: MIN });
    fs.setCapacity({ gpus: 10, gpuMemoryBytes: 100 * GiB, cpus: 0 }, 0);
    fs.allocate('a', { gpus: 1, gpuMemoryBytes: 50 * GiB, cpus: 0 }, 0);
    expect(fs.dominantShare('a')).toBe(0.5);
  });

  it('says a tenant crowds others out only while it holds its share or more and another with work queued holds less than its own', () => {
    const fs = new FairShare([{ name: 'flood', share: 1 }, { name: 'light', share: 1 }], { halfLifeMs: 60_000 });
    fs.setCapacity({ gpus: 8, gpuMemoryBytes: 0, cpus: 0 }, 0);
    fs.queued('flood', 10);
    fs.allocate('flood', { gpus: 8, gpuMemoryBytes: 0, cpus: 0 }, 0);
    // Alone, a tenant holding the whole fleet crowds nobody out.
    expect(fs.crowdsOthers('flood')).toBe(false);
    fs.queued('light', 1);
    expect(fs.crowdsOthers('flood')).toBe(true);
    expect(fs.crowdsOthers('light')).toBe(false);
    // Once the light tenant holds its share, nobody is crowded out.
    fs.release('flood', { gpus: 4, gpuMemoryBytes: 0, cpus: 0 }, 1);
    fs.allocate('light', { gpus: 4, gpuMemoryBytes: 0, cpus: 0 }, 1);
    expect(fs.crowdsOthers('flood')).toBe(false);
  });

  it('calls a tenant over its nominal quota a borrower', () => {
    const fs = new FairShare([{ name: 'a', quota: { gpus: { nominal: 2 } } }], { halfLifeMs: MIN });
    fs.allocate('a', { gpus: 2, gpuMemoryBytes: 0, cpus: 0 }, 0);
    expect(fs.isBorrowing('a')).toBe(false);
    expect(fs.withinNominal('a', { gpus: 1, gpuMemoryBytes: 0, cpus: 0 })).toBe(false);
    fs.allocate('a', { gpus: 1, gpuMemoryBytes: 0, cpus: 0 }, 0);
    expect(fs.isBorrowing('a')).toBe(true);
    expect(fs.quotaBlock('a', { gpus: 100, gpuMemoryBytes: 0, cpus: 0 })).toBeUndefined();
  });

  it('refuses bad tenant configuration, naming the field', () => {
    expect(() => new FairShare([{ name: 'a', share: 0 }], { halfLifeMs: MIN })).toThrow(/tenants\[0\]\.share/);
    expect(() => new FairShare([{ name: 'a', quota: { tpus: { nominal: 1 } } as never }], { halfLifeMs: MIN })).toThrow(/tenants\[0\]\.quota\.tpus/);
    expect(() => new FairShare([{ name: 'a', quota: { gpus: { nominal: -1 } } }], { halfLifeMs: MIN })).toThrow(/nominal/);
  });
});
