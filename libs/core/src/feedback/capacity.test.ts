import { replicasNeeded, ScaleAdvisor, WarmPlanner, type ModelDemand } from './capacity';

function demand(upperRatePerSecond: number, extra: Partial<ModelDemand> = {}): ModelDemand {
  return { model: 'chat', ratePerSecond: upperRatePerSecond, upperRatePerSecond, expectedInHorizon: upperRatePerSecond * 120, meanRunSeconds: 10, meanTokens: 1000, inFlight: 0, replicas: 1, replicaCapacityTokens: 64_000, sequencesPerReplica: 256, gpusPerReplica: 1, ...extra };
}

describe('replicasNeeded', () => {
  it("applies Little's law against the tighter of slots and KV cache", () => {
    // 10/s × 10 s = 100 in flight; 64 sequences fit by tokens, 51.2 at 0.8.
    expect(replicasNeeded(demand(10), 0.8)).toBe(2);
    expect(replicasNeeded(demand(10, { sequencesPerReplica: 16 }), 0.8)).toBe(8);
    expect(replicasNeeded(demand(0, { inFlight: 60 }), 0.8)).toBe(2);
    expect(replicasNeeded(demand(0), 0.8)).toBe(0);
    // The bound's tail alone, with not one request expected: none.
    expect(replicasNeeded(demand(0.001, { ratePerSecond: 0.001, expectedInHorizon: 0.12 }), 0.8)).toBe(0);
  });
});

describe('WarmPlanner', () => {
  const config = { enabled: true, horizonMs: 120_000, targetLoad: 0.8, maxPerModel: 3, maxGpuFraction: 0.5, holdMs: 300_000, minIntervalMs: 30_000 };

  it('raises a floor at once, caps it, holds it while demand lasts and lowers it only after the hold', () => {
    const w = new WarmPlanner(config);
    expect(w.evaluate(0, [demand(10)], 16)).toEqual([expect.objectContaining({ model: 'chat', from: 0, to: 2 })]);
    expect(w.evaluate(40_000, [demand(100)], 16).map((c) => c.to)).toEqual([3]);
    // Demand gone: kept warm through the hold.
    expect(w.evaluate(80_000, [demand(0)], 16)).toEqual([]);
    expect(w.evaluate(300_000, [demand(0)], 16)).toEqual([]);
    expect(w.evaluate(380_000, [demand(0)], 16)).toEqual([expect.objectContaining({ from: 3, to: 0 })]);
    expect(w.current()).toEqual({});
  });

  it('a returning peak within the hold finds the floor still there (no load-evict churn)', () => {
    const w = new WarmPlanner(config);
    w.evaluate(0, [demand(10)], 16);
    for (let t = 30_000; t < 600_000; t += 30_000) {
      const peak = Math.floor(t / 120_000) % 2 === 0;
      expect(w.evaluate(t, [demand(peak ? 10 : 0)], 16)).toEqual([]);
    }
    expect(w.current()).toEqual({ chat: 2 });
  });

  it('comes down to the most the hold needed, not to a dip', () => {
    const w = new WarmPlanner(config);
    w.evaluate(0, [demand(100)], 16);
    expect(w.current()).toEqual({ chat: 3 });
    // For the hold, the need swings between 0 and 2 replicas (10/s needs 2).
    for (let t = 30_000; t <= 330_000; t += 30_000) w.evaluate(t, [demand(t % 60_000 === 0 ? 10 : 0)], 16);
    expect(w.current()).toEqual({ chat: 2 });
  });

  it('keeps the warm replicas of all models within the GPU share, busiest first', () => {
    const w = new WarmPlanner(config);
    const changes = w.evaluate(0, [demand(100, { model: 'a', gpusPerReplica: 2 }), demand(1, { model: 'b', gpusPerReplica: 2 })], 8);
    expect(changes.map((c) => [c.model, c.to])).toEqual([['a', 2]]);
  });

  it('never plans a negative floor for a later model while an earlier one is held above what the shrunken fleet affords', () => {
    const w = new WarmPlanner(config);
    const a = demand(100, { model: 'a' });
    const b = demand(50, { model: 'b' });
    const changes = [];
    // 12 GPUs: 6 for warm replicas, 3 each.
    changes.push(...w.evaluate(0, [a, b], 12));
    expect(w.current()).toEqual({ a: 3, b: 3 });
    // The fleet shrinks to 4 GPUs, then to 2, while a's floor is held through its hold (a dip is not a fall).
    for (let t = 60_000; t <= 900_000; t += 30_000) changes.push(...w.evaluate(t, [a, b], t < 200_000 ? 4 : 2));
    for (const c of changes) {
      expect(c.to).toBeGreaterThanOrEqual(0);
      expect(c.to).not.toBe(c.from);
    }
    for (const n of Object.values(w.current())) expect(n).toBeGreaterThanOrEqual(0);
    // b comes down to nothing (a holds more than the fleet's share), and no further: no change from 0 to 0 follows.
    expect(changes.filter((c) => c.model === 'b').map((c) => c.to)).toEqual([3, 0]);
  });
});

describe('ScaleAdvisor', () => {
  const fleet = { agents: 2, gpus: 16, batchGpusInUse: 4, batchGpusQueued: 4, sloPressure: false };

  it('recommends up at once and down only after the stabilisation window', () => {
    const s = new ScaleAdvisor({ targetLoad: 0.8, scaleDownWindowMs: 300_000, gpusPerAgent: 8, minAgents: 1, maxAgents: 10 });
    const up = s.evaluate(0, [demand(40)], fleet);
    expect(s.find('model', 'chat')).toMatchObject({ current: 1, desired: 8 });
    // 8 replica GPUs + 8 batch GPUs at 8 GPUs per agent.
    expect(up.find((r) => r.kind === 'pool')).toMatchObject({ name: 'default', current: 2, desired: 2 });
    s.evaluate(10_000, [demand(80)], fleet);
    expect(s.find('pool', 'default')!.desired).toBe(3);
    s.evaluate(200_000, [demand(5)], fleet);
    expect(s.find('model', 'chat')).toMatchObject({ desired: 16, reason: expect.stringMatching(/held at the 300 s peak/) });
    s.evaluate(320_000, [demand(5)], fleet);
    expect(s.find('model', 'chat')!.desired).toBe(1);
  });

  it('asks for one agent more while a class-wide SLO is missed, within maxAgents', () => {
    const s = new ScaleAdvisor({ targetLoad: 0.8, scaleDownWindowMs: 300_000, gpusPerAgent: 8, minAgents: 1, maxAgents: 2 });
    s.evaluate(0, [demand(1)], { ...fleet, agents: 1, gpus: 8, batchGpusInUse: 0, batchGpusQueued: 0, sloPressure: true });
    expect(s.find('pool', 'default')).toMatchObject({ desired: 2, reason: expect.stringMatching(/SLO/) });
  });

  it('holds the one agent more against the agents when the pressure began, through a flicker, until it has been gone a window', () => {
    const s = new ScaleAdvisor({ targetLoad: 0.8, scaleDownWindowMs: 300_000, gpusPerAgent: 8, minAgents: 1, maxAgents: 10 });
    const pool = (atMs: number, agents: number, sloPressure: boolean): number => {
      s.evaluate(atMs, [demand(1)], { agents, gpus: agents * 8, batchGpusInUse: 0, batchGpusQueued: 0, sloPressure });
      return s.find('pool', 'default')!.desired;
    };
    expect(pool(0, 2, true)).toBe(3);
    expect(pool(10_000, 3, true)).toBe(3);
    // The miss drops out of judgement for one evaluation and is back: the same pressure, still counted from 2 agents.
    pool(20_000, 3, false);
    expect(pool(30_000, 3, true)).toBe(3);
    // Gone for longer than the window: a miss now is a new pressure, one more than the 3 agents there are.
    expect(pool(400_000, 3, false)).toBe(1);
    expect(pool(410_000, 3, true)).toBe(4);
  });
});
