export {
  AbortedError,
  CancelledError,
  DomainError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  AlreadyExistsError,
  ResourceExhaustedError,
  UnavailableError,
  type ErrorCode,
} from './errors';
export { forbiddenJobEnv, jobTimeLimitMs, TIME_LIMIT_SLACK_MS } from './catalog/job-rules';
export {
  actingTenant,
  apiTokenSecret,
  bearerCredential,
  bearerToken,
  listingTenant,
  looksLikeJwt,
  looksLikeToken,
  newTokenSecret,
  parseRole,
  parseTokenRequest,
  PermissionDeniedError,
  principalOf,
  requireAccess,
  requireVisible,
  roleName,
  TOKEN_PREFIX,
  tokenHash,
  tokenPrefix,
  UnauthenticatedError,
  type Access,
  type Principal,
  type TokenRequest,
} from './auth/access';
export { canTransition, IllegalTransitionError, isFinal, isLeased, stateName } from './lifecycle/state-machine';
export { checkHistory, formatViolations, type HistoryEvent, type HistoryReport, type Violation } from './lifecycle/history';
export { heartbeatIntervalMs, selfFenceAfterMs } from './lifecycle/lease';
export { DEFAULT_RETRY_POLICY, retryDelayMs, type RetryPolicy } from './lifecycle/retry';
export { seededRandom } from './random';
export { durationToMillis, systemClock, timestampToMillis, toDuration, toTimestamp, type Clock } from './time';
export { DEFAULT_PLACEMENT_POLICY, Fleet, type GpuReading, type NoFit, type PlacementPolicy } from './placement/fleet';
export { NO_RESOURCES, type Claim, type Resources } from './placement/claim';
export {
  REPLICA_GPU_COUNTS,
  REPLICA_OVERHEAD_BYTES_PER_GPU,
  replicaCapacityTokens,
  replicaShape,
  type Demand,
  type DemandKind,
  type ModelShape,
  type ModelShapes,
  type ReplicaShape,
} from './placement/demand';
export { abilitiesOf, type FleetNode, type GpuState, type NodeAbilities, type NodeHealth, type NodeRegistration } from './placement/node';
export { replicaLoad, type Replica, type ReplicaCommand, type ReplicaLoadReport, type ReplicaReport } from './placement/replica';
export { describeDemand, describeNoFit } from './placement/describe';
export { chooseConnectedGpus, linkScore, type GpuTopology } from './placement/topology';
export {
  ageValue,
  businessValue,
  classValue,
  deadlineValue,
  dependencyValue,
  explainPriority,
  fairShareValue,
  isSheddable,
  priorityFactors,
  priorityOf,
  type FactorContribution,
  type PriorityInputs,
} from './policy/priority';
export { FairShare, RESOURCE_NAMES, type ResourceName, type ResourceQuota, type TenantConfig } from './policy/fair-share';
export { PolicyQueue, type QueuedTask, type QueuedTaskInit, type QueuedTaskPatch } from './scheduling/policy-queue';
export { Dispatcher, type DispatcherOptions, type Placed, type Preemption, type WaitCause, type WaitExplanation } from './scheduling/dispatcher';
export {
  applyPolicyUpdate,
  combinedBoosts,
  MAX_WARM_REPLICAS,
  parseFeedback,
  parseWarmReplicas,
  DEFAULT_POLICY,
  DEFAULT_PRIORITY_SHAPE,
  FACTORS,
  PRESETS,
  type FactorName,
  type Feedback,
  type Policy,
  type PriorityShape,
  type Weights,
} from './policy/policy';
export {
  CatalogFileError,
  DEFAULT_TOKENIZER,
  loadModelCatalog,
  parseCatalogFile,
  TOKENIZER_NAMES,
  type CatalogFile,
  type CatalogMode,
  type TokenizerName,
  countChatTokens,
  countTokens,
  DEFAULT_GPU_MEMORY_BYTES,
  DEFAULT_MAX_GPUS_PER_TASK,
  DEFAULT_MAX_RETRIES,
  DEFAULT_CPU_JOB_MILLIS,
  DEFAULT_CPU_JOB_MEMORY_BYTES,
  DEFAULT_MODEL_CATALOG,
  DEFAULT_MODELS,
  defineModel,
  estimateGpuMemory,
  kvCacheBytesPerToken,
  minimumGpuCount,
  ModelCatalog,
  MAX_WORKFLOW_STEPS,
  parseInferStart,
  parseSubmission,
  parseTenant,
  parseWorkflow,
  type ParsedWorkflow,
  type CatalogModel,
  type ChatTurn,
  type ParseContext,
  type ServedModelInfo,
  SERVED_MODEL_DEFAULT_CONTEXT,
  type ParsedSubmission,
} from './catalog';
export {
  decodeStepSeconds,
  DEFAULT_SIM_GPU_COUNT,
  DEFAULT_SIM_GPU_MEMORY_BYTES,
  DEFAULT_SIM_GPU_NAME,
  DEFAULT_SIM_LOAD_BYTES_PER_SECOND,
  ManualScheduler,
  prefillSeconds,
  PseudoWords,
  SimOutOfMemoryError,
  SimulatedGpu,
  SimulatedHost,
  type JobOutcome,
  type JobRequest,
  type Scheduler,
  type SequenceFinishReason,
  type SequenceOutcome,
  type SequenceRequest,
  type SimModel,
  type SimulatedGpuOptions,
  type SimulatedHostOptions,
  type ReplicaRequest,
  type SimReplicaStatus,
} from './sim';
export { RunTimePredictor, type RunOutcome } from './policy/run-time';
export { parseExperiment, variantOf, type PolicyExperiment, type PolicyVariant } from './policy/experiment';
export { DeadlineOutcomes, unmeetableDeadline, WaitPredictor, type DeadlineCounts, type DeadlineOutcome, type UnmeetableDeadline } from './policy/deadlines';
export { parseRateLimits, TenantRateLimiter, type RateLimit } from './policy/rate-limit';
export { chooseVictims, lostWork, preemptionRank, type RunningAttempt, type VictimChoice } from './scheduling/preemption';
export {
  cronMatchesWallTime,
  DEFAULT_FIRE_RETRY_POLICY,
  DEFAULT_TIME_ZONE,
  dueFire,
  fireRequestId,
  fireRetryAt,
  latestFireAtOrBefore,
  MAX_SCHEDULE_DURATION_MS,
  nextFireAfter,
  parseCron,
  parseScheduleRequest,
  parseTimeZone,
  zoneOffsetAt,
  type CronExpression,
  type DueFire,
  type FireRetryTiming,
} from './recurring';
export * from './feedback';
