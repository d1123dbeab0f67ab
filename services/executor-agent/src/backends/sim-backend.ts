import { durationToMillis, type Scheduler, type SequenceRequest, SimOutOfMemoryError, SimulatedHost } from '@autoglm/core';
import {
  type BatchPayload,
  type EvictReplica,
  type GpuInfo,
  type GpuStatus,
  type LoadReplica,
  type ModelServerLoad,
  ReplicaState,
  type ReplicaStatus,
  TaskKind,
} from '@autoglm/proto';
import { type Backend, ExecutionError, type ExecutionOutcome, type ExecutionRequest, type HostResources } from './backend';

/** What the simulator needs to know about a model to account its memory. */
export interface SimModelCost {
  readonly weightBytes: number;
  readonly kvBytesPerToken: number;
}

export interface SimBackendOptions {
  /** @default 8 */
  readonly gpuCount?: number;
  /** Per GPU. @default 80 GiB */
  readonly gpuMemoryBytes?: number;
  /** @default "Simulated H100 80GB" */
  readonly gpuName?: string;
  /** How much faster than real time the simulated GPUs run. @default 1 */
  readonly timeScale?: number;
  /** Most sequences per GPU batch. @default 256 */
  readonly maxBatch?: number;
  /** Most prompt tokens per prefill step. @default 8192 */
  readonly maxPrefillTokens?: number;
  /** How fast the host reads weights onto its GPUs, bytes per second. @default 7e9 (a fast NVMe drive) */
  readonly loadBytesPerSecond?: number;
  /** Cores the simulated host offers to jobs. @default 32 */
  readonly cpuCores?: number;
  /** Host memory it offers to jobs, bytes. @default 256 GiB */
  readonly memoryBytes?: number;
  /** Looks a model up; undefined means the agent cannot serve it. */
  readonly catalog: (model: string) => SimModelCost | undefined;
  /** Models advertised to decision. @default ['*'] (whatever the catalog knows) */
  readonly models?: readonly string[];
  /** Where time comes from. @default realTimeScheduler */
  readonly scheduler?: Scheduler;
  /**
   * Fault injection, for chaos tests: the share of attempts that fail at
   * start as a faulty GPU's would (a retryable error). @default 0
   */
  readonly failFraction?: number;
  /** Draws in [0, 1) for fault injection. @default Math.random */
  readonly random?: () => number;
}

/** The simulator on the event loop's clock and timers. */
export const realTimeScheduler: Scheduler = {
  now: () => performance.now(),
  setTimer: (ms, fn) => {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

/** Exit code a batch job reports when cancelled: what a process killed by SIGTERM reports (128 + 15). */
const CANCELLED_EXIT_CODE = 143;

/** The `sim` backend: a simulated GPU host, for local runs, demos, tests and benchmarks. */
export class SimBackend implements Backend {
  readonly name = 'sim' as const;
  readonly models: readonly string[];
  private readonly host: SimulatedHost;
  private readonly catalog: (model: string) => SimModelCost | undefined;
  private readonly scheduler: Scheduler;
  private readonly timeScale: number;
  private readonly host_: HostResources;
  /** Jobs without GPUs in flight, by attempt id: how to stop each. */
  private readonly cpuJobs = new Map<string, () => void>();
  private closed = false;
  private readonly failFraction: number;
  private readonly random: () => number;

  constructor(options: SimBackendOptions) {
    this.failFraction = options.failFraction ?? 0;
    this.random = options.random ?? Math.random;
    this.scheduler = options.scheduler ?? realTimeScheduler;
    this.host = new SimulatedHost({
      scheduler: this.scheduler,
      ...(options.gpuCount === undefined ? {} : { gpuCount: options.gpuCount }),
      ...(options.gpuMemoryBytes === undefined ? {} : { gpuMemoryBytes: options.gpuMemoryBytes }),
      ...(options.gpuName === undefined ? {} : { gpuName: options.gpuName }),
      ...(options.timeScale === undefined ? {} : { timeScale: options.timeScale }),
      ...(options.maxBatch === undefined ? {} : { maxBatch: options.maxBatch }),
      ...(options.maxPrefillTokens === undefined ? {} : { maxPrefillTokens: options.maxPrefillTokens }),
      ...(options.loadBytesPerSecond === undefined ? {} : { loadBytesPerSecond: options.loadBytesPerSecond }),
    });
    this.timeScale = options.timeScale ?? 1;
    this.host_ = { cpuMillis: Math.round((options.cpuCores ?? 32) * 1000), memoryBytes: options.memoryBytes ?? 256 * 2 ** 30 };
    this.catalog = options.catalog;
    this.models = Object.freeze([...(options.models ?? ['*'])]);
  }

  execute(req: ExecutionRequest): Promise<ExecutionOutcome> {
    if (this.closed) return Promise.reject(new ExecutionError('the sim backend is closed', true));
    if (req.signal.aborted) return Promise.resolve(cancelledBeforeStart(req));
    if (this.failFraction > 0 && this.random() < this.failFraction) {
      return Promise.reject(new ExecutionError(`simulated GPU fault (AUTOGLM_SIM_FAIL_FRACTION=${this.failFraction})`, true));
    }
    const payload = req.spec.payload;
    if (payload?.$case === 'batch') return this.runBatch(req, payload.batch);
    if (payload?.$case === 'inference' || req.spec.kind === TaskKind.INFERENCE) return this.runInference(req);
    return Promise.reject(new ExecutionError(`task ${req.taskId} has no payload to run`, false));
  }

  gpus(): GpuInfo[] {
    return this.host.info();
  }

  gpuStatus(): GpuStatus[] {
    return this.host.status();
  }

  load(): ModelServerLoad {
    return this.host.load();
  }

  hostResources(): HostResources {
    return { ...this.host_ };
  }

  replicas(): ReplicaStatus[] {
    return this.host.replicaStatus().map((r) => ({
      replicaId: r.id,
      model: r.model,
      gpuIndices: r.gpuIndices,
      state: r.ready ? ReplicaState.READY : ReplicaState.LOADING,
      external: false,
      // Its model's is the catalog's, which decision has.
      contextLength: 0,
      capacityTokens: r.capacityTokens,
      numRequestsRunning: r.running,
      numRequestsWaiting: r.waiting,
      kvCacheUsagePerc: r.kvCacheUsage,
      sequences: 0,
      claimedTokens: 0,
    }));
  }

  /**
   * Loads a replica: it shows in `replicas()` at once (loading), and serves
   * once its weights are read. Throws when the model is unknown or the GPUs
   * are taken (the agent logs it; decision sees the replica never appear).
   */
  loadReplica(command: LoadReplica): void {
    const cost = this.catalog(command.model);
    if (cost === undefined) throw new Error(`model "${command.model}" is not in this agent's catalog`);
    this.host.loadReplica({
      id: command.replicaId,
      model: { name: command.model, weightBytes: cost.weightBytes, kvBytesPerToken: cost.kvBytesPerToken },
      gpuIndices: command.gpuIndices,
      capacityTokens: command.capacityTokens,
    });
  }

  evictReplica(command: EvictReplica): void {
    this.host.evictReplica(command.replicaId);
  }

  /** Cancels all running work; every pending `execute` resolves as cancelled. */
  close(): Promise<void> {
    this.closed = true;
    for (const stop of [...this.cpuJobs.values()]) stop();
    this.host.shutdown();
    return Promise.resolve();
  }

  private runInference(req: ExecutionRequest): Promise<ExecutionOutcome> {
    const { spec } = req;
    const cost = this.catalog(spec.model);
    if (cost === undefined) {
      return Promise.reject(new ExecutionError(`model "${spec.model}" is not in this agent's catalog`, false));
    }
    const id = attemptId(req);
    return new Promise<ExecutionOutcome>((resolve, reject) => {
      let output = '';
      let settled = false;
      const onAbort = (): void => {
        this.host.cancel(id);
      };
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        req.signal.removeEventListener('abort', onAbort);
        fn();
      };
      try {
        const sequence: Omit<SequenceRequest, 'model'> = {
          id,
          promptTokens: spec.inputTokens,
          maxTokens: spec.maxOutputTokens,
          onStart: () => req.onStart?.(),
          onTokens: (text, count) => {
            output += text;
            try {
              req.onChunk(text, count);
            } catch (e) {
              // A failing consumer must not break the simulated engine loop, which serves other tasks too.
              settle(() => reject(new ExecutionError(`task ${req.taskId}: token consumer failed`, true, { cause: e })));
              this.host.cancel(id);
            }
          },
          onDone: (o) => {
            if (o.finishReason === 'cancelled' && !req.signal.aborted && !this.closed) {
              // Cancelled without being asked: its replica was unloaded under it. Not the task's fault.
              settle(() => reject(new ExecutionError(`task ${req.taskId}: its replica was unloaded while it ran`, true)));
              return;
            }
            settle(() =>
              resolve({
                finishReason: o.finishReason,
                output,
                promptTokens: o.promptTokens,
                completionTokens: o.completionTokens,
                exitCode: 0,
                timeToFirstTokenMs: o.timeToFirstTokenMs,
                runTimeMs: o.totalTimeMs - o.queueTimeMs,
              }),
            );
          },
        };
        if (req.replicaId) {
          // A replica that failed to load, or was unloaded since: another placement may find one.
          if (!this.host.hasReplica(req.replicaId)) throw new ExecutionError(`replica ${req.replicaId} is not loaded on this host`, true);
          this.host.submitToReplica(req.replicaId, sequence);
        } else {
          // No replica named (a direct call): the sequence runs on the first GPU, which loads
          // the model on demand; over n GPUs (tensor parallelism) with one shard of each (1/n).
          const shards = Math.max(1, req.gpuIndices.length);
          this.host.submit(req.gpuIndices[0] ?? 0, {
            ...sequence,
            model: { name: spec.model, weightBytes: Math.ceil(cost.weightBytes / shards), kvBytesPerToken: Math.ceil(cost.kvBytesPerToken / shards) },
          });
        }
      } catch (e) {
        settle(() => reject(toExecutionError(e)));
        return;
      }
      req.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * A simulated batch job: holds its GPUs and memory for its expected
   * duration. The job's env may ask for a failure at the end, to exercise
   * retries: AUTOGLM_SIM_FAIL=retryable (like a process that exited non-zero)
   * or permanent (like a command that is not allowed; never retried).
   */
  private runBatch(req: ExecutionRequest, batch: BatchPayload): Promise<ExecutionOutcome> {
    const id = attemptId(req);
    const gpuIndices = req.gpuIndices;
    const durationMs = batch.expectedDuration === undefined ? 0 : durationToMillis(batch.expectedDuration);
    const fail = batch.env[SIM_FAIL_ENV];
    if (fail !== undefined && fail !== 'retryable' && fail !== 'permanent') {
      return Promise.reject(new ExecutionError(`${SIM_FAIL_ENV} must be "retryable" or "permanent", got "${fail}"`, false));
    }
    if (gpuIndices.length === 0) return this.runCpuJob(req, id, durationMs, fail);
    return new Promise<ExecutionOutcome>((resolve, reject) => {
      const onAbort = (): void => {
        this.host.cancel(id);
      };
      try {
        this.host.runJob(gpuIndices, {
          id,
          memoryBytes: req.spec.gpuMemoryBytes,
          durationMs,
          onDone: (o) => {
            req.signal.removeEventListener('abort', onAbort);
            const cancelled = o.status === 'cancelled';
            if (!cancelled && fail !== undefined) {
              reject(new ExecutionError(`simulated ${fail} failure after ${durationMs} ms (${SIM_FAIL_ENV}=${fail})`, fail === 'retryable'));
              return;
            }
            resolve({
              finishReason: cancelled ? 'cancelled' : 'stop',
              output: cancelled ? '' : `simulated job ran ${durationMs} ms on GPU ${gpuIndices.join(',')}\n`,
              promptTokens: 0,
              completionTokens: 0,
              exitCode: cancelled ? CANCELLED_EXIT_CODE : 0,
              timeToFirstTokenMs: 0,
              runTimeMs: o.runTimeMs,
            });
          },
        });
      } catch (e) {
        reject(toExecutionError(e));
        return;
      }
      req.signal.addEventListener('abort', onAbort, { once: true });
      req.onStart?.();
    });
  }

  /** A simulated job without GPUs: it holds its host cores (decision's claim) for its duration. */
  private runCpuJob(req: ExecutionRequest, id: string, durationMs: number, fail: string | undefined): Promise<ExecutionOutcome> {
    return new Promise<ExecutionOutcome>((resolve, reject) => {
      const startedAt = this.scheduler.now();
      const end = (cancelled: boolean): void => {
        cancelTimer();
        this.cpuJobs.delete(id);
        req.signal.removeEventListener('abort', onAbort);
        const runTimeMs = this.scheduler.now() - startedAt;
        if (!cancelled && fail !== undefined) {
          reject(new ExecutionError(`simulated ${fail} failure after ${durationMs} ms (${SIM_FAIL_ENV}=${fail})`, fail === 'retryable'));
          return;
        }
        resolve({
          finishReason: cancelled ? 'cancelled' : 'stop',
          output: cancelled ? '' : `simulated job ran ${durationMs} ms on the host's cores\n`,
          promptTokens: 0,
          completionTokens: 0,
          exitCode: cancelled ? CANCELLED_EXIT_CODE : 0,
          timeToFirstTokenMs: 0,
          runTimeMs,
        });
      };
      const onAbort = (): void => end(true);
      const cancelTimer = this.scheduler.setTimer(durationMs / this.timeScale, () => end(false));
      this.cpuJobs.set(id, () => end(true));
      req.signal.addEventListener('abort', onAbort, { once: true });
      req.onStart?.();
    });
  }
}

/** Batch env variable that makes a simulated job fail (see runBatch). */
export const SIM_FAIL_ENV = 'AUTOGLM_SIM_FAIL';

/** Unique per attempt, so a retry on the same agent never collides with a cancelled attempt still draining. */
function attemptId(req: ExecutionRequest): string {
  return `${req.taskId}#${req.attempt}`;
}

function cancelledBeforeStart(req: ExecutionRequest): ExecutionOutcome {
  return {
    finishReason: 'cancelled',
    output: '',
    promptTokens: req.spec.inputTokens,
    completionTokens: 0,
    exitCode: 0,
    timeToFirstTokenMs: 0,
    runTimeMs: 0,
  };
}

/** Memory that is merely busy may free up; memory the GPU does not have, or a bad request, never will. */
function toExecutionError(e: unknown): ExecutionError {
  if (e instanceof ExecutionError) return e;
  if (e instanceof SimOutOfMemoryError) return new ExecutionError(e.message, e.couldFitLater, { cause: e });
  if (e instanceof Error) return new ExecutionError(e.message, false, { cause: e });
  return new ExecutionError(String(e), false, { cause: e });
}
