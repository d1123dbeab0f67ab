import type { ServedModel } from '@autoglm/proto';

/** One model's engine load, in the vocabulary inference routers read from vLLM's /metrics. */
export interface EngineLoad {
  running: number;
  waiting: number;
  /** KV-cache occupancy in [0, 1]. */
  kvCacheUsage: number;
}

export interface ServerWatchOptions {
  readonly baseUrl: string;
  readonly apiKey?: string;
  /** How often /v1/models and /metrics are read again. @default 5000 */
  readonly refreshMs?: number;
  /** How long one read may take. @default 2000 */
  readonly timeoutMs?: number;
}

/**
 * What an OpenAI-compatible server says of itself: the models it lists
 * (`GET /v1/models`, with vLLM's `max_model_len`) and, when it exposes
 * Prometheus metrics as vLLM does, each model's requests running and
 * waiting and its KV-cache use. Read at start and then periodically; a
 * server that does not answer keeps the last reading (or none).
 */
export class ServerWatch {
  private listed: ServedModel[] = [];
  private engine = new Map<string, EngineLoad>();
  private timer: NodeJS.Timeout | undefined;
  private readonly baseUrl: string;
  private readonly headers: Record<string, string>;
  private readonly refreshMs: number;
  private readonly timeoutMs: number;

  constructor(options: ServerWatchOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.headers = options.apiKey === undefined ? {} : { authorization: `Bearer ${options.apiKey}` };
    this.refreshMs = options.refreshMs ?? 5000;
    this.timeoutMs = options.timeoutMs ?? 2000;
  }

  /** Reads the server once now, then keeps reading it in the background. */
  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The models it listed last. */
  models(): ServedModel[] {
    return this.listed;
  }

  /** A model's engine load from the server's metrics, if it exposes them. */
  load(model: string): EngineLoad | undefined {
    return this.engine.get(model) ?? (this.engine.size === 1 && this.listed.length === 1 ? [...this.engine.values()][0] : undefined);
  }

  async refresh(): Promise<void> {
    const [models, metrics] = await Promise.all([this.get('/v1/models'), this.get('/metrics')]);
    if (models !== undefined) {
      const parsed = parseModelList(models);
      if (parsed !== undefined) this.listed = parsed;
    }
    if (metrics !== undefined) this.engine = parseEngineMetrics(metrics);
  }

  private async get(path: string): Promise<string | undefined> {
    try {
      const res = await fetch(`${this.baseUrl}${path}`, { headers: this.headers, signal: AbortSignal.timeout(this.timeoutMs) });
      if (res.ok) return await res.text();
      // Not served here (a server without metrics): let the connection go back to the pool.
      await res.body?.cancel();
      return undefined;
    } catch {
      // Unreachable or too slow: the last reading stands.
      return undefined;
    }
  }
}

/** `GET /v1/models`: `{ data: [{ id, max_model_len? }] }` (OpenAI's shape; vLLM adds max_model_len). */
export function parseModelList(text: string): ServedModel[] | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { data?: unknown }).data)) return undefined;
  const out: ServedModel[] = [];
  for (const entry of (json as { data: unknown[] }).data) {
    if (typeof entry !== 'object' || entry === null) continue;
    const { id, max_model_len: maxLen } = entry as { id?: unknown; max_model_len?: unknown };
    if (typeof id !== 'string' || id === '') continue;
    out.push({ name: id, contextLength: typeof maxLen === 'number' && Number.isInteger(maxLen) && maxLen > 0 ? maxLen : 0 });
  }
  return out;
}

/**
 * vLLM's Prometheus metrics, per `model_name` label:
 * `vllm:num_requests_running`, `vllm:num_requests_waiting`, and
 * `vllm:gpu_cache_usage_perc` (renamed `vllm:kv_cache_usage_perc` in newer
 * releases), a fraction in [0, 1]. A server with several engines of one
 * model (data parallelism: one series per `engine` label) adds their
 * requests and reports its fullest cache.
 */
export function parseEngineMetrics(text: string): Map<string, EngineLoad> {
  const out = new Map<string, EngineLoad>();
  const line = /^vllm:(num_requests_running|num_requests_waiting|gpu_cache_usage_perc|kv_cache_usage_perc)(?:\{([^}]*)\})?\s+([-+0-9.eE]+|NaN)/;
  for (const raw of text.split('\n')) {
    const m = line.exec(raw.trim());
    if (!m) continue;
    const model = /model_name="([^"]*)"/.exec(m[2] ?? '')?.[1] ?? '';
    const value = Number(m[3]);
    if (!Number.isFinite(value)) continue;
    const load = out.get(model) ?? { running: 0, waiting: 0, kvCacheUsage: 0 };
    if (m[1] === 'num_requests_running') load.running += value;
    else if (m[1] === 'num_requests_waiting') load.waiting += value;
    else load.kvCacheUsage = Math.max(load.kvCacheUsage, Math.min(1, Math.max(0, value)));
    out.set(model, load);
  }
  return out;
}
