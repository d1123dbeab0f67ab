import { z } from 'zod';
import { hostPort, loadConfig, logLevel, tlsConfigShape, TLS_ENV } from '@autoglm/runtime';

/** monitor's configuration: AUTOGLM_CONFIG file section "monitor", then these variables, then defaults. */
export const MonitorConfigSchema = z.object({
  ...tlsConfigShape,
  /** gRPC listen address (MonitorService). */
  listen: hostPort.default('127.0.0.1:50053'),
  /** HTTP listen address: the dashboard at /, Prometheus metrics at /metrics. */
  httpListen: hostPort.default('127.0.0.1:8080'),
  /** decision's address, to subscribe to its events. */
  decisionAddress: hostPort.default('127.0.0.1:50052'),
  /** Log level. */
  logLevel: logLevel.default('info'),
});

export type MonitorConfig = z.infer<typeof MonitorConfigSchema>;

export function loadMonitorConfig(env: NodeJS.ProcessEnv = process.env): MonitorConfig {
  return loadConfig('monitor', MonitorConfigSchema, {
    ...TLS_ENV,
    listen: 'AUTOGLM_MONITOR_LISTEN',
    httpListen: 'AUTOGLM_MONITOR_HTTP_LISTEN',
    decisionAddress: 'AUTOGLM_DECISION_ADDRESS',
    logLevel: 'AUTOGLM_LOG_LEVEL',
  }, env);
}
