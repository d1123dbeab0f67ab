import { RunTimePredictor, type Claim, type Fleet, type Policy, type PRESETS, type ReplicaReport } from '@autoglm/core';
import { MODELS } from './quality-mix';
import { PredictionLedger, type PredictionError } from './prediction-error';
import type { FleetShape, Work, Workload } from './quality-workload';
import { EndHeap } from './end-heap';
import { simFleet } from './sim-fleet';

export type PolicyName = 'fifo' | 'fifo-easy' | 'static' | 'dynamic';

export interface SimOptions {
  fleet: FleetShape;
  tenants: Array<{ name: string; share: number }>;
  placement: 'spread' | 'pack';
  /** Urgent requests' SLO: time to first token at most this (their deadline). */
  sloTtftMs: number;
  /** The dynamic policy's weights; undefined: DEFAULT_POLICY's as they are. */
  preset: keyof typeof PRESETS | undefined;
  /** Settings of the dynamic policy to use instead of its defaults (weights merge over the preset's). */
  policy?: Partial<Policy>;
}

/** A running attempt as a scheduler may see it: what it holds and when the predictor expects it to end. */
export interface RunningAttemptView {
  readonly claim: Claim;
  readonly predictedEndMs: number;
}

/** Running work by node, for schedulers that plan ahead (EASY backfill). */
export interface RunningView {
  on(nodeId: string): Iterable<RunningAttemptView>;
}

/** What the simulation loop needs of a policy. */
export interface Scheduler {
  readonly queued: number;
  /** Queues runnable work (on arrival, and again after a preemption) with its run time as predicted now. */
  enqueue(work: Work, nowMs: number, predictedRunMs: number): void;
  /** Places what runs now, calling `start` for each placement as it is made. */
  place(nowMs: number, start: (work: Work, claim: Claim) => void): void;
  /** The attempt ended or was stopped (its claim is already released). */
  released(work: Work, nowMs: number): void;
  /** Running work to stop now so higher-ranked work fits. */
  preempt(nowMs: number): string[];
  /** When a pass is due though no arrival or completion comes (the Dispatcher's preemption wait). */
  wakeAtMs(): number | undefined;
}

export type SchedulerFactory = (fleet: Fleet, running: RunningView, o: SimOptions) => Scheduler;

/** One attempt of a task: placed, running once its replica served (cold start), ended or stopped. */
export interface AttemptRecord {
  placedMs: number;
  runStartMs: number;
  endMs: number;
  preempted: boolean;
}

export interface Timeline {
  work: Work;
  attempts: AttemptRecord[];
  doneMs: number;
}

/** What one simulation leaves: every task's timeline, for quality-metrics.ts and quality-fairness.ts. */
export interface RunTrace {
  policy: PolicyName;
  timelines: Timeline[];
  /** When the last task finished. */
  makespanMs: number;
  coldStarts: { replicas: number; gpuSeconds: number };
  predictions: Record<string, PredictionError>;
  wallMs: number;
}

interface Attempt extends RunningAttemptView {
  readonly work: Work;
  readonly record: AttemptRecord;
  /** When it would end if not stopped: the heap's key (record.endMs moves to a stop). */
  readonly endMs: number;
  readonly seq: number;
  stopped: boolean;
}

const LOAD_MS = new Map(MODELS.map((m) => [m.shape.name, m.loadMs]));
const SHAPES = new Map(MODELS.map((m) => [m.shape.name, m.shape]));

/**
 * Replays the workload on a fresh fleet under one policy: a discrete-event
 * simulation on a fake clock (arrivals, completions, replicas becoming ready
 * and the scheduler's own wake-ups are the events; a scheduling pass runs at
 * every event time) until every request and job has finished. Run times are
 * predicted at submission by core's RunTimePredictor from the submission
 * alone (prompt, max_tokens, model, tenant, the submitter's expected
 * duration), learning from finished work; the truth is never shown to a
 * scheduler or the predictor before the task has run.
 */
export function simulate(workload: Workload, policy: PolicyName, makeScheduler: SchedulerFactory, o: SimOptions): RunTrace {
  const started = process.hrtime.bigint();
  let now = 0;
  const fleet = simFleet(o.fleet, () => now, (model) => SHAPES.get(model), o.placement);

  const running = new Map<string, Attempt>();
  const runningByNode = new Map<string, Set<Attempt>>();
  const view: RunningView = { on: (nodeId) => runningByNode.get(nodeId) ?? [] };
  const scheduler = makeScheduler(fleet, view, o);
  // One predictor per run, learning from that run's finished work only.
  const predictor = new RunTimePredictor();
  const ledger = new PredictionLedger();
  /** The latest prediction of each task's run time (the running attempt's predicted end comes from it). */
  const lastPrediction = new Map<string, number>();
  const scored = new Set<string>();
  const timelines = new Map<string, Timeline>(workload.work.map((w) => [w.id, { work: w, attempts: [], doneMs: NaN }]));
  const ends = new EndHeap<Attempt>();
  /** Replicas loading, by id: when they serve. */
  const loading = new Map<string, { nodeId: string; readyMs: number }>();
  /** Nodes whose replicas changed since their agent last reported (reported after each pass, as telemetry would). */
  const dirty = new Set<string>();
  const coldStarts = { replicas: 0, gpuSeconds: 0 };
  let seq = 0;

  const takeCommands = () => {
    for (const c of fleet.takeCommands()) {
      dirty.add(c.nodeId);
      if (c.kind === 'evict') loading.delete(c.replicaId);
      else {
        const loadMs = LOAD_MS.get(c.replica.model) ?? 0;
        loading.set(c.replica.id, { nodeId: c.nodeId, readyMs: now + loadMs });
        coldStarts.replicas += 1;
        coldStarts.gpuSeconds += (loadMs * c.replica.gpuIndices.length) / 1000;
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
  const enqueue = (work: Work) => {
    const runMs = predictor.predict(work.spec, work.tenant);
    lastPrediction.set(work.id, runMs);
    if (!scored.has(work.id)) {
      // Scored once, as submitted (a requeue after preemption predicts again, from more history).
      scored.add(work.id);
      if (work.kind === 'inference') {
        ledger.add('request run time', runMs, work.serviceMs);
        ledger.add('request output tokens', predictor.predictOutputTokens(work.spec, work.tenant), work.outputTokens);
        ledger.add('request output tokens: max_tokens as the guess', work.spec.maxOutputTokens, work.outputTokens);
      } else {
        ledger.add('batch run time', runMs, work.serviceMs);
        ledger.add("batch run time: the submitter's guess", expectedMsOf(work), work.serviceMs);
      }
    }
    scheduler.enqueue(work, now, runMs);
  };
  const start = (work: Work, claim: Claim) => {
    takeCommands();
    // A sequence on a replica still loading starts when it serves.
    const runStartMs = claim.replicaId !== undefined ? Math.max(now, loading.get(claim.replicaId)?.readyMs ?? now) : now;
    const record: AttemptRecord = { placedMs: now, runStartMs, endMs: runStartMs + work.serviceMs, preempted: false };
    const a: Attempt = { work, claim, record, endMs: record.endMs, predictedEndMs: runStartMs + (lastPrediction.get(work.id) ?? 0), seq: seq++, stopped: false };
    timelines.get(work.id)!.attempts.push(record);
    running.set(work.id, a);
    let onNode = runningByNode.get(claim.nodeId);
    if (!onNode) runningByNode.set(claim.nodeId, (onNode = new Set()));
    onNode.add(a);
    ends.push(a);
    dirty.add(claim.nodeId);
  };
  const end = (a: Attempt) => {
    running.delete(a.work.id);
    runningByNode.get(a.claim.nodeId)?.delete(a);
    fleet.release(a.claim);
    dirty.add(a.claim.nodeId);
    scheduler.released(a.work, now);
  };
  const schedulePass = () => {
    // Preemption frees capacity for a task that then needs another pass; a few rounds settle it.
    for (let round = 0; round < 32; round++) {
      scheduler.place(now, start);
      takeCommands();
      const victims = scheduler.preempt(now);
      if (victims.length === 0) return;
      for (const id of victims) {
        const a = running.get(id);
        if (!a) continue;
        a.stopped = true;
        a.record.endMs = now;
        a.record.preempted = true;
        end(a);
        // Queued again at once, as decision does; its run so far is lost (no checkpoints).
        enqueue(a.work);
      }
    }
  };

  const arrivals = workload.work;
  let next = 0;
  for (;;) {
    // A stopped attempt's end is no event.
    while (ends.peek()?.stopped) ends.pop();
    let readyMs = Infinity;
    for (const l of loading.values()) readyMs = Math.min(readyMs, l.readyMs);
    const wake = scheduler.wakeAtMs();
    const t = Math.min(arrivals[next]?.arrivalMs ?? Infinity, ends.peek()?.endMs ?? Infinity, readyMs, wake !== undefined && wake > now ? wake : Infinity);
    if (t === Infinity) break;
    now = t;
    for (const [id, l] of loading) {
      if (l.readyMs > now) continue;
      loading.delete(id);
      dirty.add(l.nodeId);
    }
    // Completions first: what they free is there for the arrivals of the same instant.
    for (let a = ends.peek(); a && a.endMs <= now; a = ends.peek()) {
      ends.pop();
      if (a.stopped) continue;
      end(a);
      timelines.get(a.work.id)!.doneMs = now;
      predictor.observe(a.work.spec, a.record.endMs - a.record.runStartMs, { tenant: a.work.tenant, outputTokens: a.work.kind === 'inference' ? a.work.outputTokens : undefined });
    }
    for (; next < arrivals.length && arrivals[next]!.arrivalMs <= now; next++) enqueue(arrivals[next]!);
    report();
    schedulePass();
    report();
  }
  if (scheduler.queued > 0) throw new Error(`${policy}: ${scheduler.queued} tasks never ran (the simulation stalled at ${(now / 1000).toFixed(0)} s)`);
  const all = [...timelines.values()];
  return {
    policy,
    timelines: all,
    makespanMs: all.reduce((last, t) => Math.max(last, t.doneMs), 0),
    coldStarts,
    predictions: ledger.summary(),
    wallMs: Number(process.hrtime.bigint() - started) / 1e6,
  };
}

function expectedMsOf(work: Work): number {
  const d = work.spec.payload?.$case === 'batch' ? work.spec.payload.batch.expectedDuration : undefined;
  return d ? d.seconds * 1000 + d.nanos / 1e6 : NaN;
}
