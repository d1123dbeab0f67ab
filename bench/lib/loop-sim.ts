import {
  DEFAULT_FEEDBACK_CONFIG,
  FeedbackLoop,
  RunTimePredictor,
  seededRandom,
  type BoostChange,
  type Claim,
  type ClassLabel,
  type FeedbackConfig,
  type FleetSnapshot,
  type NodeVerdict,
  type ReplicaReport,
  type SloReading,
  type TaskOutcome,
  type WarmChange,
} from '@autoglm/core';
import { LoopDispatcher } from './loop-dispatcher';
import type { LoopModel } from './loop-workload';
import type { FleetShape, Work } from './quality-workload';
import { EndHeap } from './end-heap';
import { simFleet } from './sim-fleet';

export interface LoopSimOptions {
  fleet: FleetShape;
  tenants: Array<{ name: string; share: number }>;
  models: readonly LoopModel[];
  /** On: the loop's changes are applied; off: it is evaluated alike (the same readings) and nothing is applied. */
  loopOn: boolean;
  /** The loop's settings. @default DEFAULT_FEEDBACK_CONFIG */
  feedback?: FeedbackConfig;
  /** Attempts started on `nodeId` from `fromMs` fail with probability `rate`, partway through their run. */
  failure: { nodeId: string; fromMs: number; rate: number } | undefined;
  /** Urgent requests' TTFT bound, for the Dispatcher's deadline (the urgent-ttft SLO's threshold). */
  sloTtftMs: number;
  tickMs: number;
  /** The loop is fed and evaluated from this time on (the fleet warms up before it). */
  attachMs: number;
  /** A failed attempt is queued again this many times at most. */
  maxRetries: number;
  spanMs: number;
  seed: number;
}

/** A change the loop decided, when, and whether it was applied (loop on). */
export type Decided<T> = T & { atMs: number; applied: boolean };

export interface LoopTrace {
  /** Every attempt that ended (also reported to the loop), in time order. */
  outcomes: TaskOutcome[];
  /** The loop's SLO readings at each evaluation. */
  ticks: Array<{ atMs: number; slos: readonly SloReading[] }>;
  boosts: Array<Decided<BoostChange>>;
  warm: Array<Decided<WarmChange>>;
  verdicts: Array<Decided<NodeVerdict>>;
  alertsFired: number;
  coldStarts: Array<{ atMs: number; model: string }>;
  /** Requests placed on a replica still loading: they waited for a cold start. */
  coldWaits: Array<{ atMs: number; className: Work['className'] }>;
  /** Failed attempts (injected), by node. */
  failures: Array<{ atMs: number; nodeId: string }>;
  /** Tasks that failed more than maxRetries times. */
  gaveUp: number;
  /** Tasks still queued when the run ended (never judged). */
  queuedAtEnd: number;
  wallMs: number;
}

interface Attempt {
  readonly work: Work;
  readonly claim: Claim;
  /** When this attempt's task became runnable (arrival, or its requeue). */
  readonly readyMs: number;
  readonly placedMs: number;
  readonly runStartMs: number;
  /** When it ends: its whole run, or the moment it fails. */
  readonly endMs: number;
  readonly fails: boolean;
  readonly seq: number;
  stopped: boolean;
}

const LABELS: Record<Work['className'], ClassLabel> = { urgent: 'urgent', normal: 'normal', background: 'background' };

/**
 * The quality benchmark's discrete-event simulation (quality-sim.ts
 * simulate(): the core Fleet placing for the core Dispatcher, arrivals,
 * completions and replicas becoming ready as events, a scheduling pass at
 * every event time) closed by the feedback loop: every `tickMs` the loop is
 * evaluated on a snapshot of the fleet and, when on, its boosts, warm floors
 * and quarantines are applied as decision would apply them. Every attempt
 * that ends is reported to the loop as the monitor would see it. Runs until
 * `spanMs` (work still queued then is not judged).
 */
export function simulateLoop(work: readonly Work[], o: LoopSimOptions): LoopTrace {
  const started = process.hrtime.bigint();
  let now = 0;
  const shapes = new Map(o.models.map((m) => [m.shape.name, m.shape]));
  const coldStartMs = new Map(o.models.map((m) => [m.shape.name, m.coldStartMs]));
  const fleet = simFleet(o.fleet, () => now, (model) => shapes.get(model));

  const scheduler = new LoopDispatcher(fleet, o.tenants, o.fleet.gpusPerNode, o.sloTtftMs);
  const loop = new FeedbackLoop(o.feedback ?? DEFAULT_FEEDBACK_CONFIG, undefined, undefined, o.tickMs);
  const predictor = new RunTimePredictor();
  const failRandom = seededRandom(o.seed * 104_729 + 5);
  const trace: LoopTrace = { outcomes: [], ticks: [], boosts: [], warm: [], verdicts: [], alertsFired: 0, coldStarts: [], coldWaits: [], failures: [], gaveUp: 0, queuedAtEnd: 0, wallMs: 0 };

  const running = new Map<string, Attempt>();
  const ends = new EndHeap<Attempt>();
  const loading = new Map<string, { nodeId: string; readyMs: number }>();
  const dirty = new Set<string>();
  /** When each queued task became runnable this time, and how many times each task failed. */
  const readyAt = new Map<string, number>();
  const failedAttempts = new Map<string, number>();
  // What the snapshot needs, kept as work moves: in flight by model, pending by class, batch GPUs.
  const inFlightByModel = new Map<string, number>();
  const pendingByClass = new Map<string, number>();
  const batchGpus = { inUse: 0, queued: 0 };
  let seq = 0;
  const bump = (m: Map<string, number>, key: string, d: number) => m.set(key, (m.get(key) ?? 0) + d);

  const takeCommands = () => {
    for (const c of fleet.takeCommands()) {
      dirty.add(c.nodeId);
      if (c.kind === 'evict') loading.delete(c.replicaId);
      else {
        loading.set(c.replica.id, { nodeId: c.nodeId, readyMs: now + (coldStartMs.get(c.replica.model) ?? 0) });
        trace.coldStarts.push({ atMs: now, model: c.replica.model });
      }
    }
  };
  const report = () => {
    for (const nodeId of dirty) {
      const node = fleet.get(nodeId);
      if (!node) continue;
      const replicas: ReplicaReport[] = [];
      for (const r of node.replicas.values()) {
        const ready = !loading.has(r.id);
        replicas.push({ id: r.id, model: r.model, gpuIndices: [...r.gpuIndices], ready, external: false, capacityTokens: r.capacityTokens, running: ready ? r.sequences : 0, waiting: ready ? 0 : r.sequences, kvCacheUsage: r.usedTokens / r.capacityTokens });
      }
      fleet.observe(nodeId, [], replicas);
    }
    dirty.clear();
  };
  const enqueue = (w: Work) => {
    readyAt.set(w.id, now);
    if (now >= o.attachMs) loop.sloTracker.waitStarted(w.id, w.tenant, LABELS[w.className], now);
    if (w.kind === 'inference') bump(inFlightByModel, w.demand.model, 1);
    else batchGpus.queued += w.gpus;
    bump(pendingByClass, LABELS[w.className], 1);
    scheduler.enqueue(w, now, predictor.predict(w.spec, w.tenant));
  };
  const start = (w: Work, claim: Claim) => {
    takeCommands();
    bump(pendingByClass, LABELS[w.className], -1);
    if (w.kind === 'batch') {
      batchGpus.queued -= w.gpus;
      batchGpus.inUse += w.gpus;
    }
    // A sequence on a replica still loading starts when it serves.
    const runStartMs = claim.replicaId !== undefined ? Math.max(now, loading.get(claim.replicaId)?.readyMs ?? now) : now;
    if (runStartMs > now) trace.coldWaits.push({ atMs: now, className: w.className });
    const fails = o.failure !== undefined && claim.nodeId === o.failure.nodeId && now >= o.failure.fromMs && failRandom() < o.failure.rate;
    // A failing attempt dies partway: after 20–80 % of its run.
    const endMs = runStartMs + w.serviceMs * (fails ? 0.2 + 0.6 * failRandom() : 1);
    const a: Attempt = { work: w, claim, readyMs: readyAt.get(w.id) ?? now, placedMs: now, runStartMs, endMs, fails, seq: seq++, stopped: false };
    readyAt.delete(w.id);
    loop.sloTracker.waitEnded(w.id, now, true, (now - a.readyMs) / 1000);
    running.set(w.id, a);
    ends.push(a);
    dirty.add(claim.nodeId);
  };
  const end = (a: Attempt, how: 'succeeded' | 'failed' | 'stopped') => {
    running.delete(a.work.id);
    fleet.release(a.claim);
    dirty.add(a.claim.nodeId);
    scheduler.released(a.work, now);
    const w = a.work;
    if (w.kind === 'inference') bump(inFlightByModel, w.demand.model, -1);
    else batchGpus.inUse -= w.gpus;
    const inference = w.kind === 'inference';
    const succeeded = how === 'succeeded';
    const outcome: TaskOutcome = {
      atMs: now,
      tenant: w.tenant,
      priorityClass: LABELS[w.className],
      model: inference ? w.demand.model : 'none',
      nodeId: a.claim.nodeId,
      succeeded,
      stopped: how === 'stopped',
      queueSeconds: (a.placedMs - a.readyMs) / 1000,
      // From placement to the first token: the cold start it waited for, then its prefill.
      ttftSeconds: inference && succeeded ? (a.runStartMs - a.placedMs + w.prefillMs) / 1000 : undefined,
      // From placement, as an agent's run time is from the attempt's start (the time to first token too).
      runSeconds: (now - a.placedMs) / 1000,
      tokens: inference ? w.spec.inputTokens + w.outputTokens : undefined,
      outputTokens: inference ? w.outputTokens : undefined,
      deadlineMet: undefined,
    };
    trace.outcomes.push(outcome);
    if (now >= o.attachMs) loop.finished(outcome);
  };
  const schedulePass = () => {
    for (let round = 0; round < 32; round++) {
      scheduler.place(now, start);
      takeCommands();
      const victims = scheduler.preempt(now);
      if (victims.length === 0) return;
      for (const id of victims) {
        const a = running.get(id);
        if (!a) continue;
        a.stopped = true;
        end(a, 'stopped');
        enqueue(a.work);
      }
    }
  };
  const snapshot = (): FleetSnapshot => {
    const nodes: Array<{ nodeId: string; gpus: number }> = [];
    const replicas = new Map<string, { count: number; capacityTokens: number; gpus: number }>();
    for (const node of fleet.nodes()) {
      if (node.health === 'lost') continue;
      nodes.push({ nodeId: node.nodeId, gpus: node.gpus.length });
      if (node.health !== 'ready') continue;
      for (const r of node.replicas.values()) {
        const m = replicas.get(r.model) ?? { count: 0, capacityTokens: r.capacityTokens, gpus: r.gpuIndices.length };
        m.count += 1;
        replicas.set(r.model, m);
      }
    }
    return {
      nodes,
      replicas,
      inFlightByModel: new Map(inFlightByModel),
      pendingByClass: new Map(pendingByClass),
      batchGpusInUse: batchGpus.inUse,
      batchGpusQueued: batchGpus.queued,
      sequencesPerReplica: o.fleet.slotsPerGpu,
    };
  };
  const tick = () => {
    const r = loop.evaluate(now, snapshot());
    trace.ticks.push({ atMs: now, slos: r.slos });
    trace.alertsFired += r.alertChanges.filter((a) => a.state === 'firing').length;
    for (const b of r.boosts) trace.boosts.push({ ...b, atMs: now, applied: o.loopOn });
    for (const w of r.warm) trace.warm.push({ ...w, atMs: now, applied: o.loopOn });
    for (const v of r.nodes) trace.verdicts.push({ ...v, atMs: now, applied: o.loopOn });
    if (!o.loopOn) return;
    for (const b of r.boosts) scheduler.boost(b.tenant, b.to, now);
    if (r.warm.length > 0) fleet.setWarmFloors(Object.fromEntries(r.warm.map((w) => [w.model, w.to])));
    for (const v of r.nodes) {
      fleet.setHealth(v.nodeId, v.kind === 'quarantine' ? 'draining' : 'ready');
      dirty.add(v.nodeId);
    }
    if (r.nodes.length > 0) scheduler.fleetChanged(now);
  };

  let next = 0;
  let nextTickMs = o.attachMs;
  for (;;) {
    while (ends.peek()?.stopped) ends.pop();
    let readyMs = Infinity;
    for (const l of loading.values()) readyMs = Math.min(readyMs, l.readyMs);
    const wake = scheduler.wakeAtMs();
    const t = Math.min(work[next]?.arrivalMs ?? Infinity, ends.peek()?.endMs ?? Infinity, readyMs, wake !== undefined && wake > now ? wake : Infinity, nextTickMs);
    if (t > o.spanMs) break;
    now = t;
    for (const [id, l] of loading) {
      if (l.readyMs > now) continue;
      loading.delete(id);
      dirty.add(l.nodeId);
    }
    for (let a = ends.peek(); a && a.endMs <= now; a = ends.peek()) {
      ends.pop();
      if (a.stopped) continue;
      if (a.fails) {
        end(a, 'failed');
        trace.failures.push({ atMs: now, nodeId: a.claim.nodeId });
        const n = (failedAttempts.get(a.work.id) ?? 0) + 1;
        failedAttempts.set(a.work.id, n);
        // Queued again at once, as decision retries a failed attempt.
        if (n <= o.maxRetries) enqueue(a.work);
        else trace.gaveUp += 1;
      } else {
        end(a, 'succeeded');
        predictor.observe(a.work.spec, a.endMs - a.runStartMs, { tenant: a.work.tenant, outputTokens: a.work.kind === 'inference' ? a.work.outputTokens : undefined });
      }
    }
    for (; next < work.length && work[next]!.arrivalMs <= now; next++) {
      const w = work[next]!;
      if (now >= o.attachMs) loop.arrived({ atMs: now, tenant: w.tenant, model: w.kind === 'inference' ? w.demand.model : '', inference: w.kind === 'inference' });
      enqueue(w);
    }
    if (now >= nextTickMs) {
      report();
      tick();
      nextTickMs += o.tickMs;
    }
    report();
    schedulePass();
    report();
  }
  trace.queuedAtEnd = scheduler.queued;
  trace.wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  return trace;
}
