import { DEFAULT_MODEL_CATALOG, DEFAULT_MODELS, ModelCatalog, defineModel, type CatalogModel } from './models';

const GB = 1e9;

describe('DEFAULT_MODEL_CATALOG', () => {
  it('knows the GLM family and the other open models by their exact names', () => {
    expect(DEFAULT_MODEL_CATALOG.names()).toEqual(
      expect.arrayContaining([
        'glm-4-9b',
        'glm-4-9b-chat',
        'glm-4-32b',
        'chatglm3-6b',
        'glm-4.5-air',
        'glm-4.5',
        'llama-3.1-8b',
        'llama-3.1-70b',
        'qwen2.5-7b',
        'qwen2.5-72b',
        'mistral-7b',
        'deepseek-r1-distill-qwen-7b',
      ]),
    );
    expect(DEFAULT_MODEL_CATALOG.names()[0]).toBe('glm-4-9b');
  });

  it('looks names up case-sensitively and exactly', () => {
    expect(DEFAULT_MODEL_CATALOG.get('glm-4-9b')?.name).toBe('glm-4-9b');
    expect(DEFAULT_MODEL_CATALOG.get('GLM-4-9B')).toBeUndefined();
    expect(DEFAULT_MODEL_CATALOG.get('glm-4-9b ')).toBeUndefined();
    expect(DEFAULT_MODEL_CATALOG.has('glm-9')).toBe(false);
  });

  it('carries GLM-4-9B as published: 9.4B bf16 parameters, 40 layers, 2 KV groups of 128', () => {
    const glm = DEFAULT_MODEL_CATALOG.get('glm-4-9b');
    expect(glm).toMatchObject({ family: 'glm', dtypeBytes: 2, layers: 40, kvHeads: 2, headDim: 128, contextLength: 8192 });
    expect(glm?.weightBytes).toBeGreaterThan(18.7 * GB);
    expect(glm?.weightBytes).toBeLessThan(18.9 * GB);
    expect(DEFAULT_MODEL_CATALOG.get('glm-4-9b-chat')?.contextLength).toBe(131072);
  });

  it('counts every expert of a mixture-of-experts model in its weights', () => {
    const air = DEFAULT_MODEL_CATALOG.get('glm-4.5-air');
    expect(air?.parameterCount).toBe(106e9);
    expect(air?.activeParameterCount).toBe(12e9);
    expect(air?.weightBytes).toBe(212e9);
    expect(DEFAULT_MODEL_CATALOG.get('glm-4.5')?.weightBytes).toBe(710e9);
  });

  it('has consistent entries: weights = parameters x dtype, default output within the context', () => {
    for (const model of DEFAULT_MODELS) {
      expect(model.tokenizer).toBe('cl100k_base');
      expect(model.weightBytes).toBe(model.parameterCount * model.dtypeBytes);
      expect(model.defaultMaxOutputTokens).toBeLessThanOrEqual(model.contextLength);
    }
    expect(DEFAULT_MODEL_CATALOG.size).toBe(DEFAULT_MODELS.length);
  });
});

describe('ModelCatalog', () => {
  const tiny = defineModel({
    name: 'tiny',
    family: 'test',
    parameterCount: 1000,
    dtypeBytes: 2,
    layers: 2,
    kvHeads: 1,
    headDim: 4,
    contextLength: 64,
    defaultMaxOutputTokens: 16,
  });

  it('serves the entries it is given, in order', () => {
    const other = defineModel({ ...tiny, name: 'other' });
    const catalog = new ModelCatalog([tiny, other]);
    expect(catalog.names()).toEqual(['tiny', 'other']);
    expect(catalog.get('tiny')?.weightBytes).toBe(2000);
    expect(catalog.get('glm-4-9b')).toBeUndefined();
  });

  it('names cl100k_base when the fields name no tokenizer, and keeps one they name', () => {
    expect(tiny.tokenizer).toBe('cl100k_base');
    expect(defineModel({ ...tiny, tokenizer: 'o200k_base' }).tokenizer).toBe('o200k_base');
  });

  it('sizes weights of less than a byte per parameter, rounding up to a whole byte', () => {
    const int4 = defineModel({ ...tiny, parameterCount: 1001, dtypeBytes: 0.5, kvDtypeBytes: 2 });
    expect(int4.weightBytes).toBe(501);
    expect(new ModelCatalog([int4]).get('tiny')).toBe(int4);
  });

  it('refuses a name listed twice', () => {
    expect(() => new ModelCatalog([tiny, tiny])).toThrow('"tiny" is listed twice');
  });

  it('refuses an entry whose numbers do not add up', () => {
    expect(() => new ModelCatalog([{ ...tiny, weightBytes: 1 }])).toThrow(/"tiny".*weightBytes/);
    expect(() => new ModelCatalog([defineModel({ ...tiny, layers: 0 })])).toThrow(/layers must be a positive integer/);
    expect(() => new ModelCatalog([defineModel({ ...tiny, defaultMaxOutputTokens: 65 })])).toThrow(/exceeds contextLength/);
    expect(() => new ModelCatalog([defineModel({ ...tiny, dtypeBytes: 0.3 })])).toThrow(/dtypeBytes must be a positive whole number of bits/);
    expect(() => new ModelCatalog([defineModel({ ...tiny, kvDtypeBytes: 0 })])).toThrow(/kvDtypeBytes must be a positive whole number of bits/);
    const unknownTokenizer = { ...tiny, tokenizer: 'glm4' } as unknown as CatalogModel;
    expect(() => new ModelCatalog([unknownTokenizer])).toThrow(/tokenizer "glm4" is not one of cl100k_base, o200k_base/);
  });
});
