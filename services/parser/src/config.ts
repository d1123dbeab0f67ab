import { z } from 'zod';
import { loadModelCatalog, parseRateLimits } from '@autoglm/core';
import { checkedFile, hostPort, loadConfig, logLevel, tlsConfigShape, TLS_ENV } from '@autoglm/runtime';

const GiB = 1024 ** 3;

/** parser's configuration: AUTOGLM_CONFIG file section "parser", then these variables, then defaults. */
export const ParserConfigSchema = z.object({
  ...tlsConfigShape,
  /** Public gRPC listen address. */
  listen: hostPort.default('127.0.0.1:50051'),
  /**
   * The OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions,
   * /v1/models): its listen address, HTTPS with the parser's certificate
   * when TLS is configured; "off" serves none.
   */
  openaiListen: z.union([z.literal('off'), hostPort]).default('127.0.0.1:8000'),
  /** decision's address. */
  decisionAddress: hostPort.default('127.0.0.1:50052'),
  /** The monitor's address (alerts, SLOs, scale recommendations in ClusterService). */
  monitorAddress: hostPort.default('127.0.0.1:50053'),
  /** Memory of the largest GPU in the fleet, GiB: submissions needing more per GPU are refused. */
  gpuMemoryGb: z.coerce.number().positive().max(4096).default(80),
  /** Most GPUs one task may ask for (one host). */
  maxGpusPerTask: z.coerce.number().int().min(1).max(64).default(8),
  /** Retries when a submission does not say. */
  defaultMaxRetries: z.coerce.number().int().min(0).max(20).default(3),
  /** Largest request accepted, bytes; bigger ones get RESOURCE_EXHAUSTED. */
  maxMessageBytes: z.coerce.number().int().min(1024).max(256 * 1024 * 1024).default(4 * 1024 * 1024),
  /** Deadline of calls to decision, ms. */
  decisionTimeoutMs: z.coerce.number().int().min(100).max(600_000).default(30_000),
  /**
   * Per-tenant submission rate limits (token buckets): "rate[/burst]" for
   * every tenant and/or "tenant=rate[/burst]", comma-separated, e.g.
   * "200/400,batch-team=20/100". Empty: no limit.
   */
  tenantRateLimits: z
    .string()
    .default('')
    .superRefine((text, ctx) => {
      try {
        parseRateLimits(text);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    }),
  /** A model catalog file (JSON or YAML) extending or replacing the built-in models. */
  modelCatalog: checkedFile(loadModelCatalog),
  /**
   * How callers are known: "tokens" (every call carries an API token; see
   * AuthService) or "none" (no check: the tenant is whatever a request says,
   * and everyone may do everything; for a trusted network only).
   */
  auth: z.enum(['tokens', 'none']).default('tokens'),
  /** Longest an Infer stream may stay open without its start message, ms (then DEADLINE_EXCEEDED). */
  streamStartTimeoutMs: z.coerce.number().int().min(100).max(600_000).default(30_000),
  /** OpenID Connect: JWTs from this issuer are credentials too (with oidcAudience); unset: API tokens only. */
  oidcIssuer: z.string().url().optional(),
  /** OpenID Connect: the audience ("aud") a JWT must name. */
  oidcAudience: z.string().min(1).optional(),
  /** OpenID Connect: the issuer's JWKS (its jwks_uri). Unset: <issuer>/.well-known/jwks.json. */
  oidcJwksUrl: z.string().url().optional(),
  /** OpenID Connect: the claim naming the tenant. */
  oidcTenantClaim: z.string().min(1).default('tenant'),
  /** OpenID Connect: the claim naming the role (viewer, submitter, admin). */
  oidcRoleClaim: z.string().min(1).default('autoglm_role'),
  /** OpenID Connect: the role of a JWT without the role claim. */
  oidcDefaultRole: z.enum(['viewer', 'submitter', 'admin']).default('viewer'),
    /** How long a token lookup is remembered, ms: a revocation made through another parser bites within this. */
  authCacheMs: z.coerce.number().int().min(0).max(600_000).default(5000),
  /** Log level. */
  logLevel: logLevel.default('info'),
});

export type ParserConfig = z.infer<typeof ParserConfigSchema>;

export const gpuMemoryBytes = (config: ParserConfig) => Math.round(config.gpuMemoryGb * GiB);

export function loadParserConfig(env: NodeJS.ProcessEnv = process.env): ParserConfig {
  return loadConfig('parser', ParserConfigSchema, {
    ...TLS_ENV,
    listen: 'AUTOGLM_PARSER_LISTEN',
    openaiListen: 'AUTOGLM_OPENAI_LISTEN',
    decisionAddress: 'AUTOGLM_DECISION_ADDRESS',
    monitorAddress: 'AUTOGLM_MONITOR_ADDRESS',
    gpuMemoryGb: 'AUTOGLM_GPU_MEMORY_GB',
    maxGpusPerTask: 'AUTOGLM_MAX_GPUS_PER_TASK',
    defaultMaxRetries: 'AUTOGLM_DEFAULT_MAX_RETRIES',
    maxMessageBytes: 'AUTOGLM_MAX_MESSAGE_BYTES',
    decisionTimeoutMs: 'AUTOGLM_DECISION_TIMEOUT_MS',
    logLevel: 'AUTOGLM_LOG_LEVEL',
    auth: 'AUTOGLM_AUTH',
    authCacheMs: 'AUTOGLM_AUTH_CACHE_MS',
    streamStartTimeoutMs: 'AUTOGLM_STREAM_START_TIMEOUT_MS',
    oidcIssuer: 'AUTOGLM_OIDC_ISSUER',
    oidcAudience: 'AUTOGLM_OIDC_AUDIENCE',
    oidcJwksUrl: 'AUTOGLM_OIDC_JWKS_URL',
    oidcTenantClaim: 'AUTOGLM_OIDC_TENANT_CLAIM',
    oidcRoleClaim: 'AUTOGLM_OIDC_ROLE_CLAIM',
    oidcDefaultRole: 'AUTOGLM_OIDC_DEFAULT_ROLE',
    tenantRateLimits: 'AUTOGLM_TENANT_RATE_LIMITS',
    modelCatalog: 'AUTOGLM_MODEL_CATALOG',
  }, env);
}
