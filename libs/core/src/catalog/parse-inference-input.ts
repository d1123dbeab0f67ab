/**
 * Checks an inference payload against its model: prompt or messages, the
 * generation parameters, and the token budget against the context window.
 */
import type { ChatMessage, GenerationParams, InferencePayload } from '@autoglm/proto';
import { InvalidArgumentError } from '../errors';
import type { CatalogModel } from './models';
import { countChatTokens, countTokens } from './tokenizer';

export const CHAT_ROLES: readonly string[] = Object.freeze(['system', 'user', 'assistant', 'tool']);
export const MAX_STOP_STRINGS = 4;
const MAX_TEMPERATURE = 2;

/** An inference payload ready to schedule, with its token counts. */
export interface InferenceInput {
  /** A copy of the payload with `params` always present: `max_tokens` resolved, `top_p` 0 made 1. */
  readonly payload: InferencePayload;
  /** Tokens of the prompt, or of the messages with their chat framing. */
  readonly inputTokens: number;
  /** The generation budget. */
  readonly maxOutputTokens: number;
}

/**
 * @param field the payload's field path in the request: `inference` in a
 *   SubmitTaskRequest, `input` in an InferStart; errors name fields under it.
 */
export function parseInferenceInput(
  payload: InferencePayload | undefined,
  model: CatalogModel,
  field: string,
): InferenceInput {
  if (payload === undefined) {
    throw new InvalidArgumentError(field, 'required: give a prompt or chat messages');
  }
  const hasPrompt = payload.prompt.length > 0;
  const hasMessages = payload.messages.length > 0;
  if (hasPrompt === hasMessages) {
    throw new InvalidArgumentError(
      field,
      hasPrompt ? 'set prompt or messages, not both' : 'set prompt (a completion) or messages (a chat); neither is set',
    );
  }

  if (hasPrompt && payload.prompt.trim().length === 0) {
    throw new InvalidArgumentError(`${field}.prompt`, 'is empty (only whitespace)');
  }
  const messages = hasMessages ? parseMessages(payload.messages, `${field}.messages`) : [];
  const params = parseParams(payload.params, model, `${field}.params`);

  const inputField = hasPrompt ? `${field}.prompt` : `${field}.messages`;
  const inputTokens = hasPrompt ? countTokens(payload.prompt, model.tokenizer) : countChatTokens(messages, model.tokenizer);
  const context = `the ${model.contextLength}-token context of "${model.name}"`;
  let maxOutputTokens: number;
  if (params.maxTokens > 0) {
    maxOutputTokens = params.maxTokens;
    if (inputTokens + maxOutputTokens > model.contextLength) {
      throw new InvalidArgumentError(
        inputField,
        `is ${inputTokens} tokens; with max_tokens ${maxOutputTokens} that makes ${inputTokens + maxOutputTokens}, over ${context}; shorten the input or lower max_tokens`,
      );
    }
  } else {
    const room = model.contextLength - inputTokens;
    if (room < 1) {
      throw new InvalidArgumentError(inputField, `is ${inputTokens} tokens, which leaves no room to generate within ${context}; shorten the input`);
    }
    // An unset budget shrinks to what the context has left rather than failing.
    maxOutputTokens = Math.min(model.defaultMaxOutputTokens, room);
  }

  return {
    payload: {
      prompt: payload.prompt,
      messages,
      params: { ...params, maxTokens: maxOutputTokens },
    },
    inputTokens,
    maxOutputTokens,
  };
}

function parseParams(params: GenerationParams | undefined, model: CatalogModel, field: string): GenerationParams {
  const { maxTokens = 0, temperature = 0, topP = 0, stop = [] } = params ?? {};
  if (!Number.isInteger(maxTokens) || maxTokens < 0) {
    throw new InvalidArgumentError(`${field}.max_tokens`, `${maxTokens} is not a whole number of tokens`);
  }
  if (maxTokens > model.contextLength) {
    throw new InvalidArgumentError(`${field}.max_tokens`, `${maxTokens} is over the ${model.contextLength}-token context of "${model.name}"`);
  }
  // Written so that NaN fails too.
  if (!(temperature >= 0 && temperature <= MAX_TEMPERATURE)) {
    throw new InvalidArgumentError(`${field}.temperature`, `${temperature} is outside [0, ${MAX_TEMPERATURE}]`);
  }
  if (!(topP >= 0 && topP <= 1)) {
    throw new InvalidArgumentError(`${field}.top_p`, `${topP} is outside [0, 1]`);
  }
  if (stop.length > MAX_STOP_STRINGS) {
    throw new InvalidArgumentError(`${field}.stop`, `has ${stop.length} strings; at most ${MAX_STOP_STRINGS}`);
  }
  return { maxTokens, temperature, topP: topP === 0 ? 1 : topP, stop: [...stop] };
}

function parseMessages(messages: readonly ChatMessage[], field: string): ChatMessage[] {
  return messages.map(({ role, content }, index) => {
    if (!CHAT_ROLES.includes(role)) {
      throw new InvalidArgumentError(`${field}[${index}].role`, `${JSON.stringify(role)} is not a chat role; known: ${CHAT_ROLES.join(', ')}`);
    }
    if (content.trim().length === 0) {
      throw new InvalidArgumentError(`${field}[${index}].content`, 'is empty');
    }
    return { role, content };
  });
}
