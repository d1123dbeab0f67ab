export {
  DECODE_BASE_SECONDS,
  DECODE_SECONDS_PER_CONTEXT_TOKEN,
  DECODE_SECONDS_PER_SEQUENCE,
  PREFILL_BASE_SECONDS,
  PREFILL_FLOOR_SECONDS,
  PREFILL_SECONDS_PER_TOKEN,
  decodeStepSeconds,
  prefillSeconds,
} from './latency-model';
export { ManualScheduler, type Scheduler } from './scheduler';
export {
  type JobOutcome,
  type JobRequest,
  type SequenceFinishReason,
  type SequenceOutcome,
  type SequenceRequest,
  type SimModel,
  SimOutOfMemoryError,
  SimulatedGpu,
  type SimulatedGpuOptions,
} from './simulated-gpu';
export {
  DEFAULT_SIM_GPU_COUNT,
  DEFAULT_SIM_GPU_MEMORY_BYTES,
  DEFAULT_SIM_GPU_NAME,
  DEFAULT_SIM_LOAD_BYTES_PER_SECOND,
  SimulatedHost,
  type ReplicaRequest,
  type SimReplicaStatus,
  type SimulatedHostOptions,
} from './simulated-host';
export { PseudoWords } from './token-text';
