/**
 * Turns what a client sent (SubmitTaskRequest, or the InferStart of an Infer
 * stream) into the TaskSpec decision schedules, or rejects it with an
 * InvalidArgumentError that names the field and says what to change.
 */
import type { BatchPayload, InferStart, ResourceRequest, SubmitTaskRequest, TaskSpec } from '@autoglm/proto';
import { DeadlinePolicy, PriorityClass, TaskKind } from '@autoglm/proto';
import { InvalidArgumentError } from '../errors';
import { forbiddenJobEnv } from './job-rules';
import { DEFAULT_GPU_MEMORY_HEADROOM, estimateGpuMemory, minimumGpuCount } from './memory';
import type { CatalogModel, ModelCatalog } from './models';
import { parseInferenceInput } from './parse-inference-input';
import {
  parseDeadline,
  parseDeadlinePolicy,
  parseDependsOn,
  parseDuration,
  parseExpectedDuration,
  parseLabels,
  parseMaxRetries,
  parsePriority,
  parsePriorityClass,
  parseRequestId,
  parseTenant,
} from './submission-fields';

/** An 80 GB-class GPU (A100/H100 80GB report about 80 GiB). */
export const DEFAULT_GPU_MEMORY_BYTES = 80 * 2 ** 30;
/** One host of eight GPUs. */
export const DEFAULT_MAX_GPUS_PER_TASK = 8;
/** Retries of a submission that does not set max_retries. */
export const DEFAULT_MAX_RETRIES = 3;
/** What a job without GPUs holds when it does not say: one core and 1 GiB, as Slurm's defaults give a job one CPU. */
export const DEFAULT_CPU_JOB_MILLIS = 1000;
export const DEFAULT_CPU_JOB_MEMORY_BYTES = 2 ** 30;
/** Most cores one job may ask for (one host). */
export const MAX_CPU_CORES = 1024;

/** A model an agent's server lists (an OpenAI-compatible server's /v1/models), with its context window (0: unknown). */
export interface ServedModelInfo {
  readonly contextLength: number;
}

/** Context window assumed for a served model whose server does not say. */
export const SERVED_MODEL_DEFAULT_CONTEXT = 32_768;

/** What parsing needs to know about the deployment. */
export interface ParseContext {
  /** Models that may be named. */
  readonly catalog: ModelCatalog;
  /**
   * Models outside the catalog that some agent's server serves: they may be
   * named too, and run only there (nothing is known of their size, so no
   * replica of them is started; the server manages its own memory).
   */
  readonly served?: (model: string) => ServedModelInfo | undefined;
  /** The current time (deadlines must be after it). */
  readonly now: Date;
  /** Memory of the largest GPU in the fleet, in bytes. @default DEFAULT_GPU_MEMORY_BYTES (80 GiB) */
  readonly gpuMemoryBytes?: number;
  /** Most GPUs one task may use (all on one host). @default DEFAULT_MAX_GPUS_PER_TASK (8) */
  readonly maxGpusPerTask?: number;
  /** Retries when a submission does not say. @default DEFAULT_MAX_RETRIES (3) */
  readonly defaultMaxRetries?: number;
}

/** An accepted submission. */
export interface ParsedSubmission {
  /** The client's idempotency key; empty when none was given. */
  readonly requestId: string;
  /** The tenant the work is billed to. */
  readonly tenant: string;
  /** What decision schedules, every field filled. */
  readonly spec: TaskSpec;
}

interface Fleet {
  readonly gpuMemoryBytes: number;
  readonly maxGpusPerTask: number;
}

/** Parses a SubmitTask request into a non-interactive task spec. */
export function parseSubmission(request: SubmitTaskRequest, ctx: ParseContext): ParsedSubmission {
  const fleet = fleetOf(ctx);
  const tenant = parseTenant(request.tenant);
  const requestId = parseRequestId(request.requestId);
  const payload = request.payload;
  if (payload === undefined) {
    throw new InvalidArgumentError('payload', 'required: set inference (a prompt or chat messages) or batch (a job)');
  }

  const deadline = parseDeadline(request.deadline, ctx.now);
  const common = {
    priorityClass: parsePriorityClass(request.priorityClass, PriorityClass.NORMAL),
    priority: parsePriority(request.priority),
    deadline,
    deadlinePolicy: parseDeadlinePolicy(request.deadlinePolicy, deadline !== undefined),
    dependsOn: parseDependsOn(request.dependsOn),
    preemptible: request.preemptible,
    maxRetries: parseMaxRetries(request.maxRetries, ctx.defaultMaxRetries ?? DEFAULT_MAX_RETRIES),
    labels: parseLabels(request.labels),
    interactive: false,
    policyVariant: '',
  };

  if (payload.$case === 'inference') {
    const model = lookupModel(request.model, ctx, true);
    const input = parseInferenceInput(payload.inference, model, 'inference');
    refuseHostResources(request.resources);
    const resources = resolveResources(request.resources, model, input.inputTokens + input.maxOutputTokens, fleet);
    return {
      requestId,
      tenant,
      spec: {
        kind: TaskKind.INFERENCE,
        cpuMillis: 0,
        memoryBytes: 0,
        model: model.name,
        inputTokens: input.inputTokens,
        maxOutputTokens: input.maxOutputTokens,
        ...resources,
        ...common,
        payload: { $case: 'inference', inference: input.payload },
      },
    };
  }

  const model = lookupModel(request.model, ctx, false);
  const batch = parseBatch(payload.batch);
  const cpuOnly = request.resources?.gpuCount === 0;
  // A batch job's token use is unknown: plan for one full context window (a job without GPUs needs no GPU memory).
  const resources = cpuOnly ? cpuOnlyResources(request.resources!) : resolveResources(request.resources, model, model?.contextLength ?? 0, fleet);
  return {
    requestId,
    tenant,
    spec: {
      kind: TaskKind.BATCH,
      model: model?.name ?? '',
      inputTokens: 0,
      maxOutputTokens: 0,
      ...hostResources(request.resources, cpuOnly),
      ...resources,
      ...common,
      payload: { $case: 'batch', batch },
    },
  };
}

/**
 * Parses the start of an Infer stream into an interactive task spec: class
 * URGENT unless another is asked for, no dependencies, not preemptible, and no
 * retries (tokens already streamed to the client cannot be replayed by
 * another attempt; the client retries instead).
 */
export function parseInferStart(start: InferStart, ctx: ParseContext): ParsedSubmission {
  const fleet = fleetOf(ctx);
  const tenant = parseTenant(start.tenant);
  const requestId = parseRequestId(start.requestId);
  const model = lookupModel(start.model, ctx, true);
  const input = parseInferenceInput(start.input, model, 'input');
  const priorityClass = parsePriorityClass(start.priorityClass, PriorityClass.URGENT);
  const priority = parsePriority(start.priority);
  const deadline = parseDeadline(start.deadline, ctx.now);
  const labels = parseLabels(start.labels);
  const resources = resolveResources(undefined, model, input.inputTokens + input.maxOutputTokens, fleet);
  return {
    requestId,
    tenant,
    spec: {
      kind: TaskKind.INFERENCE,
      model: model.name,
      inputTokens: input.inputTokens,
      maxOutputTokens: input.maxOutputTokens,
      ...resources,
      cpuMillis: 0,
      memoryBytes: 0,
      priorityClass,
      priority,
      deadline,
      deadlinePolicy: DeadlinePolicy.BEST_EFFORT,
      dependsOn: [],
      preemptible: false,
      maxRetries: 0,
      labels,
      interactive: true,
      policyVariant: '',
      payload: { $case: 'inference', inference: input.payload },
    },
  };
}

function fleetOf(ctx: ParseContext): Fleet {
  return {
    gpuMemoryBytes: ctx.gpuMemoryBytes ?? DEFAULT_GPU_MEMORY_BYTES,
    maxGpusPerTask: ctx.maxGpusPerTask ?? DEFAULT_MAX_GPUS_PER_TASK,
  };
}

function lookupModel(name: string, ctx: ParseContext, required: true): CatalogModel;
function lookupModel(name: string, ctx: ParseContext, required: false): CatalogModel | undefined;
function lookupModel(name: string, ctx: ParseContext, required: boolean): CatalogModel | undefined {
  const known = `known: ${ctx.catalog.names().join(', ')}`;
  if (name.length === 0) {
    if (required) throw new InvalidArgumentError('model', `required for inference; ${known}`);
    return undefined;
  }
  const model = ctx.catalog.get(name);
  if (model !== undefined) return model;
  const served = ctx.served?.(name);
  if (served !== undefined) return servedModel(name, served);
  throw new InvalidArgumentError(
    'model',
    `${JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name)} is not in the catalog and no connected agent serves it; ${known} (add it to the catalog file, AUTOGLM_MODEL_CATALOG)`,
  );
}

/**
 * A model known only because a server lists it: its context window, and no
 * architecture (so no memory estimate; the server sizes itself).
 */
function servedModel(name: string, info: ServedModelInfo): CatalogModel {
  const contextLength = info.contextLength > 0 ? info.contextLength : SERVED_MODEL_DEFAULT_CONTEXT;
  return {
    name,
    family: 'served',
    served: true,
    parameterCount: 0,
    dtypeBytes: 2,
    weightBytes: 0,
    layers: 0,
    kvHeads: 0,
    headDim: 0,
    contextLength,
    defaultMaxOutputTokens: Math.min(1024, Math.floor(contextLength / 2)),
  };
}

/** A job's argv: at most this many arguments and bytes (Linux's ARG_MAX is 2 MiB for argv and env together). */
export const MAX_COMMAND_ARGS = 4096;
export const MAX_COMMAND_BYTES = 256 * 1024;
/** A job's environment: at most this many variables and bytes. */
export const MAX_ENV_VARS = 256;
export const MAX_ENV_BYTES = 64 * 1024;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function parseBatch(batch: BatchPayload): BatchPayload {
  if (batch.command.length > MAX_COMMAND_ARGS) throw new InvalidArgumentError('batch.command', `has ${batch.command.length} arguments; at most ${MAX_COMMAND_ARGS}`);
  const commandBytes = batch.command.reduce((sum, arg) => sum + Buffer.byteLength(arg) + 1, 0);
  if (commandBytes > MAX_COMMAND_BYTES) throw new InvalidArgumentError('batch.command', `is ${commandBytes} bytes; at most ${MAX_COMMAND_BYTES} (pass large inputs in a file)`);
  for (const [i, arg] of batch.command.entries()) if (arg.includes('\0')) throw new InvalidArgumentError(`batch.command[${i}]`, 'contains a NUL character');
  const env = Object.entries(batch.env);
  if (env.length > MAX_ENV_VARS) throw new InvalidArgumentError('batch.env', `has ${env.length} variables; at most ${MAX_ENV_VARS}`);
  let envBytes = 0;
  for (const [name, value] of env) {
    const field = `batch.env[${JSON.stringify(name.slice(0, 64))}]`;
    if (!ENV_NAME.test(name)) throw new InvalidArgumentError(field, 'is not a variable name: use letters, digits and _, not starting with a digit');
    const forbidden = forbiddenJobEnv(name);
    if (forbidden) throw new InvalidArgumentError(field, forbidden);
    if (value.includes('\0')) throw new InvalidArgumentError(field, 'contains a NUL character');
    envBytes += Buffer.byteLength(name) + Buffer.byteLength(value) + 2;
  }
  if (envBytes > MAX_ENV_BYTES) throw new InvalidArgumentError('batch.env', `is ${envBytes} bytes; at most ${MAX_ENV_BYTES} (pass large inputs in a file)`);
  return {
    command: [...batch.command],
    env: { ...batch.env },
    expectedDuration: parseExpectedDuration(batch.expectedDuration, 'batch.expected_duration'),
    timeLimit: parseDuration(batch.timeLimit, 'batch.time_limit', MAX_TIME_LIMIT_SECONDS, {
      negative: 'is negative; give how long the job may run before it is killed',
      tooLong: (seconds) => `is ${seconds}s, over the limit of 30 days (${MAX_TIME_LIMIT_SECONDS}s)`,
    }),
  };
}

const MAX_TIME_LIMIT_SECONDS = 30 * 24 * 3600;

/** A job without GPUs (gpu_count 0): no GPU memory may be asked for. */
function cpuOnlyResources(requested: ResourceRequest): { gpuCount: number; gpuMemoryBytes: number } {
  if (requested.gpuMemoryBytes > 0) {
    throw new InvalidArgumentError('resources.gpu_memory_bytes', 'is set for a job with gpu_count 0 (no GPUs); leave it 0, or ask for GPUs');
  }
  return { gpuCount: 0, gpuMemoryBytes: 0 };
}

/** Host cores and memory of a batch job: what it asks for, or a core and 1 GiB for a job without GPUs. */
function hostResources(requested: ResourceRequest | undefined, cpuOnly: boolean): { cpuMillis: number; memoryBytes: number } {
  const cores = requested?.cpuCores ?? 0;
  if (!Number.isFinite(cores) || cores < 0 || cores > MAX_CPU_CORES) {
    throw new InvalidArgumentError('resources.cpu_cores', `${cores} is outside 0..${MAX_CPU_CORES} (cores on one host; fractions allowed)`);
  }
  const memory = requested?.memoryBytes ?? 0;
  if (!Number.isSafeInteger(memory) || memory < 0) throw new InvalidArgumentError('resources.memory_bytes', `${memory} is not a byte count`);
  const cpuMillis = Math.round(cores * 1000);
  if (cores > 0 && cpuMillis === 0) throw new InvalidArgumentError('resources.cpu_cores', `${cores} is less than a thousandth of a core; ask for 0.001 or more`);
  return {
    cpuMillis: cpuMillis || (cpuOnly ? DEFAULT_CPU_JOB_MILLIS : 0),
    memoryBytes: memory || (cpuOnly ? DEFAULT_CPU_JOB_MEMORY_BYTES : 0),
  };
}

/** Inference runs in a model replica: host cores and memory are the replica's business, not the request's. */
function refuseHostResources(requested: ResourceRequest | undefined): void {
  if (requested?.gpuCount === 0) {
    throw new InvalidArgumentError('resources.gpu_count', 'is 0, but inference runs in a model replica on GPUs; leave it unset (derived from the model) or ask for 1 or more');
  }
  if ((requested?.cpuCores ?? 0) !== 0) throw new InvalidArgumentError('resources.cpu_cores', 'applies to batch jobs; leave it 0 for inference');
  if ((requested?.memoryBytes ?? 0) !== 0) throw new InvalidArgumentError('resources.memory_bytes', 'applies to batch jobs; leave it 0 for inference');
}

/**
 * GPUs and memory per GPU. Requested values win; unset or zero ones are
 * derived from the model: the fewest GPUs its estimate fits on, and the
 * estimate itself.
 */
function resolveResources(
  requested: ResourceRequest | undefined,
  model: CatalogModel | undefined,
  totalTokens: number,
  fleet: Fleet,
): { gpuCount: number; gpuMemoryBytes: number } {
  const requestedCount = requested?.gpuCount ?? 0;
  const requestedMemory = requested?.gpuMemoryBytes ?? 0;
  if (!Number.isInteger(requestedCount) || requestedCount < 0 || requestedCount > fleet.maxGpusPerTask) {
    throw new InvalidArgumentError('resources.gpu_count', `${requestedCount} is outside 0..${fleet.maxGpusPerTask} (GPUs on one host; unset derives it from the model, 0 asks for none)`);
  }
  if (!Number.isSafeInteger(requestedMemory) || requestedMemory < 0) {
    throw new InvalidArgumentError('resources.gpu_memory_bytes', `${requestedMemory} is not a byte count`);
  }
  if (requestedMemory > fleet.gpuMemoryBytes) {
    throw new InvalidArgumentError(
      'resources.gpu_memory_bytes',
      `${formatBytes(requestedMemory)} per GPU is more than the largest GPU in the fleet has (${formatBytes(fleet.gpuMemoryBytes)}); it is memory per GPU, not in total`,
    );
  }
  if (model === undefined || model.served) {
    return { gpuCount: requestedCount || 1, gpuMemoryBytes: requestedMemory };
  }

  // The fewest GPUs the model fits on at all, filled to the brim.
  const fitCount = minimumGpuCount(model, totalTokens, fleet.gpuMemoryBytes, 1);
  if (fitCount === undefined || fitCount > fleet.maxGpusPerTask) {
    const perGpu = estimateGpuMemory(model, totalTokens, fleet.maxGpusPerTask);
    throw new InvalidArgumentError(
      'model',
      `"${model.name}" needs about ${formatBytes(perGpu)} per GPU for ${totalTokens} tokens even on ${fleet.maxGpusPerTask} GPUs, more than the ${formatBytes(fleet.gpuMemoryBytes)} of the largest GPU in the fleet; choose a smaller model or fewer tokens`,
    );
  }

  let gpuCount = requestedCount;
  if (gpuCount === 0) {
    // Prefer room to spare; settle for a tight fit rather than refuse.
    const comfortable = minimumGpuCount(model, totalTokens, fleet.gpuMemoryBytes, DEFAULT_GPU_MEMORY_HEADROOM);
    gpuCount = comfortable !== undefined && comfortable <= fleet.maxGpusPerTask ? comfortable : fitCount;
  }
  if (requestedMemory > 0) {
    return { gpuCount, gpuMemoryBytes: requestedMemory };
  }
  const estimate = estimateGpuMemory(model, totalTokens, gpuCount);
  if (estimate > fleet.gpuMemoryBytes) {
    throw new InvalidArgumentError(
      'resources.gpu_count',
      `${gpuCount} ${gpuCount === 1 ? 'GPU is' : 'GPUs are'} too few for "${model.name}": it needs about ${formatBytes(estimate)} per GPU, more than the ${formatBytes(fleet.gpuMemoryBytes)} of the largest GPU; ask for at least ${fitCount}`,
    );
  }
  return { gpuCount, gpuMemoryBytes: estimate };
}

function formatBytes(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1).replace(/\.0$/, '')} GiB`;
}
