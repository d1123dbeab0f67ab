import { PriorityClass, TaskSpec } from '@autoglm/proto';
import { DEFAULT_PLACEMENT_POLICY, DEFAULT_POLICY, Dispatcher, FairShare, Fleet, PRESETS, RunTimePredictor, type Claim, type Policy } from '@autoglm/core';
import { percentile } from './report';
import { BENCH_MODEL, type FleetShape, type Work, type Workload } from './quality-workload';

export type PolicyName = 'fifo' | 'static' | 'dynamic';

/** What each policy is, in words, for the report. */
export const POLICY_DESCRIPTIONS: Record<PolicyName, string> = {
  fifo: 'strict FIFO: one queue in arrival order; the head waits until it fits and nothing passes it (placement by Fleet)',
  static: 'static priority: the Dispatcher with the class weight only (no age, deadline, fair share or cost; age bound off; no preemption)',
  dynamic: 'the Dispatcher with a preset, deadlines from RunTimePredictor, fair share 3:2:1, age bound 10 min, preemption of preemptible batch jobs',
};

export interface SimOptions {
  fleet: FleetShape;
  tenants: Array<{ name: string; share: number }>;
  placement: 'spread' | 'pack';
  /** Urgent requests' SLO: time to first token at most this. */
  sloTtftMs: number;
  /** The dynamic policy's weights. */
  preset: keyof typeof PRESETS;
  seed: number;
  /** Tenant shares are compared over windows this long. */
  shareWindowMs: number;
}

export interface ClassStats {
  count: number;
  queueMeanMs: number;
  queueP99Ms: number;
  ttftMeanMs: number;
  ttftP99Ms: number;
}

export interface BatchStats {
  count: number;
  /** Arrival to the start of the run that completed (a preempted run's start does not count). */
  queueMeanMs: number;
  queueP99Ms: number;
  /** Arrival to the first start, preempted or not. */
  firstStartMeanMs: number;
  /** Arrival to completion. */
  completionMeanMs: number;
  preemptions: number;
  /** GPU-seconds of attempts that were preempted (their work is lost). */
  wastedGpuSeconds: number;
}

export interface PolicyResult {
  policy: PolicyName;
  description: string;
  byClass: Record<'urgent' | 'normal' | 'background', ClassStats>;
  batch: BatchStats;
  /** Fraction of urgent requests with time to first token within the SLO. */
  urgentSloAttainment: number;
  /** Occupied GPU-seconds over GPU-seconds available, from the first to the last trace arrival. */
  utilisation: number;
  /** The same, without attempts that were later preempted. */
  goodputUtilisation: number;
  share: ShareStats;
  /** When the last work finished (simulated ms from the first arrival). */
  makespanMs: number;
  /** Attempts started (a preempted job is placed again). */
  placements: number;
  wallMs: number;
}

export interface ShareStats {
  /** Mean over windows with at least two backlogged tenants of the largest |measured − configured| share among them. */
  meanError: number;
  /** The largest such error in any window. */
  maxError: number;
  windows: number;
  /** Windows with at least two tenants backlogged throughout. */
  windowsCounted: number;
  /** Each tenant's part of all GPU time during the span (for reference; not every tenant is backlogged all the time). */
  overall: Record<string, number>;
}

interface Attempt {
  work: Work;
  claim: Claim;
  startMs: number;
  endMs: number;
  seq: number;
  stopped: boolean;
}

interface Outcome {
  firstStartMs?: number;
  lastStartMs?: number;
  doneMs?: number;
  preemptions: number;
}

/** What the simulation loop needs of a policy. */
interface Scheduler {
  readonly queued: number;
  enqueue(work: Work, nowMs: number): void;
  place(nowMs: number): Array<{ work: Work; claim: Claim }>;
  /** The attempt ended or was stopped (its claim is already released). */
  released(work: Work, nowMs: number): void;
  /** Running work to stop now so higher-ranked work fits. */
  preempt(nowMs: number): string[];
  observe(work: Work, runMs: number): void;
}

/**
 * Replays the workload on a fresh fleet under one policy: a discrete-event
 * simulation on a fake clock (arrivals and completions are the events; a
 * scheduling pass runs at every event time), until every request and job has
 * finished.
 */
export function simulate(workload: Workload, policyName: PolicyName, o: SimOptions): PolicyResult {
  const started = process.hrtime.bigint();
  let now = 0;
  const fleet = new Fleet(
    { ...DEFAULT_PLACEMENT_POLICY, maxGpuUtilization: 1, maxGpuMemoryFraction: o.fleet.memoryFraction, staleTelemetryMs: Infinity, mode: o.placement },
    () => now,
    (model) => (model === BENCH_MODEL.name ? BENCH_MODEL : undefined),
  );
  for (let n = 0; n < o.fleet.nodes; n++) {
    fleet.upsert({
      nodeId: `node-${n}`,
      address: '',
      models: ['*'],
      backends: ['sim'],
      cpuMillis: 0,
      memoryBytes: 0,
      maxSequencesPerReplica: o.fleet.slotsPerGpu,
      gpus: Array.from({ length: o.fleet.gpusPerNode }, (_, i) => ({ index: i, memoryTotalBytes: o.fleet.gpuMemoryBytes })),
    });
  }
  // Replicas start serving at once here (no cold start is simulated): decision's agents report them ready.
  const replicasReady = () => {
    for (const command of fleet.takeCommands()) {
      if (command.kind !== 'load') continue;
      const node = fleet.get(command.nodeId)!;
      fleet.observe(
        command.nodeId,
        [],
        [...node.replicas.values()].map((r) => ({ id: r.id, model: r.model, gpuIndices: [...r.gpuIndices], ready: true, external: false, capacityTokens: 0, running: 0, waiting: 0, kvCacheUsage: 0 })),
      );
    }
  };
  const byId = new Map(workload.work.map((w) => [w.id, w]));
  const scheduler = policyName === 'fifo' ? new StrictFifo(fleet) : new DispatcherScheduler(fleet, byId, policyName, o);
  const outcomes = new Map<string, Outcome>(workload.work.map((w) => [w.id, { preemptions: 0 }]));
  const usage = new UsageLedger(o.tenants.map((t) => t.name), workload.spanMs, o.shareWindowMs);
  const running = new Map<string, Attempt>();
  const ends = new AttemptHeap();
  let seq = 0;
  let placements = 0;

  const start = (work: Work, claim: Claim) => {
    const a: Attempt = { work, claim, startMs: now, endMs: now + work.serviceMs, seq: seq++, stopped: false };
    running.set(work.id, a);
    ends.push(a);
    const out = outcomes.get(work.id)!;
    out.firstStartMs ??= now;
    out.lastStartMs = now;
    usage.queued(work.tenant, -1, now);
    placements += 1;
  };
  const end = (a: Attempt, preempted: boolean) => {
    running.delete(a.work.id);
    fleet.release(a.claim);
    scheduler.released(a.work, now);
    usage.occupied(a.work.tenant, a.work.gpus, a.startMs, now, preempted);
  };
  const schedulePass = () => {
    // Preemption frees capacity for a task that then needs another pass; a few rounds settle it.
    for (let round = 0; round < 32; round++) {
      for (const p of scheduler.place(now)) start(p.work, p.claim);
      replicasReady();
      const victims = scheduler.preempt(now);
      if (victims.length === 0) return;
      for (const id of victims) {
        const a = running.get(id);
        if (!a) continue;
        a.stopped = true;
        end(a, true);
        outcomes.get(id)!.preemptions += 1;
        // Requeued at once, as decision does; its run so far is lost (no checkpoint).
        scheduler.enqueue(a.work, now);
        usage.queued(a.work.tenant, 1, now);
      }
    }
  };

  const arrivals = workload.work;
  let next = 0;
  for (;;) {
    const t = Math.min(arrivals[next]?.arrivalMs ?? Infinity, ends.peek()?.endMs ?? Infinity);
    if (t === Infinity) break;
    now = t;
    // Completions first: what they free is there for the arrivals of the same instant.
    for (let a = ends.peek(); a && a.endMs <= now; a = ends.peek()) {
      ends.pop();
      if (a.stopped) continue;
      end(a, false);
      outcomes.get(a.work.id)!.doneMs = now;
      scheduler.observe(a.work, a.endMs - a.startMs);
    }
    for (; next < arrivals.length && arrivals[next]!.arrivalMs <= now; next++) {
      scheduler.enqueue(arrivals[next]!, now);
      usage.queued(arrivals[next]!.tenant, 1, now);
    }
    schedulePass();
  }
  if (scheduler.queued > 0) throw new Error(`${policyName}: ${scheduler.queued} tasks never ran (the simulation stalled)`);
  usage.close(now);

  const classOf = (c: PriorityClass) => workload.work.filter((w) => w.kind === 'inference' && w.priorityClass === c);
  const classStats = (c: PriorityClass): ClassStats => {
    const ws = classOf(c);
    const queue = ws.map((w) => outcomes.get(w.id)!.firstStartMs! - w.arrivalMs).sort((a, b) => a - b);
    const ttft = ws.map((w) => outcomes.get(w.id)!.firstStartMs! - w.arrivalMs + w.prefillMs).sort((a, b) => a - b);
    return { count: ws.length, queueMeanMs: mean(queue), queueP99Ms: percentile(queue, 99), ttftMeanMs: mean(ttft), ttftP99Ms: percentile(ttft, 99) };
  };
  const urgent = classOf(PriorityClass.URGENT);
  const withinSlo = urgent.filter((w) => outcomes.get(w.id)!.firstStartMs! - w.arrivalMs + w.prefillMs <= o.sloTtftMs).length;
  const jobs = workload.work.filter((w) => w.kind === 'batch');
  const jobQueue = jobs.map((w) => outcomes.get(w.id)!.lastStartMs! - w.arrivalMs).sort((a, b) => a - b);
  const capacityMs = workload.fleetGpus * workload.spanMs;
  return {
    policy: policyName,
    description: POLICY_DESCRIPTIONS[policyName],
    byClass: {
      urgent: classStats(PriorityClass.URGENT),
      normal: classStats(PriorityClass.NORMAL),
      background: classStats(PriorityClass.BACKGROUND),
    },
    batch: {
      count: jobs.length,
      queueMeanMs: mean(jobQueue),
      queueP99Ms: percentile(jobQueue, 99),
      firstStartMeanMs: mean(jobs.map((w) => outcomes.get(w.id)!.firstStartMs! - w.arrivalMs)),
      completionMeanMs: mean(jobs.map((w) => outcomes.get(w.id)!.doneMs! - w.arrivalMs)),
      preemptions: jobs.reduce((s, w) => s + outcomes.get(w.id)!.preemptions, 0),
      wastedGpuSeconds: usage.wastedGpuMs / 1000,
    },
    urgentSloAttainment: urgent.length > 0 ? withinSlo / urgent.length : NaN,
    utilisation: (usage.busyGpuMs + usage.wastedInSpanGpuMs) / capacityMs,
    goodputUtilisation: usage.busyGpuMs / capacityMs,
    share: usage.shareStats(new Map(o.tenants.map((t) => [t.name, t.share]))),
    makespanMs: now,
    placements,
    wallMs: Number(process.hrtime.bigint() - started) / 1e6,
  };
}

/** FIFO as it is usually meant: arrival order, and a head that does not fit blocks everything behind it. */
class StrictFifo implements Scheduler {
  private queue: Work[] = [];
  private head = 0;

  constructor(private readonly fleet: Fleet) {}

  get queued(): number {
    return this.queue.length - this.head;
  }

  enqueue(work: Work): void {
    this.queue.push(work);
  }

  place(): Array<{ work: Work; claim: Claim }> {
    const placed: Array<{ work: Work; claim: Claim }> = [];
    while (this.head < this.queue.length && this.fleet.hasRoom()) {
      const work = this.queue[this.head]!;
      const claim = this.fleet.place(work.demand, work.id);
      if (typeof claim === 'string') break;
      placed.push({ work, claim });
      this.head += 1;
    }
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return placed;
  }

  released(): void {}

  preempt(): string[] {
    return [];
  }

  observe(): void {}
}

/** Static priority and the dynamic policy: the project's Dispatcher, FairShare and Fleet, as decision drives them. */
class DispatcherScheduler implements Scheduler {
  private readonly dispatcher: Dispatcher;
  private readonly predictor = new RunTimePredictor();
  private readonly dynamic: boolean;

  constructor(
    fleet: Fleet,
    private readonly byId: Map<string, Work>,
    policyName: 'static' | 'dynamic',
    private readonly o: SimOptions,
  ) {
    this.dynamic = policyName === 'dynamic';
    const policy: Policy = this.dynamic
      ? { ...DEFAULT_POLICY, preset: o.preset, weights: { ...PRESETS[o.preset] } }
      : {
          ...DEFAULT_POLICY,
          weights: { class: 10_000, age: 0, deadline: 0, dependency: 0, business: 0, fairshare: 0, cost: 0 },
          // No task ever becomes overdue: the order is class, then arrival.
          maxAgeMs: 365 * 24 * 3600_000,
          overdueShare: 0,
        };
    const fairShare = new FairShare(o.tenants, { halfLifeMs: policy.fairShareHalfLifeMs, nowMs: 0 });
    this.dispatcher = new Dispatcher({ fleet, fairShare, policy, nowMs: 0, demandOf: (id) => this.byId.get(id)?.demand });
    this.dispatcher.fleetChanged(0);
  }

  get queued(): number {
    return this.dispatcher.size;
  }

  enqueue(work: Work, nowMs: number): void {
    let predictedRunMs = work.expectedMs;
    let deadlineMs: number | undefined;
    if (this.dynamic && work.kind === 'inference') {
      const spec = this.specOf(work);
      predictedRunMs = this.predictor.predict(spec);
      // An interactive request's deadline: its first token within the SLO, so done by then plus its predicted run.
      if (work.priorityClass === PriorityClass.URGENT) {
        // (Inference is never preempted, so this runs once per request.)
        deadlineMs = work.arrivalMs + this.o.sloTtftMs + predictedRunMs;
      }
    }
    this.dispatcher.enqueue(
      {
        id: work.id,
        tenant: work.tenant,
        priorityClass: work.priorityClass,
        priority: 0,
        readySinceMs: nowMs,
        deadlineMs,
        predictedRunMs,
        resourceShare: work.gpus / this.o.fleet.gpusPerNode,
        preemptible: work.preemptible,
      },
      nowMs,
    );
  }

  place(nowMs: number): Array<{ work: Work; claim: Claim }> {
    return this.dispatcher.dispatch(nowMs).map((p) => ({ work: this.byId.get(p.task.id)!, claim: p.claim }));
  }

  released(work: Work, nowMs: number): void {
    this.dispatcher.release(work.id, nowMs);
  }

  preempt(nowMs: number): string[] {
    if (!this.dynamic) return [];
    return this.dispatcher.preempt(nowMs)?.victims.map((v) => v.id) ?? [];
  }

  observe(work: Work, runMs: number): void {
    if (!this.dynamic || work.kind !== 'inference') return;
    this.predictor.observe(this.specOf(work), runMs);
  }

  private specOf(work: Work): TaskSpec {
    return TaskSpec.fromPartial({ model: 'trace-llm', inputTokens: work.contextTokens, maxOutputTokens: work.generatedTokens, gpuCount: 1, priorityClass: work.priorityClass });
  }
}

/**
 * GPU time by tenant and window, and when each tenant had queued work, for
 * utilisation and tenant shares over the span [0, spanMs].
 */
class UsageLedger {
  busyGpuMs = 0;
  wastedInSpanGpuMs = 0;
  wastedGpuMs = 0;
  private readonly windows: number;
  private readonly gpuMs = new Map<string, Float64Array>();
  /** Windows in which the tenant had no queued work for a while. */
  private readonly idle = new Map<string, Uint8Array>();
  private readonly queuedCount = new Map<string, number>();
  private readonly idleSince = new Map<string, number>();

  constructor(
    private readonly tenants: string[],
    private readonly spanMs: number,
    private readonly windowMs: number,
  ) {
    this.windows = Math.floor(spanMs / windowMs);
    for (const t of tenants) {
      this.gpuMs.set(t, new Float64Array(this.windows));
      this.idle.set(t, new Uint8Array(this.windows));
      this.queuedCount.set(t, 0);
      this.idleSince.set(t, 0);
    }
  }

  queued(tenant: string, delta: number, nowMs: number): void {
    const before = this.queuedCount.get(tenant) ?? 0;
    const after = before + delta;
    this.queuedCount.set(tenant, after);
    if (before === 0 && after > 0) this.markIdle(tenant, this.idleSince.get(tenant) ?? 0, nowMs);
    if (before > 0 && after === 0) this.idleSince.set(tenant, nowMs);
  }

  occupied(tenant: string, gpus: number, fromMs: number, toMs: number, wasted: boolean): void {
    const a = Math.max(0, fromMs);
    const b = Math.min(this.spanMs, toMs);
    if (wasted) this.wastedGpuMs += (toMs - fromMs) * gpus;
    if (b > a) {
      if (wasted) this.wastedInSpanGpuMs += (b - a) * gpus;
      else this.busyGpuMs += (b - a) * gpus;
    }
    const series = this.gpuMs.get(tenant);
    if (!series) return;
    for (let w = Math.floor(a / this.windowMs); w < this.windows && w * this.windowMs < b; w++) {
      const overlap = Math.min(b, (w + 1) * this.windowMs) - Math.max(a, w * this.windowMs);
      if (overlap > 0) series[w]! += overlap * gpus;
    }
  }

  close(nowMs: number): void {
    for (const t of this.tenants) if ((this.queuedCount.get(t) ?? 0) === 0) this.markIdle(t, this.idleSince.get(t) ?? 0, nowMs);
  }

  shareStats(shares: Map<string, number>): ShareStats {
    const errors: number[] = [];
    for (let w = 0; w < this.windows; w++) {
      const backlogged = this.tenants.filter((t) => this.idle.get(t)![w] === 0);
      if (backlogged.length < 2) continue;
      const shareSum = backlogged.reduce((s, t) => s + (shares.get(t) ?? 1), 0);
      const usedSum = backlogged.reduce((s, t) => s + this.gpuMs.get(t)![w]!, 0);
      if (!(usedSum > 0)) continue;
      errors.push(Math.max(...backlogged.map((t) => Math.abs(this.gpuMs.get(t)![w]! / usedSum - (shares.get(t) ?? 1) / shareSum))));
    }
    const totals = new Map(this.tenants.map((t) => [t, this.gpuMs.get(t)!.reduce((s, x) => s + x, 0)]));
    const all = [...totals.values()].reduce((s, x) => s + x, 0);
    return {
      meanError: mean(errors),
      maxError: errors.length > 0 ? Math.max(...errors) : NaN,
      windows: this.windows,
      windowsCounted: errors.length,
      overall: Object.fromEntries([...totals].map(([t, ms]) => [t, all > 0 ? ms / all : NaN])),
    };
  }

  /** The tenant had nothing queued over (fromMs, toMs): windows overlapping that are not backlogged. */
  private markIdle(tenant: string, fromMs: number, toMs: number): void {
    if (!(toMs > fromMs)) return;
    const idle = this.idle.get(tenant);
    if (!idle) return;
    for (let w = Math.floor(fromMs / this.windowMs); w < this.windows && w * this.windowMs < toMs; w++) idle[w] = 1;
  }
}

/** Running attempts by end time (then start order, so runs are deterministic). */
class AttemptHeap {
  private readonly items: Attempt[] = [];

  peek(): Attempt | undefined {
    return this.items[0];
  }

  push(a: Attempt): void {
    const h = this.items;
    h.push(a);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  pop(): Attempt | undefined {
    const h = this.items;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: Attempt, b: Attempt): boolean {
  return a.endMs < b.endMs || (a.endMs === b.endMs && a.seq < b.seq);
}

function mean(xs: number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((s, x) => s + x, 0) / xs.length;
}
