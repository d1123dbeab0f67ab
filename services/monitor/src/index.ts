export { loadMonitorConfig, MonitorConfigSchema, type MonitorConfig } from './config';
export { MonitorMetrics } from './metrics';
export { MonitorSummary } from './summary';
export { startMonitor } from './start';
