import type { EvictReplica, GpuInfo, GpuStatus, LoadReplica, ModelServerLoad, ReplicaStatus, ServedModel, TaskSpec } from '@autoglm/proto';

/** One attempt of one task, handed to a backend by the agent. */
export interface ExecutionRequest {
  taskId: string;
  attempt: number;
  spec: TaskSpec;
  /** Host GPU indices the work is bound to (CUDA_VISIBLE_DEVICES numbering); none for a job without GPUs. */
  gpuIndices: number[];
  /** Inference: the replica decision placed it in. */
  replicaId?: string;
  /** Aborted on cancel / revoke / drain. */
  signal: AbortSignal;
  /** The work started on the GPU. */
  onStart?(): void;
  /** Generated tokens (inference). */
  onChunk(text: string, tokenCount: number): void;
}

export interface ExecutionOutcome {
  finishReason: 'stop' | 'length' | 'cancelled';
  /** Generated text for inference; for batch jobs the tail of stdout, at most {@link OUTPUT_TAIL_BYTES}. */
  output: string;
  promptTokens: number;
  completionTokens: number;
  exitCode: number;
  timeToFirstTokenMs: number;
  runTimeMs: number;
}

/** Most bytes of a batch job's stdout kept in `ExecutionOutcome.output`. */
export const OUTPUT_TAIL_BYTES = 64 * 1024;

/**
 * An attempt failed. `retryable` tells decision whether another attempt (here
 * or elsewhere) may succeed: a server error or a crashed job may; a request
 * the backend rejects as invalid will not.
 */
export class ExecutionError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ExecutionError';
  }
}

/**
 * Why an attempt is being stopped, carried as its abort signal's reason:
 * preemption asks a process to stop (SIGTERM) and gives it `graceMs` to
 * checkpoint before it is killed.
 */
export class StopRequest extends Error {
  constructor(
    message: string,
    readonly graceMs: number | undefined,
    readonly preempted: boolean,
  ) {
    super(message);
    this.name = 'StopRequest';
  }
}

/** Cores and host memory an agent offers to jobs. */
export interface HostResources {
  cpuMillis: number;
  memoryBytes: number;
}

/** Where an agent runs work. Each backend is one way of reaching a GPU. */
export interface Backend {
  readonly name: 'sim' | 'openai' | 'command';
  /** Models served ('*' for any). */
  readonly models: readonly string[];
  /** Resolves with finishReason 'cancelled' when aborted; rejects with ExecutionError on failure. */
  execute(req: ExecutionRequest): Promise<ExecutionOutcome>;
  /** The GPUs this backend knows of; empty when the agent should ask the host (nvidia-smi) instead. */
  gpus(): GpuInfo[];
  /** Current readings of those GPUs; empty when `gpus()` is. */
  gpuStatus(): GpuStatus[];
  load(): ModelServerLoad;
  /** Cores and host memory it offers to jobs (none for a backend that runs only inference). */
  hostResources(): HostResources;
  /** The model replicas it runs, with their engines' load: loaded on decision's word, or its server's own. */
  replicas(): ReplicaStatus[];
  /** Loads a replica decision placed here; absent for backends whose server loads its own models. */
  loadReplica?(command: LoadReplica): void;
  /** Unloads a replica decision placed here. */
  evictReplica?(command: EvictReplica): void;
  /** Models its server lists, with their context windows (an OpenAI-compatible server's /v1/models). */
  servedModels?(): ServedModel[];
  /** Stops all running work and releases resources. */
  close(): Promise<void>;
}
