import { z } from 'zod';
import {
  CLASS_LABELS,
  DEFAULT_BACKLOG_RULES,
  DEFAULT_BOOST_CONFIG,
  DEFAULT_QUARANTINE_CONFIG,
  DEFAULT_SCALE_CONFIG,
  DEFAULT_SLOS,
  DEFAULT_WARM_CONFIG,
  SLO_INDICATORS,
  validateSlos,
} from '@autoglm/core';
import { flag, hostPort, loadConfig, logLevel, tlsConfigShape, TLS_ENV } from '@autoglm/runtime';

const ms = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const ratio = z.coerce.number().gt(0).lt(1);
/** A list: an array in the config file, comma-separated in a variable. */
const list = z.union([z.array(z.string()), z.string().transform((s) => s.split(','))]).transform((l) => l.map((x) => x.trim().toLowerCase()).filter(Boolean));

const slo = z.object({
  name: z.string(),
  indicator: z.enum(SLO_INDICATORS as [string, ...string[]]).transform((s) => s as (typeof SLO_INDICATORS)[number]),
  tenant: z.string().min(1).default('*'),
  priorityClass: z.enum(['*', ...CLASS_LABELS]).default('*'),
  thresholdSeconds: z.coerce.number().min(0).default(0),
  objective: ratio,
  windowMs: ms(10_000, 7 * 86_400_000).default(300_000),
  minEvents: z.coerce.number().int().min(1).default(20),
  alertForMs: ms(0, 86_400_000).default(60_000),
});

/** Each part of the loop: its defaults, overridable field by field in the config file. */
const boost = z.object({
  enabled: flag.default(DEFAULT_BOOST_CONFIG.enabled),
  step: z.coerce.number().gt(1).max(10).default(DEFAULT_BOOST_CONFIG.step),
  max: z.coerce.number().min(1).max(100).default(DEFAULT_BOOST_CONFIG.max),
  minIntervalMs: ms(0, 3_600_000).default(DEFAULT_BOOST_CONFIG.minIntervalMs),
  relaxAfterMs: ms(0, 86_400_000).default(DEFAULT_BOOST_CONFIG.relaxAfterMs),
});
const warm = z.object({
  enabled: flag.default(DEFAULT_WARM_CONFIG.enabled),
  horizonMs: ms(10_000, 3_600_000).default(DEFAULT_WARM_CONFIG.horizonMs),
  targetLoad: ratio.default(DEFAULT_WARM_CONFIG.targetLoad),
  maxPerModel: z.coerce.number().int().min(0).max(64).default(DEFAULT_WARM_CONFIG.maxPerModel),
  maxGpuFraction: z.coerce.number().min(0).max(1).default(DEFAULT_WARM_CONFIG.maxGpuFraction),
  holdMs: ms(0, 86_400_000).default(DEFAULT_WARM_CONFIG.holdMs),
  minIntervalMs: ms(0, 3_600_000).default(DEFAULT_WARM_CONFIG.minIntervalMs),
});
const quarantine = z.object({
  enabled: flag.default(DEFAULT_QUARANTINE_CONFIG.enabled),
  windowMs: ms(10_000, 86_400_000).default(DEFAULT_QUARANTINE_CONFIG.windowMs),
  recentAttempts: z.coerce.number().int().min(1).max(10_000).default(DEFAULT_QUARANTINE_CONFIG.recentAttempts),
  minAttempts: z.coerce.number().int().min(1).default(DEFAULT_QUARANTINE_CONFIG.minAttempts),
  significance: ratio.default(DEFAULT_QUARANTINE_CONFIG.significance),
  minFailureRatio: z.coerce.number().min(0).max(1).default(DEFAULT_QUARANTINE_CONFIG.minFailureRatio),
  slowRatio: z.coerce.number().gt(1).default(DEFAULT_QUARANTINE_CONFIG.slowRatio),
  probationMs: ms(1000, 86_400_000).default(DEFAULT_QUARANTINE_CONFIG.probationMs),
  maxProbationMs: ms(1000, 7 * 86_400_000).default(DEFAULT_QUARANTINE_CONFIG.maxProbationMs),
  maxQuarantinedFraction: z.coerce.number().min(0).max(1).default(DEFAULT_QUARANTINE_CONFIG.maxQuarantinedFraction),
});
const scale = z.object({
  targetLoad: ratio.default(DEFAULT_SCALE_CONFIG.targetLoad),
  scaleDownWindowMs: ms(0, 86_400_000).default(DEFAULT_SCALE_CONFIG.scaleDownWindowMs),
  gpusPerAgent: z.coerce.number().int().min(1).default(DEFAULT_SCALE_CONFIG.gpusPerAgent),
  minAgents: z.coerce.number().int().min(0).default(DEFAULT_SCALE_CONFIG.minAgents),
  maxAgents: z.coerce.number().int().min(1).default(DEFAULT_SCALE_CONFIG.maxAgents),
});

/** monitor's configuration: AUTOGLM_CONFIG file section "monitor", then these variables, then defaults. */
export const MonitorConfigSchema = z.object({
  ...tlsConfigShape,
  /** gRPC listen address (MonitorService). */
  listen: hostPort.default('127.0.0.1:50053'),
  /** HTTP listen address: the dashboard at /, Prometheus metrics at /metrics. */
  httpListen: hostPort.default('127.0.0.1:8080'),
  /**
   * Host names the dashboard (/, /assets/, /api/) answers to besides localhost, 127.0.0.1, [::1]
   * and the bound address: a page of another name is a DNS-rebinding attempt (421). "*" allows any.
   */
  allowedHosts: list.default([]),
  /** KEDA external scaler (gRPC) listen address; "off" serves none. */
  kedaListen: z.union([z.literal('off'), hostPort]).default('127.0.0.1:50054'),
  /** decision's address, to subscribe to its events and send the loop's changes. */
  decisionAddress: hostPort.default('127.0.0.1:50052'),
  /** Log level. */
  logLevel: logLevel.default('info'),
  /** Whether the feedback loop sends its changes to decision (off: it still alerts and recommends). */
  feedback: flag.default(true),
  /** How often SLOs, alerts and the loop are evaluated. */
  evaluateEveryMs: ms(100, 300_000).default(10_000),
  /** The forecast's interval: demand is counted, and forecast, per interval this long. */
  forecastIntervalMs: ms(100, 3_600_000).default(10_000),
  /** Alert changes are POSTed here as JSON (close to Alertmanager's webhook body). */
  alertWebhook: z.url().optional(),
  /** Sequences one replica runs at once, as decision places them (its placement default). */
  sequencesPerReplica: z.coerce.number().int().min(1).default(256),
  /** The SLOs (config file only); the defaults are in libs/core/src/feedback/slo.ts. */
  slos: z
    .array(slo)
    .default(() => [...DEFAULT_SLOS])
    .transform((list, ctx) => {
      try {
        return validateSlos(list);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    }),
  /** Backlog alert rules (config file only). */
  backlogRules: z
    .array(z.object({ priorityClass: z.enum(CLASS_LABELS), maxPending: z.coerce.number().int().min(0), forMs: ms(0, 86_400_000) }))
    .default(() => [...DEFAULT_BACKLOG_RULES]),
  /** The loop's parts (config file only), each with `enabled` and its bounds. */
  boost: boost.default(boost.parse({})),
  warm: warm.default(warm.parse({})),
  quarantine: quarantine.default(quarantine.parse({})),
  scale: scale.default(scale.parse({})),
});

export type MonitorConfig = z.infer<typeof MonitorConfigSchema>;

export function loadMonitorConfig(env: NodeJS.ProcessEnv = process.env): MonitorConfig {
  return loadConfig('monitor', MonitorConfigSchema, {
    ...TLS_ENV,
    listen: 'AUTOGLM_MONITOR_LISTEN',
    httpListen: 'AUTOGLM_MONITOR_HTTP_LISTEN',
    allowedHosts: 'AUTOGLM_MONITOR_ALLOWED_HOSTS',
    kedaListen: 'AUTOGLM_KEDA_LISTEN',
    decisionAddress: 'AUTOGLM_DECISION_ADDRESS',
    logLevel: 'AUTOGLM_LOG_LEVEL',
    feedback: 'AUTOGLM_FEEDBACK',
    evaluateEveryMs: 'AUTOGLM_FEEDBACK_EVERY_MS',
    forecastIntervalMs: 'AUTOGLM_FORECAST_INTERVAL_MS',
    alertWebhook: 'AUTOGLM_ALERT_WEBHOOK',
    sequencesPerReplica: 'AUTOGLM_SEQUENCES_PER_REPLICA',
    slos: null,
    backlogRules: null,
    boost: null,
    warm: null,
    quarantine: null,
    scale: null,
  }, env);
}
