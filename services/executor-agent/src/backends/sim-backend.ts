import { durationToMillis, type Scheduler, SimOutOfMemoryError, SimulatedHost } from '@autoglm/core';
import { type BatchPayload, type GpuInfo, type GpuStatus, type ModelServerLoad, TaskKind } from '@autoglm/proto';
import { type Backend, ExecutionError, type ExecutionOutcome, type ExecutionRequest } from './backend';

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
  /** Looks a model up; undefined means the agent cannot serve it. */
  readonly catalog: (model: string) => SimModelCost | undefined;
  /** Models advertised to decision. @default ['*'] (whatever the catalog knows) */
  readonly models?: readonly string[];
  /** Where time comes from. @default realTimeScheduler */
  readonly scheduler?: Scheduler;
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
  private closed = false;

  constructor(options: SimBackendOptions) {
    this.scheduler = options.scheduler ?? realTimeScheduler;
    this.host = new SimulatedHost({
      scheduler: this.scheduler,
      ...(options.gpuCount === undefined ? {} : { gpuCount: options.gpuCount }),
      ...(options.gpuMemoryBytes === undefined ? {} : { gpuMemoryBytes: options.gpuMemoryBytes }),
      ...(options.gpuName === undefined ? {} : { gpuName: options.gpuName }),
      ...(options.timeScale === undefined ? {} : { timeScale: options.timeScale }),
      ...(options.maxBatch === undefined ? {} : { maxBatch: options.maxBatch }),
      ...(options.maxPrefillTokens === undefined ? {} : { maxPrefillTokens: options.maxPrefillTokens }),
    });
    this.catalog = options.catalog;
    this.models = Object.freeze([...(options.models ?? ['*'])]);
  }

  execute(req: ExecutionRequest): Promise<ExecutionOutcome> {
    if (this.closed) return Promise.reject(new ExecutionError('the sim backend is closed', true));
    if (req.signal.aborted) return Promise.resolve(cancelledBeforeStart(req));
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

  /** Cancels all running work; every pending `execute` resolves as cancelled. */
  close(): Promise<void> {
    this.closed = true;
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
        // Tensor parallelism over n GPUs: the simulation runs the sequence on the
        // first GPU with one shard's weights and KV cache (1/n of each).
        const shards = Math.max(1, req.gpuIndices.length);
        this.host.submit(req.gpuIndices[0] ?? 0, {
          id,
          model: { name: spec.model, weightBytes: Math.ceil(cost.weightBytes / shards), kvBytesPerToken: Math.ceil(cost.kvBytesPerToken / shards) },
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
          onDone: (o) =>
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
            ),
        });
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
    const gpuIndices = req.gpuIndices.length > 0 ? req.gpuIndices : [0];
    const durationMs = batch.expectedDuration === undefined ? 0 : durationToMillis(batch.expectedDuration);
    const fail = batch.env[SIM_FAIL_ENV];
    if (fail !== undefined && fail !== 'retryable' && fail !== 'permanent') {
      return Promise.reject(new ExecutionError(`${SIM_FAIL_ENV} must be "retryable" or "permanent", got "${fail}"`, false));
    }
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
  if (e instanceof SimOutOfMemoryError) return new ExecutionError(e.message, e.couldFitLater, { cause: e });
  if (e instanceof Error) return new ExecutionError(e.message, false, { cause: e });
  return new ExecutionError(String(e), false, { cause: e });
}
