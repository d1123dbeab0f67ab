/**
 * An operator's model catalog file: models beside, or instead of, the
 * built-in ones, so a fine-tune can be served by its own name. JSON or YAML;
 * architecture keys may be pasted from a Hugging Face config.json under their
 * snake_case names. Every mistake fails at start with the file, the entry and
 * the field, before any request is parsed against a wrong context window.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parseDocument } from 'yaml';
import { DEFAULT_MODEL_CATALOG, DEFAULT_MODELS, ModelCatalog, defineModel, type CatalogModel } from './models';
import { DEFAULT_TOKENIZER, TOKENIZER_NAMES, type TokenizerName } from './tokenizer';

/** `extend`: the file's models join the built-in ones (a same-named one replaces it); `replace`: only the file's. */
export type CatalogMode = 'extend' | 'replace';

const MODES: readonly CatalogMode[] = ['extend', 'replace'];

/** A parsed catalog file. */
export interface CatalogFile {
  /** Where the text came from, as given to {@link parseCatalogFile}. */
  readonly source: string;
  /** @default 'extend' */
  readonly mode: CatalogMode;
  readonly models: readonly CatalogModel[];
}

/**
 * A catalog file the operator must fix. Not an InvalidArgumentError: it is
 * configuration read at start, never a client's request, and must not map to
 * a status a client would see.
 */
export class CatalogFileError extends Error {
  /** The file, as given. */
  readonly source: string;
  /** Path of the offending value inside the file (`models[2].kvHeads`); absent for the file as a whole. */
  readonly field: string | undefined;

  constructor(source: string, field: string | undefined, message: string, options?: { cause?: unknown }) {
    super(field === undefined ? `${source}: ${message}` : `${source}: ${field}: ${message}`, options);
    this.name = 'CatalogFileError';
    this.source = source;
    this.field = field;
  }
}

/** Bytes per element of each dtype a file may name. */
const DTYPE_BYTES: Readonly<Record<string, number>> = Object.freeze({ bf16: 2, fp16: 2, fp32: 4, fp8: 1, int8: 1, int4: 0.5 });
const DTYPES = Object.keys(DTYPE_BYTES);
/** Float dtypes a server also computes in; quantised weights compute, and cache keys and values, in bf16. */
const ACTIVATION_DTYPES: readonly string[] = ['bf16', 'fp16', 'fp32'];

/** Each entry key, with the Hugging Face config.json names accepted for it. */
const ENTRY_KEYS = {
  name: [],
  family: [],
  parameters: ['parameter_count'],
  activeParameters: ['active_parameters'],
  dtype: [],
  kvDtype: ['kv_dtype'],
  layers: ['num_hidden_layers'],
  hiddenSize: ['hidden_size'],
  attentionHeads: ['num_attention_heads'],
  headDim: ['head_dim'],
  kvHeads: ['num_key_value_heads'],
  contextLength: ['context_length', 'max_position_embeddings'],
  defaultMaxTokens: ['default_max_tokens'],
  tokenizer: [],
} as const satisfies Record<string, readonly string[]>;
type EntryKey = keyof typeof ENTRY_KEYS;

const NAME_PATTERN = /^[A-Za-z0-9._:/-]{1,128}$/;
const DEFAULT_FAMILY = 'custom';
/** Generation budget of a model that sets none, when its context allows. */
const DEFAULT_MAX_TOKENS = 2048;
const PARAMETER_SUFFIXES: Readonly<Record<string, number>> = Object.freeze({ k: 1e3, m: 1e6, b: 1e9, t: 1e12 });
const PARAMETER_PATTERN = /^(\d+(?:\.\d+)?)\s*([kmbt]?)$/i;

/**
 * Parses a catalog file's text. The format follows the extension of `source`
 * (.json, .yaml, .yml); any other is read as JSON, then as YAML.
 * @throws CatalogFileError naming the file, the entry and the field.
 */
export function parseCatalogFile(text: string, source: string): CatalogFile {
  const document = parseText(text, source);
  const fail: Fail = failer(source);
  if (document === null || document === undefined) {
    fail(undefined, 'is empty; give a list of models, or { mode: extend | replace, models: [...] }');
  }
  if (Array.isArray(document)) {
    return { source, mode: 'extend', models: parseModels(document, '', source) };
  }
  if (!isMapping(document)) {
    fail(undefined, `must be a list of models or { mode, models: [...] }, got ${describe(document)}`);
  }
  const unknown = Object.keys(document).filter((key) => key !== 'mode' && key !== 'models');
  if (unknown.length > 0) fail(undefined, `unknown ${quoteList(unknown)}; allowed: mode, models`);

  const mode = document.mode ?? 'extend';
  if (!MODES.includes(mode as CatalogMode)) {
    fail('mode', `${describe(mode)} is not a mode; one of extend (add to the built-in models), replace (serve only these)`);
  }
  if (!Array.isArray(document.models)) {
    fail('models', document.models === undefined ? 'missing; list the models' : `must be a list of models, got ${describe(document.models)}`);
  }
  if (mode === 'replace' && document.models.length === 0) {
    fail('models', 'is empty, and mode replace would leave no model to serve; list at least one');
  }
  return { source, mode: mode as CatalogMode, models: parseModels(document.models, 'models', source) };
}

/**
 * The catalog the parser serves: the built-in one when `path` is unset or
 * empty, else the file's models as its mode says.
 * @param readFile reads the file as text; defaults to node:fs.
 * @throws CatalogFileError when the file cannot be read or is wrong.
 */
export function loadModelCatalog(path: string | undefined, readFile: (p: string) => string = readUtf8): ModelCatalog {
  if (path === undefined || path === '') return DEFAULT_MODEL_CATALOG;
  let text: string;
  try {
    text = readFile(path);
  } catch (error: unknown) {
    throw new CatalogFileError(path, undefined, `cannot read the model catalog file (${messageOf(error)}); check the path`, { cause: error });
  }
  const file = parseCatalogFile(text, path);
  if (file.mode === 'replace') return new ModelCatalog(file.models);
  // Built-ins keep their order, a same-named file model taking its place; new names follow.
  const fromFile = new Map(file.models.map((model) => [model.name, model]));
  const merged = DEFAULT_MODELS.map((builtIn) => {
    const override = fromFile.get(builtIn.name);
    fromFile.delete(builtIn.name);
    return override ?? builtIn;
  });
  return new ModelCatalog([...merged, ...fromFile.values()]);
}

function readUtf8(path: string): string {
  return readFileSync(path, 'utf8');
}

type Fail = (field: string | undefined, message: string) => never;

function failer(source: string): Fail {
  return (field, message) => {
    throw new CatalogFileError(source, field, message);
  };
}

function parseText(text: string, source: string): unknown {
  const extension = extname(source).toLowerCase();
  if (extension === '.json') return parseJson(text, source);
  if (extension === '.yaml' || extension === '.yml') return parseYaml(text, source, 'YAML');
  try {
    return parseJson(text, source);
  } catch {
    // YAML reads JSON too, so its error is the one that says what is wrong.
    return parseYaml(text, source, 'JSON or YAML');
  }
}

function parseJson(text: string, source: string): unknown {
  const body = text.replace(/^\uFEFF/, '');
  if (body.trim().length === 0) return null;
  try {
    return JSON.parse(body) as unknown;
  } catch (error: unknown) {
    const message = messageOf(error);
    // Node 20 reports an offset only; an operator looks for a line.
    const offset = /at position (\d+)/.exec(message)?.[1];
    const where = offset === undefined ? '' : ` at ${lineAndColumn(body, Number(offset))}`;
    throw new CatalogFileError(source, undefined, `is not valid JSON${where}: ${message}`, { cause: error });
  }
}

function lineAndColumn(text: string, offset: number): string {
  const before = text.slice(0, offset).split('\n');
  return `line ${before.length}, column ${(before.at(-1)?.length ?? 0) + 1}`;
}

function parseYaml(text: string, source: string, format: string): unknown {
  const document = parseDocument(text, { prettyErrors: true });
  // A warning (an unknown tag, say) means the value read is not the one meant.
  const problem = document.errors[0] ?? document.warnings[0];
  if (problem !== undefined) {
    throw new CatalogFileError(source, undefined, `is not valid ${format}: ${problem.message.trimEnd()}`, { cause: problem });
  }
  try {
    return document.toJS() as unknown;
  } catch (error: unknown) {
    const message = messageOf(error);
    throw new CatalogFileError(source, undefined, `is not valid ${format}: ${message}`, { cause: error });
  }
}

function parseModels(entries: readonly unknown[], listField: string, source: string): CatalogModel[] {
  const fail: Fail = failer(source);
  const firstIndexByName = new Map<string, number>();
  return entries.map((entry, index) => {
    const at = `${listField}[${index}]`;
    const model = parseEntry(entry, at, fail);
    const earlier = firstIndexByName.get(model.name);
    if (earlier !== undefined) {
      fail(`${at}.name`, `"${model.name}" is already ${listField}[${earlier}]; give each model once`);
    }
    firstIndexByName.set(model.name, index);
    return model;
  });
}

/** A value found under one of an entry key's accepted names. */
interface Found {
  /** The path of the value, under the name the file used. */
  readonly field: string;
  readonly value: unknown;
}

function parseEntry(entry: unknown, at: string, fail: Fail): CatalogModel {
  if (!isMapping(entry)) fail(at, `must be a mapping of model fields, got ${describe(entry)}`);
  const found = findKeys(entry, at, fail);
  const required = (key: EntryKey, hint = ''): Found => {
    const value = found.get(key);
    if (value !== undefined) return value;
    const aliases = ENTRY_KEYS[key];
    const alias = aliases.length > 0 ? ` (${aliases.join(' or ')} in a Hugging Face config.json)` : '';
    return fail(`${at}.${key}`, `missing; required${alias}${hint}`);
  };

  const nameAt = required('name');
  if (typeof nameAt.value !== 'string' || !NAME_PATTERN.test(nameAt.value)) {
    fail(nameAt.field, `${describe(nameAt.value)} is not a model name; use 1-128 letters, digits and . _ : / -`);
  }
  const familyAt = found.get('family');
  if (familyAt !== undefined && (typeof familyAt.value !== 'string' || familyAt.value.trim().length === 0 || familyAt.value.length > 128)) {
    fail(familyAt.field, `must be a non-empty string of at most 128 characters, got ${describe(familyAt.value)}`);
  }

  const parameterCount = parameterCountOf(required('parameters'), fail);
  const activeAt = found.get('activeParameters');
  const activeParameterCount = activeAt === undefined ? undefined : parameterCountOf(activeAt, fail);
  if (activeAt !== undefined && activeParameterCount !== undefined && activeParameterCount > parameterCount) {
    fail(activeAt.field, `${activeParameterCount} is more than parameters ${parameterCount}; a mixture-of-experts model uses a part of its parameters per token`);
  }

  const dtype = choiceOf(found.get('dtype'), DTYPES, 'bf16', fail);
  const kvDtype = choiceOf(found.get('kvDtype'), DTYPES, ACTIVATION_DTYPES.includes(dtype) ? dtype : 'bf16', fail);
  const tokenizer = choiceOf(found.get('tokenizer'), TOKENIZER_NAMES, DEFAULT_TOKENIZER, fail) as TokenizerName;

  const layers = positiveInteger(required('layers'), fail);
  const attentionHeadsAt = found.get('attentionHeads');
  const attentionHeads = attentionHeadsAt === undefined ? undefined : positiveInteger(attentionHeadsAt, fail);
  const headDim = headDimOf(found, attentionHeads, at, fail);
  const kvHeadsHint = attentionHeads === undefined ? '' : `; for attention without grouping set it to attentionHeads (${attentionHeads})`;
  const kvHeadsAt = required('kvHeads', kvHeadsHint);
  const kvHeads = positiveInteger(kvHeadsAt, fail);
  if (attentionHeads !== undefined) checkKvHeads(kvHeads, attentionHeads, kvHeadsAt.field, fail);

  const contextLength = positiveInteger(required('contextLength'), fail);
  const maxTokensAt = found.get('defaultMaxTokens');
  const defaultMaxOutputTokens = maxTokensAt === undefined ? Math.min(DEFAULT_MAX_TOKENS, contextLength) : positiveInteger(maxTokensAt, fail);
  if (maxTokensAt !== undefined && defaultMaxOutputTokens > contextLength) {
    fail(maxTokensAt.field, `${defaultMaxOutputTokens} is over contextLength ${contextLength}; lower it to at most ${contextLength}`);
  }

  return defineModel({
    name: nameAt.value as string,
    family: familyAt === undefined ? DEFAULT_FAMILY : (familyAt.value as string),
    parameterCount,
    ...(activeParameterCount === undefined ? {} : { activeParameterCount }),
    dtypeBytes: DTYPE_BYTES[dtype] as number,
    kvDtypeBytes: DTYPE_BYTES[kvDtype] as number,
    layers,
    kvHeads,
    headDim,
    contextLength,
    defaultMaxOutputTokens,
    tokenizer,
  });
}

/** Maps each entry key to the value the file gave it, refusing unknown names and a key given twice. */
function findKeys(entry: Readonly<Record<string, unknown>>, at: string, fail: Fail): Map<EntryKey, Found> {
  const keyByName = new Map<string, EntryKey>();
  for (const key of Object.keys(ENTRY_KEYS) as EntryKey[]) {
    keyByName.set(key, key);
    for (const alias of ENTRY_KEYS[key]) keyByName.set(alias, key);
  }
  const unknown = Object.keys(entry).filter((name) => !keyByName.has(name));
  if (unknown.length > 0) {
    const allowed = (Object.keys(ENTRY_KEYS) as EntryKey[]).map((key) => [key, ...ENTRY_KEYS[key]].join('/')).join(', ');
    fail(at, `unknown ${quoteList(unknown)}; allowed: ${allowed}`);
  }
  const found = new Map<EntryKey, Found>();
  for (const [name, value] of Object.entries(entry)) {
    const key = keyByName.get(name) as EntryKey;
    const earlier = found.get(key);
    if (earlier !== undefined) {
      fail(at, `${earlier.field.slice(at.length + 1)} and ${name} both set ${key}; keep one`);
    }
    found.set(key, { field: `${at}.${name}`, value });
  }
  return found;
}

/** An explicit head dimension wins: some models (Qwen3, Gemma) use one that is not hiddenSize / attentionHeads. */
function headDimOf(found: Map<EntryKey, Found>, attentionHeads: number | undefined, at: string, fail: Fail): number {
  const headDimAt = found.get('headDim');
  const hiddenSizeAt = found.get('hiddenSize');
  if (headDimAt !== undefined) {
    if (hiddenSizeAt !== undefined) positiveInteger(hiddenSizeAt, fail);
    return positiveInteger(headDimAt, fail);
  }
  if (hiddenSizeAt === undefined) {
    return fail(`${at}.headDim`, 'missing; set headDim (head_dim), or hiddenSize and attentionHeads (hidden_size, num_attention_heads) to derive it');
  }
  const hiddenSize = positiveInteger(hiddenSizeAt, fail);
  if (attentionHeads === undefined) {
    return fail(`${at}.attentionHeads`, `missing; needed with ${hiddenSizeAt.field.slice(at.length + 1)} to derive headDim (or set headDim directly)`);
  }
  if (hiddenSize % attentionHeads !== 0) {
    fail(
      hiddenSizeAt.field,
      `${hiddenSize} is not a multiple of attentionHeads ${attentionHeads} (headDim would be ${hiddenSize / attentionHeads}); set headDim directly or correct the numbers`,
    );
  }
  return hiddenSize / attentionHeads;
}

function checkKvHeads(kvHeads: number, attentionHeads: number, field: string, fail: Fail): void {
  if (kvHeads > attentionHeads) {
    fail(field, `${kvHeads} is more than attentionHeads ${attentionHeads}; key/value heads are at most the query heads`);
  }
  if (attentionHeads % kvHeads !== 0) {
    const divisors = divisorsOf(attentionHeads);
    const below = divisors.filter((d) => d < kvHeads).at(-1);
    const above = divisors.find((d) => d > kvHeads);
    const choices = [below, above].filter((d) => d !== undefined).join(' or ');
    fail(
      field,
      `${kvHeads} does not divide attentionHeads ${attentionHeads} (grouped-query attention needs a divisor); set kvHeads to ${choices} as the model's config.json says`,
    );
  }
}

/** Ascending; pairs each divisor under the square root with its cofactor, so a huge mistyped count stays cheap. */
function divisorsOf(n: number): number[] {
  const small: number[] = [];
  const large: number[] = [];
  for (let d = 1; d * d <= n; d += 1) {
    if (n % d !== 0) continue;
    small.push(d);
    if (d * d !== n) large.unshift(n / d);
  }
  return [...small, ...large];
}

function parameterCountOf(at: Found, fail: Fail): number {
  const { value, field } = at;
  let count: number | undefined;
  if (typeof value === 'number') {
    count = value;
  } else if (typeof value === 'string') {
    const match = PARAMETER_PATTERN.exec(value.trim().replaceAll('_', ''));
    if (match === null) {
      fail(field, `${describe(value)} is not a parameter count; write a whole number (8030261248) or one with K, M, B or T (7.6B, 355M)`);
    }
    const [, digits = '', suffix = ''] = match;
    const multiplier = suffix === '' ? 1 : (PARAMETER_SUFFIXES[suffix.toLowerCase()] as number);
    // "7.6B" is not exact in binary; rounding restores the count written.
    count = suffix === '' ? Number(digits) : Math.round(Number(digits) * multiplier);
  }
  if (count === undefined || !Number.isSafeInteger(count) || count <= 0) {
    fail(field, `must be a positive whole number of parameters, got ${describe(value)}`);
  }
  return count;
}

function positiveInteger(at: Found, fail: Fail): number {
  const { value, field } = at;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) return value;
  const unquote = typeof value === 'string' && /^\d+$/.test(value.trim()) ? '; write it without quotes' : '';
  return fail(field, `must be a positive integer, got ${describe(value)}${unquote}`);
}

function choiceOf<T extends string>(at: Found | undefined, allowed: readonly T[], fallback: T, fail: Fail): T {
  if (at === undefined) return fallback;
  if (typeof at.value === 'string' && (allowed as readonly string[]).includes(at.value)) return at.value as T;
  return fail(at.field, `${describe(at.value)} is not one of ${allowed.join(', ')}`);
}

/** Duck-typed: an error thrown by node:fs may come from another realm (a test's VM context), where instanceof fails. */
function messageOf(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'message' in error && typeof error.message === 'string') return error.message;
  return String(error);
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'a list';
  if (isMapping(value)) return 'a mapping';
  return String(value);
}

function quoteList(names: readonly string[]): string {
  return `${names.length === 1 ? 'key' : 'keys'} ${names.map((name) => `"${name}"`).join(', ')}`;
}
