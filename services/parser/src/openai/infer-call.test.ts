import { DEFAULT_MODEL_CATALOG, InvalidArgumentError, parseInferStart } from '@autoglm/core';
import { PriorityClass } from '@autoglm/proto';
import { chatCall, completionCall } from './infer-call';
import { parseDeadlineHeader } from './request-headers';

const NOW = Date.parse('2026-03-01T12:00:00.000Z');

function refusal(fn: () => unknown): InvalidArgumentError {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err;
    throw err;
  }
  throw new Error('expected an InvalidArgumentError, nothing was thrown');
}

const chat = (body: Record<string, unknown>, headers = {}) => chatCall({ model: 'glm-4-9b', messages: [{ role: 'user', content: 'Hi' }], ...body }, headers, NOW);

describe('chatCall: an OpenAI chat request as an Infer start', () => {
  it('maps messages, generation parameters and stream options; ignores what it does not know', () => {
    const call = chatCall(
      {
        model: 'glm-4-9b',
        messages: [
          { role: 'developer', content: 'Be brief.' },
          { role: 'user', content: [{ type: 'text', text: 'Hello, ' }, { type: 'text', text: 'world' }], name: 'ann' },
          { role: 'assistant', content: 'Hi!' },
        ],
        max_tokens: 64,
        temperature: 0.7,
        top_p: 0.9,
        stop: 'END',
        n: 1,
        stream: true,
        stream_options: { include_usage: true },
        user: 'ann@example.com',
        frequency_penalty: 0,
      },
      {},
      NOW,
    );
    expect(call).toMatchObject({ endpoint: 'chat', model: 'glm-4-9b', stream: true, includeUsage: true });
    expect(call.start).toEqual({
      requestId: '',
      tenant: '',
      model: 'glm-4-9b',
      input: {
        prompt: '',
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'Hello, world' },
          { role: 'assistant', content: 'Hi!' },
        ],
        params: { maxTokens: 64, temperature: 0.7, topP: 0.9, stop: ['END'] },
      },
      priorityClass: PriorityClass.UNSPECIFIED,
      priority: 0,
      deadline: undefined,
      labels: { api: 'openai' },
    });
  });

  it('prefers max_completion_tokens, and names it in errors of the budget', () => {
    const call = chat({ max_tokens: 10, max_completion_tokens: 20 });
    expect(call.start.input?.params?.maxTokens).toBe(20);
    expect(call.param('input.params.max_tokens')).toBe('max_completion_tokens');
    expect(chat({ max_tokens: 10 }).param('input.params.max_tokens')).toBe('max_tokens');
  });

  it("samples as OpenAI does by default (temperature 1, top_p 1), leaves the budget to the model's default, and usage to streams", () => {
    const call = chat({});
    expect(call.start.input?.params).toEqual({ maxTokens: 0, temperature: 1, topP: 1, stop: [] });
    expect(chat({ temperature: 0, top_p: 0.9 }).start.input?.params).toMatchObject({ temperature: 0, topP: expect.closeTo(0.9, 5) });
    expect(chat({ stream: true, stream_options: { include_usage: true } })).toMatchObject({ stream: true, includeUsage: true });
    expect(refusal(() => chat({ stream_options: { include_usage: true } }))).toMatchObject({ field: 'stream_options', message: expect.stringContaining('is only allowed when stream is true') });
  });

  it('refuses parameters out of range, naming them', () => {
    expect(refusal(() => chat({ max_tokens: 0 })).field).toBe('max_tokens');
    expect(refusal(() => chat({ max_completion_tokens: 2.5 })).field).toBe('max_completion_tokens');
    expect(refusal(() => chat({ top_p: 0 }))).toMatchObject({ field: 'top_p', message: expect.stringContaining('must be above 0 and at most 1') });
  });

  it('refuses what would change the answer rather than ignore it, and takes the defaults of the same', () => {
    expect(refusal(() => chat({ response_format: { type: 'json_object' } })).field).toBe('response_format.type');
    expect(refusal(() => chat({ seed: 7 })).field).toBe('seed');
    expect(refusal(() => chat({ presence_penalty: 0.5 })).field).toBe('presence_penalty');
    expect(refusal(() => chat({ frequency_penalty: 1 })).field).toBe('frequency_penalty');
    expect(refusal(() => chat({ logit_bias: { '50256': -100 } })).field).toBe('logit_bias');
    expect(refusal(() => chat({ tool_choice: 'auto' })).field).toBe('tool_choice');
    expect(chat({ response_format: { type: 'text' }, presence_penalty: 0, frequency_penalty: 0, logit_bias: {}, tool_choice: 'none' }).start.input?.messages).toHaveLength(1);
  });

  it('refuses by name what it cannot honour', () => {
    expect(refusal(() => chat({ n: 2 })).field).toBe('n');
    expect(refusal(() => chat({ tools: [{ type: 'function', function: { name: 'f' } }] })).field).toBe('tools');
    expect(refusal(() => chat({ logprobs: true })).field).toBe('logprobs');
    expect(refusal(() => chat({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] })).field).toBe('messages[0].content[0].type');
    expect(chat({ tools: [], n: 1, logprobs: false }).start.input?.messages).toHaveLength(1);
  });

  it('names the field of a body that does not fit the schema', () => {
    expect(refusal(() => chatCall({ messages: [{ role: 'user', content: 'Hi' }] }, {}, NOW)).field).toBe('model');
    expect(refusal(() => chat({ messages: undefined })).field).toBe('messages');
    expect(refusal(() => chat({ messages: [] })).field).toBe('messages');
    expect(refusal(() => chat({ messages: [{ role: 'user', content: 7 }] })).field).toBe('messages[0].content');
    expect(refusal(() => chat({ temperature: 'hot' })).field).toBe('temperature');
    expect(refusal(() => chat({ stop: [1] })).field).toBe('stop');
    expect(refusal(() => chat({ stream: 'yes' })).field).toBe('stream');
    expect(refusal(() => chatCall('{}', {}, NOW)).field).toBe('body');
    expect(refusal(() => chatCall(null, {}, NOW)).field).toBe('body');
  });
});

describe('completionCall: an OpenAI completion request as an Infer start', () => {
  const completion = (body: Record<string, unknown>) => completionCall({ model: 'glm-4-9b', prompt: 'Once', ...body }, {}, NOW);

  it('completes the prompt as it is', () => {
    const call = completion({ prompt: ['Once upon a time'], max_tokens: 5, stop: ['\n', '.'] });
    expect(call).toMatchObject({ endpoint: 'completion', stream: false });
    expect(call.start.input).toEqual({ prompt: 'Once upon a time', messages: [], params: { maxTokens: 5, temperature: 1, topP: 1, stop: ['\n', '.'] } });
  });

  it('refuses several prompts, token prompts and what it cannot honour, by name', () => {
    expect(refusal(() => completion({ prompt: ['a', 'b'] })).field).toBe('prompt');
    expect(refusal(() => completion({ prompt: [1, 2, 3] })).field).toBe('prompt');
    expect(refusal(() => completion({ prompt: undefined })).field).toBe('prompt');
    expect(refusal(() => completion({ echo: true })).field).toBe('echo');
    expect(refusal(() => completion({ best_of: 3 })).field).toBe('best_of');
    expect(refusal(() => completion({ logprobs: 2 })).field).toBe('logprobs');
    expect(refusal(() => completion({ suffix: 'end' })).field).toBe('suffix');
  });
});

describe('the x-autoglm-* headers', () => {
  it('set class, priority and deadline', () => {
    const start = chat({}, { 'x-autoglm-priority-class': 'Background', 'x-autoglm-priority': '-5', 'x-autoglm-deadline': '+30s' }).start;
    expect(start).toMatchObject({ priorityClass: PriorityClass.BACKGROUND, priority: -5, deadline: { seconds: NOW / 1000 + 30, nanos: 0 } });
  });

  it('refuse what they cannot read, naming the header', () => {
    expect(refusal(() => chat({}, { 'x-autoglm-priority-class': 'asap' })).field).toBe('x-autoglm-priority-class');
    expect(refusal(() => chat({}, { 'x-autoglm-priority': '1.5' })).field).toBe('x-autoglm-priority');
    expect(refusal(() => chat({}, { 'x-autoglm-deadline': 'tomorrow' })).field).toBe('x-autoglm-deadline');
  });

  it('take deadlines as RFC 3339 or a time from now', () => {
    expect(parseDeadlineHeader('2026-03-01T12:05:00Z', NOW)).toEqual({ seconds: NOW / 1000 + 300, nanos: 0 });
    expect(parseDeadlineHeader('2026-03-01T13:05:00.5+01:00', NOW)).toEqual({ seconds: NOW / 1000 + 300, nanos: 500_000_000 });
    expect(parseDeadlineHeader('+5m', NOW).seconds).toBe(NOW / 1000 + 300);
    expect(parseDeadlineHeader('90s', NOW).seconds).toBe(NOW / 1000 + 90);
    expect(parseDeadlineHeader('+20', NOW).seconds).toBe(NOW / 1000 + 20);
    expect(parseDeadlineHeader('+1500ms', NOW)).toEqual({ seconds: NOW / 1000 + 1, nanos: 500_000_000 });
    expect(() => parseDeadlineHeader('20', NOW)).toThrow(InvalidArgumentError);
    expect(() => parseDeadlineHeader('2026-03-01', NOW)).toThrow(InvalidArgumentError);
  });
});

describe('through the shared parsing', () => {
  const ctx = { catalog: DEFAULT_MODEL_CATALOG, now: new Date(NOW) };
  const parsed = (call: ReturnType<typeof chatCall>) => parseInferStart({ ...call.start, tenant: 'team-a' }, ctx);

  it('becomes the interactive task a gRPC Infer becomes', () => {
    const { spec } = parsed(chat({ max_tokens: 16 }, { 'x-autoglm-priority': '3' }));
    expect(spec).toMatchObject({ model: 'glm-4-9b', maxOutputTokens: 16, priorityClass: PriorityClass.URGENT, priority: 3, interactive: true, maxRetries: 0, preemptible: false, labels: { api: 'openai' } });
  });

  it("has its refusals named as the request names the field", () => {
    const nameOf = (body: Record<string, unknown>, headers = {}) => {
      const call = chat(body, headers);
      return call.param(refusal(() => parsed(call)).field);
    };
    expect(nameOf({ temperature: 3 })).toBe('temperature');
    expect(nameOf({ top_p: 2 })).toBe('top_p');
    expect(nameOf({ max_completion_tokens: 10_000_000 })).toBe('max_completion_tokens');
    expect(nameOf({ stop: ['a', 'b', 'c', 'd', 'e'] })).toBe('stop');
    expect(nameOf({ messages: [{ role: 'robot', content: 'x' }] })).toBe('messages[0].role');
    expect(nameOf({ messages: [{ role: 'user', content: ' ' }] })).toBe('messages[0].content');
    expect(nameOf({}, { 'x-autoglm-priority': '5000' })).toBe('x-autoglm-priority');
    expect(nameOf({}, { 'x-autoglm-deadline': '2020-01-01T00:00:00Z' })).toBe('x-autoglm-deadline');
    expect(nameOf({ model: 'no-such-model' })).toBe('model');
    const completion = completionCall({ model: 'glm-4-9b', prompt: ' ' }, {}, NOW);
    expect(completion.param(refusal(() => parseInferStart({ ...completion.start, tenant: 'team-a' }, ctx)).field)).toBe('prompt');
  });
});
