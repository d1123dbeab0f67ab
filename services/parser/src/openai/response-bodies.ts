import type { Endpoint } from './infer-call';

/**
 * OpenAI's response objects, field for field: `chat.completion` and
 * `chat.completion.chunk` for /v1/chat/completions, `text_completion` (whole
 * or in chunks) for /v1/completions, `created` in Unix seconds. The official
 * SDKs parse these by name, so nothing is renamed or added at the top level.
 */

export interface OpenAiUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** What every chunk and body of one response shares. */
export interface ResponseHeader {
  endpoint: Endpoint;
  /** `chatcmpl-<task id>` or `cmpl-<task id>`. */
  id: string;
  created: number;
  model: string;
  /** Chunks carry `usage: null` until the usage chunk (stream_options.include_usage). */
  includeUsage: boolean;
}

/** The response's header for a task accepted now. */
export function responseHeader(endpoint: Endpoint, taskId: string, model: string, includeUsage: boolean, nowMs: number = Date.now()): ResponseHeader {
  return { endpoint, id: `${endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${taskId}`, created: Math.floor(nowMs / 1000), model, includeUsage };
}

/** OpenAI's finish reasons: the backends' "stop" and "length" are the same words. */
export type FinishReason = 'stop' | 'length';

export function usageOf(promptTokens: number, completionTokens: number): OpenAiUsage {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/** The first chunk of a chat stream: the assistant's turn begins (OpenAI sends it before any text). */
export function roleChunk(h: ResponseHeader): object {
  return chunk(h, { role: 'assistant', content: '' }, null);
}

/** A chunk of generated text. */
export function textChunk(h: ResponseHeader, text: string): object {
  return chunk(h, { content: text }, null);
}

/** The chunk that ends the only choice. */
export function finishChunk(h: ResponseHeader, reason: FinishReason): object {
  return chunk(h, {}, reason);
}

/** The last chunk with stream_options.include_usage: no choices, the usage. */
export function usageChunk(h: ResponseHeader, usage: OpenAiUsage): object {
  return { id: h.id, object: objectName(h, true), created: h.created, model: h.model, choices: [], usage };
}

/** A whole (not streamed) response. */
export function completionBody(h: ResponseHeader, text: string, reason: FinishReason, usage: OpenAiUsage): object {
  const choice =
    h.endpoint === 'chat'
      ? { index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: reason }
      : { text, index: 0, logprobs: null, finish_reason: reason };
  return { id: h.id, object: objectName(h, false), created: h.created, model: h.model, choices: [choice], usage };
}

function chunk(h: ResponseHeader, delta: { role?: string; content?: string }, reason: FinishReason | null): object {
  const choice =
    h.endpoint === 'chat'
      ? { index: 0, delta, logprobs: null, finish_reason: reason }
      : { text: delta.content ?? '', index: 0, logprobs: null, finish_reason: reason };
  return { id: h.id, object: objectName(h, true), created: h.created, model: h.model, choices: [choice], ...(h.includeUsage ? { usage: null } : {}) };
}

function objectName(h: ResponseHeader, streamed: boolean): string {
  if (h.endpoint === 'completion') return 'text_completion';
  return streamed ? 'chat.completion.chunk' : 'chat.completion';
}
