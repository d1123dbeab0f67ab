import { TaskSpec } from '@autoglm/proto';
import { RunTimePredictor } from './run-time';

const inference = (model: string, inputTokens: number, maxOutputTokens: number) =>
  TaskSpec.fromPartial({ model, inputTokens, maxOutputTokens, payload: { $case: 'inference', inference: { prompt: 'x', messages: [], params: undefined } } });
const batch = (command: string, seconds?: number) =>
  TaskSpec.fromPartial({ payload: { $case: 'batch', batch: { command: [command], env: {}, expectedDuration: seconds === undefined ? undefined : { seconds, nanos: 0 } } } });

describe('RunTimePredictor', () => {
  it('starts from the latency model: longer outputs and prompts take longer', () => {
    const p = new RunTimePredictor();
    const short = p.predict(inference('m', 100, 10));
    expect(short).toBeGreaterThan(0);
    expect(p.predict(inference('m', 100, 500))).toBeGreaterThan(short);
    expect(p.predict(inference('m', 8000, 10))).toBeGreaterThan(short);
  });

  it('learns what a model really takes, per model', () => {
    const p = new RunTimePredictor();
    const spec = inference('slow', 200, 200);
    const prior = p.predict(spec);
    for (let i = 0; i < 40; i++) p.observe(spec, prior * 3);
    expect(p.predict(spec) / prior).toBeCloseTo(3, 1);
    expect(p.predict(inference('other', 200, 200))).toBeCloseTo(prior);
    expect(p.observations(spec)).toBe(40);
  });

  it('corrects a batch program whose submitters always guess half the truth', () => {
    const p = new RunTimePredictor();
    for (let i = 0; i < 40; i++) p.observe(batch('train', 60), 120_000);
    expect(p.predict(batch('train', 30))).toBeCloseTo(60_000, -3);
    expect(p.predict(batch('other'))).toBe(60_000);
  });

  it('ignores nonsense observations and clamps runaway ones', () => {
    const p = new RunTimePredictor();
    const spec = batch('job', 10);
    p.observe(spec, Number.NaN);
    p.observe(spec, -5);
    expect(p.observations(spec)).toBe(0);
    p.observe(spec, 1e12);
    expect(p.predict(spec)).toBe(10_000 * 20);
  });
});

describe('RunTimePredictor output lengths', () => {
  it('predicts what requests of the model and tenant generated, never more than max_tokens', () => {
    const p = new RunTimePredictor();
    const spec = inference('m', 100, 4096);
    expect(p.predictOutputTokens(spec, 'a')).toBe(256);
    expect(p.predictOutputTokens(inference('m', 100, 64), 'a')).toBe(64);
    for (let i = 0; i < 200; i++) p.observe(spec, 1000, { tenant: 'chatty', outputTokens: 1500 });
    for (let i = 0; i < 200; i++) p.observe(spec, 1000, { tenant: 'terse', outputTokens: 20 });
    expect(p.predictOutputTokens(spec, 'chatty')).toBeCloseTo(1500, -1);
    expect(p.predictOutputTokens(spec, 'terse')).toBeCloseTo(20, 0);
    expect(p.predictOutputTokens(inference('m', 100, 512), 'chatty')).toBe(512);
    // A tenant with no history of its own gets the model's.
    const model = p.predictOutputTokens(spec, 'new');
    expect(model).toBeGreaterThan(20);
    expect(model).toBeLessThan(1500);
    expect(p.predict(spec, 'chatty')).toBeGreaterThan(p.predict(spec, 'terse'));
  });

  it('learns speed apart from length: a slow model is slow whatever its requests generate', () => {
    const p = new RunTimePredictor();
    const fresh = new RunTimePredictor();
    const spec = inference('slow', 200, 4096);
    // Requests of 100 tokens that take 3x what the latency model says for 100 tokens.
    const hundred = fresh.predict(inference('slow', 200, 100));
    for (let i = 0; i < 200; i++) p.observe(spec, hundred * 3, { tenant: 't', outputTokens: 100 });
    expect(p.predictOutputTokens(spec, 't')).toBeCloseTo(100, 0);
    expect(p.predict(spec, 't') / hundred).toBeCloseTo(3, 1);
  });
});
