import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CatalogFileError, loadModelCatalog, parseCatalogFile } from './catalog-file';
import { kvCacheBytesPerToken } from './memory';
import { DEFAULT_MODEL_CATALOG, DEFAULT_MODELS } from './models';
import { parseInferenceInput } from './parse-inference-input';
import { countTokens } from './tokenizer';

const FINE_TUNE_YAML = `
mode: extend
models:
  - name: acme/llama-3.1-8b-support-v2
    family: llama
    parameters: 8030261248
    layers: 32
    hiddenSize: 4096
    attentionHeads: 32
    kvHeads: 8
    contextLength: 32768
    defaultMaxTokens: 1024
`;

/** A file read through the injected reader, so a test needs no disk. */
function load(path: string, text: string) {
  return loadModelCatalog(path, (p) => {
    if (p !== path) throw new Error(`unexpected read of ${p}`);
    return text;
  });
}

/** The message of the CatalogFileError that parsing `text` throws. */
function errorOf(text: string, source = 'models.yaml'): string {
  try {
    parseCatalogFile(text, source);
  } catch (error: unknown) {
    expect(error).toBeInstanceOf(CatalogFileError);
    return (error as Error).message;
  }
  throw new Error('parseCatalogFile did not throw');
}

/** A YAML file of one entry: a valid 8B model with `overrides` merged in (a null removes a key). */
function oneEntry(overrides: Record<string, unknown>): string {
  const entry: Record<string, unknown> = {
    name: 'ft',
    parameters: '8B',
    layers: 32,
    hiddenSize: 4096,
    attentionHeads: 32,
    kvHeads: 8,
    contextLength: 8192,
    ...overrides,
  };
  const lines = Object.entries(entry)
    .filter(([, value]) => value !== null)
    .map(([key, value]) => `    ${key}: ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`);
  return `models:\n  - ${lines.join('\n').trimStart()}\n`;
}

describe('loadModelCatalog', () => {
  it('serves the built-in catalog when no file is configured', () => {
    expect(loadModelCatalog(undefined)).toBe(DEFAULT_MODEL_CATALOG);
    expect(loadModelCatalog('')).toBe(DEFAULT_MODEL_CATALOG);
  });

  it('adds a fine-tune from a YAML file beside the built-in models, with its weights and KV cache sized', () => {
    const catalog = load('/etc/autoglm/models.yaml', FINE_TUNE_YAML);
    expect(catalog.size).toBe(DEFAULT_MODELS.length + 1);
    expect(catalog.get('glm-4-9b')).toBe(DEFAULT_MODEL_CATALOG.get('glm-4-9b'));
    const fineTune = catalog.get('acme/llama-3.1-8b-support-v2');
    expect(fineTune).toMatchObject({
      family: 'llama',
      parameterCount: 8_030_261_248,
      dtypeBytes: 2,
      headDim: 128,
      contextLength: 32_768,
      defaultMaxOutputTokens: 1024,
      tokenizer: 'cl100k_base',
    });
    expect(fineTune?.weightBytes).toBe(16_060_522_496);
    // The same architecture as the built-in Llama 3.1 8B: 2 * 32 * 8 * 128 * 2 = 128 KiB per token.
    expect(fineTune && kvCacheBytesPerToken(fineTune)).toBe(131_072);
    expect(catalog.names().at(-1)).toBe('acme/llama-3.1-8b-support-v2');
  });

  it('lets a file model replace the built-in of the same name, in its place', () => {
    const catalog = load('models.json', JSON.stringify({ models: [{ ...hfLlama(), name: 'glm-4-9b', max_position_embeddings: 4096 }] }));
    expect(catalog.size).toBe(DEFAULT_MODELS.length);
    expect(catalog.names()[0]).toBe('glm-4-9b');
    expect(catalog.get('glm-4-9b')?.contextLength).toBe(4096);
  });

  it('serves only the file models in replace mode', () => {
    const catalog = load('models.yaml', FINE_TUNE_YAML.replace('mode: extend', 'mode: replace'));
    expect(catalog.names()).toEqual(['acme/llama-3.1-8b-support-v2']);
    expect(catalog.has('glm-4-9b')).toBe(false);
  });

  it('reads a real file from disk', () => {
    const dir = mkdtempSync(join(tmpdir(), 'catalog-'));
    try {
      const path = join(dir, 'models.yml');
      writeFileSync(path, FINE_TUNE_YAML);
      expect(loadModelCatalog(path).has('acme/llama-3.1-8b-support-v2')).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the file it cannot read', () => {
    expect(() => loadModelCatalog('/nonexistent/models.yaml')).toThrow(
      /^\/nonexistent\/models\.yaml: cannot read the model catalog file \(ENOENT.*\); check the path$/,
    );
  });
});

/** Llama 3.1 8B's values under their Hugging Face config.json names. */
function hfLlama(): Record<string, unknown> {
  return {
    name: 'acme-llama',
    parameter_count: 8_030_261_248,
    num_hidden_layers: 32,
    hidden_size: 4096,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    max_position_embeddings: 131_072,
  };
}

describe('parseCatalogFile', () => {
  it('reads a JSON file with keys pasted from a Hugging Face config.json', () => {
    const file = parseCatalogFile(JSON.stringify({ mode: 'replace', models: [hfLlama()] }), 'models.json');
    expect(file.mode).toBe('replace');
    expect(file.models[0]).toMatchObject({
      name: 'acme-llama',
      family: 'custom',
      parameterCount: 8_030_261_248,
      layers: 32,
      kvHeads: 8,
      headDim: 128,
      contextLength: 131_072,
      defaultMaxOutputTokens: 2048,
    });
    const llama = DEFAULT_MODEL_CATALOG.get('llama-3.1-8b');
    expect(llama && kvCacheBytesPerToken(file.models[0] ?? llama)).toBe(llama && kvCacheBytesPerToken(llama));
  });

  it('takes a bare list of models as extend, in JSON or YAML whatever the extension', () => {
    const json = parseCatalogFile(JSON.stringify([hfLlama()]), 'catalog.conf');
    expect(json.mode).toBe('extend');
    expect(json.models.map((m) => m.name)).toEqual(['acme-llama']);
    const yaml = parseCatalogFile('- name: a\n  parameters: 1B\n  layers: 2\n  headDim: 64\n  kvHeads: 1\n  contextLength: 1024\n', 'catalog');
    expect(yaml.models[0]).toMatchObject({ name: 'a', parameterCount: 1e9, defaultMaxOutputTokens: 1024 });
  });

  it('reads parameter counts written with a suffix', () => {
    const count = (parameters: string) => parseCatalogFile(oneEntry({ parameters }), 'm.yaml').models[0]?.parameterCount;
    expect(count('7.6B')).toBe(7_600_000_000);
    expect(count('70b')).toBe(70e9);
    expect(count('355M')).toBe(355e6);
    expect(count('8030261248')).toBe(8_030_261_248);
    expect(count('8_030_261_248')).toBe(8_030_261_248);
  });

  it('sizes quantised weights below a byte but keeps the KV cache in 16 bits', () => {
    const int4 = parseCatalogFile(oneEntry({ dtype: 'int4', parameters: 7 }), 'm.yaml').models[0];
    expect(int4?.dtypeBytes).toBe(0.5);
    expect(int4?.weightBytes).toBe(4); // 3.5 bytes occupy 4
    expect(int4 && kvCacheBytesPerToken(int4)).toBe(2 * 32 * 8 * 128 * 2);
    const fp8Cache = parseCatalogFile(oneEntry({ dtype: 'int4', kvDtype: 'fp8' }), 'm.yaml').models[0];
    expect(fp8Cache && kvCacheBytesPerToken(fp8Cache)).toBe(2 * 32 * 8 * 128);
    const fp32 = parseCatalogFile(oneEntry({ dtype: 'fp32' }), 'm.yaml').models[0];
    expect(fp32).toMatchObject({ dtypeBytes: 4, weightBytes: 32e9 });
    expect(fp32 && kvCacheBytesPerToken(fp32)).toBe(2 * 32 * 8 * 128 * 4);
  });

  it('prefers an explicit headDim over hiddenSize / attentionHeads', () => {
    // Qwen3-8B: hidden 4096, 32 heads, but head_dim 128 by config; here a made-up 256 shows which wins.
    expect(parseCatalogFile(oneEntry({ head_dim: 256 }), 'm.yaml').models[0]?.headDim).toBe(256);
  });

  it('counts an o200k_base model in its own vocabulary', () => {
    const model = parseCatalogFile(oneEntry({ tokenizer: 'o200k_base' }), 'm.yaml').models[0];
    if (model === undefined) throw new Error('no model parsed');
    const text = 'こんにちは世界、今日はいい天気ですね。';
    expect(countTokens(text, 'o200k_base')).not.toBe(countTokens(text, 'cl100k_base'));
    const input = parseInferenceInput({ prompt: text, messages: [], params: undefined }, model, 'inference');
    expect(input.inputTokens).toBe(countTokens(text, 'o200k_base'));
  });

  describe('refuses, naming the file, the entry and the field', () => {
    it('an unknown key, listing the allowed ones', () => {
      const message = errorOf(oneEntry({ vocab_size: 151_552 }));
      expect(message).toMatch(/^models\.yaml: models\[0\]: unknown key "vocab_size"; allowed: name, family, parameters\/parameter_count, /);
      expect(message).toContain('kvHeads/num_key_value_heads');
      expect(errorOf('models: []\nmodel: x\n')).toBe('models.yaml: unknown key "model"; allowed: mode, models');
    });

    it('a field given under two names', () => {
      expect(errorOf(oneEntry({ num_key_value_heads: 8 }))).toBe('models.yaml: models[0]: kvHeads and num_key_value_heads both set kvHeads; keep one');
    });

    it('a missing required field', () => {
      expect(errorOf(oneEntry({ kvHeads: null }))).toBe(
        'models.yaml: models[0].kvHeads: missing; required (num_key_value_heads in a Hugging Face config.json); for attention without grouping set it to attentionHeads (32)',
      );
      expect(errorOf(oneEntry({ parameters: null }))).toContain('models[0].parameters: missing; required (parameter_count');
      expect(errorOf(oneEntry({ hiddenSize: null }))).toContain('models[0].headDim: missing; set headDim (head_dim), or hiddenSize and attentionHeads');
      expect(errorOf(oneEntry({ attentionHeads: null }))).toContain('models[0].attentionHeads: missing; needed with hiddenSize to derive headDim');
      expect(errorOf('models:\n  - parameters: 1B\n')).toContain('models[0].name: missing');
    });

    it('a number that is not a positive integer', () => {
      expect(errorOf(oneEntry({ layers: 0 }))).toBe('models.yaml: models[0].layers: must be a positive integer, got 0');
      expect(errorOf(oneEntry({ contextLength: -5 }))).toContain('models[0].contextLength: must be a positive integer, got -5');
      expect(errorOf(oneEntry({ kvHeads: 2.5 }))).toContain('models[0].kvHeads: must be a positive integer, got 2.5');
      expect(errorOf(oneEntry({ layers: '32' }))).toContain('models[0].layers: must be a positive integer, got "32"; write it without quotes');
      expect(errorOf(oneEntry({ parameters: 0 }))).toContain('models[0].parameters: must be a positive whole number of parameters, got 0');
    });

    it('a name listed twice in the file', () => {
      const text = JSON.stringify({ models: [hfLlama(), { ...hfLlama(), name: 'other' }, hfLlama()] });
      expect(errorOf(text, 'models.json')).toBe('models.json: models[2].name: "acme-llama" is already models[0]; give each model once');
    });

    it('a bad name', () => {
      expect(errorOf(oneEntry({ name: 'my model' }))).toContain('models[0].name: "my model" is not a model name; use 1-128 letters, digits and . _ : / -');
    });

    it('a parameter count it cannot read', () => {
      expect(errorOf(oneEntry({ parameters: '7.6 billion' }))).toBe(
        'models.yaml: models[0].parameters: "7.6 billion" is not a parameter count; write a whole number (8030261248) or one with K, M, B or T (7.6B, 355M)',
      );
      expect(errorOf(oneEntry({ parameters: '7.5' }))).toContain('must be a positive whole number of parameters, got "7.5"');
      expect(errorOf(oneEntry({ activeParameters: '9B' }))).toContain('models[0].activeParameters: 9000000000 is more than parameters 8000000000');
    });

    it('an unknown dtype or tokenizer, listing the known ones', () => {
      expect(errorOf(oneEntry({ dtype: 'bfloat16' }))).toBe('models.yaml: models[0].dtype: "bfloat16" is not one of bf16, fp16, fp32, fp8, int8, int4');
      expect(errorOf(oneEntry({ kv_dtype: 'q4' }))).toContain('models[0].kv_dtype: "q4" is not one of bf16');
      expect(errorOf(oneEntry({ tokenizer: 'glm4' }))).toBe('models.yaml: models[0].tokenizer: "glm4" is not one of cl100k_base, o200k_base');
    });

    it('a hidden size that does not split into whole heads', () => {
      expect(errorOf(oneEntry({ hiddenSize: null, hidden_size: 4100 }))).toBe(
        'models.yaml: models[0].hidden_size: 4100 is not a multiple of attentionHeads 32 (headDim would be 128.125); set headDim directly or correct the numbers',
      );
    });

    it('key/value heads that do not group the attention heads', () => {
      expect(errorOf(oneEntry({ kvHeads: 12 }))).toBe(
        "models.yaml: models[0].kvHeads: 12 does not divide attentionHeads 32 (grouped-query attention needs a divisor); set kvHeads to 8 or 16 as the model's config.json says",
      );
      expect(errorOf(oneEntry({ kvHeads: 64 }))).toContain('models[0].kvHeads: 64 is more than attentionHeads 32');
    });

    it('a default generation budget over the context', () => {
      expect(errorOf(oneEntry({ defaultMaxTokens: 9000 }))).toBe(
        'models.yaml: models[0].defaultMaxTokens: 9000 is over contextLength 8192; lower it to at most 8192',
      );
    });

    it('a bad mode, a missing or empty model list, an empty file', () => {
      expect(errorOf('mode: merge\nmodels: []\n')).toBe(
        'models.yaml: mode: "merge" is not a mode; one of extend (add to the built-in models), replace (serve only these)',
      );
      expect(errorOf('mode: replace\n')).toBe('models.yaml: models: missing; list the models');
      expect(errorOf('mode: replace\nmodels: []\n')).toContain('models: is empty, and mode replace would leave no model to serve');
      expect(errorOf('')).toContain('models.yaml: is empty; give a list of models');
      expect(errorOf('42')).toContain('models.yaml: must be a list of models or { mode, models: [...] }, got 42');
      expect(errorOf('models:\n  - just-a-name\n')).toContain('models[0]: must be a mapping of model fields, got "just-a-name"');
    });

    it('malformed JSON, with its line and column', () => {
      expect(errorOf('{\n  "models": [\n    { "name": "a", }\n  ]\n}\n', 'models.json')).toMatch(/^models\.json: is not valid JSON at line 3, column 20: /);
    });

    it('malformed YAML, with the parser line and column', () => {
      const message = errorOf('models:\n  - name: a\n    layers: [1,\n  x: 2\n');
      expect(message).toMatch(/^models\.yaml: is not valid YAML: .* at line 4, column 3/);
      expect(errorOf('models: []\nmodels: []\n')).toContain('Map keys must be unique at line 2, column 1');
      expect(errorOf('{ models: [', 'catalog')).toMatch(/^catalog: is not valid JSON or YAML: .*line 1/);
    });
  });
});
