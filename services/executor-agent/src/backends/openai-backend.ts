import { type GpuInfo, type GpuStatus, type InferencePayload, type ModelServerLoad, ReplicaState, type ReplicaStatus, type ServedModel } from '@autoglm/proto';
import { type Backend, ExecutionError, type ExecutionOutcome, type ExecutionRequest, type HostResources } from './backend';
import { ServerWatch } from './openai-server';
import { sseData } from './sse';

export interface OpenAIBackendOptions {
  /** The server's root, without `/v1` (e.g. `http://127.0.0.1:8000` for vLLM, `http://127.0.0.1:11434` for Ollama). */
  readonly baseUrl: string;
  /** Models this server serves, besides those it lists at /v1/models. */
  readonly models: readonly string[];
  /**
   * Reads the server's /v1/models (the models it serves, with their context
   * windows) and vLLM-style /metrics (each model's queue and KV-cache use)
   * every this often; 0 never reads them. @default 5000
   */
  readonly refreshMs?: number;
  /** Sent as `Authorization: Bearer ...` when set (vLLM `--api-key`). */
  readonly apiKey?: string;
  /**
   * The name the server knows a catalog model by, when it differs (vLLM's
   * `--served-model-name`, Ollama tags). @default the catalog name
   */
  readonly servedModelName?: (model: string) => string;
  /**
   * How long to wait for response headers. Generous in case a server holds
   * them back while the request waits in its queue. Generation itself
   * has no limit here: decision's lease and the task's deadline bound it.
   * @default 120000
   */
  readonly responseTimeoutMs?: number;
}

/** Statuses worth another attempt: overload, throttling and timeouts pass; a malformed request does not. */
function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

/** Longest server error text carried into an ExecutionError message. */
const MAX_ERROR_TEXT = 1000;

/**
 * The `openai` backend: any OpenAI-compatible server (vLLM, SGLang, TGI,
 * llama.cpp, Ollama), streamed over SSE. Cancelling aborts the HTTP request;
 * these servers abort the sequence in the engine when the client disconnects,
 * which is what frees the GPU.
 */
export class OpenAIBackend implements Backend {
  readonly name = 'openai' as const;
  /** The configured models and those the server listed at start. */
  private served: readonly string[];
  private readonly baseUrl: string;
  private readonly apiKey: string | undefined;
  private readonly servedModelName: (model: string) => string;
  private readonly responseTimeoutMs: number;
  private readonly inFlight = new Set<AbortController>();
  /** Requests in flight by model, for the replicas' load when the server exposes no metrics. */
  private readonly perModel = new Map<string, number>();
  private readonly configured: readonly string[];
  private readonly watch: ServerWatch | undefined;
  private closed = false;

  constructor(options: OpenAIBackendOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.configured = Object.freeze([...options.models]);
    this.served = this.configured;
    this.watch = options.refreshMs === 0 ? undefined : new ServerWatch({ baseUrl: this.baseUrl, apiKey: options.apiKey, refreshMs: options.refreshMs });
    this.apiKey = options.apiKey;
    this.servedModelName = options.servedModelName ?? ((m) => m);
    this.responseTimeoutMs = options.responseTimeoutMs ?? 120_000;
  }

  /** Reads the server's model list and metrics before the agent registers (a server down now is read again later). */
  async start(): Promise<void> {
    await this.watch?.start();
    const listed = this.watch?.models().map((m) => m.name) ?? [];
    this.served = Object.freeze([...new Set([...this.configured, ...listed])]);
  }

  get models(): readonly string[] {
    return this.served;
  }

  async execute(req: ExecutionRequest): Promise<ExecutionOutcome> {
    if (this.closed) throw new ExecutionError('the openai backend is closed', true);
    const payload = req.spec.payload;
    if (payload?.$case !== 'inference') {
      throw new ExecutionError(`task ${req.taskId}: the openai backend runs inference only`, false);
    }
    const progress: Progress = { output: '', chunks: 0, firstTokenAt: undefined, startedAt: performance.now() };
    if (req.signal.aborted || req.spec.maxOutputTokens === 0) {
      return this.outcome(req, progress, req.signal.aborted ? 'cancelled' : 'length', undefined);
    }
    const chat = payload.inference.messages.length > 0;
    const url = `${this.baseUrl}/v1/${chat ? 'chat/completions' : 'completions'}`;
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(req.signal.reason);
    req.signal.addEventListener('abort', onAbort, { once: true });
    this.inFlight.add(controller);
    this.perModel.set(req.spec.model, (this.perModel.get(req.spec.model) ?? 0) + 1);
    try {
      return await this.stream(req, url, this.requestBody(req, payload.inference, chat), controller, progress);
    } catch (e) {
      if (req.signal.aborted) return this.outcome(req, progress, 'cancelled', undefined);
      if (e instanceof ExecutionError) throw e;
      throw new ExecutionError(`${url}: ${describe(e)}`, true, { cause: e });
    } finally {
      req.signal.removeEventListener('abort', onAbort);
      this.inFlight.delete(controller);
      this.perModel.set(req.spec.model, (this.perModel.get(req.spec.model) ?? 1) - 1);
    }
  }

  gpus(): GpuInfo[] {
    return [];
  }

  gpuStatus(): GpuStatus[] {
    return [];
  }

  /** Only what this agent has in flight; the server's own queue is not visible through the OpenAI API. */
  load(): ModelServerLoad {
    return { numRequestsRunning: this.inFlight.size, numRequestsWaiting: 0, kvCacheUsagePerc: 0 };
  }

  /** It runs inference only: no cores for jobs. */
  hostResources(): HostResources {
    return { cpuMillis: 0, memoryBytes: 0 };
  }

  /**
   * One replica per model the server serves, loaded by the server itself
   * (external: decision neither loads nor evicts it), with the engine's load
   * from its metrics when it has them, else what this agent has in flight.
   */
  replicas(): ReplicaStatus[] {
    const listed = new Map((this.watch?.models() ?? []).map((m) => [m.name, m]));
    const names = [...new Set([...this.models, ...listed.keys()])];
    return names.map((model) => {
      const engine = this.watch?.load(model);
      return {
        replicaId: `openai:${model}`,
        model,
        gpuIndices: [],
        state: ReplicaState.READY,
        external: true,
        capacityTokens: 0,
        numRequestsRunning: engine?.running ?? this.perModel.get(model) ?? 0,
        numRequestsWaiting: engine?.waiting ?? 0,
        kvCacheUsagePerc: engine?.kvCacheUsage ?? 0,
        sequences: 0,
        claimedTokens: 0,
        contextLength: listed.get(model)?.contextLength ?? 0,
      };
    });
  }

  servedModels(): ServedModel[] {
    const listed = this.watch?.models() ?? [];
    const known = new Set(listed.map((m) => m.name));
    return [...listed, ...this.configured.filter((m) => !known.has(m)).map((name) => ({ name, contextLength: 0 }))];
  }

  /** Aborts every request in flight. */
  close(): Promise<void> {
    this.closed = true;
    this.watch?.stop();
    for (const controller of this.inFlight) controller.abort(new Error('the openai backend is closing'));
    return Promise.resolve();
  }

  private async stream(
    req: ExecutionRequest,
    url: string,
    body: Record<string, unknown>,
    controller: AbortController,
    progress: Progress,
  ): Promise<ExecutionOutcome> {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'text/event-stream' };
    if (this.apiKey !== undefined) headers.authorization = `Bearer ${this.apiKey}`;
    const timeout = setTimeout(
      () => controller.abort(new ExecutionError(`${url}: no response within ${this.responseTimeoutMs} ms`, true)),
      this.responseTimeoutMs,
    );
    let res: Response;
    try {
      res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body), signal: controller.signal });
    } catch (e) {
      if (controller.signal.reason instanceof ExecutionError && !req.signal.aborted) throw controller.signal.reason;
      throw new ExecutionError(`cannot reach ${url}: ${describe(e)}`, true, { cause: e });
    } finally {
      clearTimeout(timeout);
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      throw new ExecutionError(`${url} answered ${res.status}: ${errorText(text) || res.statusText}`, isRetryableStatus(res.status));
    }
    if (res.body === null) throw new ExecutionError(`${url} answered ${res.status} without a body`, true);
    req.onStart?.();

    let finishReason: string | undefined;
    let usage: Usage | undefined;
    let sawDone = false;
    for await (const data of sseData(res.body)) {
      if (data === '[DONE]') {
        sawDone = true;
        break;
      }
      const chunk = parseChunk(data, url);
      if (chunk.usage !== undefined) usage = chunk.usage;
      if (chunk.finishReason !== undefined) finishReason = chunk.finishReason;
      if (chunk.text !== '') {
        progress.output += chunk.text;
        progress.chunks++;
        progress.firstTokenAt ??= performance.now();
        // Servers stream about one token per chunk; `usage` at the end corrects the total.
        req.onChunk(chunk.text, 1);
      }
    }
    if (!sawDone && finishReason === undefined) {
      throw new ExecutionError(`${url}: the stream ended before the generation finished`, true);
    }
    return this.outcome(req, progress, finishReason === 'length' ? 'length' : 'stop', usage);
  }

  private requestBody(req: ExecutionRequest, inference: InferencePayload, chat: boolean): Record<string, unknown> {
    const params = inference.params;
    const body: Record<string, unknown> = {
      model: this.servedModelName(req.spec.model),
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: req.spec.maxOutputTokens,
    };
    if (chat) body.messages = inference.messages.map((m) => ({ role: m.role, content: m.content }));
    else body.prompt = inference.prompt;
    if (params !== undefined) {
      // Proto3 zero means "unset" for top_p; for temperature it means greedy, which servers read the same way.
      body.temperature = params.temperature;
      if (params.topP > 0) body.top_p = params.topP;
      if (params.stop.length > 0) body.stop = params.stop;
    }
    return body;
  }

  private outcome(
    req: ExecutionRequest,
    progress: Progress,
    finishReason: ExecutionOutcome['finishReason'],
    usage: Usage | undefined,
  ): ExecutionOutcome {
    return {
      finishReason,
      output: progress.output,
      promptTokens: usage?.promptTokens ?? req.spec.inputTokens,
      completionTokens: usage?.completionTokens ?? progress.chunks,
      exitCode: 0,
      timeToFirstTokenMs: progress.firstTokenAt === undefined ? 0 : progress.firstTokenAt - progress.startedAt,
      runTimeMs: performance.now() - progress.startedAt,
    };
  }
}

/** What has arrived so far; kept outside the stream so a cancelled request still reports it. */
interface Progress {
  output: string;
  chunks: number;
  firstTokenAt: number | undefined;
  readonly startedAt: number;
}

interface Usage {
  promptTokens: number;
  completionTokens: number;
}

interface Chunk {
  text: string;
  finishReason: string | undefined;
  usage: Usage | undefined;
}

/** Reads one streamed chunk of either endpoint; an `error` object mid-stream (vLLM, SGLang) fails the attempt. */
function parseChunk(data: string, url: string): Chunk {
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch (e) {
    throw new ExecutionError(`${url} sent a chunk that is not JSON: ${data.slice(0, 200)}`, true, { cause: e });
  }
  if (!isRecord(json)) throw new ExecutionError(`${url} sent a chunk that is not an object`, true);
  if (json.error !== undefined) {
    throw new ExecutionError(`${url} failed mid-stream: ${errorText(JSON.stringify(json))}`, true);
  }
  let text = '';
  let finishReason: string | undefined;
  const choice = Array.isArray(json.choices) ? (json.choices[0] as unknown) : undefined;
  if (isRecord(choice)) {
    if (typeof choice.text === 'string') text = choice.text;
    if (isRecord(choice.delta) && typeof choice.delta.content === 'string') text = choice.delta.content;
    if (typeof choice.finish_reason === 'string') finishReason = choice.finish_reason;
  }
  let usage: Usage | undefined;
  if (isRecord(json.usage) && typeof json.usage.completion_tokens === 'number') {
    usage = {
      promptTokens: typeof json.usage.prompt_tokens === 'number' ? json.usage.prompt_tokens : 0,
      completionTokens: json.usage.completion_tokens,
    };
  }
  return { text, finishReason, usage };
}

/** The message inside an OpenAI-style (`{error:{message}}`) or vLLM-style (`{message}`) error body, else the text. */
function errorText(body: string): string {
  let text = body.trim();
  try {
    const json: unknown = JSON.parse(body);
    if (isRecord(json)) {
      if (isRecord(json.error) && typeof json.error.message === 'string') text = json.error.message;
      else if (typeof json.message === 'string') text = json.message;
    }
  } catch {
    // Not JSON: the raw text is the best we have.
  }
  return text.length > MAX_ERROR_TEXT ? `${text.slice(0, MAX_ERROR_TEXT)}...` : text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * fetch wraps the interesting error (ECONNREFUSED, ...) in `cause`. Duck-typed:
 * fetch's errors may come from another realm (a VM context), where
 * `instanceof Error` is false.
 */
function describe(e: unknown): string {
  const message = messageOf(e);
  const cause = isRecord(e) || e instanceof Error ? messageOf((e as { cause?: unknown }).cause) : '';
  return cause !== '' && cause !== message ? `${message} (${cause})` : message;
}

function messageOf(e: unknown): string {
  if (e === undefined || e === null) return '';
  if (typeof e === 'object' && 'message' in e && typeof e.message === 'string') return e.message;
  return String(e);
}
