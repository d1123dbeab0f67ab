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
});
