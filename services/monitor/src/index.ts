export { loadMonitorConfig, MonitorConfigSchema, type MonitorConfig } from './config';
export { MonitorMetrics } from './metrics';
export { MonitorSummary } from './summary';
export { startMonitor } from './start';
export { FeedbackDriver } from './feedback-driver';
export { kedaScalerHandlers, type ScaleSource } from './keda-scaler';
export type { RunningMonitor } from './start';
export { FeedbackMetrics } from './feedback-metrics';
export { LiveState } from './live-state';
