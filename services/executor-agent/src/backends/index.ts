export {
  type Backend,
  ExecutionError,
  type ExecutionOutcome,
  type ExecutionRequest,
  type HostResources,
  OUTPUT_TAIL_BYTES,
  StopRequest,
} from './backend';
export {
  CommandBackend,
  type CommandBackendOptions,
  CommandFailedError,
  DEFAULT_PASS_ENV,
} from './command-backend';
export { OpenAIBackend, type OpenAIBackendOptions } from './openai-backend';
export { realTimeScheduler, SimBackend, type SimBackendOptions, type SimModelCost } from './sim-backend';
