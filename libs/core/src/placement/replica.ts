/**
 * A model replica: a model loaded on K GPUs of one host, serving many
 * sequences at once (continuous batching, as vLLM does). Its GPUs hold no
 * batch job. Sequences share it up to its capacity: the KV-cache tokens that
 * fit beside the weights and a cap on sequences; the engine's own report
 * (requests waiting, KV-cache use) can make it look fuller, never emptier.
 */
export interface Replica {
  readonly id: string;
  readonly nodeId: string;
  readonly model: string;
  readonly gpuIndices: readonly number[];
  /**
   * Reported by the agent's server, which loaded it itself (an
   * OpenAI-compatible server): decision neither loads nor evicts it.
   */
  readonly external: boolean;
  /** 'loading' until the agent reports it serving. */
  state: 'loading' | 'ready';
  /** KV-cache tokens it holds; Infinity when unknown (an external server that does not say). */
  capacityTokens: number;
  /** Most sequences it runs at once (vLLM's max_num_seqs). */
  maxSequences: number;
  /** Tokens claimed by the sequences placed on it and not released. */
  usedTokens: number;
  /** Sequences placed on it and not released. */
  sequences: number;
  /** When a sequence last was placed on it or left it: least recently used replicas are evicted first. */
  lastUsedMs: number;
  /** When decision asked for it: an agent that still does not report it some time later never loaded it. */
  readonly requestedAtMs: number;
  /** A task it is held for: no other sequence is placed on it until that one is. */
  heldFor: string | undefined;
  /** The engine's latest report of itself. */
  reported: ReplicaLoadReport | undefined;
  /** Sequences placed on it since that report: not in its queue yet as far as the report says. */
  placedSinceReport: number;
}

/** A replica as it comes into the fleet (started by placement, or adopted from an agent's report): nothing placed on it yet. */
export function newReplica(
  r: Pick<Replica, 'id' | 'nodeId' | 'model' | 'gpuIndices' | 'external' | 'state' | 'capacityTokens' | 'maxSequences'>,
  nowMs: number,
): Replica {
  return { ...r, gpuIndices: [...r.gpuIndices], usedTokens: 0, sequences: 0, lastUsedMs: nowMs, requestedAtMs: nowMs, heldFor: undefined, reported: undefined, placedSinceReport: 0 };
}

/** An engine's own view of its load, in the vocabulary inference routers use. */
export interface ReplicaLoadReport {
  running: number;
  waiting: number;
  /** KV-cache occupancy in [0, 1]. */
  kvCacheUsage: number;
  /** When decision received it. */
  atMs: number;
}

/** A replica as an agent reports it (on registration and with every telemetry push). */
export interface ReplicaReport {
  id: string;
  model: string;
  gpuIndices: number[];
  ready: boolean;
  external: boolean;
  /** The engine's KV capacity in tokens, when it knows it (0: unknown). */
  capacityTokens: number;
  running: number;
  waiting: number;
  kvCacheUsage: number;
}

/** What the agents must be told to do about replicas, made by placement and taken by the caller. */
export type ReplicaCommand =
  | { kind: 'load'; nodeId: string; replica: Replica }
  | { kind: 'evict'; nodeId: string; replicaId: string; reason: string };

export interface ReplicaLimits {
  /** A replica whose engine reports this many requests waiting takes no more (it is saturated). */
  maxWaiting: number;
  /** Readings older than this do not correct a replica's load. */
  staleTelemetryMs: number;
}

function freshReport(r: Replica, nowMs: number, limits: ReplicaLimits): ReplicaLoadReport | undefined {
  return r.reported && nowMs - r.reported.atMs <= limits.staleTelemetryMs ? r.reported : undefined;
}

/**
 * How full a replica is, in [0, 1]: the larger of its claimed tokens and
 * sequences over their limits, and of what its engine reports (KV-cache use,
 * requests waiting against the saturation mark).
 */
export function replicaLoad(r: Replica, nowMs: number, limits: ReplicaLimits): number {
  const tokens = Number.isFinite(r.capacityTokens) ? r.usedTokens / Math.max(1, r.capacityTokens) : 0;
  let load = Math.max(tokens, r.sequences / Math.max(1, r.maxSequences));
  const report = freshReport(r, nowMs, limits);
  if (report) load = Math.max(load, report.kvCacheUsage, Math.min(1, report.waiting / Math.max(1, limits.maxWaiting)));
  return Math.min(1, load);
}

/**
 * Whether a sequence of `tokens` fits in the replica beside what is claimed
 * there (less `freedTokens`/`freedSequences`, for preemption), and, when
 * `useReports`, beside what its engine reports.
 */
export function replicaFits(
  r: Replica,
  tokens: number,
  nowMs: number,
  limits: ReplicaLimits,
  useReports: boolean,
  freedTokens = 0,
  freedSequences = 0,
): boolean {
  if (r.usedTokens - freedTokens + tokens > r.capacityTokens) return false;
  if (r.sequences - freedSequences + 1 > r.maxSequences) return false;
  if (!useReports) return true;
  const report = freshReport(r, nowMs, limits);
  return !report || (report.waiting < limits.maxWaiting && report.kvCacheUsage < 1);
}
