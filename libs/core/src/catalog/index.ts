export { type CatalogModel, type CatalogModelFields, defineModel, DEFAULT_MODELS, ModelCatalog, DEFAULT_MODEL_CATALOG } from './models';
export { type ChatTurn, type TokenizerName, TOKENIZER_NAMES, DEFAULT_TOKENIZER, countTokens, countChatTokens } from './tokenizer';
export { type CatalogFile, type CatalogMode, CatalogFileError, parseCatalogFile, loadModelCatalog } from './catalog-file';
export {
  RUNTIME_OVERHEAD_BYTES,
  GPU_COUNT_CHOICES,
  DEFAULT_GPU_MEMORY_HEADROOM,
  kvCacheBytesPerToken,
  estimateGpuMemory,
  minimumGpuCount,
} from './memory';
export { type InferenceInput, CHAT_ROLES, MAX_STOP_STRINGS, parseInferenceInput } from './parse-inference-input';
export {
  MIN_PRIORITY,
  MAX_PRIORITY,
  MAX_DEPENDENCIES,
  MAX_RETRIES_LIMIT,
  MAX_LABELS,
  MAX_EXPECTED_DURATION_SECONDS,
  parseTenant,
} from './submission-fields';
export {
  type ParseContext,
  type ServedModelInfo,
  SERVED_MODEL_DEFAULT_CONTEXT,
  type ParsedSubmission,
  DEFAULT_GPU_MEMORY_BYTES,
  DEFAULT_MAX_GPUS_PER_TASK,
  DEFAULT_MAX_RETRIES,
  DEFAULT_CPU_JOB_MILLIS,
  DEFAULT_CPU_JOB_MEMORY_BYTES,
  parseSubmission,
  parseInferStart,
} from './parse-submission';
export { type ParsedWorkflow, MAX_WORKFLOW_STEPS, parseWorkflow } from './parse-workflow';
