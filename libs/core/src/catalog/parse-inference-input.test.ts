import type { ChatMessage, GenerationParams, InferencePayload } from '@autoglm/proto';
import { InvalidArgumentError } from '../errors';
import { DEFAULT_MODEL_CATALOG } from './models';
import type { CatalogModel } from './models';
import { parseInferenceInput } from './parse-inference-input';
import { countChatTokens, countTokens } from './tokenizer';

function model(name: string): CatalogModel {
  const found = DEFAULT_MODEL_CATALOG.get(name);
  if (found === undefined) throw new Error(`no ${name} in the default catalog`);
  return found;
}

const GLM = model('glm-4-9b'); // 8192-token context, 1024 tokens by default

interface PayloadInit {
  prompt?: string;
  messages?: ChatMessage[];
  params?: Partial<GenerationParams>;
}

function payload({ prompt = '', messages = [], params }: PayloadInit): InferencePayload {
  return { prompt, messages, params: params && { maxTokens: 0, temperature: 0, topP: 0, stop: [], ...params } };
}

function rejection(fn: () => unknown): InvalidArgumentError {
  try {
    fn();
  } catch (error: unknown) {
    if (error instanceof InvalidArgumentError) return error;
    throw error;
  }
  throw new Error('expected an InvalidArgumentError, nothing was thrown');
}

describe('parseInferenceInput', () => {
  it('counts a prompt and fills the generation parameters', () => {
    const input = parseInferenceInput(payload({ prompt: 'hello world' }), GLM, 'inference');
    expect(input.inputTokens).toBe(countTokens('hello world'));
    expect(input.maxOutputTokens).toBe(1024);
    expect(input.payload).toEqual({ prompt: 'hello world', messages: [], params: { maxTokens: 1024, temperature: 0, topP: 1, stop: [] } });
  });

  it('counts chat messages with their framing and keeps the caller parameters', () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'What is a KV cache?' },
    ];
    const input = parseInferenceInput(
      payload({ messages, params: { maxTokens: 300, temperature: 0.7, topP: 0.9, stop: ['\n\n'] } }),
      GLM,
      'input',
    );
    expect(input.inputTokens).toBe(countChatTokens(messages));
    expect(input.maxOutputTokens).toBe(300);
    expect(input.payload.params).toEqual({ maxTokens: 300, temperature: 0.7, topP: 0.9, stop: ['\n\n'] });
  });

  it('names the payload field it was given', () => {
    expect(rejection(() => parseInferenceInput(undefined, GLM, 'input')).field).toBe('input');
    expect(rejection(() => parseInferenceInput(payload({}), GLM, 'inference')).message).toBe(
      'inference: set prompt (a completion) or messages (a chat); neither is set',
    );
  });

  it('wants exactly one of prompt and messages', () => {
    const both = payload({ prompt: 'hi', messages: [{ role: 'user', content: 'hi' }] });
    expect(rejection(() => parseInferenceInput(both, GLM, 'inference')).message).toBe('inference: set prompt or messages, not both');
  });

  it('rejects a prompt of only whitespace', () => {
    expect(rejection(() => parseInferenceInput(payload({ prompt: ' \n\t' }), GLM, 'inference')).field).toBe('inference.prompt');
  });

  it('names the message with an unknown role or empty content', () => {
    const badRole = payload({ messages: [{ role: 'user', content: 'hi' }, { role: 'robot', content: 'beep' }] });
    expect(rejection(() => parseInferenceInput(badRole, GLM, 'inference')).message).toBe(
      'inference.messages[1].role: "robot" is not a chat role; known: system, user, assistant, tool',
    );
    const empty = payload({ messages: [{ role: 'user', content: '' }] });
    expect(rejection(() => parseInferenceInput(empty, GLM, 'inference')).field).toBe('inference.messages[0].content');
  });

  it('checks the sampling parameters', () => {
    const withParams = (params: Partial<GenerationParams>) => payload({ prompt: 'hi', params });
    expect(rejection(() => parseInferenceInput(withParams({ temperature: 2.5 }), GLM, 'inference')).message).toBe(
      'inference.params.temperature: 2.5 is outside [0, 2]',
    );
    expect(rejection(() => parseInferenceInput(withParams({ temperature: -0.1 }), GLM, 'inference')).field).toBe('inference.params.temperature');
    expect(rejection(() => parseInferenceInput(withParams({ temperature: Number.NaN }), GLM, 'inference')).field).toBe('inference.params.temperature');
    expect(rejection(() => parseInferenceInput(withParams({ topP: 1.5 }), GLM, 'inference')).message).toBe('inference.params.top_p: 1.5 is outside [0, 1]');
    expect(rejection(() => parseInferenceInput(withParams({ stop: ['a', 'b', 'c', 'd', 'e'] }), GLM, 'inference')).message).toBe(
      'inference.params.stop: has 5 strings; at most 4',
    );
    expect(parseInferenceInput(withParams({ temperature: 2, topP: 1, stop: ['a', 'b', 'c', 'd'] }), GLM, 'inference').payload.params?.stop).toHaveLength(4);
  });

  it('rejects max_tokens over the context', () => {
    const error = rejection(() => parseInferenceInput(payload({ prompt: 'hi', params: { maxTokens: 8193 } }), GLM, 'inference'));
    expect(error.message).toBe('inference.params.max_tokens: 8193 is over the 8192-token context of "glm-4-9b"');
  });

  it('rejects a prompt that with max_tokens overflows the context, saying how long it is and the limit', () => {
    const prompt = 'word '.repeat(8000);
    const tokens = countTokens(prompt);
    const error = rejection(() => parseInferenceInput(payload({ prompt, params: { maxTokens: 500 } }), GLM, 'inference'));
    expect(error.field).toBe('inference.prompt');
    expect(error.message).toContain(`is ${tokens} tokens`);
    expect(error.message).toContain('the 8192-token context of "glm-4-9b"');
  });

  it('shrinks an unset budget to what the context has left, and rejects a prompt that leaves none', () => {
    const prompt = 'word '.repeat(7500);
    const tokens = countTokens(prompt);
    expect(parseInferenceInput(payload({ prompt }), GLM, 'inference').maxOutputTokens).toBe(8192 - tokens);
    const tooLong = 'word '.repeat(9000);
    expect(rejection(() => parseInferenceInput(payload({ prompt: tooLong }), GLM, 'inference')).message).toMatch(/leaves no room to generate/);
  });
});
