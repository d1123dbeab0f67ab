import { DEFAULT_FEEDBACK_CONFIG, FeedbackLoop, type FleetSnapshot } from './loop';
import type { SloSpec, TaskOutcome } from './slo';

const fleet = (replicas = 0): FleetSnapshot => ({
  nodes: [
    { nodeId: 'n1', gpus: 8 },
    { nodeId: 'n2', gpus: 8 },
  ],
  replicas: new Map(replicas > 0 ? [['chat', { count: replicas, capacityTokens: 100_000, gpus: 1 }]] : []),
  inFlightByModel: new Map(),
  pendingByClass: new Map(),
  batchGpusInUse: 0,
  batchGpusQueued: 0,
  sequencesPerReplica: 16,
});

function outcome(atMs: number, tenant: string, queueSeconds: number): TaskOutcome {
  return { atMs, tenant, priorityClass: 'normal', model: 'chat', nodeId: 'n1', succeeded: true, stopped: false, queueSeconds, ttftSeconds: 0.1, runSeconds: 4, tokens: 1000, deadlineMet: undefined };
}

/** A normal-class task of the tenant placed at `atMs` after waiting `seconds`. */
function placed(loop: FeedbackLoop, id: string, tenant: string, atMs: number, seconds: number): void {
  loop.sloTracker.waitStarted(id, tenant, 'normal', atMs - seconds * 1000);
  loop.sloTracker.waitEnded(id, atMs, true, seconds);
}

describe('FeedbackLoop', () => {
  const queueSlo: SloSpec = { name: 'normal-queue', indicator: 'queue_time', tenant: '*', priorityClass: 'normal', thresholdSeconds: 5, objective: 0.9, windowMs: 60_000, minEvents: 5, alertForMs: 30_000 };

  it("restores a starved tenant's SLO with a bounded boost and returns its weight to normal afterwards", () => {
    const loop = new FeedbackLoop(DEFAULT_FEEDBACK_CONFIG, [queueSlo], []);
    const boosts: number[] = [];
    let starvedUntil = 120_000;
    for (let t = 0; t <= 900_000; t += 10_000) {
      // The tenant waits long while unboosted in the starved phase; once boosted it is served in time.
      const factor = loop.boosts.factor('small');
      for (let i = 0; i < 5; i++) {
        placed(loop, `small-${t}-${i}`, 'small', t, t < starvedUntil && factor < 2 ? 30 : 1);
        placed(loop, `big-${t}-${i}`, 'big', t, 1);
      }
      const r = loop.evaluate(t, fleet());
      for (const c of r.boosts) boosts.push(c.to);
      if (t === 120_000) starvedUntil = 0;
    }
    // Up within the cap, then back down to exactly 1, never alternating.
    expect(Math.max(...boosts)).toBeLessThanOrEqual(DEFAULT_FEEDBACK_CONFIG.boost.max);
    expect(boosts.at(-1)).toBe(1);
    const peak = boosts.indexOf(Math.max(...boosts));
    expect(boosts.slice(0, peak + 1)).toEqual([...boosts.slice(0, peak + 1)].sort((a, b) => a - b));
    expect(boosts.slice(peak)).toEqual([...boosts.slice(peak)].sort((a, b) => b - a));
  });

  it('forecasts arrivals per model and per tenant, and token demand per model', () => {
    const loop = new FeedbackLoop(DEFAULT_FEEDBACK_CONFIG, [], [], 10_000);
    let r;
    // 2 requests/s of 1,500 tokens each from one tenant, 0.5 jobs/s from another, for ten minutes.
    for (let t = 0; t <= 600_000; t += 1000) {
      loop.arrived({ atMs: t, tenant: 'a', model: 'chat', inference: true, tokens: 1500 });
      loop.arrived({ atMs: t + 500, tenant: 'a', model: 'chat', inference: true, tokens: 1500 });
      if (t % 2000 === 0) loop.arrived({ atMs: t, tenant: 'b', model: '', inference: false });
      if (t % 60_000 === 0) r = loop.evaluate(t, fleet());
    }
    const chat = r!.demand.find((d) => d.model === 'chat')!;
    expect(chat.ratePerSecond).toBeCloseTo(2, 1);
    expect(chat.tokensPerSecond).toBeCloseTo(3000, -2);
    expect(Object.fromEntries(r!.tenants.map((t) => [t.tenant, Math.round(t.ratePerSecond * 10) / 10]))).toEqual({ a: 2, b: 0.5 });
  });

  it('pre-warms: demand ramping up raises the warm floor before the peak arrives', () => {
    const loop = new FeedbackLoop(DEFAULT_FEEDBACK_CONFIG, [], [], 10_000);
    let raisedAtMs: number | undefined;
    // Arrivals ramp from 0.5/s to 8/s over ten minutes; each request runs 4 s.
    for (let t = 0; t < 600_000; t += 1000) {
      const rate = 0.5 + (7.5 * t) / 600_000;
      for (let i = 0; i < Math.round(rate); i++) loop.arrived({ atMs: t, tenant: 'a', model: 'chat', inference: true });
      if (t % 10_000 === 0) {
        loop.finished(outcome(t, 'a', 0));
        const r = loop.evaluate(t, fleet(1));
        if (raisedAtMs === undefined && r.warm.some((c) => c.model === 'chat' && c.to >= 2)) raisedAtMs = t;
      }
    }
    // 8/s × 4 s = 32 in flight at the peak: two 16-sequence replicas. The floor is there well before the end of the ramp.
    expect(raisedAtMs).toBeDefined();
    expect(raisedAtMs!).toBeLessThan(480_000);
    expect(loop.warm.current().chat).toBeGreaterThanOrEqual(2);
  });

  /** The fleet with `agents` agents of 8 GPUs each and no work placed. */
  const agents = (n: number): FleetSnapshot => ({ ...fleet(), nodes: Array.from({ length: n }, (_, i) => ({ nodeId: `n${i}`, gpus: 8 })) });

  it('adds no agent for a missed success SLO, nor for one tenant alone missing a queue-time SLO', () => {
    const successSlo: SloSpec = { name: 'success', indicator: 'success', tenant: '*', priorityClass: '*', thresholdSeconds: 0, objective: 0.99, windowMs: 60_000, minEvents: 5, alertForMs: 30_000 };
    const loop = new FeedbackLoop(DEFAULT_FEEDBACK_CONFIG, [successSlo, queueSlo], []);
    for (let t = 0; t <= 120_000; t += 10_000) {
      // Every tenant's jobs fail (a buggy job: more agents would fail it faster), and one tenant alone waits long.
      for (let i = 0; i < 5; i++) {
        for (const tenant of ['a', 'b']) loop.finished({ ...outcome(t, tenant, 1), succeeded: false });
        placed(loop, `a-${t}-${i}`, 'a', t, 30);
      }
      const r = loop.evaluate(t, agents(2));
      expect(r.slos.filter((s) => s.met === false).map((s) => `${s.slo}/${s.tenant}`)).toEqual(['success/a', 'success/b', 'normal-queue/a']);
      // Nothing runs: the fleet's GPUs are not wanted, so the pool falls to minAgents rather than growing.
      expect(r.scale.find((x) => x.kind === 'pool')).toMatchObject({ current: 2, desired: 1 });
    }
  });

  it('a sustained class-wide queue-time miss adds exactly one agent over the count when it began, however many join since', () => {
    const loop = new FeedbackLoop(DEFAULT_FEEDBACK_CONFIG, [queueSlo], []);
    let fleetAgents = 2;
    const desired: number[] = [];
    for (let t = 0; t <= 600_000; t += 10_000) {
      for (let i = 0; i < 5; i++) for (const tenant of ['a', 'b']) placed(loop, `${tenant}-${t}-${i}`, tenant, t, 30);
      const pool = loop.evaluate(t, agents(fleetAgents)).scale.find((x) => x.kind === 'pool')!;
      desired.push(pool.desired);
      // KEDA brings the pool to what is recommended, and an operator adds one more besides, while the miss lasts.
      fleetAgents = Math.max(pool.desired, fleetAgents) + (t === 300_000 ? 1 : 0);
    }
    expect(new Set(desired)).toEqual(new Set([3]));
    expect(loop.scale.find('pool', 'default')).toMatchObject({ current: 4, reason: expect.stringMatching(/SLO/) });
  });
});
