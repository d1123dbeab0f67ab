import fc from 'fast-check';
import type { Claim } from './claim';
import type { Demand } from './demand';
import type { NoFit } from './fleet';
import type { ReplicaReport } from './replica';
import { addNode, cpuJob, GiB, GLM, gpuJob, LLAMA_70B, sequence, testFleet } from './test-fleet';

function claimed(result: Claim | NoFit): Claim {
  if (typeof result === 'string') throw new Error(`expected a placement, got "${result}"`);
  return result;
}

/** Where a placement landed, as "node/gpu,gpu". */
const where = (r: Claim | NoFit): string => (typeof r === 'string' ? r : `${r.nodeId}/${r.gpuIndices.join(',')}`);

/** The agent's view of its replicas, all loaded: what it would report after a load command. */
function loadedReports(fleet: ReturnType<typeof testFleet>['fleet'], nodeId: string, load: Partial<ReplicaReport> = {}): ReplicaReport[] {
  return [...fleet.get(nodeId)!.replicas.values()].map((r) => ({
    id: r.id,
    model: r.model,
    gpuIndices: [...r.gpuIndices],
    ready: true,
    external: r.external,
    capacityTokens: 0,
    running: r.sequences,
    waiting: 0,
    kvCacheUsage: 0,
    ...load,
  }));
}

describe('Fleet: batch jobs hold whole GPUs', () => {
  it('never runs more GPU claims than GPUs: a burst of 8-GPU jobs fills four 8-GPU hosts once', () => {
    const { fleet } = testFleet();
    for (const n of ['agent-1', 'agent-2', 'agent-3', 'agent-4']) addNode(fleet, n);
    const results = Array.from({ length: 24 }, () => fleet.place(gpuJob(8)));
    const placed = results.filter((r): r is Claim => typeof r !== 'string');
    expect(placed).toHaveLength(4);
    expect(new Set(placed.map((c) => c.nodeId)).size).toBe(4);
    expect(results.filter((r) => r === 'no-capacity')).toHaveLength(20);
    expect(fleet.hasRoom('gpus')).toBe(false);
  });

  it('gives a job GPUs no other work shares, and gives them back on release', () => {
    const { fleet } = testFleet();
    addNode(fleet, 'a', { gpus: 2 });
    const first = claimed(fleet.place(gpuJob(1)));
    const second = claimed(fleet.place(gpuJob(1)));
    expect(new Set([...first.gpuIndices, ...second.gpuIndices]).size).toBe(2);
    expect(fleet.place(gpuJob(1))).toBe('no-capacity');
    expect(fleet.place(sequence())).toBe('no-capacity');
    fleet.release(first);
    expect(where(fleet.place(gpuJob(1)))).toBe(`a/${first.gpuIndices[0]}`);
  });

  it('best-fits: a small job goes where it leaves the fewest GPUs free, so a whole host stays free for a large one', () => {
    const { fleet } = testFleet();
    addNode(fleet, 'a');
    addNode(fleet, 'b');
    claimed(fleet.place(gpuJob(6)));
    expect(where(fleet.place(gpuJob(2)))).toMatch(/^a\//);
    expect(where(fleet.place(gpuJob(8)))).toBe('b/0,1,2,3,4,5,6,7');
  });

  it('spreads instead when told to: the job goes where the most GPUs are free', () => {
    const { fleet } = testFleet({ mode: 'spread' });
    addNode(fleet, 'a');
    addNode(fleet, 'b');
    claimed(fleet.place(gpuJob(6)));
    expect(where(fleet.place(gpuJob(2)))).toMatch(/^b\//);
  });

  it('gives a multi-GPU job GPUs that share a fast link when the agent reports its topology', () => {
    const { fleet } = testFleet();
    // Two PCIe switches: 0-1 and 2-3 each share one (PIX); across them is the host bridge (SYS).
    const links = [
      ['X', 'PIX', 'SYS', 'SYS'],
      ['PIX', 'X', 'SYS', 'SYS'],
      ['SYS', 'SYS', 'X', 'PIX'],
      ['SYS', 'SYS', 'PIX', 'X'],
    ];
    addNode(fleet, 'a', { gpus: 4, links });
    const one = claimed(fleet.place(gpuJob(1)));
    expect(one.gpuIndices).toEqual([0]);
    // GPUs 1, 2 and 3 are free: the linked pair is 2-3, not 1-2.
    expect(where(fleet.place(gpuJob(2)))).toBe('a/2,3');
  });

  it('takes a job only on GPUs with the memory it needs', () => {
    const { fleet } = testFleet();
    addNode(fleet, 'small', { gpus: 8, gpuBytes: 24 * GiB });
    addNode(fleet, 'big', { gpus: 1 });
    expect(where(fleet.place(gpuJob(1, 40 * GiB)))).toBe('big/0');
    expect(fleet.place(gpuJob(1, 40 * GiB))).toBe('no-capacity');
    expect(fleet.place(gpuJob(2, 40 * GiB))).toBe('too-large');
  });

  it('skips a free GPU that its agent reports in use by something else, until a reading says it is idle', () => {
    const { fleet, advance } = testFleet();
    addNode(fleet, 'a', { gpus: 2 });
    fleet.observe('a', [{ index: 0, utilization: 0.97, memoryUsedBytes: 60 * GiB }]);
    expect(where(fleet.place(gpuJob(1)))).toBe('a/1');
    expect(fleet.place(gpuJob(1))).toBe('no-capacity');
    advance(100);
    expect(fleet.observe('a', [{ index: 0, utilization: 0, memoryUsedBytes: 0 }])).toBe(true);
    expect(where(fleet.place(gpuJob(1)))).toBe('a/0');
  });

  it('does not let a reading from before a release block the freed GPU', () => {
    const { fleet, advance } = testFleet();
    addNode(fleet, 'a', { gpus: 1 });
    const job = claimed(fleet.place(gpuJob(1)));
    fleet.observe('a', [{ index: 0, utilization: 1, memoryUsedBytes: 70 * GiB }]);
    advance(10);
    fleet.release(job);
    expect(where(fleet.place(gpuJob(1)))).toBe('a/0');
  });
});

describe('Fleet: inference runs in replicas', () => {
  it('starts a replica for the first sequence of a model and puts the next ones in it', () => {
    const { fleet } = testFleet();
    addNode(fleet, 'a', { gpus: 2 });
    const first = claimed(fleet.place(sequence(GLM.name, 2048)));
    expect(first.replicaId).toBeDefined();
    const commands = fleet.takeCommands();
    expect(commands).toHaveLength(1);
    expect(commands[0]).toMatchObject({ kind: 'load', nodeId: 'a', replica: { model: GLM.name, gpuIndices: first.gpuIndices, state: 'loading' } });
    fleet.observe('a', [], loadedReports(fleet, 'a'));
    const second = claimed(fleet.place(sequence(GLM.name, 2048)));
    expect(second.replicaId).toBe(first.replicaId);
    expect(fleet.takeCommands()).toEqual([]);
    // A sequence counts as its share of the replica's GPU, not a whole GPU.
    expect(second.resources.gpus).toBeGreaterThan(0);
    expect(second.resources.gpus).toBeLessThan(0.01);
  });

  it('sizes a replica from the model: one 80 GB GPU for glm-4-9b, four for llama-3.1-70b', () => {
    const { fleet } = testFleet();
    addNode(fleet, 'a');
    expect(claimed(fleet.place(sequence(GLM.name))).gpuIndices).toHaveLength(1);
    expect(claimed(fleet.place(sequence(LLAMA_70B.name, 4096, 2))).gpuIndices).toHaveLength(4);
  });

  it("fills a replica up to its KV-cache capacity, then starts another; a replica's GPUs take no batch job", () => {
    const { fleet } = testFleet();
    addNode(fleet, 'a', { gpus: 2 });
    const first = claimed(fleet.place(sequence(GLM.name, 8192)));
    const replica = fleet.get('a')!.replicas.get(first.replicaId!)!;
    fleet.observe('a', [], loadedReports(fleet, 'a'));
    const perReplica = Math.floor(replica.capacityTokens / 8192);
    for (let i = 1; i < perReplica; i++) expect(claimed(fleet.place(sequence(GLM.name, 8192))).replicaId).toBe(replica.id);
    expect(replica.usedTokens).toBeLessThanOrEqual(replica.capacityTokens);
    const overflow = claimed(fleet.place(sequence(GLM.name, 8192)));
    expect(overflow.replicaId).not.toBe(replica.id);
    expect(fleet.place(gpuJob(1))).toBe('no-capacity');
  });

  it('caps the sequences of a replica at what its agent says it runs at once', () => {
    const { fleet } = testFleet();
    addNode(fleet, 'a', { gpus: 1, maxSequences: 3 });
    for (let i = 0; i < 3; i++) claimed(fleet.place(sequence(GLM.name, 16)));
    expect(fleet.place(sequence(GLM.name, 16))).toBe('no-capacity');
  });

  it('scales a model out when its replicas are past the mark, while the sequence still goes where it runs now', () => {
    const { fleet } = testFleet({ scaleOutLoad: 0.5, maxSequencesPerReplica: 4 });
    addNode(fleet, 'a', { gpus: 2 });
    const first = claimed(fleet.place(sequence()));
    fleet.takeCommands();
    fleet.observe('a', [], loadedReports(fleet, 'a'));
    claimed(fleet.place(sequence()));
    // Two of four: at the mark. The third goes to the warm replica, and another starts beside it.
    const third = claimed(fleet.place(sequence()));
    expect(third.replicaId).toBe(first.replicaId);
    const commands = fleet.takeCommands();
    expect(commands).toHaveLength(1);
    expect(commands[0]!.kind).toBe('load');
    expect(fleet.replicaCount(GLM.name)).toBe(2);
  });

  it('takes an engine report of requests waiting as saturation, and a drained one as room again', () => {
    const { fleet, advance } = testFleet({ maxWaitingPerReplica: 8 });
    addNode(fleet, 'a', { gpus: 1 });
    claimed(fleet.place(sequence()));
    fleet.observe('a', [], loadedReports(fleet, 'a', { waiting: 12, kvCacheUsage: 0.4 }));
    expect(fleet.place(sequence())).toBe('no-capacity');
    advance(100);
    expect(fleet.observe('a', [], loadedReports(fleet, 'a', { waiting: 0, kvCacheUsage: 0.4 }))).toBe(true);
    expect(typeof fleet.place(sequence())).not.toBe('string');
  });

  it('evicts idle replicas, least recently used first, when a job needs their GPUs, and keeps the warm minimum', () => {
    const { fleet, advance } = testFleet({ keepWarm: { [GLM.name]: 1 } });
    // One sequence a replica, so each sequence starts one.
    addNode(fleet, 'a', { gpus: 3, maxSequences: 1 });
    const claims = [claimed(fleet.place(sequence()))];
    advance(10);
    claims.push(claimed(fleet.place(sequence())));
    advance(10);
    claims.push(claimed(fleet.place(sequence())));
    expect(new Set(claims.map((c) => c.replicaId)).size).toBe(3);
    fleet.takeCommands();
    // While they load, nothing evicts them (they were started for work on its way).
    fleet.release(claims[0]!);
    expect(fleet.place(gpuJob(1))).toBe('no-capacity');
    claims[0] = claimed(fleet.place(sequence()));
    fleet.observe('a', [], loadedReports(fleet, 'a'));
    // All three go idle, the oldest first.
    for (const c of claims) {
      advance(10);
      fleet.release(c);
    }
    const job = claimed(fleet.place(gpuJob(2)));
    const evicted = fleet.takeCommands().filter((c) => c.kind === 'evict');
    expect(evicted.map((c) => (c.kind === 'evict' ? c.replicaId : ''))).toEqual([claims[0]!.replicaId, claims[1]!.replicaId]);
    expect(job.gpuIndices).toEqual([...claims[0]!.gpuIndices, ...claims[1]!.gpuIndices].sort());
    // The last replica is the model's keep-warm minimum: not evicted.
    expect(fleet.place(gpuJob(1))).toBe('no-capacity');
  });

  it('keeps a sequence for a warm slot predicted to free before a new replica would load, and starts that replica for what follows', () => {
    const { fleet, now, advance } = testFleet({ staleTelemetryMs: Infinity });
    addNode(fleet, 'a', { gpus: 2, maxSequences: 1 });
    // Before any replica has loaded: glm-4-9b's 18.8 GB at the assumed 2 GB/s.
    expect(fleet.loadEstimateMs(GLM.name)).toBeCloseTo(9_400, -2);
    const first = claimed(fleet.place(sequence(), 'first', now() + 9_000));
    fleet.takeCommands();
    advance(8_000);
    fleet.observe('a', [], loadedReports(fleet, 'a'));
    // It took 8 s to load; its sequence ends in 1 s: sooner than a new replica would serve.
    expect(fleet.loadEstimateMs(GLM.name)).toBe(8_000);
    const t0 = now();
    expect(fleet.place(sequence(), 'second', t0 + 2_000)).toBe('no-capacity');
    const started = fleet.takeCommands().filter((c) => c.kind === 'load');
    expect(started).toHaveLength(1);
    // It is not placed on the loading replica either, while the warm slot is sooner.
    expect(fleet.place(sequence(), 'second', t0 + 2_000)).toBe('no-capacity');
    fleet.release(first);
    expect(claimed(fleet.place(sequence(), 'second', t0 + 2_000)).replicaId).toBe(first.replicaId);
    // Once the new replica is ready (2 s after it was asked for), its load time is learned (moving average).
    advance(2_000);
    fleet.observe('a', [], loadedReports(fleet, 'a'));
    expect(fleet.loadEstimateMs(GLM.name)).toBeCloseTo(8_000 + 0.3 * (2_000 - 8_000));
  });

  it('keeps only as many sequences for warm slots as are predicted to free before the cold start; the rest take the loading replica', () => {
    const { fleet, now, advance } = testFleet({ staleTelemetryMs: Infinity });
    addNode(fleet, 'a', { gpus: 3, maxSequences: 2 });
    const t0 = now();
    claimed(fleet.place(sequence(), 'soon', t0 + 9_000));
    claimed(fleet.place(sequence(), 'late', t0 + 600_000));
    fleet.takeCommands();
    advance(8_000);
    fleet.observe('a', [], loadedReports(fleet, 'a'));
    // One slot frees in 1 s, before a new replica (8 s) would serve: one waiter for it, no more.
    expect(fleet.warmSlotsBeforeColdStart(GLM.name)).toBe(1);
    expect(fleet.place(sequence(), 'w1', now() + 2_000)).toBe('no-capacity');
    // Tried again at the same instant, it keeps its place.
    expect(fleet.place(sequence(), 'w1', now() + 2_000)).toBe('no-capacity');
    const w2 = claimed(fleet.place(sequence(), 'w2', now() + 2_000));
    const w3 = claimed(fleet.place(sequence(), 'w3', now() + 2_000));
    // Both wait for the replica started for them (not for the one warm slot, promised to w1).
    expect(fleet.get('a')!.replicas.get(w2.replicaId!)!.state).toBe('loading');
    expect(w3.replicaId).toBe(w2.replicaId);
  });

  it('starts a cold replica for a sequence when no warm slot is predicted to free sooner', () => {
    const { fleet, now } = testFleet({ staleTelemetryMs: Infinity });
    addNode(fleet, 'a', { gpus: 2, maxSequences: 1 });
    const t0 = now();
    claimed(fleet.place(sequence(), 'long', t0 + 600_000));
    fleet.observe('a', [], loadedReports(fleet, 'a'));
    const second = claimed(fleet.place(sequence(), 'second', t0 + 5_000));
    expect(fleet.get('a')!.replicas.get(second.replicaId!)!.state).toBe('loading');
    // A slot whose end is unknown promises nothing: the cold start goes ahead too.
    expect(fleet.warmSlotsBeforeColdStart(GLM.name)).toBe(0);
  });

  it('never evicts a replica that still has sequences', () => {
    const { fleet } = testFleet();
    addNode(fleet, 'a', { gpus: 1 });
    claimed(fleet.place(sequence()));
    expect(fleet.place(gpuJob(1))).toBe('no-capacity');
  });

  it('starts keep-warm replicas on free GPUs', () => {
    const { fleet } = testFleet({ keepWarm: { [GLM.name]: 2 } });
    addNode(fleet, 'a', { gpus: 4 });
    fleet.ensureWarm();
    expect(fleet.replicaCount(GLM.name)).toBe(2);
    expect(fleet.takeCommands().filter((c) => c.kind === 'load')).toHaveLength(2);
    fleet.ensureWarm();
    expect(fleet.takeCommands()).toEqual([]);
  });

  it('keeps warm the larger of the configured count and a floor set at run time, and lets go once the floor is removed', () => {
    const { fleet } = testFleet({ keepWarm: { [GLM.name]: 1 } });
    addNode(fleet, 'a', { gpus: 4 });
    fleet.setWarmFloors({ [GLM.name]: 3 });
    expect(fleet.keepWarmOf(GLM.name)).toBe(3);
    fleet.ensureWarm();
    expect(fleet.replicaCount(GLM.name)).toBe(3);
    fleet.setWarmFloors({ [GLM.name]: 0 });
    expect(fleet.keepWarmOf(GLM.name)).toBe(1);
  });

  it("places sequences in an OpenAI-compatible server's replicas, and no job on its node", () => {
    const { fleet } = testFleet();
    addNode(fleet, 'vllm', { gpus: 1, backends: ['openai'], models: ['my-finetune'] });
    expect(fleet.place(sequence('my-finetune'))).toBe('no-model');
    fleet.observe('vllm', [], [{ id: 'openai:my-finetune', model: 'my-finetune', gpuIndices: [0], ready: true, external: true, capacityTokens: 0, running: 0, waiting: 0, kvCacheUsage: 0 }]);
    expect(claimed(fleet.place(sequence('my-finetune'))).replicaId).toBe('openai:my-finetune');
    expect(fleet.place(gpuJob(1))).toBe('no-model');
    expect(fleet.takeCommands()).toEqual([]);
  });

  it('drops a replica its agent stops reporting once the load command has had time to arrive', () => {
    const { fleet, advance } = testFleet({ replicaReportGraceMs: 1000 });
    addNode(fleet, 'a', { gpus: 1 });
    claimed(fleet.place(sequence()));
    fleet.observe('a', [], []);
    expect(fleet.replicaCount(GLM.name)).toBe(1);
    advance(1001);
    fleet.observe('a', [], []);
    expect(fleet.replicaCount(GLM.name)).toBe(0);
  });

  it('counts the sequences still running in a replica its agent left out of a report and then reported again', () => {
    const { fleet, advance } = testFleet({ replicaReportGraceMs: 1000 });
    addNode(fleet, 'a', { gpus: 1 });
    const running = claimed(fleet.place(sequence()));
    const reports = loadedReports(fleet, 'a');
    fleet.observe('a', [], reports);
    advance(1001);
    fleet.observe('a', [], []);
    expect(fleet.replicaCount(GLM.name)).toBe(0);
    fleet.observe('a', [], reports);
    const replica = fleet.get('a')!.replicas.get(running.replicaId!)!;
    expect(replica.sequences).toBe(1);
    expect(replica.usedTokens).toBe(running.demand.tokens);
    expect(fleet.get('a')!.idleGpus).toBe(0);
    fleet.release(running);
    expect(replica.sequences).toBe(0);
    expect(fleet.get('a')!.idleGpus).toBe(1);
  });

  it('adopts the replicas an agent reports on registration (after a decision restart), and evicts one on claimed GPUs', () => {
    const { fleet } = testFleet();
    const report = (id: string, gpu: number): ReplicaReport => ({ id, model: GLM.name, gpuIndices: [gpu], ready: true, external: false, capacityTokens: 0, running: 1, waiting: 0, kvCacheUsage: 0.1 });
    fleet.upsert(
      { nodeId: 'a', address: 'a:1', models: ['*'], backends: ['sim'], gpus: [0, 1].map((index) => ({ index, memoryTotalBytes: 80 * GiB })), cpuMillis: 0, memoryBytes: 0 },
      [report('kept', 0)],
    );
    const running = fleet.restore('a', [0], sequence());
    expect(running?.replicaId).toBe('kept');
    const job = fleet.restore('a', [1], gpuJob(1));
    expect(job).toBeDefined();
    fleet.observe('a', [], [report('kept', 0), report('stray', 1)]);
    expect(fleet.takeCommands()).toEqual([expect.objectContaining({ kind: 'evict', replicaId: 'stray' })]);
    // A job cannot be restored onto a replica's GPU.
    expect(fleet.restore('a', [0], gpuJob(1))).toBeUndefined();
  });
});

describe('Fleet: jobs without GPUs', () => {
  it("runs CPU jobs on a host without GPUs, up to its cores and memory", () => {
    const { fleet } = testFleet();
    addNode(fleet, 'cpu-host', { gpus: 0, backends: ['command'], cores: 4, memoryBytes: 8 * GiB });
    expect(where(fleet.place(cpuJob(2, 2 * GiB, true)))).toBe('cpu-host/');
    expect(where(fleet.place(cpuJob(2, 2 * GiB, true)))).toBe('cpu-host/');
    expect(fleet.place(cpuJob(1, 0, true))).toBe('no-capacity');
    expect(fleet.place(cpuJob(8, 0, true))).toBe('too-large');
    expect(fleet.place({ ...gpuJob(1), program: true })).toBe('too-large');
    expect(fleet.place(sequence())).toBe('no-model');
  });

  it('best-fits CPU jobs too', () => {
    const { fleet } = testFleet();
    addNode(fleet, 'big', { gpus: 0, backends: ['command'], cores: 16 });
    addNode(fleet, 'small', { gpus: 0, backends: ['command'], cores: 4 });
    expect(where(fleet.place(cpuJob(2, 0, true)))).toBe('small/');
  });

  it('runs a program only where processes run, unless no such agent is connected; a job to simulate only on a simulator', () => {
    const { fleet } = testFleet();
    addNode(fleet, 'sim', { gpus: 1 });
    // A demo fleet of simulators plays programs too.
    expect(where(fleet.place(cpuJob(1, 0, true)))).toBe('sim/');
    addNode(fleet, 'host', { gpus: 0, backends: ['command'], cores: 1 });
    expect(where(fleet.place(cpuJob(1, 0, true)))).toBe('host/');
    expect(fleet.place(cpuJob(1, 0, true))).toBe('no-capacity');
    expect(where(fleet.place(cpuJob(1)))).toBe('sim/');
    fleet.setHealth('host', 'lost');
    expect(where(fleet.place(cpuJob(1, 0, true)))).toBe('sim/');
  });
});

describe('Fleet: reasons, holds and room', () => {
  it("says 'no-node' for an empty fleet or one with nothing ready", () => {
    const { fleet } = testFleet();
    expect(fleet.place(gpuJob(1))).toBe('no-node');
    addNode(fleet, 'a');
    fleet.setHealth('a', 'draining');
    expect(fleet.place(gpuJob(1))).toBe('no-node');
  });

  it('takes a node out while its telemetry is stale, and back when it reports', () => {
    const { fleet, advance } = testFleet({ staleTelemetryMs: 1000 });
    addNode(fleet, 'a', { gpus: 1 });
    advance(1500);
    expect(fleet.place(gpuJob(1))).toBe('no-capacity');
    expect(fleet.observe('a', [])).toBe(true);
    expect(where(fleet.place(gpuJob(1)))).toBe('a/0');
  });

  it('holds the GPUs nearest to fitting for a task that fits nowhere; only it may take them', () => {
    const { fleet } = testFleet();
    addNode(fleet, 'a', { gpus: 4 });
    addNode(fleet, 'b', { gpus: 4 });
    const onA = [claimed(fleet.place(gpuJob(3))), claimed(fleet.place(gpuJob(1)))];
    claimed(fleet.place(gpuJob(3)));
    expect(onA.every((c) => c.nodeId === 'a')).toBe(true);
    // b has one GPU free: the nearest to a 4-GPU job.
    expect(fleet.hold(gpuJob(4), 'big')).toBe('b');
    expect(fleet.heldGpus('big')).toHaveLength(4);
    fleet.release(onA[1]!);
    // a's freed GPU is not held: a small job may take it. b's free GPU is held: nobody else gets it.
    expect(where(fleet.place(gpuJob(1), 'small'))).toBe(`a/${onA[1]!.gpuIndices[0]}`);
    expect(fleet.place(gpuJob(1), 'small')).toBe('no-capacity');
    fleet.unhold('big');
    expect(where(fleet.place(gpuJob(1), 'small'))).toMatch(/^b\//);
  });

  it('reserves, for a job that fits nowhere, the GPUs whose work is predicted to end soonest, and keeps them for it alone', () => {
    const { fleet, now, advance } = testFleet({ staleTelemetryMs: Infinity });
    addNode(fleet, 'a', { gpus: 4 });
    addNode(fleet, 'b', { gpus: 4 });
    const t0 = now();
    // a's GPUs free in 100 s and 600 s (two 2-GPU jobs); b's in 300 s (one 4-GPU job).
    const aShort = claimed(fleet.place(gpuJob(2), 'a-short', t0 + 100_000));
    claimed(fleet.place(gpuJob(2), 'a-long', t0 + 600_000));
    const bAll = claimed(fleet.place(gpuJob(4), 'b-all', t0 + 300_000));
    expect(fleet.reserve(gpuJob(4), 'big')).toEqual({ nodeId: 'b', startMs: t0 + 300_000 });
    expect(fleet.reservedStart('big')).toBe(t0 + 300_000);
    expect(fleet.heldGpus('big')).toEqual([0, 1, 2, 3]);
    // a is not reserved: a long job takes its freed GPUs. b's are the big job's once they free.
    advance(100_000);
    fleet.release(aShort);
    expect(where(fleet.place(gpuJob(2), 'long', now() + 10_000_000))).toBe('a/' + aShort.gpuIndices.join(','));
    advance(200_000);
    fleet.release(bAll);
    expect(fleet.place(gpuJob(1), 'other', now() + 10_000_000)).toBe('no-capacity');
    expect(where(fleet.place(gpuJob(4), 'big'))).toBe('b/0,1,2,3');
  });

  it('backfills reserved GPUs only with work predicted to end before the reservation starts', () => {
    const { fleet, now } = testFleet();
    addNode(fleet, 'a', { gpus: 2 });
    const t0 = now();
    const running = claimed(fleet.place(gpuJob(1), 'running', t0 + 60_000));
    expect(fleet.reserve(gpuJob(2), 'big')).toEqual({ nodeId: 'a', startMs: t0 + 60_000 });
    // The free GPU is reserved: a job of unknown length, or one that would run past the start, may not take it.
    expect(fleet.place(gpuJob(1), 'unknown')).toBe('no-capacity');
    expect(fleet.place(gpuJob(1), 'too-long', t0 + 60_001)).toBe('no-capacity');
    const backfill = claimed(fleet.place(gpuJob(1), 'backfill', t0 + 60_000));
    expect(backfill.endMs).toBe(t0 + 60_000);
    fleet.release(running);
    fleet.release(backfill);
    expect(claimed(fleet.place(gpuJob(2), 'big')).gpuIndices).toEqual([0, 1]);
  });

  it('backfills a reserved replica with sequences predicted to end in time, and drains it of the rest', () => {
    const { fleet, now } = testFleet();
    addNode(fleet, 'a', { gpus: 1, maxSequences: 8 });
    const t0 = now();
    const first = claimed(fleet.place(sequence(), 'seq-1', t0 + 5_000));
    fleet.observe('a', [], loadedReports(fleet, 'a'));
    expect(fleet.reserve(gpuJob(1), 'job')).toEqual({ nodeId: 'a', startMs: t0 + 5_000 });
    expect(fleet.place(sequence(), 'seq-long', t0 + 5_001)).toBe('no-capacity');
    const short = claimed(fleet.place(sequence(), 'seq-short', t0 + 4_000));
    expect(short.replicaId).toBe(first.replicaId);
    fleet.release(first);
    fleet.release(short);
    // The idle replica is evicted for the job.
    expect(claimed(fleet.place(gpuJob(1), 'job')).gpuIndices).toEqual([0]);
  });

  it('reserves, under a bound, the run of GPUs that starts the job latest in time; past it, or with no bound, the earliest', () => {
    const { fleet, now } = testFleet();
    addNode(fleet, 'a', { gpus: 4 });
    const t0 = now();
    // The GPUs free in 5 s, 100 s, 110 s and 120 s.
    for (const s of [5, 100, 110, 120]) claimed(fleet.place(gpuJob(1), `job-${s}`, t0 + s * 1000));
    // Two GPUs by a bound of 10 min: the pair freeing at 110 s and 120 s (open to backfill the longest, 10 s idle).
    expect(fleet.reserve(gpuJob(2), 'pair', t0 + 600_000)).toEqual({ nodeId: 'a', startMs: t0 + 120_000 });
    expect(fleet.heldGpus('pair')).toEqual([2, 3]);
    fleet.unhold('pair');
    // By 115 s: the latest pair in time (100 s and 110 s), not the earliest (5 s and 100 s, 95 s idle).
    expect(fleet.reserve(gpuJob(2), 'pair', t0 + 115_000)).toEqual({ nodeId: 'a', startMs: t0 + 110_000 });
    fleet.unhold('pair');
    // With a bound of 60 s nothing is in time, and with none at all: the earliest start.
    expect(fleet.reserve(gpuJob(2), 'pair', t0 + 60_000)).toEqual({ nodeId: 'a', startMs: t0 + 100_000 });
    expect(fleet.heldGpus('pair')).toEqual([0, 1]);
    fleet.unhold('pair');
    expect(fleet.reserve(gpuJob(2), 'pair')?.startMs).toBe(t0 + 100_000);
  });

  it('makes a plain hold of a reservation over work whose end is unknown: nothing backfills', () => {
    const { fleet, now } = testFleet();
    addNode(fleet, 'a', { gpus: 2 });
    claimed(fleet.place(gpuJob(1), 'restored'));
    expect(fleet.reserve(gpuJob(2), 'big')).toEqual({ nodeId: 'a', startMs: undefined });
    expect(fleet.place(gpuJob(1), 'short', now() + 1)).toBe('no-capacity');
  });

  it('holds the cores preemption frees for a job without GPUs: another job does not take them', () => {
    const { fleet } = testFleet();
    addNode(fleet, 'host', { gpus: 0, backends: ['command'], cores: 4 });
    const victim = claimed(fleet.place(cpuJob(4, 0, true), 'victim'));
    const urgent = cpuJob(4, 0, true);
    expect(fleet.fitsAfter('host', urgent, [victim], 'urgent')).toBe(true);
    expect(fleet.holdAfter('host', urgent, [victim], 'urgent')).toBe(true);
    fleet.release(victim);
    expect(fleet.place(cpuJob(1, 0, true), 'other')).toBe('no-capacity');
    expect(where(fleet.place(urgent, 'urgent'))).toBe('host/');
    fleet.unhold('urgent');
  });

  it('lets a job hold cores only beyond what its stopping victims still hold: the rest stays open to others', () => {
    const { fleet } = testFleet();
    addNode(fleet, 'host', { gpus: 0, backends: ['command'], cores: 32 });
    const victim = claimed(fleet.place(cpuJob(16, 0, true), 'victim'));
    const urgent = cpuJob(20, 0, true);
    expect(fleet.holdAfter('host', urgent, [victim], 'urgent')).toBe(true);
    // While the victim stops: 16 cores are its, 4 more are held, 12 are anyone's.
    expect(fleet.place(cpuJob(13, 0, true), 'other')).toBe('no-capacity');
    const other = claimed(fleet.place(cpuJob(12, 0, true), 'other'));
    fleet.release(victim);
    expect(fleet.place(cpuJob(1, 0, true), 'another')).toBe('no-capacity');
    expect(where(fleet.place(urgent, 'urgent'))).toBe('host/');
    fleet.release(other);
  });

  it('chooses victims only where the room would be usable: a free GPU some other process uses stays in use', () => {
    const { fleet } = testFleet();
    addNode(fleet, 'a', { gpus: 2 });
    addNode(fleet, 'b', { gpus: 2 });
    const onA = claimed(fleet.place(gpuJob(1), 'a-job'));
    expect(onA.nodeId).toBe('a');
    fleet.observe('a', [{ index: 1 - onA.gpuIndices[0]!, utilization: 1, memoryUsedBytes: 70 * GiB }]);
    const onB = [claimed(fleet.place(gpuJob(1), 'b-0')), claimed(fleet.place(gpuJob(1), 'b-1'))];
    expect(onB.map((c) => c.nodeId)).toEqual(['b', 'b']);
    expect(fleet.fitsAfter('a', gpuJob(2), [onA], 'urgent')).toBe(false);
    expect(fleet.fitsAfter('b', gpuJob(2), onB, 'urgent')).toBe(true);
  });

  it('starts a replica on the GPUs preemption freed for its sequence, not on equally good ones elsewhere', () => {
    const { fleet } = testFleet();
    addNode(fleet, 'first', { gpus: 1 });
    addNode(fleet, 'held', { gpus: 1 });
    const elsewhere = claimed(fleet.place(gpuJob(1), 'job'));
    const victim = claimed(fleet.place(gpuJob(1), 'victim'));
    expect([elsewhere.nodeId, victim.nodeId]).toEqual(['first', 'held']);
    expect(fleet.holdAfter('held', sequence(), [victim], 'urgent')).toBe(true);
    fleet.release(victim);
    fleet.release(elsewhere);
    expect(claimed(fleet.place(sequence(), 'urgent')).nodeId).toBe('held');
  });

  it('knows which kinds of room it has', () => {
    const { fleet } = testFleet();
    expect(fleet.hasRoom()).toBe(false);
    addNode(fleet, 'a', { gpus: 1, cores: 1 });
    expect([fleet.hasRoom('gpus'), fleet.hasRoom('sequence'), fleet.hasRoom('cpu')]).toEqual([true, true, true]);
    claimed(fleet.place(gpuJob(1)));
    claimed(fleet.place(cpuJob(1)));
    expect(fleet.hasRoom()).toBe(false);
    fleet.remove('a');
    expect(fleet.hasRoom()).toBe(false);
  });

  it('voids the claims of a removed node: releasing them later changes nothing', () => {
    const { fleet } = testFleet();
    addNode(fleet, 'a', { gpus: 1 });
    const job = claimed(fleet.place(gpuJob(1)));
    addNode(fleet, 'a', { gpus: 1 });
    const again = claimed(fleet.place(gpuJob(1)));
    fleet.release(job);
    expect(fleet.place(gpuJob(1))).toBe('no-capacity');
    fleet.release(again);
    expect(where(fleet.place(gpuJob(1)))).toBe('a/0');
  });

  it('estimates what a demand counts for fair share before it is placed', () => {
    const { fleet } = testFleet();
    addNode(fleet, 'a');
    expect(fleet.estimateResources(gpuJob(2))).toEqual({ gpus: 2, gpuMemoryBytes: 160 * GiB, cpus: 0 });
    expect(fleet.estimateResources(cpuJob(3))).toEqual({ gpus: 0, gpuMemoryBytes: 0, cpus: 3 });
    const s = fleet.estimateResources(sequence(GLM.name, 8192));
    expect(s.gpus).toBeGreaterThan(0);
    expect(s.gpus).toBeLessThan(0.02);
  });
});

// ---- the claim model's invariants, under any sequence of operations --------------------------------

type Op =
  | { op: 'place'; demand: Demand }
  | { op: 'release'; pick: number }
  | { op: 'lose'; node: number }
  | { op: 'rejoin'; node: number }
  | { op: 'report'; node: number; waiting: number }
  | { op: 'tick'; ms: number }
  | { op: 'preempt'; demand: Demand; victims: number[] };

const NODES = ['s0', 's1', 'c0', 'v0'];

const arbDemand: fc.Arbitrary<Demand> = fc.oneof(
  fc.record({ n: fc.constantFrom(1, 2, 4, 8), gib: fc.integer({ min: 0, max: 80 }) }).map(({ n, gib }) => gpuJob(n, gib * GiB)),
  fc.record({ model: fc.constantFrom(GLM.name, LLAMA_70B.name, 'served'), tokens: fc.integer({ min: 1, max: 131_072 }) }).map(({ model, tokens }) => sequence(model, model === GLM.name ? Math.min(tokens, 8192) : tokens)),
  fc.record({ cores: fc.integer({ min: 1, max: 6 }), gib: fc.integer({ min: 0, max: 16 }), program: fc.boolean() }).map(({ cores, gib, program }) => cpuJob(cores, gib * GiB, program)),
);

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: arbDemand.map((demand) => ({ op: 'place' as const, demand })) },
  { weight: 4, arbitrary: fc.nat().map((pick) => ({ op: 'release' as const, pick })) },
  { weight: 1, arbitrary: fc.nat({ max: NODES.length - 1 }).map((node) => ({ op: 'lose' as const, node })) },
  { weight: 1, arbitrary: fc.nat({ max: NODES.length - 1 }).map((node) => ({ op: 'rejoin' as const, node })) },
  { weight: 2, arbitrary: fc.record({ node: fc.nat({ max: NODES.length - 1 }), waiting: fc.integer({ min: 0, max: 100 }) }).map((r) => ({ op: 'report' as const, ...r })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 3000 }).map((ms) => ({ op: 'tick' as const, ms })) },
  { weight: 2, arbitrary: fc.record({ demand: arbDemand, victims: fc.array(fc.nat(), { maxLength: 6 }) }).map((r) => ({ op: 'preempt' as const, ...r })) },
);

function join(fleet: ReturnType<typeof testFleet>['fleet'], node: string): void {
  if (node.startsWith('s')) addNode(fleet, node, { gpus: 8, cores: 8, memoryBytes: 32 * GiB, maxSequences: 8 });
  else if (node.startsWith('c')) addNode(fleet, node, { gpus: 0, backends: ['command'], cores: 8, memoryBytes: 32 * GiB });
  else {
    addNode(fleet, node, { gpus: 2, backends: ['openai'], models: ['served'] });
    fleet.observe(node, [], [{ id: `${node}:served`, model: 'served', gpuIndices: [0, 1], ready: true, external: true, capacityTokens: 500_000, running: 0, waiting: 0, kvCacheUsage: 0 }]);
  }
}

/** Every invariant of the claim model, checked against the live claims. */
function checkBooks(fleet: ReturnType<typeof testFleet>['fleet']): void {
  const live = [...fleet.liveClaims()];
  for (const node of fleet.nodes()) {
    const mine = live.filter((c) => c.nodeId === node.nodeId);
    const jobs = mine.filter((c) => c.replicaId === undefined && c.gpuIndices.length > 0);
    for (const gpu of node.gpus) {
      // Exclusive: a GPU is one job's, or one replica's, or free.
      expect(gpu.job !== undefined && gpu.replica !== undefined).toBe(false);
      const holders = jobs.filter((c) => c.gpuIndices.includes(gpu.index));
      expect(holders.length).toBeLessThanOrEqual(1);
      expect(gpu.job).toBe(holders[0]);
      if (gpu.replica) expect(node.replicas.get(gpu.replica.id)).toBe(gpu.replica);
    }
    for (const r of node.replicas.values()) {
      const seqs = mine.filter((c) => c.replicaId === r.id);
      expect(r.sequences).toBe(seqs.length);
      expect(r.usedTokens).toBe(seqs.reduce((s, c) => s + c.demand.tokens, 0));
      expect(r.usedTokens).toBeLessThanOrEqual(r.capacityTokens);
      expect(r.sequences).toBeLessThanOrEqual(r.maxSequences);
      for (const i of r.gpuIndices) expect(node.gpus.find((g) => g.index === i)?.replica).toBe(r);
    }
    // The counters placement's quick rejects read agree with the GPUs.
    expect(node.freeGpus).toBe(node.gpus.filter((g) => !g.job && !g.replica).length);
    expect(node.idleGpus).toBe(node.gpus.filter((g) => g.replica && !g.replica.external && g.replica.sequences === 0).length);
    expect(node.heldGpus).toBe(node.gpus.filter((g) => g.heldFor !== undefined).length);
    expect(node.cpuClaimedMillis).toBe(mine.reduce((s, c) => s + c.demand.cpuMillis, 0));
    expect(node.cpuClaimedMillis).toBeLessThanOrEqual(node.cpuMillis);
    expect(node.memoryClaimedBytes).toBeLessThanOrEqual(node.memoryBytes);
    expect(node.claims).toBe(mine.length);
  }
}

describe('Fleet claim model, by property', () => {
  it('keeps GPUs exclusive and nothing over-claimed through any places, releases, node losses, reports and preemptions, and every preemption yields the room it promised', () => {
    fc.assert(
      fc.property(fc.array(arbOp, { minLength: 1, maxLength: 80 }), (ops) => {
        const t = testFleet({ replicaReportGraceMs: 2000 });
        const { fleet } = t;
        for (const n of NODES) join(fleet, n);
        const held: Claim[] = [];
        let serial = 0;
        for (const o of ops) {
          switch (o.op) {
            case 'place': {
              const r = fleet.place(o.demand);
              if (typeof r !== 'string') held.push(r);
              break;
            }
            case 'release': {
              if (held.length === 0) break;
              const [c] = held.splice(o.pick % held.length, 1);
              fleet.release(c!);
              break;
            }
            case 'lose':
              fleet.remove(NODES[o.node]!);
              break;
            case 'rejoin':
              if (!fleet.get(NODES[o.node]!)) join(fleet, NODES[o.node]!);
              break;
            case 'report': {
              const node = NODES[o.node]!;
              if (fleet.get(node)) fleet.observe(node, [], loadedReports(fleet, node, { waiting: o.waiting }));
              break;
            }
            case 'tick':
              t.advance(o.ms);
              for (const n of NODES) if (fleet.get(n)) fleet.observe(n, []);
              break;
            case 'preempt': {
              const liveHeld = held.filter((c) => [...fleet.liveClaims()].includes(c));
              if (liveHeld.length === 0) break;
              const victims = [...new Set(o.victims.map((v) => liveHeld[v % liveHeld.length]!))];
              if (victims.length === 0) break;
              const nodeId = victims[0]!.nodeId;
              const onNode = victims.filter((v) => v.nodeId === nodeId);
              const holder = `preemptor-${serial++}`;
              // (Decision preempts only for work that fits nowhere; this also tries work that fits elsewhere already.)
              const fitsNow = NODES.some((n) => fleet.fitsAfter(n, o.demand, []));
              if (!fleet.fitsAfter(nodeId, o.demand, onNode, holder)) break;
              // The promise: hold what it would take, release the victims, and placement finds it there.
              expect(fleet.holdAfter(nodeId, o.demand, onNode, holder)).toBe(true);
              for (const v of onNode) {
                fleet.release(v);
                held.splice(held.indexOf(v), 1);
              }
              const placed = fleet.place(o.demand, holder);
              // A job goes where room was made for it; a sequence that fitted elsewhere already
              // (a warm replica) rightly goes there instead of a cold start.
              if (o.demand.kind !== 'sequence' || !fitsNow) expect(typeof placed === 'string' ? placed : placed.nodeId).toBe(nodeId);
              else expect(typeof placed).not.toBe('string');
              fleet.unhold(holder);
              if (typeof placed !== 'string') held.push(placed);
              break;
            }
          }
          fleet.takeCommands();
          checkBooks(fleet);
        }
        for (const c of held) fleet.release(c);
        // Everything released: no claim, no sequence or core booked anywhere.
        expect([...fleet.liveClaims()]).toHaveLength(0);
        checkBooks(fleet);
      }),
      { numRuns: 400 },
    );
  });
});
