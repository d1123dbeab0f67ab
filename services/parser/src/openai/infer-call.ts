import { InferStart, type ChatMessage } from '@autoglm/proto';
import { InvalidArgumentError } from '@autoglm/core';
import { TENANT_METADATA } from '../tenant';
import { BODY_FIELD, ChatCompletionBody, CompletionBody, parseBody } from './request-body';
import { DEADLINE_HEADER, PRIORITY_CLASS_HEADER, PRIORITY_HEADER, schedulingFromHeaders, type RequestHeaders } from './request-headers';

/** Which OpenAI endpoint a request came through: it decides the response's shape. */
export type Endpoint = 'chat' | 'completion';

/** An OpenAI request turned into the start of an Infer stream. */
export interface InferCall {
  endpoint: Endpoint;
  /** The model as the client named it (echoed in every response). */
  model: string;
  start: InferStart;
  stream: boolean;
  /** stream_options.include_usage: a last chunk with usage and no choices. */
  includeUsage: boolean;
  /** The request's name for a field parseInferStart names (input.params.top_p → top_p), or null for none. */
  param(field: string): string | null;
}

/** Marks tasks that came through this API (visible in `autoglm get`). */
const LABELS = { api: 'openai' };

/** A /v1/chat/completions body and headers as an Infer start: messages become chat turns. */
export function chatCall(body: unknown, headers: RequestHeaders, nowMs: number = Date.now()): InferCall {
  const req = parseBody(ChatCompletionBody, body);
  refuseUnsupported(req);
  if (req.logprobs === true || (req.top_logprobs ?? 0) > 0) throw new InvalidArgumentError(req.logprobs === true ? 'logprobs' : 'top_logprobs', 'log probabilities are not supported here');
  if ((req.tools?.length ?? 0) > 0) throw new InvalidArgumentError('tools', 'tool calling is not supported here');
  if ((req.functions?.length ?? 0) > 0) throw new InvalidArgumentError('functions', 'function calling is not supported here');
  if (req.tool_choice != null && req.tool_choice !== 'none') throw new InvalidArgumentError('tool_choice', 'tool calling is not supported here; leave it out or send "none"');
  if (req.response_format != null && req.response_format.type !== 'text') {
    throw new InvalidArgumentError('response_format.type', `${JSON.stringify(req.response_format.type)}: structured output is not supported here; leave it out or send {"type": "text"}`);
  }
  const maxTokensName = req.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
  const messages: ChatMessage[] = req.messages.map((message, i) => ({
    // OpenAI's newer name for the system turn.
    role: message.role === 'developer' ? 'system' : message.role,
    content: contentText(message.content, `messages[${i}].content`),
  }));
  return {
    endpoint: 'chat',
    model: req.model,
    start: inferStart(req, { prompt: '', messages }, req.max_completion_tokens ?? req.max_tokens, headers, nowMs),
    stream: req.stream === true,
    includeUsage: req.stream === true && req.stream_options?.include_usage === true,
    param: (field) => paramOf(field, 'messages', maxTokensName),
  };
}

/** A /v1/completions body and headers as an Infer start: the prompt is completed as it is. */
export function completionCall(body: unknown, headers: RequestHeaders, nowMs: number = Date.now()): InferCall {
  const req = parseBody(CompletionBody, body);
  refuseUnsupported(req);
  if ((req.logprobs ?? 0) > 0) throw new InvalidArgumentError('logprobs', 'log probabilities are not supported here');
  if (req.echo === true) throw new InvalidArgumentError('echo', 'echoing the prompt is not supported here');
  if ((req.suffix ?? '') !== '') throw new InvalidArgumentError('suffix', 'suffixes (insertion) are not supported here');
  if (req.best_of != null && req.best_of !== 1) throw new InvalidArgumentError('best_of', `${req.best_of}: only 1 is supported`);
  let prompt: string;
  if (typeof req.prompt === 'string') prompt = req.prompt;
  else if (req.prompt.length === 1) prompt = req.prompt[0]!;
  else throw new InvalidArgumentError('prompt', `has ${req.prompt.length} prompts; send one per request`);
  return {
    endpoint: 'completion',
    model: req.model,
    start: inferStart(req, { prompt, messages: [] }, req.max_tokens, headers, nowMs),
    stream: req.stream === true,
    includeUsage: req.stream === true && req.stream_options?.include_usage === true,
    param: (field) => paramOf(field, 'prompt', 'max_tokens'),
  };
}

/** What both endpoints refuse rather than answer differently than asked. */
function refuseUnsupported(req: ChatCompletionBody | CompletionBody): void {
  if (req.n != null && req.n !== 1) throw new InvalidArgumentError('n', `${req.n}: only 1 choice per request is supported`);
  if (req.stream_options != null && req.stream !== true) throw new InvalidArgumentError('stream_options', 'is only allowed when stream is true');
  if (req.seed != null) throw new InvalidArgumentError('seed', 'seeded (reproducible) sampling is not supported here; leave it out');
  for (const penalty of ['frequency_penalty', 'presence_penalty'] as const) {
    if ((req[penalty] ?? 0) !== 0) throw new InvalidArgumentError(penalty, 'penalties are not supported here; leave it out or send 0');
  }
  if (Object.keys(req.logit_bias ?? {}).length > 0) throw new InvalidArgumentError('logit_bias', 'token biases are not supported here; leave it out');
}

function inferStart(
  req: ChatCompletionBody | CompletionBody,
  input: { prompt: string; messages: ChatMessage[] },
  maxTokens: number | null | undefined,
  headers: RequestHeaders,
  nowMs: number,
): InferStart {
  const stop = req.stop == null ? [] : typeof req.stop === 'string' ? [req.stop] : req.stop;
  return InferStart.fromPartial({
    // The tenant comes from the token, or for an admin from x-autoglm-tenant, as on the gRPC path (tenantOf).
    model: req.model,
    input: {
      ...input,
      // OpenAI's defaults: temperature 1 (sampling, not greedy), top_p 1.
      params: { maxTokens: maxTokens ?? 0, temperature: req.temperature ?? 1, topP: req.top_p ?? 1, stop },
    },
    ...schedulingFromHeaders(headers, nowMs),
    labels: LABELS,
  });
}

/** A message's content: a string, or text parts joined; other parts (images, audio) are refused by name. */
function contentText(content: ChatCompletionBody['messages'][number]['content'], field: string): string {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  return content
    .map((part, j) => {
      if (part.type !== 'text' || part.text === undefined) throw new InvalidArgumentError(`${field}[${j}].type`, `${JSON.stringify(part.type)} parts are not supported here; send text`);
      return part.text;
    })
    .join('');
}

/**
 * The name a client knows for a field the shared parsing names: fields of the
 * Infer input lose their `input.` (and `params.`) prefix, scheduling fields
 * are the headers that set them.
 */
function paramOf(field: string, input: 'messages' | 'prompt', maxTokens: string): string | null {
  switch (field) {
    case BODY_FIELD:
    case 'request_id':
      return null;
    case 'input':
      return input;
    case 'priority':
      return PRIORITY_HEADER;
    case 'priority_class':
      return PRIORITY_CLASS_HEADER;
    case 'deadline':
      return DEADLINE_HEADER;
    case 'tenant':
      return TENANT_METADATA;
  }
  const param = /^input\.params\.([a-z_]+)(.*)$/.exec(field);
  if (param) return `${param[1] === 'max_tokens' ? maxTokens : param[1]}${param[2]}`;
  return field.startsWith('input.') ? field.slice('input.'.length) : field;
}
