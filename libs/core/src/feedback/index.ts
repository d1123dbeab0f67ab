export * from './forecast';
export { AlertBook, alertKey, type Alert, type AlertCondition, type AlertState } from './alerts';
export { DEFAULT_BOOST_CONFIG, TenantBoosts, type BoostChange, type BoostConfig } from './boosts';
export {
  DEFAULT_SCALE_CONFIG,
  DEFAULT_WARM_CONFIG,
  replicasNeeded,
  ScaleAdvisor,
  WarmPlanner,
  type FleetView,
  type ModelDemand,
  type ScaleConfig,
  type ScaleRecommendation,
  type WarmChange,
  type WarmConfig,
} from './capacity';
export { DEFAULT_FEEDBACK_CONFIG, FeedbackLoop, type Arrival, type FeedbackConfig, type FeedbackResult, type FleetSnapshot, type TenantDemand } from './loop';
export { binomialTail, DEFAULT_QUARANTINE_CONFIG, NodeWatch, type NodeVerdict, type QuarantineConfig } from './quarantine';
export { backlogConditions, DEFAULT_BACKLOG_RULES, describeSlo, prometheusRules, quarantineCondition, sloConditions, type BacklogRule } from './rules';
export {
  CLASS_LABELS,
  binds,
  DEFAULT_SLOS,
  judge,
  SLO_INDICATORS,
  SloTracker,
  validateSlos,
  type ClassLabel,
  type SloEvent,
  type SloIndicator,
  type SloReading,
  type SloSpec,
  type TaskOutcome,
} from './slo';
export { RollingCounts } from './window';
