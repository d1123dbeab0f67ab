/**
 * The model catalog: what the parser knows about each servable model, enough
 * to count its context window and estimate the GPU memory it needs.
 *
 * Architecture numbers are those of each model's published config.json
 * (layers, key/value heads, head dimension, context). Parameter counts are
 * exact where the architecture determines them (dense models, computed from
 * the config and checked against the published totals); for the GLM-4.5 MoE
 * models they are the published totals (106B and 355B), which leave out the
 * multi-token-prediction layer that serving engines do not load by default.
 */
import { DEFAULT_TOKENIZER, TOKENIZER_NAMES, type TokenizerName } from './tokenizer';

/** One servable model. All sizes are in bytes, all lengths in tokens. */
export interface CatalogModel {
  /** Exact, case-sensitive name clients use (`model` in a submission). */
  readonly name: string;
  /** Model family, e.g. "glm", "llama". */
  readonly family: string;
  /** Total parameters; for a mixture-of-experts model, all experts (all must be resident). */
  readonly parameterCount: number;
  /** Parameters used per token, for a mixture-of-experts model; absent for dense models. */
  readonly activeParameterCount?: number;
  /**
   * Bytes per parameter of the served weights (bf16 = 2, int4 = 0.5): a whole
   * number of bits, so quantised weights below a byte can be described.
   */
  readonly dtypeBytes: number;
  /**
   * Bytes per element of the KV cache. Absent means `dtypeBytes`: weights
   * quantised below 16 bits still cache keys and values in their 16-bit
   * activation dtype, so a quantised model sets this to 2.
   */
  readonly kvDtypeBytes?: number;
  /** parameterCount * dtypeBytes, rounded up to a whole byte. */
  readonly weightBytes: number;
  /** Transformer layers (each holds a K and a V cache). */
  readonly layers: number;
  /** Key/value heads (grouped-query attention: fewer than the query heads). */
  readonly kvHeads: number;
  /** Dimension of one attention head. */
  readonly headDim: number;
  /** Longest sequence (prompt + generated tokens) the model accepts. */
  readonly contextLength: number;
  /** Generation budget when a request does not set max_tokens. */
  readonly defaultMaxOutputTokens: number;
  /** Vocabulary prompts are counted in; absent means {@link DEFAULT_TOKENIZER}. */
  readonly tokenizer?: TokenizerName;
  /**
   * Known only because an agent's server lists it (OpenAI-compatible
   * /v1/models): its architecture is unknown, so it has no memory estimate
   * and runs only on servers that have it loaded.
   */
  readonly served?: boolean;
}

/** A model entry without its derived fields; see {@link defineModel}. */
export type CatalogModelFields = Omit<CatalogModel, 'weightBytes'>;

/**
 * Builds a catalog entry, deriving `weightBytes` so it cannot disagree with
 * the parameter count, and naming the tokenizer when the fields leave it out.
 */
export function defineModel(fields: CatalogModelFields): CatalogModel {
  return Object.freeze({
    ...fields,
    tokenizer: fields.tokenizer ?? DEFAULT_TOKENIZER,
    weightBytes: weightBytesOf(fields.parameterCount, fields.dtypeBytes),
  });
}

/** Rounded up: an odd parameter count at half a byte each still occupies the last byte. */
function weightBytesOf(parameterCount: number, dtypeBytes: number): number {
  return Math.ceil(parameterCount * dtypeBytes);
}

const BF16 = 2;

/** The models the parser knows when its configuration names none. */
export const DEFAULT_MODELS: readonly CatalogModel[] = Object.freeze([
  // GLM family (THUDM / zai-org).
  defineModel({
    name: 'glm-4-9b',
    family: 'glm',
    parameterCount: 9_399_951_360,
    dtypeBytes: BF16,
    layers: 40,
    kvHeads: 2, // multi_query_group_num
    headDim: 128, // kv_channels
    contextLength: 8_192,
    defaultMaxOutputTokens: 1_024,
  }),
  defineModel({
    name: 'glm-4-9b-chat',
    family: 'glm',
    parameterCount: 9_399_951_360,
    dtypeBytes: BF16,
    layers: 40,
    kvHeads: 2,
    headDim: 128,
    contextLength: 131_072,
    defaultMaxOutputTokens: 2_048,
  }),
  defineModel({
    name: 'glm-4-32b',
    family: 'glm',
    parameterCount: 32_566_487_552, // GLM-4-32B-0414
    dtypeBytes: BF16,
    layers: 61,
    kvHeads: 2,
    headDim: 128,
    contextLength: 32_768,
    defaultMaxOutputTokens: 2_048,
  }),
  defineModel({
    name: 'chatglm3-6b',
    family: 'glm',
    parameterCount: 6_243_584_000,
    dtypeBytes: BF16,
    layers: 28,
    kvHeads: 2,
    headDim: 128,
    contextLength: 8_192,
    defaultMaxOutputTokens: 1_024,
  }),
  defineModel({
    name: 'glm-4.5-air',
    family: 'glm',
    parameterCount: 106_000_000_000,
    activeParameterCount: 12_000_000_000,
    dtypeBytes: BF16,
    layers: 46,
    kvHeads: 8,
    headDim: 128,
    contextLength: 131_072,
    defaultMaxOutputTokens: 4_096,
  }),
  defineModel({
    // 710 GB of bf16 weights: needs 8 GPUs of 141 GB (H200) or more; it does
    // not fit on eight 80 GB GPUs, and the parser says so.
    name: 'glm-4.5',
    family: 'glm',
    parameterCount: 355_000_000_000,
    activeParameterCount: 32_000_000_000,
    dtypeBytes: BF16,
    layers: 92,
    kvHeads: 8,
    headDim: 128,
    contextLength: 131_072,
    defaultMaxOutputTokens: 4_096,
  }),
  // Other open models.
  defineModel({
    name: 'llama-3.1-8b',
    family: 'llama',
    parameterCount: 8_030_261_248,
    dtypeBytes: BF16,
    layers: 32,
    kvHeads: 8,
    headDim: 128,
    contextLength: 131_072,
    defaultMaxOutputTokens: 2_048,
  }),
  defineModel({
    name: 'llama-3.1-70b',
    family: 'llama',
    parameterCount: 70_553_706_496,
    dtypeBytes: BF16,
    layers: 80,
    kvHeads: 8,
    headDim: 128,
    contextLength: 131_072,
    defaultMaxOutputTokens: 2_048,
  }),
  defineModel({
    name: 'qwen2.5-7b',
    family: 'qwen',
    parameterCount: 7_615_616_512,
    dtypeBytes: BF16,
    layers: 28,
    kvHeads: 4,
    headDim: 128,
    contextLength: 131_072,
    defaultMaxOutputTokens: 2_048,
  }),
  defineModel({
    name: 'qwen2.5-72b',
    family: 'qwen',
    parameterCount: 72_706_203_648,
    dtypeBytes: BF16,
    layers: 80,
    kvHeads: 8,
    headDim: 128,
    contextLength: 131_072,
    defaultMaxOutputTokens: 2_048,
  }),
  defineModel({
    name: 'mistral-7b',
    family: 'mistral',
    parameterCount: 7_248_023_552, // v0.3 (32768-token vocabulary)
    dtypeBytes: BF16,
    layers: 32,
    kvHeads: 8,
    headDim: 128,
    contextLength: 32_768,
    defaultMaxOutputTokens: 2_048,
  }),
  defineModel({
    name: 'deepseek-r1-distill-qwen-7b',
    family: 'deepseek',
    parameterCount: 7_615_616_512, // the Qwen2.5-7B architecture
    dtypeBytes: BF16,
    layers: 28,
    kvHeads: 4,
    headDim: 128,
    contextLength: 131_072,
    defaultMaxOutputTokens: 4_096, // a reasoning model: it thinks before it answers
  }),
]);

/** Exact-name lookup over a fixed set of models. */
export class ModelCatalog {
  private readonly byName = new Map<string, CatalogModel>();

  /** @throws Error when an entry is inconsistent or a name repeats: a configuration mistake. */
  constructor(entries: Iterable<CatalogModel>) {
    for (const model of entries) {
      checkModel(model);
      if (this.byName.has(model.name)) {
        throw new Error(`model catalog: "${model.name}" is listed twice`);
      }
      this.byName.set(model.name, model);
    }
  }

  /** The model named exactly `name` (case-sensitive), or undefined. */
  get(name: string): CatalogModel | undefined {
    return this.byName.get(name);
  }

  /** Whether a model is named exactly `name`. */
  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** All names, in the order the entries were given. */
  names(): string[] {
    return [...this.byName.keys()];
  }

  /** Number of models. */
  get size(): number {
    return this.byName.size;
  }
}

function checkModel(model: CatalogModel): void {
  const problems: string[] = [];
  if (model.name.length === 0) problems.push('name is empty');
  for (const key of ['parameterCount', 'layers', 'kvHeads', 'headDim', 'contextLength', 'defaultMaxOutputTokens'] as const) {
    const value = model[key];
    if (!Number.isSafeInteger(value) || value <= 0) problems.push(`${key} must be a positive integer, got ${value}`);
  }
  if (!isWholeBits(model.dtypeBytes)) {
    problems.push(`dtypeBytes must be a positive whole number of bits (a multiple of 1/8), got ${model.dtypeBytes}`);
  }
  if (model.kvDtypeBytes !== undefined && !isWholeBits(model.kvDtypeBytes)) {
    problems.push(`kvDtypeBytes must be a positive whole number of bits (a multiple of 1/8), got ${model.kvDtypeBytes}`);
  }
  if (model.weightBytes !== weightBytesOf(model.parameterCount, model.dtypeBytes)) {
    problems.push(`weightBytes ${model.weightBytes} is not parameterCount * dtypeBytes`);
  }
  if (model.tokenizer !== undefined && !TOKENIZER_NAMES.includes(model.tokenizer)) {
    problems.push(`tokenizer ${JSON.stringify(model.tokenizer)} is not one of ${TOKENIZER_NAMES.join(', ')}`);
  }
  if (model.defaultMaxOutputTokens > model.contextLength) {
    problems.push(`defaultMaxOutputTokens ${model.defaultMaxOutputTokens} exceeds contextLength ${model.contextLength}`);
  }
  if (problems.length > 0) {
    throw new Error(`model catalog: "${model.name}": ${problems.join('; ')}`);
  }
}

function isWholeBits(bytes: number): boolean {
  return bytes > 0 && Number.isSafeInteger(bytes * 8);
}

/** The catalog of {@link DEFAULT_MODELS}. */
export const DEFAULT_MODEL_CATALOG = new ModelCatalog(DEFAULT_MODELS);
