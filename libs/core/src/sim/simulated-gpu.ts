import type { GpuInfo, GpuStatus, ModelServerLoad } from '@autoglm/proto';
import { decodeStepSeconds, prefillSeconds } from './latency-model';
import type { Scheduler } from './scheduler';
import { PseudoWords } from './token-text';

/** What the simulator needs to know about a model: its size and its KV-cache cost. */
export interface SimModel {
  readonly name: string;
  /** Bytes of GPU memory the weights occupy while resident. */
  readonly weightBytes: number;
  /** Bytes of KV cache per token of context (prompt plus generated). */
  readonly kvBytesPerToken: number;
}

/** How a simulated sequence ended: its budget ran out, it "emitted EOS" (stopAfterTokens), or it was cancelled. */
export type SequenceFinishReason = 'length' | 'stop' | 'cancelled';

export interface SequenceOutcome {
  readonly finishReason: SequenceFinishReason;
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Scheduler milliseconds from submit to admission into the batch (to the end if never admitted). */
  readonly queueTimeMs: number;
  /** Scheduler milliseconds from submit to the first token; 0 when none was produced. */
  readonly timeToFirstTokenMs: number;
  /** Scheduler milliseconds from submit to the end. */
  readonly totalTimeMs: number;
}

export interface SequenceRequest {
  /** Unique on this GPU while the sequence lives; also seeds the generated text. */
  readonly id: string;
  readonly model: SimModel;
  readonly promptTokens: number;
  /** The generation budget: the sequence's KV cache is reserved for the prompt plus this many tokens. */
  readonly maxTokens: number;
  /**
   * Ends the sequence after this many tokens (finish reason 'stop'), as a
   * model that emits its end-of-sequence token before the budget does. Without
   * it the sequence runs to its budget (the simulator writes no language).
   */
  readonly stopAfterTokens?: number;
  /** Admitted into the running batch: its prefill starts now. */
  onStart?(): void;
  onFirstToken?(): void;
  onTokens(text: string, count: number): void;
  /** Called exactly once, last. */
  onDone(outcome: SequenceOutcome): void;
}

export interface JobOutcome {
  readonly status: 'completed' | 'cancelled';
  /** Scheduler milliseconds the job held the GPU. */
  readonly runTimeMs: number;
}

export interface JobRequest {
  readonly id: string;
  /** GPU memory the job holds for its whole run. */
  readonly memoryBytes: number;
  /** Run time at time scale 1. */
  readonly durationMs: number;
  /** Called exactly once. */
  onDone(outcome: JobOutcome): void;
}

export interface SimulatedGpuOptions {
  /** Index on the host (the CUDA_VISIBLE_DEVICES numbering). */
  readonly index: number;
  /** Product name reported in telemetry, e.g. "Simulated H100 80GB". */
  readonly name: string;
  readonly memoryBytes: number;
  /**
   * How much faster than real time the GPU runs: step and job wall times are
   * divided by it. Must be > 0.
   * @default 1
   */
  readonly timeScale?: number;
  /**
   * Most sequences in the running batch (vLLM's `max_num_seqs`).
   * @default 256
   */
  readonly maxBatch?: number;
  /**
   * Most prompt tokens one prefill step takes (vLLM's `max_num_batched_tokens`):
   * a burst of long prompts is prefilled over several steps, so the first of
   * them is not held back by the last. A single longer prompt still goes alone.
   * @default 8192
   */
  readonly maxPrefillTokens?: number;
  /** @default 70 (an idle H100 SXM) */
  readonly idlePowerWatts?: number;
  /** @default 700 (H100 SXM TDP) */
  readonly maxPowerWatts?: number;
  readonly scheduler: Scheduler;
}

/** The request asks for more GPU memory than is free (or than exists: see `totalBytes`). */
export class SimOutOfMemoryError extends Error {
  constructor(
    message: string,
    readonly requiredBytes: number,
    readonly totalBytes: number,
  ) {
    super(message);
    this.name = 'SimOutOfMemoryError';
  }

  /** True when the request could fit once other work has left. */
  get couldFitLater(): boolean {
    return this.requiredBytes <= this.totalBytes;
  }
}

interface Sequence {
  readonly req: SequenceRequest;
  readonly words: PseudoWords;
  readonly submittedAt: number;
  admittedAt: number | undefined;
  firstTokenAt: number | undefined;
  generated: number;
  prefilled: boolean;
  done: boolean;
  /** Set only for a zero-token sequence, which finishes on the next tick without entering the batch. */
  cancelZeroTimer: (() => void) | undefined;
}

interface Step {
  readonly kind: 'prefill' | 'decode';
  readonly members: readonly Sequence[];
  /** Ideal end on the scheduler's clock; the next step starts here, so late timers do not add up to drift. */
  readonly endsAt: number;
  cancelTimer: (() => void) | undefined;
}

interface Job {
  readonly req: JobRequest;
  readonly startedAt: number;
  readonly cancelTimer: () => void;
}

interface Resident {
  readonly model: SimModel;
  lastUsedAt: number;
}

/**
 * A model replica this GPU is part of (tensor parallelism: each of the
 * replica's GPUs holds its shard of the weights and of the KV-cache pool).
 * Like an inference server started with gpu_memory_utilization, it takes its
 * memory up front: nothing else fits beside it. The first GPU of the replica
 * runs the engine; the others mirror its utilisation.
 */
interface HostedReplica {
  readonly id: string;
  /** This GPU's shard of the model. */
  readonly model: SimModel;
  /** This GPU's KV-cache pool, bytes. */
  readonly poolBytes: number;
  ready: boolean;
  /** The replica's first GPU, when this is not it. */
  readonly primary: SimulatedGpu | undefined;
}

/** Steps completed inline when a real-time scheduler has fallen behind, before yielding to the event loop. */
const MAX_INLINE_STEPS = 64;

/**
 * One GPU serving LLMs with continuous batching (the vLLM scheduling shape) and
 * running batch jobs, on an injected clock.
 *
 * Each engine step either prefills the sequences admitted since the last step
 * (giving each its first token) or decodes one token for every running
 * sequence; its duration comes from `latency-model`. Sequences of all resident
 * models share one batch: a simplification, a real host would run one server
 * per model.
 *
 * Admission reserves a sequence's whole KV budget (prompt + maxTokens), as
 * engines without preemption must, so a running sequence can never run out of
 * memory mid-generation and the simulator needs no recompute path. Memory
 * *used* is reported from the tokens actually held, as nvidia-smi would see a
 * growing cache.
 */
export class SimulatedGpu {
  readonly index: number;
  readonly name: string;
  readonly memoryBytes: number;
  readonly timeScale: number;
  readonly maxBatch: number;
  readonly maxPrefillTokens: number;
  private readonly idlePowerWatts: number;
  private readonly maxPowerWatts: number;
  private readonly scheduler: Scheduler;

  private readonly sequences = new Map<string, Sequence>();
  /** FIFO: admission stops at the first that does not fit, so a large request is not starved by small ones. */
  private readonly waiting: Sequence[] = [];
  private readonly running: Sequence[] = [];
  private readonly resident = new Map<string, Resident>();
  private readonly jobs = new Map<string, Job>();
  private replica: HostedReplica | undefined;
  private step: Step | undefined;
  private cancelKick: (() => void) | undefined;
  /** Scheduler milliseconds spent in engine steps so far (what utilisation over time is made of). */
  private busy = 0;

  constructor(options: SimulatedGpuOptions) {
    const timeScale = options.timeScale ?? 1;
    if (!(timeScale > 0) || !Number.isFinite(timeScale)) throw new RangeError(`timeScale must be > 0, got ${timeScale}`);
    const maxBatch = options.maxBatch ?? 256;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RangeError(`maxBatch must be a positive integer, got ${maxBatch}`);
    if (!(options.memoryBytes > 0)) throw new RangeError(`memoryBytes must be > 0, got ${options.memoryBytes}`);
    this.index = options.index;
    this.name = options.name;
    this.memoryBytes = options.memoryBytes;
    this.timeScale = timeScale;
    this.maxBatch = maxBatch;
    this.maxPrefillTokens = options.maxPrefillTokens ?? 8192;
    this.idlePowerWatts = options.idlePowerWatts ?? 70;
    this.maxPowerWatts = options.maxPowerWatts ?? 700;
    this.scheduler = options.scheduler;
  }

  /**
   * Queues a sequence. Throws `SimOutOfMemoryError` when the model's weights
   * plus the sequence's KV budget exceed the whole GPU, since waiting would
   * never help.
   */
  submit(req: SequenceRequest): void {
    if (this.sequences.has(req.id) || this.jobs.has(req.id)) throw new Error(`id "${req.id}" is already running on GPU ${this.index}`);
    if (!isCount(req.promptTokens)) throw new RangeError(`promptTokens must be a non-negative integer, got ${req.promptTokens}`);
    if (!isCount(req.maxTokens)) throw new RangeError(`maxTokens must be a non-negative integer, got ${req.maxTokens}`);
    const seq: Sequence = {
      req,
      words: new PseudoWords(req.id),
      submittedAt: this.scheduler.now(),
      admittedAt: undefined,
      firstTokenAt: undefined,
      generated: 0,
      prefilled: false,
      done: false,
      cancelZeroTimer: undefined,
    };
    if (this.replica && req.model.name !== this.replica.model.name) {
      throw new Error(`GPU ${this.index} holds replica ${this.replica.id} of "${this.replica.model.name}", not "${req.model.name}"`);
    }
    if (req.maxTokens === 0) {
      this.sequences.set(req.id, seq);
      seq.cancelZeroTimer = this.scheduler.setTimer(0, () => this.finish(seq, 'length', this.scheduler.now()));
      return;
    }
    const required = this.replica ? kvBudget(seq) : req.model.weightBytes + kvBudget(seq);
    // In a replica, a sequence has only its KV-cache pool: one larger than the pool never fits.
    const total = this.replica ? this.replica.poolBytes : this.memoryBytes;
    if (required > total) {
      const where = this.replica ? `replica ${this.replica.id}'s KV cache on GPU ${this.index} holds` : `GPU ${this.index} has`;
      throw new SimOutOfMemoryError(`model "${req.model.name}" with ${req.promptTokens} + ${req.maxTokens} tokens needs ${required} bytes; ${where} ${total}`, required, total);
    }
    this.sequences.set(req.id, seq);
    this.waiting.push(seq);
    this.kick();
  }

  /**
   * Runs a batch job now, holding `memoryBytes` at full utilisation. Idle
   * models' weights are evicted to make room; throws `SimOutOfMemoryError` when
   * it still does not fit.
   */
  runJob(req: JobRequest): void {
    this.checkJob(req);
    this.makeRoom(req.memoryBytes);
    const startedAt = this.scheduler.now();
    const cancelTimer = this.scheduler.setTimer(req.durationMs / this.timeScale, () => {
      this.jobs.delete(req.id);
      req.onDone({ status: 'completed', runTimeMs: this.scheduler.now() - startedAt });
      this.kick();
    });
    this.jobs.set(req.id, { req, startedAt, cancelTimer });
  }

  /** Throws what `runJob` would throw, without starting anything; lets a host start a multi-GPU job all-or-nothing. */
  checkJob(req: Pick<JobRequest, 'id' | 'memoryBytes' | 'durationMs'>): void {
    if (this.sequences.has(req.id) || this.jobs.has(req.id)) throw new Error(`id "${req.id}" is already running on GPU ${this.index}`);
    if (!(req.memoryBytes >= 0)) throw new RangeError(`memoryBytes must be >= 0, got ${req.memoryBytes}`);
    if (!(req.durationMs >= 0) || !Number.isFinite(req.durationMs)) throw new RangeError(`durationMs must be a finite number >= 0, got ${req.durationMs}`);
    // A server fills its GPU: a job beside a replica would run out of memory on a real one.
    if (this.replica) throw new SimOutOfMemoryError(`GPU ${this.index} holds replica ${this.replica.id}; job "${req.id}" does not fit beside it`, req.memoryBytes, this.memoryBytes);
    const available = this.memoryBytes - this.jobBytes() - this.reservedKvBytes() - this.busyWeightBytes();
    if (req.memoryBytes > available) {
      throw new SimOutOfMemoryError(
        `job "${req.id}" needs ${req.memoryBytes} bytes; GPU ${this.index} has ${Math.max(0, available)} free of ${this.memoryBytes}`,
        req.memoryBytes,
        this.memoryBytes,
      );
    }
  }

  /**
   * Ends a sequence or job early and frees its memory at once. Returns false
   * when the id is unknown (already finished). A step already in flight still
   * takes its time: a GPU cannot stop a kernel half-way.
   */
  cancel(id: string): boolean {
    const seq = this.sequences.get(id);
    if (seq !== undefined) {
      this.finish(seq, 'cancelled', this.scheduler.now());
      this.kick();
      return true;
    }
    const job = this.jobs.get(id);
    if (job !== undefined) {
      job.cancelTimer();
      this.jobs.delete(id);
      job.req.onDone({ status: 'cancelled', runTimeMs: this.scheduler.now() - job.startedAt });
      this.kick();
      return true;
    }
    return false;
  }

  /**
   * Makes this GPU part of a replica of `model` (its shard), taking the
   * weights and a KV-cache pool of `poolBytes` at once; sequences submitted
   * meanwhile wait until `replicaReady()`. Throws SimOutOfMemoryError when a
   * job or another replica is in the way: on a real GPU the server would not
   * start.
   */
  hostReplica(id: string, model: SimModel, poolBytes: number, primary?: SimulatedGpu): void {
    if (this.replica) throw new SimOutOfMemoryError(`GPU ${this.index} already holds replica ${this.replica.id}`, model.weightBytes + poolBytes, this.memoryBytes);
    const free = this.memoryBytes - this.jobBytes();
    if (this.jobs.size > 0 || model.weightBytes + poolBytes > free) {
      throw new SimOutOfMemoryError(
        `replica ${id} of "${model.name}" needs ${model.weightBytes + poolBytes} bytes on GPU ${this.index}, which has ${Math.max(0, free)} free${this.jobs.size > 0 ? ` (running ${this.jobs.size} job(s))` : ''}`,
        model.weightBytes + poolBytes,
        this.memoryBytes,
      );
    }
    // The server owns the GPU: whatever was loaded lazily goes.
    this.resident.clear();
    this.replica = { id, model, poolBytes, ready: false, primary };
  }

  /** The replica's weights are loaded: its waiting sequences start. */
  replicaReady(): void {
    if (!this.replica) return;
    this.replica.ready = true;
    this.kick();
  }

  /** Unloads the replica: its sequences end cancelled and its memory is free. */
  releaseReplica(): void {
    if (!this.replica) return;
    for (const seq of [...this.sequences.values()]) this.finish(seq, 'cancelled', this.scheduler.now());
    this.replica = undefined;
  }

  /** The replica this GPU is part of, if any. */
  hostedReplica(): { id: string; model: string; ready: boolean; poolBytes: number } | undefined {
    const r = this.replica;
    return r && { id: r.id, model: r.model.name, ready: r.ready, poolBytes: r.poolBytes };
  }

  /**
   * Loads a model's weights ahead of demand (a pre-warm hint). Returns whether
   * they are resident afterwards; idle models may be evicted to make room.
   */
  prewarm(model: SimModel): boolean {
    return this.makeResident(model, 0);
  }

  /** Cancels everything and leaves no timer behind. */
  shutdown(): void {
    this.cancelKick?.();
    this.cancelKick = undefined;
    this.step?.cancelTimer?.();
    this.step = undefined;
    for (const id of [...this.sequences.keys()]) {
      const seq = this.sequences.get(id);
      if (seq !== undefined) this.finish(seq, 'cancelled', this.scheduler.now());
    }
    for (const id of [...this.jobs.keys()]) this.cancel(id);
  }

  /** Names of the models whose weights are in memory, least recently used first. */
  residentModels(): string[] {
    return [...this.resident.values()].sort((a, b) => a.lastUsedAt - b.lastUsedAt).map((r) => r.model.name);
  }

  info(): GpuInfo {
    return { index: this.index, name: this.name, memoryTotalBytes: this.memoryBytes };
  }

  status(): GpuStatus {
    const utilization = this.utilization();
    return {
      index: this.index,
      name: this.name,
      utilization,
      // A replica's other GPUs hold their shard of its cache as the first one fills.
      memoryUsedBytes: Math.round(this.weightBytes() + (this.replica?.primary ?? this).usedKvBytes() + this.jobBytes()),
      memoryTotalBytes: this.memoryBytes,
      // An air-cooled data-centre GPU idles near 30 °C and runs near 80 °C flat out.
      temperatureC: 30 + 50 * utilization,
      powerWatts: this.idlePowerWatts + (this.maxPowerWatts - this.idlePowerWatts) * utilization,
    };
  }

  /**
   * KV-cache use is reported as the reserved share of the memory left for KV,
   * because that is what decides admission: a router reading it near 1 knows
   * new requests will queue.
   */
  load(): ModelServerLoad {
    const capacity = this.replica ? this.replica.poolBytes : this.memoryBytes - this.weightBytes() - this.jobBytes();
    const reserved = this.reservedKvBytes();
    const kvCacheUsagePerc = capacity <= 0 ? (reserved > 0 ? 1 : 0) : Math.min(1, reserved / capacity);
    return { numRequestsRunning: this.running.length, numRequestsWaiting: this.waiting.length, kvCacheUsagePerc };
  }

  /** Reserved KV bytes and free bytes, for tests and benchmarks that check the accounting. */
  memory(): { weightBytes: number; kvUsedBytes: number; kvReservedBytes: number; jobBytes: number; freeBytes: number } {
    const weightBytes = this.weightBytes();
    const kvReservedBytes = this.reservedKvBytes();
    const jobBytes = this.jobBytes();
    return {
      weightBytes,
      kvUsedBytes: this.usedKvBytes(),
      kvReservedBytes,
      jobBytes,
      freeBytes: this.memoryBytes - weightBytes - kvReservedBytes - jobBytes,
    };
  }

  /** Schedules a step on the next tick if the engine is idle, so sequences submitted together start together. */
  private kick(): void {
    if (this.step !== undefined || this.cancelKick !== undefined) return;
    if (this.waiting.length === 0 && this.running.length === 0) return;
    this.cancelKick = this.scheduler.setTimer(0, () => {
      this.cancelKick = undefined;
      if (this.step === undefined) this.startStep(this.scheduler.now());
    });
  }

  /** Scheduler milliseconds this GPU's engine has spent in steps (batch jobs not counted). */
  busyMs(): number {
    return this.busy;
  }

  /** Plans the next step from `startAt` and arms its timer; leaves the engine idle when there is nothing to do. */
  private startStep(startAt: number): void {
    const { step, admitted } = this.planStep(startAt);
    this.step = step;
    if (step === undefined) return;
    this.armStep(step);
    for (const seq of admitted) if (!seq.done) seq.req.onStart?.();
  }

  /** Admits what fits and decides the step starting at `startAt`: prefill of the newcomers first, else decode. */
  private planStep(startAt: number): { step: Step | undefined; admitted: Sequence[] } {
    const admitted = this.admit(startAt);
    const fresh = this.running.filter((s) => !s.prefilled);
    if (fresh.length > 0) {
      const tokens = fresh.reduce((sum, s) => sum + s.req.promptTokens, 0);
      const endsAt = startAt + this.wallMs(prefillSeconds(tokens));
      this.busy += endsAt - startAt;
      return { step: { kind: 'prefill', members: fresh, endsAt, cancelTimer: undefined }, admitted };
    }
    if (this.running.length > 0) {
      const members = [...this.running];
      const context = members.reduce((sum, s) => sum + s.req.promptTokens + s.generated, 0);
      const endsAt = startAt + this.wallMs(decodeStepSeconds(members.length, context));
      this.busy += endsAt - startAt;
      return { step: { kind: 'decode', members, endsAt, cancelTimer: undefined }, admitted };
    }
    return { step: undefined, admitted };
  }

  private armStep(step: Step): void {
    step.cancelTimer = this.scheduler.setTimer(Math.max(0, step.endsAt - this.scheduler.now()), () => this.completeSteps());
  }

  /**
   * Completes the step in flight and starts the next at its ideal end. When a
   * real timer fired late and the next step is already due, it is completed
   * inline (bounded), so a high time scale keeps its average speed.
   */
  private completeSteps(): void {
    for (let inline = 0; ; inline++) {
      const step = this.step;
      if (step === undefined) return;
      // `this.step` stays set while callbacks run, so a submit or cancel from
      // inside one waits for the plan below instead of starting a second engine loop.
      this.applyStep(step);
      if (this.step !== step) return; // shut down from a callback
      const { step: next, admitted } = this.planStep(step.endsAt);
      this.step = next;
      if (next === undefined) return;
      const runInline = next.endsAt <= this.scheduler.now() && inline < MAX_INLINE_STEPS;
      if (!runInline) this.armStep(next);
      for (const seq of admitted) if (!seq.done) seq.req.onStart?.();
      if (!runInline || this.step !== next) return;
    }
  }

  private applyStep(step: Step): void {
    for (const seq of step.members) {
      if (seq.done) continue;
      if (step.kind === 'prefill') seq.prefilled = true;
      seq.generated++;
      const text = seq.words.next();
      if (seq.firstTokenAt === undefined) {
        seq.firstTokenAt = step.endsAt;
        seq.req.onFirstToken?.();
        if (seq.done) continue;
      }
      seq.req.onTokens(text, 1);
      if (seq.done) continue;
      if (seq.generated >= seq.req.maxTokens) this.finish(seq, 'length', step.endsAt);
      else if (seq.req.stopAfterTokens !== undefined && seq.generated >= seq.req.stopAfterTokens) this.finish(seq, 'stop', step.endsAt);
    }
  }

  /** Moves waiting sequences into the batch, in order, while their model, KV budget and the prefill budget fit. */
  private admit(at: number): Sequence[] {
    const admitted: Sequence[] = [];
    let prefillTokens = 0;
    // A replica still loading serves nothing yet.
    if (this.replica && !this.replica.ready) return admitted;
    while (this.running.length < this.maxBatch) {
      const seq = this.waiting[0];
      if (seq === undefined) break;
      if (admitted.length > 0 && prefillTokens + seq.req.promptTokens > this.maxPrefillTokens) break;
      if (this.replica ? this.reservedKvBytes() + kvBudget(seq) > this.replica.poolBytes : !this.makeResident(seq.req.model, kvBudget(seq))) break;
      this.waiting.shift();
      prefillTokens += seq.req.promptTokens;
      seq.admittedAt = at;
      this.running.push(seq);
      const resident = this.resident.get(seq.req.model.name);
      if (resident !== undefined) resident.lastUsedAt = at;
      admitted.push(seq);
    }
    return admitted;
  }

  /**
   * Ensures `model` is resident with `extraBytes` free beside it, evicting idle
   * models least recently used first. Evicts nothing when even that would not
   * be enough, so a blocked request does not cost other models their weights.
   */
  private makeResident(model: SimModel, extraBytes: number): boolean {
    const loaded = this.resident.get(model.name);
    const needed = extraBytes + (loaded === undefined ? model.weightBytes : 0);
    if (!this.makeRoom(needed, model.name)) return false;
    if (loaded === undefined) this.resident.set(model.name, { model, lastUsedAt: this.scheduler.now() });
    return true;
  }

  /** Frees `bytes` by evicting idle models (never `keep`); returns false, evicting nothing, when that cannot suffice. */
  private makeRoom(bytes: number, keep?: string): boolean {
    const free = this.memoryBytes - this.weightBytes() - this.reservedKvBytes() - this.jobBytes();
    if (bytes <= free) return true;
    const busy = new Set(this.running.map((s) => s.req.model.name));
    const evictable = [...this.resident.values()]
      .filter((r) => r.model.name !== keep && !busy.has(r.model.name))
      .sort((a, b) => a.lastUsedAt - b.lastUsedAt);
    const evictableBytes = evictable.reduce((sum, r) => sum + r.model.weightBytes, 0);
    if (bytes > free + evictableBytes) return false;
    let freed = free;
    for (const r of evictable) {
      if (bytes <= freed) break;
      this.resident.delete(r.model.name);
      freed += r.model.weightBytes;
    }
    return true;
  }

  private finish(seq: Sequence, reason: SequenceFinishReason, at: number): void {
    if (seq.done) return;
    seq.done = true;
    seq.cancelZeroTimer?.();
    this.sequences.delete(seq.req.id);
    removeFrom(this.waiting, seq);
    removeFrom(this.running, seq);
    seq.req.onDone({
      finishReason: reason,
      promptTokens: seq.req.promptTokens,
      completionTokens: seq.generated,
      queueTimeMs: (seq.admittedAt ?? at) - seq.submittedAt,
      timeToFirstTokenMs: seq.firstTokenAt === undefined ? 0 : seq.firstTokenAt - seq.submittedAt,
      totalTimeMs: at - seq.submittedAt,
    });
  }

  /**
   * Busy fraction: a batch job saturates the GPU; an inference step's share
   * grows with the batch (a single sequence is memory-bound and leaves most
   * SMs idle) and approaches 1 at large batches.
   */
  private utilization(): number {
    if (this.replica?.primary) return this.replica.primary.utilization();
    if (this.jobs.size > 0) return 1;
    if (this.step === undefined) return 0;
    const batch = Math.max(1, this.running.length);
    return Math.min(1, 0.3 + (0.7 * batch) / (batch + 16));
  }

  private wallMs(modelSeconds: number): number {
    return (modelSeconds * 1000) / this.timeScale;
  }

  private weightBytes(): number {
    let sum = this.replica?.model.weightBytes ?? 0;
    for (const r of this.resident.values()) sum += r.model.weightBytes;
    return sum;
  }

  private busyWeightBytes(): number {
    const busy = new Set(this.running.map((s) => s.req.model.name));
    let sum = 0;
    for (const r of this.resident.values()) if (busy.has(r.model.name)) sum += r.model.weightBytes;
    return sum;
  }

  private reservedKvBytes(): number {
    return this.running.reduce((sum, s) => sum + kvBudget(s), 0);
  }

  private usedKvBytes(): number {
    return this.running.reduce((sum, s) => sum + s.req.model.kvBytesPerToken * (s.req.promptTokens + s.generated), 0);
  }

  private jobBytes(): number {
    let sum = 0;
    for (const j of this.jobs.values()) sum += j.req.memoryBytes;
    return sum;
  }
}

function kvBudget(seq: Sequence): number {
  return seq.req.model.kvBytesPerToken * (seq.req.promptTokens + seq.req.maxTokens);
}

function isCount(n: number): boolean {
  return Number.isInteger(n) && n >= 0;
}

function removeFrom<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i >= 0) list.splice(i, 1);
}
