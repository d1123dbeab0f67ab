import { z } from 'zod';
import { DEFAULT_POLICY, loadModelCatalog } from '@autoglm/core';
import { parseFaultSpec } from '@autoglm/store';
import { checkedFile, hostPort, loadConfig, logLevel, tlsConfigShape, TLS_ENV } from '@autoglm/runtime';

/** decision's configuration: AUTOGLM_CONFIG file section "decision", then these variables, then defaults. */
export const DecisionConfigSchema = z.object({
  ...tlsConfigShape,
  /** gRPC listen address. */
  listen: hostPort.default('127.0.0.1:50052'),
  /** PGlite data directory (embedded database), used when no databaseUrl is set. */
  dataDir: z.string().min(1).default('.autoglm/data'),
  /** External PostgreSQL URL; when set, PGlite is not used. */
  databaseUrl: z.string().url().optional(),
  /**
   * Embedded PGlite's buffer cache (PostgreSQL's shared_buffers, e.g. "32MB"),
   * which counts in decision's memory. Unset: PostgreSQL's default, 128MB.
   */
  pgliteSharedBuffers: z
    .string()
    .regex(/^[1-9][0-9]*(kB|MB|GB)$/, 'a size such as 32MB (a whole number, then kB, MB or GB)')
    .optional(),
  /** An agent silent this long is declared lost and its work requeued. */
  leaseMs: z.coerce.number().int().min(500).max(600_000).default(3000),
  /** Backoff before the first retry of a failed attempt (doubles per failure, with jitter). */
  retryBaseMs: z.coerce.number().int().min(0).max(3_600_000).default(500),
  /** Longest backoff between retries. */
  retryMaxMs: z.coerce.number().int().min(0).max(86_400_000).default(30_000),
  /**
   * Tries of a write batch on transient store errors before its submissions
   * are refused with UNAVAILABLE (clients retry with their request id).
   * Transitions are retried until they land.
   */
  storeSubmitAttempts: z.coerce.number().int().min(1).max(100).default(5),
  /** Test aid: inject store faults, e.g. "transient=0.1,ambiguous=0.1,seed=7". Never in production. */
  storeFaults: z
    .string()
    .optional()
    .superRefine((text, ctx) => {
      if (!text) return;
      try {
        parseFaultSpec(text);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    }),
  /** How often agents push telemetry. */
  telemetryIntervalMs: z.coerce.number().int().min(10).max(60_000).default(100),
  /** Placement: GPUs busier than this by telemetry take no new work. */
  maxGpuUtilization: z.coerce.number().min(0).max(1).default(0.8),
  /** Placement: reservations stay under this fraction of a GPU's memory. */
  maxGpuMemoryFraction: z.coerce.number().min(0.05).max(1).default(0.9),
  /** Placement: 'pack' best-fits (keeps whole hosts free for large jobs) or 'spread' (least allocated first). */
  placementMode: z.enum(['spread', 'pack']).default('pack'),
  /** A model catalog file (JSON or YAML) extending or replacing the built-in models: the shapes replicas are sized from. */
  modelCatalog: checkedFile(loadModelCatalog),
  /** Idle replicas kept per model, "model=n,...": never evicted below it, and started while GPUs are free. */
  keepWarm: z
    .string()
    .default('')
    .transform((text, ctx) => {
      const counts: Record<string, number> = {};
      for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
        const at = part.lastIndexOf('=');
        const n = Number(part.slice(at + 1));
        if (at <= 0 || !Number.isInteger(n) || n < 0 || n > 1024) {
          ctx.addIssue({ code: 'custom', message: `"${part}" is not model=count (e.g. glm-4-9b=1; count 0 to 1024)` });
          return z.NEVER;
        }
        counts[part.slice(0, at).trim()] = n;
      }
      return counts;
    }),
  /** Once every replica of a model is this loaded (KV cache, sequences, engine queue), another is started on free GPUs. */
  scaleOutLoad: z.coerce.number().min(0.05).max(1).default(0.8),
  /** Most sequences a replica runs at once when its agent does not say (vLLM's max_num_seqs). */
  maxSequencesPerReplica: z.coerce.number().int().min(1).max(100_000).default(256),
  /** A preempted attempt has this long to stop (SIGTERM to SIGKILL; a command job may checkpoint); its GPUs stay its own until then. */
  preemptGraceMs: z.coerce.number().int().min(0).max(3_600_000).default(10_000),
  /** The monitor's feedback (boost factors, warm floors) lapses unless it sends it again within this long (it does every minute). */
  feedbackTtlMs: z.coerce.number().int().min(1000).max(86_400_000).default(300_000),
  /** Scheduling policy preset to start from. */
  policyPreset: z.enum(['realtime', 'batch', 'balanced']).default('balanced'),
  /** Factor weights over the preset, "factor=weight,...", e.g. "class=8000,fairshare=4000". */
  policyWeights: z
    .string()
    .default('')
    .transform((text, ctx) => {
      const weights: Record<string, number> = {};
      for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
        const [name, value] = part.split('=');
        const n = Number(value);
        if (!name || value === undefined || !Number.isFinite(n)) {
          ctx.addIssue({ code: 'custom', message: `"${part}" is not factor=weight (e.g. class=8000)` });
          return z.NEVER;
        }
        weights[name.trim()] = n;
      }
      return weights;
    }),
  /** The age bound: age reaches 1 and a task is overdue after this long runnable. */
  maxAgeMs: z.coerce.number().int().min(1000).max(7 * 86_400_000).default(600_000),
  /**
   * A policy experiment, as JSON: a traffic split between weight variants by
   * CRC32 of the tenant or request id (libs/core policy/experiment.ts), e.g.
   * {"name":"deadlines","splitBy":"tenant","variants":[{"name":"control","percent":50},{"name":"heavy","percent":50,"weights":{"deadline":8000}}]}.
   */
  policyExperiment: z.string().default(''),
  /** Work below the urgent class preempts only after waiting this long runnable. */
  preemptAfterMs: z.coerce.number().int().min(0).max(86_400_000).default(DEFAULT_POLICY.preemptAfterMs),
  /** Urgent work preempts only after waiting this long runnable. */
  urgentPreemptAfterMs: z.coerce.number().int().min(0).max(86_400_000).default(DEFAULT_POLICY.urgentPreemptAfterMs),
  /** Preemption by rank or fair share stops only attempts that have run less than this (quota reclaim is not limited). */
  preemptMaxRunMs: z.coerce.number().int().min(0).max(86_400_000).default(DEFAULT_POLICY.preemptMaxRunMs),
  /** A job waiting for capacity this long gets a reservation with backfill. */
  reserveAfterMs: z.coerce.number().int().min(0).max(7 * 86_400_000).default(DEFAULT_POLICY.reserveAfterMs),
  /** Batch jobs leave open the GPUs inference used more at its peak over this window than now (0: off). */
  inferenceHeadroomMs: z.coerce.number().int().min(0).max(86_400_000).default(DEFAULT_POLICY.inferenceHeadroomMs),
  /** Fair share: past usage counts half after this long. */
  fairShareHalfLifeMs: z.coerce.number().int().min(1000).max(30 * 86_400_000).default(600_000),
  /**
   * Tenants' fair shares and quotas, as JSON (in the config file, a plain list):
   * [{"name":"acme","share":2,"quota":{"gpus":{"nominal":4,"borrowingLimit":4}}}].
   * Tenants not listed have share 1 and no quota.
   */
  tenants: z.preprocess(
    (v) => {
      if (typeof v !== 'string') return v;
      try {
        return JSON.parse(v) as unknown;
      } catch {
        return v;
      }
    },
    z
      .array(
        z.object({
          name: z.string().min(1),
          share: z.number().positive().optional(),
          quota: z
            .object({
              gpus: z.object({ nominal: z.number().min(0), borrowingLimit: z.number().min(0).optional() }).strict().optional(),
              gpuMemoryBytes: z.object({ nominal: z.number().min(0), borrowingLimit: z.number().min(0).optional() }).strict().optional(),
              cpus: z.object({ nominal: z.number().min(0), borrowingLimit: z.number().min(0).optional() }).strict().optional(),
            })
            .strict()
            .optional(),
        }).strict(),
      )
      .default([]),
  ),
  /** Sheddable submissions (negative priority) are refused while their class has this many queued, or any past the age bound. */
  shedQueueLimit: z.coerce.number().int().min(1).max(100_000_000).default(10_000),
  /**
   * A file holding the first admin token (mode 0600): made with a new token
   * when missing, and its token stored. The local mesh sets
   * `<data dir>/admin-token`; unset: no token is made (create them with an
   * admin token, or through a mesh that made one).
   */
  bootstrapTokenFile: z.string().min(1).optional(),
  /**
   * A Subscribe stream (the monitor's, a parser's) this many events behind is
   * cut with RESOURCE_EXHAUSTED and its backlog dropped: a subscriber that
   * does not read cannot make decision hold events for it.
   */
  subscriberBacklog: z.coerce.number().int().min(100).max(10_000_000).default(50_000),
  /** Subscribe streams of every task's or node's events at once (the monitor's, tools'); more are refused with RESOURCE_EXHAUSTED. */
  maxSubscribers: z.coerce.number().int().min(1).max(100_000).default(64),
  /** Largest message decision accepts, bytes: keep it above the parser's AUTOGLM_MAX_MESSAGE_BYTES (a submission is forwarded whole). */
  maxMessageBytes: z.coerce.number().int().min(1024 * 1024).max(256 * 1024 * 1024).default(8 * 1024 * 1024),
  /** Log level. */
  logLevel: logLevel.default('info'),
});

export type DecisionConfig = z.infer<typeof DecisionConfigSchema>;

export function loadDecisionConfig(env: NodeJS.ProcessEnv = process.env): DecisionConfig {
  return loadConfig('decision', DecisionConfigSchema, {
    ...TLS_ENV,
    listen: 'AUTOGLM_DECISION_LISTEN',
    dataDir: 'AUTOGLM_DATA_DIR',
    bootstrapTokenFile: 'AUTOGLM_BOOTSTRAP_TOKEN_FILE',
    subscriberBacklog: 'AUTOGLM_SUBSCRIBER_BACKLOG',
    maxSubscribers: 'AUTOGLM_MAX_SUBSCRIBERS',
    maxMessageBytes: 'AUTOGLM_DECISION_MAX_MESSAGE_BYTES',
    databaseUrl: 'AUTOGLM_DATABASE_URL',
    pgliteSharedBuffers: 'AUTOGLM_PGLITE_SHARED_BUFFERS',
    leaseMs: 'AUTOGLM_LEASE_MS',
    retryBaseMs: 'AUTOGLM_RETRY_BASE_MS',
    retryMaxMs: 'AUTOGLM_RETRY_MAX_MS',
    storeFaults: 'AUTOGLM_STORE_FAULTS',
    storeSubmitAttempts: 'AUTOGLM_STORE_SUBMIT_ATTEMPTS',
    telemetryIntervalMs: 'AUTOGLM_TELEMETRY_INTERVAL_MS',
    maxGpuUtilization: 'AUTOGLM_MAX_GPU_UTILIZATION',
    maxGpuMemoryFraction: 'AUTOGLM_MAX_GPU_MEMORY_FRACTION',
    placementMode: 'AUTOGLM_PLACEMENT_MODE',
    modelCatalog: 'AUTOGLM_MODEL_CATALOG',
    keepWarm: 'AUTOGLM_KEEP_WARM',
    scaleOutLoad: 'AUTOGLM_SCALE_OUT_LOAD',
    maxSequencesPerReplica: 'AUTOGLM_MAX_SEQUENCES_PER_REPLICA',
    preemptGraceMs: 'AUTOGLM_PREEMPT_GRACE_MS',
    feedbackTtlMs: 'AUTOGLM_FEEDBACK_TTL_MS',
    logLevel: 'AUTOGLM_LOG_LEVEL',
    policyPreset: 'AUTOGLM_POLICY_PRESET',
    policyWeights: 'AUTOGLM_POLICY_WEIGHTS',
    maxAgeMs: 'AUTOGLM_MAX_AGE_MS',
    fairShareHalfLifeMs: 'AUTOGLM_FAIR_SHARE_HALF_LIFE_MS',
    preemptAfterMs: 'AUTOGLM_PREEMPT_AFTER_MS',
    policyExperiment: 'AUTOGLM_POLICY_EXPERIMENT',
    urgentPreemptAfterMs: 'AUTOGLM_URGENT_PREEMPT_AFTER_MS',
    preemptMaxRunMs: 'AUTOGLM_PREEMPT_MAX_RUN_MS',
    reserveAfterMs: 'AUTOGLM_RESERVE_AFTER_MS',
    inferenceHeadroomMs: 'AUTOGLM_INFERENCE_HEADROOM_MS',
    tenants: 'AUTOGLM_TENANTS',
    shedQueueLimit: 'AUTOGLM_SHED_QUEUE_LIMIT',
  }, env);
}
