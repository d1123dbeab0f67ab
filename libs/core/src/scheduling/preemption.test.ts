import fc from 'fast-check';
import { PriorityClass } from '@autoglm/proto';
import type { Claim } from '../placement/claim';
import type { Demand } from '../placement/demand';
import { DEFAULT_PLACEMENT_POLICY, Fleet } from '../placement/fleet';
import { addNode, cpuJob, gpuJob, sequence, testFleet } from '../placement/test-fleet';
import { FairShare } from '../policy/fair-share';
import { DEFAULT_POLICY } from '../policy/policy';
import { Dispatcher } from './dispatcher';
import { chooseVictims, lostWork, preemptionRank, type RunningAttempt } from './preemption';

const GiB = 2 ** 30;
const CLASSES = [PriorityClass.BACKGROUND, PriorityClass.NORMAL, PriorityClass.URGENT];

/** Nodes of whole GPUs for jobs, on a clock standing at 0. */
function fleetOf(nodes: number, gpus: number, maxGpuUtilization = 1): Fleet {
  const fleet = new Fleet({ ...DEFAULT_PLACEMENT_POLICY, maxGpuUtilization, maxGpuMemoryFraction: 1, staleTelemetryMs: Infinity }, () => 0);
  for (let n = 0; n < nodes; n++) {
    fleet.upsert({ nodeId: `n${n}`, address: '', models: ['*'], backends: ['sim'], cpuMillis: 0, memoryBytes: 0, gpus: Array.from({ length: gpus }, (_, i) => ({ index: i, memoryTotalBytes: 80 * GiB })) });
  }
  return fleet;
}

const demandOf = (gpuCount: number, gib: number): Demand => gpuJob(gpuCount, gib * GiB);

describe('preemptionRank', () => {
  it('orders by class, then priority, whatever the priority', () => {
    expect(preemptionRank(PriorityClass.URGENT, -1000)).toBeGreaterThan(preemptionRank(PriorityClass.NORMAL, 1000));
    expect(preemptionRank(PriorityClass.NORMAL, -1000)).toBeGreaterThan(preemptionRank(PriorityClass.BACKGROUND, 1000));
    expect(preemptionRank(PriorityClass.NORMAL, 5)).toBeGreaterThan(preemptionRank(PriorityClass.NORMAL, 4));
  });
});

describe('chooseVictims', () => {
  const arbRunning = fc.array(
    fc.record({
      gpus: fc.integer({ min: 1, max: 2 }),
      gib: fc.integer({ min: 1, max: 60 }),
      rank: fc.integer({ min: 0, max: 5 }),
      preemptible: fc.boolean(),
      borrowing: fc.boolean(),
    }),
    { maxLength: 16 },
  );

  it('takes only preemptible, strictly lower-ranked work, makes the demand fit, and takes no victim it does not need', () => {
    fc.assert(
      fc.property(arbRunning, fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 80 }), fc.integer({ min: 0, max: 6 }), (specs, gpus, gib, rank) => {
        const fleet = fleetOf(2, 4);
        const running: RunningAttempt[] = [];
        specs.forEach((s, i) => {
          const claim = fleet.place(demandOf(s.gpus, s.gib));
          if (typeof claim === 'string') return;
          running.push({ id: `r${i}`, tenant: s.borrowing ? 'borrower' : 'owner', claim, preemptible: s.preemptible, rank: s.rank, startedAtMs: i });
        });
        const demand = demandOf(gpus, gib);
        // Preemption is looked for only for work that fits nowhere as things stand.
        const fitsNow = ['n0', 'n1'].some((n) => fleet.fitsAfter(n, demand, []));
        const choice = chooseVictims(fleet, demand, rank, running, (t) => t === 'borrower', 100);
        if (!choice) return;
        for (const v of choice.victims) {
          expect(v.preemptible).toBe(true);
          expect(v.rank).toBeLessThan(rank);
          expect(v.claim.nodeId).toBe(choice.nodeId);
        }
        const freed = choice.victims.map((v) => v.claim);
        expect(fleet.fitsAfter(choice.nodeId, demand, freed)).toBe(true);
        // Minimal: without any one of them it would not fit.
        for (let i = 0; i < freed.length; i++) expect(fleet.fitsAfter(choice.nodeId, demand, freed.filter((_, j) => j !== i))).toBe(false);
        // And placement, which reads the same claims, finds exactly that room once they are released.
        if (fitsNow) return;
        for (const claim of freed) fleet.release(claim);
        const placed = fleet.place(demand);
        expect(typeof placed === 'string' ? placed : placed.nodeId).toBe(choice.nodeId);
      }),
      { numRuns: 300 },
    );
  });

  it('prefers the lowest rank, then borrowers, then the least work lost', () => {
    const fleet = fleetOf(1, 3);
    const attempt = (id: string, rank: number, tenant: string, startedAtMs: number): RunningAttempt => {
      const claim = fleet.place(demandOf(1, 20));
      if (typeof claim === 'string') throw new Error(claim);
      return { id, tenant, claim, preemptible: true, rank, startedAtMs };
    };
    const running = [attempt('old-low', 1, 'owner', 1), attempt('new-low', 1, 'owner', 2), attempt('borrower-low', 1, 'borrower', 0)];
    const pick = (gpus: number) => chooseVictims(fleet, demandOf(gpus, 20), 5, running, (t) => t === 'borrower', 10)!.victims.map((v) => v.id);
    expect(pick(1)).toEqual(['borrower-low']);
    expect(pick(2).sort()).toEqual(['borrower-low', 'new-low']);
  });

  it('stops the job that has run least GPU-time: a young 4-GPU job over an old 1-GPU one is no bargain', () => {
    const fleet = fleetOf(2, 4);
    const attempt = (id: string, gpus: number, startedAtMs: number): RunningAttempt => {
      const claim = fleet.place(demandOf(gpus, 20));
      if (typeof claim === 'string') throw new Error(claim);
      return { id, tenant: 't', claim, preemptible: true, rank: 1, startedAtMs };
    };
    // Node 0: one 4-GPU job 10 s in (40 GPU-s). Node 1: four 1-GPU jobs 20 s in (20 GPU-s each).
    const big = attempt('big', 4, 90_000);
    const small = [0, 1, 2, 3].map((i) => attempt(`small-${i}`, 1, 80_000 + i));
    expect(new Set([big.claim.nodeId, small[0]!.claim.nodeId]).size).toBe(2);
    const choose = (gpus: number) => chooseVictims(fleet, demandOf(gpus, 20), 5, [big, ...small], () => false, 100_000)!.victims.map((v) => v.id);
    // One GPU: the youngest small job (20 GPU-s) rather than the big one (40 GPU-s).
    expect(choose(1)).toEqual(['small-3']);
    // Four GPUs: the big job (40 GPU-s) rather than all four small ones (80 GPU-s).
    expect(choose(4)).toEqual(['big']);
  });
});

describe('preemption in the dispatcher', () => {
  it('never loops: under random arrivals nobody is preempted by a task it preempted, directly or not', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ cls: fc.integer({ min: 0, max: 2 }), priority: fc.integer({ min: -3, max: 3 }), gpus: fc.integer({ min: 1, max: 4 }), preemptible: fc.boolean() }), { minLength: 1, maxLength: 60 }),
        (arrivals) => {
          let now = 0;
          const fleet = fleetOf(2, 4);
          const demands = new Map<string, Demand>();
          const d = new Dispatcher({ fleet, fairShare: new FairShare([], { halfLifeMs: 60_000 }), policy: DEFAULT_POLICY, nowMs: 0, demandOf: (id) => demands.get(id) });
          d.fleetChanged(0);
          const claims = new Map<string, ReturnType<Fleet['place']>>();
          const specs = new Map<string, (typeof arrivals)[number]>();
          const edges = new Map<string, Set<string>>();
          const enqueue = (id: string) => {
            const s = specs.get(id)!;
            d.enqueue({ id, tenant: 't', priorityClass: CLASSES[s.cls]!, priority: s.priority, readySinceMs: now, preemptible: s.preemptible }, now);
          };
          let preemptions = 0;
          arrivals.forEach((a, i) => {
            now += 1000;
            const id = `t${i}`;
            specs.set(id, a);
            demands.set(id, demandOf(a.gpus, 10));
            enqueue(id);
            for (let round = 0; round < 4; round++) {
              for (const p of d.dispatch(now)) claims.set(p.task.id, p.claim);
              const pre = d.preempt(now);
              if (!pre) break;
              for (const v of pre.victims) {
                preemptions += 1;
                // A loop would need a path back from the victim to the preemptor.
                expect(reaches(edges, v.id, pre.preemptor.id)).toBe(false);
                if (!edges.has(pre.preemptor.id)) edges.set(pre.preemptor.id, new Set());
                edges.get(pre.preemptor.id)!.add(v.id);
                expect(v.rank).toBeLessThan(preemptionRank(pre.preemptor.priorityClass, pre.preemptor.priority));
                fleet.release(v.claim);
                d.release(v.id, now);
                enqueue(v.id);
              }
            }
          });
          // Preemption only ever moves work to strictly higher ranks: bounded by arrivals x ranks.
          expect(preemptions).toBeLessThanOrEqual(arrivals.length * CLASSES.length * 7);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('settles with quotas too: after any arrival, preemption (by rank, or reclaiming a nominal quota from borrowers) stops after a few rounds', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ tenant: fc.constantFrom('a', 'b', 'c'), cls: fc.integer({ min: 0, max: 2 }), gpus: fc.integer({ min: 1, max: 3 }), preemptible: fc.boolean() }),
          { minLength: 1, maxLength: 50 },
        ),
        (arrivals) => {
          let now = 0;
          const fleet = fleetOf(2, 4);
          const demands = new Map<string, Demand>();
          const fairShare = new FairShare(
            [
              { name: 'a', quota: { gpus: { nominal: 3, borrowingLimit: 8 } } },
              { name: 'b', quota: { gpus: { nominal: 3, borrowingLimit: 8 } } },
            ],
            { halfLifeMs: 60_000 },
          );
          const policy = { ...DEFAULT_POLICY, preemptAfterMs: 0, urgentPreemptAfterMs: 0 };
          const d = new Dispatcher({ fleet, fairShare, policy, nowMs: 0, demandOf: (id) => demands.get(id) });
          d.fleetChanged(0);
          const specs = new Map<string, (typeof arrivals)[number]>();
          const enqueue = (id: string) => {
            const s = specs.get(id)!;
            d.enqueue({ id, tenant: s.tenant, priorityClass: CLASSES[s.cls]!, priority: 0, readySinceMs: now, preemptible: s.preemptible }, now);
          };
          arrivals.forEach((a, i) => {
            now += 1000;
            const id = `t${i}`;
            specs.set(id, a);
            demands.set(id, demandOf(a.gpus, 10));
            enqueue(id);
            // Nothing else changes until the next arrival: preemption must come to rest
            // (each task arrived once, so a handful of rounds at most).
            let settled = false;
            for (let round = 0; round < 4 * arrivals.length + 4; round++) {
              d.dispatch(now);
              const pre = d.preempt(now);
              if (!pre) {
                settled = true;
                break;
              }
              const reclaiming = fairShare.hasQuota(pre.preemptor.tenant) && fairShare.withinNominal(pre.preemptor.tenant, { gpus: specs.get(pre.preemptor.id)!.gpus, gpuMemoryBytes: 0, cpus: 0 });
              // Judged before any victim is released.
              // (A tenant without a quota has a nominal quota of 0 once others have quotas.)
              const borrowing = new Map(pre.victims.map((v) => [v.tenant, fairShare.borrowed(v.tenant).gpus > 0 || fairShare.isBorrowing(v.tenant)]));
              const reclaimedGpus = new Map<string, number>();
              for (const v of pre.victims) {
                if (!(v.rank < preemptionRank(pre.preemptor.priorityClass, pre.preemptor.priority))) reclaimedGpus.set(v.tenant, (reclaimedGpus.get(v.tenant) ?? 0) + v.claim.resources.gpus);
              }
              // Reclaim never takes a tenant further below its nominal quota than its last victim's size.
              for (const [tenant, gpus] of reclaimedGpus) expect(gpus - fairShare.borrowed(tenant).gpus).toBeLessThan(3);
              for (const v of pre.victims) {
                // Every victim is of lower rank, or reclaimed from a borrower by a tenant within its nominal quota.
                expect(
                  (v.rank < preemptionRank(pre.preemptor.priorityClass, pre.preemptor.priority) && (reclaiming || v.tenant === pre.preemptor.tenant)) ||
                    (reclaiming && borrowing.get(v.tenant) === true),
                ).toBe(true);
                fleet.release(v.claim);
                d.release(v.id, now);
                enqueue(v.id);
              }
            }
            expect(settled).toBe(true);
          });
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('lets a tenant within its nominal quota reclaim from a borrower of higher rank, and keeps a borrower off a tenant within its quota', () => {
    const fleet = fleetOf(1, 2);
    const fairShare = new FairShare(
      [
        { name: 'owner', quota: { gpus: { nominal: 2, borrowingLimit: 0 } } },
        { name: 'borrower', quota: { gpus: { nominal: 0, borrowingLimit: 2 } } },
      ],
      { halfLifeMs: 60_000 },
    );
    const demands = new Map<string, Demand>();
    const policy = { ...DEFAULT_POLICY, preemptAfterMs: 0, urgentPreemptAfterMs: 0 };
    const d = new Dispatcher({ fleet, fairShare, policy, nowMs: 0, demandOf: (id) => demands.get(id) });
    d.fleetChanged(0);
    const add = (id: string, tenant: string, priorityClass: PriorityClass, at: number) => {
      demands.set(id, demandOf(1, 10));
      d.enqueue({ id, tenant, priorityClass, priority: 0, readySinceMs: at, preemptible: true }, at);
    };
    add('b-1', 'borrower', PriorityClass.URGENT, 0);
    add('b-2', 'borrower', PriorityClass.URGENT, 0);
    expect(d.dispatch(0)).toHaveLength(2);
    // The owner's background task ranks below the borrower's urgent work, but the GPUs are its by quota.
    add('o-1', 'owner', PriorityClass.BACKGROUND, 1);
    expect(d.dispatch(1)).toHaveLength(0);
    const pre = d.preempt(1)!;
    expect(pre.preemptor.id).toBe('o-1');
    expect(pre.victims).toHaveLength(1);
    expect(pre.victims[0]!.tenant).toBe('borrower');
    fleet.release(pre.victims[0]!.claim);
    d.release(pre.victims[0]!.id, 2);
    expect(d.dispatch(2).map((p) => p.task.id)).toEqual(['o-1']);
    // The borrower's urgent task, requeued, cannot take the GPU back from the owner.
    add('b-3', 'borrower', PriorityClass.URGENT, 3);
    for (const t of [3, 10_000]) {
      d.dispatch(t);
      const again = d.preempt(t);
      expect(again?.victims.some((v) => v.tenant === 'owner') ?? false).toBe(false);
    }
  });

  it('counts every victim against what a borrower borrows: reclaim stops at its nominal quota, even when rank took the first victim', () => {
    // The counterexample a property run found: b borrows 1 GPU over its nominal 3. Reclaiming 3
    // GPUs on one node for a would take b's background job (by rank) and then its urgent one (by
    // reclaim), leaving b at 0; b's urgent job, back within b's quota, would preempt a's task,
    // and round again for ever.
    const fleet = fleetOf(2, 4);
    const fairShare = new FairShare(
      [
        { name: 'a', quota: { gpus: { nominal: 3, borrowingLimit: 8 } } },
        { name: 'b', quota: { gpus: { nominal: 3, borrowingLimit: 8 } } },
      ],
      { halfLifeMs: 60_000 },
    );
    const demands = new Map<string, Demand>();
    const policy = { ...DEFAULT_POLICY, preemptAfterMs: 0, urgentPreemptAfterMs: 0 };
    const d = new Dispatcher({ fleet, fairShare, policy, nowMs: 0, demandOf: (id) => demands.get(id) });
    d.fleetChanged(0);
    const add = (id: string, tenant: string, priorityClass: PriorityClass, gpus: number, at: number, preemptible = true) => {
      demands.set(id, demandOf(gpus, 10));
      d.enqueue({ id, tenant, priorityClass, priority: 0, readySinceMs: at, preemptible }, at);
      return d.dispatch(at).map((p) => p.task.id);
    };
    expect(add('c-keep', 'c', PriorityClass.BACKGROUND, 3, 0, false)).toEqual(['c-keep']);
    expect(add('b-urgent', 'b', PriorityClass.URGENT, 2, 1)).toEqual(['b-urgent']);
    expect(add('b-bg', 'b', PriorityClass.BACKGROUND, 2, 2)).toEqual(['b-bg']);
    expect(fairShare.borrowed('b').gpus).toBe(1);
    expect(add('a-normal', 'a', PriorityClass.NORMAL, 3, 3)).toEqual([]);
    // Only b-urgent and b-bg together make room, and b would end 3 GPUs below its quota: a waits.
    expect(d.preempt(3)).toBeUndefined();
  });

  it('reclaims cores from a tenant borrowing them, for a job without GPUs within its nominal quota', () => {
    const { fleet, now } = testFleet();
    addNode(fleet, 'n0', { gpus: 0, cores: 8 });
    const fairShare = new FairShare(
      [
        { name: 'owner', quota: { cpus: { nominal: 4 } } },
        { name: 'borrower', quota: { cpus: { nominal: 2 } } },
      ],
      { halfLifeMs: 60_000 },
    );
    const demands = new Map<string, Demand>();
    const policy = { ...DEFAULT_POLICY, preemptAfterMs: 0, urgentPreemptAfterMs: 0 };
    const at = now();
    const d = new Dispatcher({ fleet, fairShare, policy, nowMs: at, demandOf: (id) => demands.get(id) });
    d.fleetChanged(at);
    const add = (id: string, tenant: string, priorityClass: PriorityClass) => {
      demands.set(id, cpuJob(2));
      d.enqueue({ id, tenant, priorityClass, priority: 0, readySinceMs: at, preemptible: true }, at);
    };
    for (const id of ['b-1', 'b-2', 'b-3', 'b-4']) add(id, 'borrower', PriorityClass.URGENT);
    expect(d.dispatch(at)).toHaveLength(4);
    expect(fairShare.borrowed('borrower').cpus).toBe(6);
    add('o-1', 'owner', PriorityClass.BACKGROUND);
    expect(d.dispatch(at)).toHaveLength(0);
    const pre = d.preempt(at)!;
    expect(pre.preemptor.id).toBe('o-1');
    expect(pre.victims).toHaveLength(1);
    expect(pre.victims[0]!.tenant).toBe('borrower');
    expect(pre.victims[0]!.claim.resources.cpus).toBe(2);
  });

  it('makes room afresh when the room a preemption made is lost: something outside the claims took a GPU there', () => {
    let now = 1;
    const fleet = new Fleet({ ...DEFAULT_PLACEMENT_POLICY, maxGpuMemoryFraction: 1, staleTelemetryMs: Infinity }, () => now);
    for (const nodeId of ['n0', 'n1']) {
      fleet.upsert({ nodeId, address: '', models: ['*'], backends: ['sim'], cpuMillis: 0, memoryBytes: 0, gpus: [0, 1].map((index) => ({ index, memoryTotalBytes: 80 * GiB })) });
    }
    const demands = new Map<string, Demand>([['wide', demandOf(2, 10)], ['narrow', demandOf(1, 10)], ['urgent', demandOf(2, 10)]]);
    const policy = { ...DEFAULT_POLICY, urgentPreemptAfterMs: 0, preemptMaxRunMs: Infinity };
    const d = new Dispatcher({ fleet, fairShare: new FairShare([], { halfLifeMs: 60_000 }), policy, nowMs: now, demandOf: (id) => demands.get(id) });
    d.fleetChanged(now);
    d.enqueue({ id: 'wide', tenant: 't', priorityClass: PriorityClass.BACKGROUND, priority: 0, readySinceMs: now, preemptible: true }, now);
    const wide = d.dispatch(now)[0]!.claim;
    now += 60_000;
    d.enqueue({ id: 'narrow', tenant: 't', priorityClass: PriorityClass.BACKGROUND, priority: 0, readySinceMs: now, preemptible: true }, now);
    const narrow = d.dispatch(now)[0]!.claim;
    expect(narrow.nodeId).not.toBe(wide.nodeId);
    now += 1000;
    d.enqueue({ id: 'urgent', tenant: 't', priorityClass: PriorityClass.URGENT, priority: 0, readySinceMs: now, preemptible: false }, now);
    expect(d.dispatch(now)).toHaveLength(0);
    // The narrow job has run least: its node is where preempting loses the least work.
    const first = d.preempt(now)!;
    expect(first.victims.map((v) => v.id)).toEqual(['narrow']);
    // While it stops, another process takes the node's other GPU.
    now += 100;
    fleet.observe(narrow.nodeId, [{ index: 1 - narrow.gpuIndices[0]!, utilization: 1, memoryUsedBytes: 70 * GiB }]);
    fleet.release(narrow);
    d.release('narrow', now);
    expect(d.dispatch(now)).toHaveLength(0);
    // The hold there would wait for ever: the wide job's node is where room can be made now.
    const second = d.preempt(now)!;
    expect(second.nodeId).toBe(wide.nodeId);
    expect(second.victims.map((v) => v.id)).toEqual(['wide']);
    fleet.release(wide);
    d.release('wide', now);
    expect(d.dispatch(now).map((p) => [p.task.id, p.claim.nodeId])).toEqual([['urgent', wide.nodeId]]);
  });

  it('counts a job without GPUs by its cores in the work preempting it loses: 16 cores weigh as one GPU', () => {
    const fleet = testFleet().fleet;
    addNode(fleet, 'n', { gpus: 1, cores: 32 });
    const gpu = fleet.place(gpuJob(1)) as Claim;
    const cpu = fleet.place(cpuJob(16)) as Claim;
    const running = (claim: Claim): RunningAttempt => ({ id: 'x', tenant: 't', claim, preemptible: true, rank: 0, startedAtMs: 0 });
    expect(lostWork(running(cpu), 60_000)).toBe(lostWork(running(gpu), 60_000));
  });

  it('reclaims only what the preemptor needs: a tenant borrowing cores keeps its GPU job against a job that needs no cores', () => {
    const fleet = fleetOf(1, 8);
    const fairShare = new FairShare(
      [
        { name: 'owner', quota: { gpus: { nominal: 8 } } },
        { name: 'other', quota: { gpus: { nominal: 8 }, cpus: { nominal: 0 } } },
      ],
      { halfLifeMs: 60_000 },
    );
    const demands = new Map<string, Demand>([
      ['other-job', { ...demandOf(8, 10), cpuMillis: 1000 }],
      ['owner-job', demandOf(8, 10)],
    ]);
    fleet.upsert({ nodeId: 'n0', address: '', models: ['*'], backends: ['sim'], cpuMillis: 8000, memoryBytes: 0, gpus: Array.from({ length: 8 }, (_, index) => ({ index, memoryTotalBytes: 80 * GiB })) });
    const policy = { ...DEFAULT_POLICY, preemptAfterMs: 0, urgentPreemptAfterMs: 0 };
    const d = new Dispatcher({ fleet, fairShare, policy, nowMs: 0, demandOf: (id) => demands.get(id) });
    d.fleetChanged(0);
    d.enqueue({ id: 'other-job', tenant: 'other', priorityClass: PriorityClass.URGENT, priority: 0, readySinceMs: 0, preemptible: true }, 0);
    expect(d.dispatch(0)).toHaveLength(1);
    expect(fairShare.borrowed('other')).toMatchObject({ gpus: 0, cpus: 1 });
    d.enqueue({ id: 'owner-job', tenant: 'owner', priorityClass: PriorityClass.BACKGROUND, priority: 0, readySinceMs: 1, preemptible: false }, 1);
    expect(d.dispatch(1)).toHaveLength(0);
    expect(d.preempt(1)).toBeUndefined();
  });

  it('lets urgent work preempt preemptible background work, and leaves work that is not preemptible alone', () => {
    const fleet = fleetOf(1, 2);
    const demands = new Map<string, Demand>([['bg-pre', demandOf(1, 10)], ['bg-keep', demandOf(1, 10)], ['urgent', demandOf(1, 10)], ['urgent-2', demandOf(1, 10)]]);
    const d = new Dispatcher({ fleet, fairShare: new FairShare([], { halfLifeMs: 60_000 }), policy: DEFAULT_POLICY, nowMs: 0, demandOf: (id) => demands.get(id) });
    d.fleetChanged(0);
    d.enqueue({ id: 'bg-keep', tenant: 't', priorityClass: PriorityClass.BACKGROUND, priority: 0, readySinceMs: 0 }, 0);
    d.enqueue({ id: 'bg-pre', tenant: 't', priorityClass: PriorityClass.BACKGROUND, priority: 0, readySinceMs: 0, preemptible: true }, 0);
    expect(d.dispatch(0)).toHaveLength(2);
    d.enqueue({ id: 'urgent', tenant: 't', priorityClass: PriorityClass.URGENT, priority: 0, readySinceMs: 1 }, 1);
    d.enqueue({ id: 'urgent-2', tenant: 't', priorityClass: PriorityClass.URGENT, priority: 0, readySinceMs: 1 }, 1);
    expect(d.dispatch(1)).toHaveLength(0);
    // A moment's wait first (room often frees by itself), then it preempts.
    expect(d.preempt(1)).toBeUndefined();
    expect(d.preemptionDueAtMs).toBe(1 + DEFAULT_POLICY.urgentPreemptAfterMs);
    expect(d.dispatch(1001)).toHaveLength(0);
    const pre = d.preempt(1001)!;
    expect(pre.preemptor.id).toBe('urgent');
    expect(pre.victims.map((v) => v.id)).toEqual(['bg-pre']);
    fleet.release(pre.victims[0]!.claim);
    d.release('bg-pre', 1002);
    expect(d.dispatch(1002).map((p) => p.task.id)).toEqual(['urgent']);
    // Nothing preemptible is left for the second urgent task.
    expect(d.dispatch(3000)).toHaveLength(0);
    expect(d.preempt(3000)).toBeUndefined();
  });

  it('lets work below urgent preempt only after waiting preemptAfterMs, and never preempts work placed past its age bound', () => {
    const fleet = fleetOf(1, 1);
    const demands = new Map<string, Demand>(['old-bg', 'normal', 'urgent'].map((id) => [id, demandOf(1, 10)]));
    const policy = { ...DEFAULT_POLICY, maxAgeMs: 60_000, preemptAfterMs: 30_000 };
    const d = new Dispatcher({ fleet, fairShare: new FairShare([], { halfLifeMs: 60_000 }), policy, nowMs: 0, demandOf: (id) => demands.get(id) });
    d.fleetChanged(0);
    d.enqueue({ id: 'old-bg', tenant: 't', priorityClass: PriorityClass.BACKGROUND, priority: 0, readySinceMs: 0, preemptible: true }, 0);
    d.enqueue({ id: 'normal', tenant: 't', priorityClass: PriorityClass.NORMAL, priority: 0, readySinceMs: 0, preemptible: true }, 0);
    const first = d.dispatch(0);
    expect(first.map((p) => p.task.id)).toEqual(['normal']);
    // The normal task runs; the background one waits past the age bound, then runs (guaranteed).
    fleet.release(first[0]!.claim);
    d.release('normal', 70_000);
    const second = d.dispatch(70_000);
    expect(second.map((p) => p.task.id)).toEqual(['old-bg']);
    // Newly queued normal work does not preempt at once, nor after waiting: the victim is guaranteed.
    d.enqueue({ id: 'normal-2', tenant: 't', priorityClass: PriorityClass.NORMAL, priority: 0, readySinceMs: 70_000 }, 70_000);
    demands.set('normal-2', demandOf(1, 10));
    for (const t of [70_001, 100_001, 200_000]) {
      expect(d.dispatch(t)).toHaveLength(0);
      expect(d.preempt(t)).toBeUndefined();
    }
    // Urgent work cannot take it either.
    d.enqueue({ id: 'urgent', tenant: 't', priorityClass: PriorityClass.URGENT, priority: 0, readySinceMs: 200_000 }, 200_000);
    expect(d.dispatch(200_001)).toHaveLength(0);
    expect(d.preempt(200_001)).toBeUndefined();
  });

  it('makes normal work wait preemptAfterMs before it preempts', () => {
    const fleet = fleetOf(1, 1);
    const demands = new Map<string, Demand>(['bg', 'normal'].map((id) => [id, demandOf(1, 10)]));
    const policy = { ...DEFAULT_POLICY, preemptAfterMs: 30_000, preemptMaxRunMs: Infinity };
    const d = new Dispatcher({ fleet, fairShare: new FairShare([], { halfLifeMs: 60_000 }), policy, nowMs: 0, demandOf: (id) => demands.get(id) });
    d.fleetChanged(0);
    d.enqueue({ id: 'bg', tenant: 't', priorityClass: PriorityClass.BACKGROUND, priority: 0, readySinceMs: 0, preemptible: true }, 0);
    expect(d.dispatch(0)).toHaveLength(1);
    d.enqueue({ id: 'normal', tenant: 't', priorityClass: PriorityClass.NORMAL, priority: 0, readySinceMs: 1000 }, 1000);
    expect(d.dispatch(1000)).toHaveLength(0);
    expect(d.preempt(1000)).toBeUndefined();
    expect(d.dispatch(30_999)).toHaveLength(0);
    expect(d.preempt(30_999)).toBeUndefined();
    expect(d.dispatch(31_000)).toHaveLength(0);
    expect(d.preempt(31_000)?.victims.map((v) => v.id)).toEqual(['bg']);
  });

  it('holds exactly the GPUs its victims free, so the room it made stays its own', () => {
    // Three GPUs: a job that may not be preempted, a preemptible one, and a free GPU.
    const fleet = fleetOf(1, 3);
    const demands = new Map<string, Demand>([
      ['keep', demandOf(1, 10)],
      ['victim', demandOf(1, 10)],
      ['urgent', demandOf(2, 10)],
      ['other', demandOf(1, 10)],
    ]);
    const d = new Dispatcher({ fleet, fairShare: new FairShare([], { halfLifeMs: 60_000 }), policy: DEFAULT_POLICY, nowMs: 0, demandOf: (id) => demands.get(id) });
    d.fleetChanged(0);
    d.enqueue({ id: 'keep', tenant: 't', priorityClass: PriorityClass.BACKGROUND, priority: 0, readySinceMs: 0 }, 0);
    d.enqueue({ id: 'victim', tenant: 't', priorityClass: PriorityClass.BACKGROUND, priority: 0, readySinceMs: 0, preemptible: true }, 0);
    const running = new Map(d.dispatch(0).map((p) => [p.task.id, p.claim]));
    expect(running.size).toBe(2);
    const free = [0, 1, 2].filter((i) => ![...running.values()].some((c) => c.gpuIndices.includes(i)));
    d.enqueue({ id: 'urgent', tenant: 't', priorityClass: PriorityClass.URGENT, priority: 0, readySinceMs: 1 }, 1);
    expect(d.dispatch(1)).toHaveLength(0);
    // Held at once: the free GPU and one busy one.
    expect(fleet.heldGpus('urgent')).toHaveLength(2);
    expect(fleet.heldGpus('urgent')).toEqual(expect.arrayContaining(free));
    expect(d.dispatch(1001)).toHaveLength(0);
    const pre = d.preempt(1001)!;
    expect(pre.victims.map((v) => v.id)).toEqual(['victim']);
    // The hold becomes the free GPU and the victim's, whichever busy one it held before.
    expect(fleet.heldGpus('urgent')).toEqual([...free, ...running.get('victim')!.gpuIndices].sort());
    // Nobody else gets them, though it ranks higher still.
    d.enqueue({ id: 'other', tenant: 't', priorityClass: PriorityClass.URGENT, priority: 1000, readySinceMs: 0 }, 1002);
    expect(d.dispatch(1002)).toHaveLength(0);
    fleet.release(pre.victims[0]!.claim);
    d.release('victim', 1002);
    const placed = d.dispatch(1003);
    expect(placed.map((p) => [p.task.id, [...p.claim.gpuIndices].sort()])).toEqual([['urgent', [...free, ...running.get('victim')!.gpuIndices].sort()]]);
  });

  it('waits while its victims stop (their claims stand) instead of preempting on another node too, and takes the room at once when they have', () => {
    // Two one-GPU nodes, both running preemptible background work; placement reads telemetry.
    const fleet = fleetOf(2, 1, 0.9);
    const demands = new Map<string, Demand>(['bg-0', 'bg-1', 'urgent'].map((id) => [id, demandOf(1, 10)]));
    const d = new Dispatcher({ fleet, fairShare: new FairShare([], { halfLifeMs: 60_000 }), policy: DEFAULT_POLICY, nowMs: 0, demandOf: (id) => demands.get(id) });
    d.fleetChanged(0);
    for (const id of ['bg-0', 'bg-1']) d.enqueue({ id, tenant: 't', priorityClass: PriorityClass.BACKGROUND, priority: 0, readySinceMs: 0, preemptible: true }, 0);
    const running = new Map(d.dispatch(0).map((p) => [p.task.id, p.claim]));
    for (const r of running.values()) fleet.observe(r.nodeId, [{ index: 0, utilization: 1, memoryUsedBytes: 10 * GiB }]);
    d.enqueue({ id: 'urgent', tenant: 't', priorityClass: PriorityClass.URGENT, priority: 0, readySinceMs: 1 }, 1);
    expect(d.dispatch(1)).toHaveLength(0);
    expect(d.preempt(1)).toBeUndefined();
    expect(d.dispatch(1001)).toHaveLength(0);
    const pre = d.preempt(1001)!;
    expect(pre.victims).toHaveLength(1);
    const victim = pre.victims[0]!;
    // The victim's attempt is requeued at once, but its process has its grace period to stop:
    // its claim stands meanwhile, and the preemptor stops no second victim elsewhere.
    d.release(victim.id, 1001);
    for (let t = 1002; t < 5000; t += 500) {
      expect(d.dispatch(t)).toHaveLength(0);
      expect(d.preempt(t)).toBeUndefined();
    }
    // It stopped: its GPU is the preemptor's at once, though the last reading (from before) says busy.
    fleet.release(victim.claim);
    const placed = d.dispatch(5000);
    expect(placed.map((p) => [p.task.id, p.claim.nodeId])).toEqual([['urgent', pre.nodeId]]);
  });
});

function reaches(edges: Map<string, Set<string>>, from: string, to: string, seen = new Set<string>()): boolean {
  if (from === to) return true;
  if (seen.has(from)) return false;
  seen.add(from);
  for (const next of edges.get(from) ?? []) if (reaches(edges, next, to, seen)) return true;
  return false;
}

describe('preemption that pays', () => {
  const enqueueJob = (d: Dispatcher, id: string, tenant: string, priorityClass: PriorityClass, at: number, extra: { preemptible?: boolean; preemptions?: number } = {}) =>
    d.enqueue({ id, tenant, priorityClass, priority: 0, readySinceMs: at, preemptible: extra.preemptible ?? true, preemptions: extra.preemptions }, at);

  it('stops for work below urgent only work younger than preemptMaxRunMs, reports what it throws away, and never preempts a task twice', () => {
    const fleet = fleetOf(1, 2);
    const demands = new Map<string, Demand>(['old', 'young', 'u1', 'u2', 'u3', 'urgent'].map((id) => [id, demandOf(1, 10)]));
    const policy = { ...DEFAULT_POLICY, preemptAfterMs: 0, preemptMaxRunMs: 10_000 };
    const d = new Dispatcher({ fleet, fairShare: new FairShare([], { halfLifeMs: 60_000 }), policy, nowMs: 0, demandOf: (id) => demands.get(id) });
    d.fleetChanged(0);
    enqueueJob(d, 'old', 't', PriorityClass.BACKGROUND, 0);
    expect(d.dispatch(0)).toHaveLength(1);
    enqueueJob(d, 'young', 't', PriorityClass.BACKGROUND, 20_000);
    expect(d.dispatch(20_000)).toHaveLength(1);
    // 25 s in, the old job has run 25 s and the young one 5 s: only the young one may go.
    enqueueJob(d, 'u1', 't', PriorityClass.NORMAL, 25_000);
    expect(d.dispatch(25_000)).toHaveLength(0);
    const first = d.preempt(25_000)!;
    expect(first.victims.map((v) => v.id)).toEqual(['young']);
    expect(first.lostGpuSeconds).toBeCloseTo(5);
    fleet.release(first.victims[0]!.claim);
    d.release('young', 25_000);
    expect(d.dispatch(25_000).map((p) => p.task.id)).toEqual(['u1']);
    // A second urgent task finds only the old job: nothing to preempt.
    enqueueJob(d, 'u2', 't', PriorityClass.NORMAL, 25_000);
    expect(d.dispatch(25_000)).toHaveLength(0);
    expect(d.preempt(25_000)).toBeUndefined();
    // The young job comes back (preempted once); once it runs again, it is not preempted again, however young.
    enqueueJob(d, 'young', 't', PriorityClass.BACKGROUND, 20_000, { preemptions: 1 });
    d.dequeue('u2');
    fleet.release(d.runningAttempt('u1')!.claim);
    d.release('u1', 26_000);
    expect(d.dispatch(26_000).map((p) => p.task.id)).toEqual(['young']);
    enqueueJob(d, 'u3', 't', PriorityClass.NORMAL, 26_001);
    expect(d.dispatch(26_001)).toHaveLength(0);
    expect(d.preempt(26_001)).toBeUndefined();
    // Urgent work is not left behind a long job: it stops the one that loses least, old or preempted before.
    d.dequeue('u3');
    enqueueJob(d, 'urgent', 't', PriorityClass.URGENT, 26_002);
    expect(d.dispatch(26_002)).toHaveLength(0);
    expect(d.preempt(26_002 + policy.urgentPreemptAfterMs)?.victims.map((v) => v.id)).toEqual(['young']);
  });

  it.each([
    ['waits for a warm slot predicted to free before a replica on preempted GPUs would load', 10_000, 1, false],
    ['preempts for a new replica when no warm slot frees sooner', 600_000, 1, true],
    ['preempts for a new replica when more sequences wait than warm slots free sooner', 10_000, 2, true],
  ])('a sequence %s', (_name, runningMs, waiting, preempts) => {
    const { fleet, advance, now } = testFleet({ staleTelemetryMs: Infinity });
    addNode(fleet, 'a', { gpus: 2, maxSequences: 1 });
    const demands = new Map<string, Demand>([
      ['chat', sequence()],
      ['job', gpuJob(1)],
      ['urgent', sequence()],
      ['urgent-2', sequence()],
    ]);
    const d = new Dispatcher({ fleet, fairShare: new FairShare([], { halfLifeMs: 60_000 }), policy: { ...DEFAULT_POLICY, urgentPreemptAfterMs: 0 }, nowMs: now(), demandOf: (id) => demands.get(id) });
    d.fleetChanged(now());
    d.enqueue({ id: 'chat', tenant: 't', priorityClass: PriorityClass.NORMAL, priority: 0, readySinceMs: now(), predictedRunMs: runningMs }, now());
    d.enqueue({ id: 'job', tenant: 't', priorityClass: PriorityClass.BACKGROUND, priority: 0, readySinceMs: now(), predictedRunMs: 600_000, preemptible: true }, now());
    expect(d.dispatch(now())).toHaveLength(2);
    fleet.takeCommands();
    // The replica took 9 s to load: the chat sequence (10 s) is then a second from its end.
    advance(9_000);
    fleet.observe('a', [], [...fleet.get('a')!.replicas.values()].map((r) => ({ id: r.id, model: r.model, gpuIndices: [...r.gpuIndices], ready: true, external: false, capacityTokens: 0, running: 1, waiting: 0, kvCacheUsage: 0 })));
    d.enqueue({ id: 'urgent', tenant: 't', priorityClass: PriorityClass.URGENT, priority: 0, readySinceMs: now(), predictedRunMs: 1_000 }, now());
    if (waiting > 1) d.enqueue({ id: 'urgent-2', tenant: 't', priorityClass: PriorityClass.URGENT, priority: 0, readySinceMs: now(), predictedRunMs: 1_000 }, now());
    expect(d.dispatch(now())).toHaveLength(0);
    expect(d.preempt(now())?.victims.map((v) => v.id)).toEqual(preempts ? ['job'] : undefined);
  });

  it('lets a tenant within its fair share preempt young work of equal rank from a tenant at twice its share or more, and no one else', () => {
    const fleet = fleetOf(1, 4);
    const demands = new Map<string, Demand>();
    const fairShare = new FairShare([{ name: 'flood' }, { name: 'fair' }, { name: 'near' }], { halfLifeMs: 600_000 });
    const policy = { ...DEFAULT_POLICY, preemptAfterMs: 0, preemptMaxRunMs: 10_000 };
    const d = new Dispatcher({ fleet, fairShare, policy, nowMs: 0, demandOf: (id) => demands.get(id) });
    d.fleetChanged(0);
    const add = (id: string, tenant: string, at: number) => {
      demands.set(id, demandOf(1, 10));
      enqueueJob(d, id, tenant, PriorityClass.BACKGROUND, at);
    };
    // The flooding tenant has had the whole fleet for ten minutes; its newest job has just started.
    for (let i = 0; i < 3; i++) add(`flood-${i}`, 'flood', 0);
    expect(d.dispatch(0)).toHaveLength(3);
    add('flood-new', 'flood', 595_000);
    expect(d.dispatch(595_000)).toHaveLength(1);
    add('fair-1', 'fair', 600_000);
    expect(d.dispatch(600_000)).toHaveLength(0);
    expect(d.usageOverShare('flood', 600_000)).toBeGreaterThanOrEqual(2);
    const pre = d.preempt(600_000)!;
    expect(pre.preemptor.id).toBe('fair-1');
    expect(pre.victims.map((v) => v.id)).toEqual(['flood-new']);
    // At equal rank, a tenant not within its own share takes nothing.
    fleet.release(pre.victims[0]!.claim);
    d.release('flood-new', 600_000);
    expect(d.dispatch(600_000).map((p) => p.task.id)).toEqual(['fair-1']);
    add('flood-again', 'flood', 600_001);
    expect(d.dispatch(600_001)).toHaveLength(0);
    expect(d.preempt(600_001)).toBeUndefined();
  });

  it('settles under random arrivals of several tenants, rank and fair share together: below urgent no task is preempted twice, and no chain comes back', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ tenant: fc.constantFrom('a', 'b', 'c'), cls: fc.integer({ min: 0, max: 2 }), gpus: fc.integer({ min: 1, max: 3 }), gapMs: fc.integer({ min: 0, max: 20_000 }) }), {
          minLength: 1,
          maxLength: 60,
        }),
        (arrivals) => {
          let now = 0;
          const fleet = fleetOf(2, 4);
          const demands = new Map<string, Demand>();
          const policy = { ...DEFAULT_POLICY, preemptAfterMs: 0, urgentPreemptAfterMs: 0 };
          const d = new Dispatcher({ fleet, fairShare: new FairShare([{ name: 'a', share: 3 }, { name: 'b' }, { name: 'c' }], { halfLifeMs: 60_000 }), policy, nowMs: 0, demandOf: (id) => demands.get(id) });
          d.fleetChanged(0);
          const specs = new Map<string, { tenant: string; cls: number; readySinceMs: number }>();
          const preempted = new Map<string, number>();
          const edges = new Map<string, Set<string>>();
          const enqueue = (id: string) => {
            const s = specs.get(id)!;
            d.enqueue({ id, tenant: s.tenant, priorityClass: CLASSES[s.cls]!, priority: 0, readySinceMs: s.readySinceMs, preemptible: true, preemptions: preempted.get(id) ?? 0 }, now);
          };
          arrivals.forEach((a, i) => {
            now += a.gapMs;
            const id = `t${i}`;
            specs.set(id, { tenant: a.tenant, cls: a.cls, readySinceMs: now });
            demands.set(id, demandOf(a.gpus, 10));
            enqueue(id);
            for (let round = 0; round < 64; round++) {
              d.dispatch(now);
              const pre = d.preempt(now);
              if (!pre) break;
              expect(round).toBeLessThan(63);
              for (const v of pre.victims) {
                expect(reaches(edges, v.id, pre.preemptor.id)).toBe(false);
                if (!edges.has(pre.preemptor.id)) edges.set(pre.preemptor.id, new Set());
                edges.get(pre.preemptor.id)!.add(v.id);
                // Below urgent, only young work not preempted before (urgent work may stop any lower rank).
                if (pre.preemptor.priorityClass !== PriorityClass.URGENT) {
                  expect(preempted.get(v.id) ?? 0).toBe(0);
                  expect(now - v.startedAtMs).toBeLessThan(policy.preemptMaxRunMs);
                }
                preempted.set(v.id, (preempted.get(v.id) ?? 0) + 1);
                fleet.release(v.claim);
                d.release(v.id, now);
                enqueue(v.id);
              }
            }
          });
        },
      ),
      { numRuns: 300 },
    );
  });
});
