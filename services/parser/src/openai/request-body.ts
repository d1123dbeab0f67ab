import { z } from 'zod';
import { InvalidArgumentError } from '@autoglm/core';

/**
 * The bodies of OpenAI's /v1/chat/completions and /v1/completions, as far as
 * this server reads them. Fields not named here are dropped, as OpenAI
 * ignores what it does not know; fields that would change the answer and
 * cannot be honoured (n > 1, tools, logprobs, ...) are refused by name in
 * infer-call.ts.
 */

/** Field name of a problem with the body as a whole: reported with `param: null`. */
export const BODY_FIELD = 'body';

const optionalNumber = z.number().nullish();
const tokenCount = z.number().int('must be a whole number').min(1, 'must be at least 1').nullish();
const stop = z.union([z.string(), z.array(z.string())], { error: 'must be a string or an array of strings' }).nullish();

const common = {
  model: z.string({ error: 'required: the model to run (GET /v1/models lists them)' }).min(1, 'required: the model to run (GET /v1/models lists them)'),
  max_tokens: tokenCount,
  temperature: optionalNumber,
  // Its range is checked with the gRPC path's (parseInferStart), where 0 means "unset"; here 0 is the client's mistake.
  top_p: z.number().refine((v) => v !== 0, 'must be above 0 and at most 1').nullish(),
  stop,
  n: optionalNumber,
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  // Read only to refuse what would change the answer (infer-call.ts): a client must not get a different answer than it asked for with a 200.
  seed: z.number().int('must be a whole number').nullish(),
  frequency_penalty: optionalNumber,
  presence_penalty: optionalNumber,
  logit_bias: z.record(z.string(), z.number()).nullish(),
};

const contentPart = z.object({ type: z.string(), text: z.string().optional() });

export const ChatCompletionBody = z.object({
  ...common,
  messages: z
    .array(
      z.object({
        role: z.string(),
        content: z.union([z.string(), z.array(contentPart)], { error: 'must be a string or an array of text parts' }).nullish(),
      }),
      { error: 'required: an array of messages ({"role": "user", "content": "..."})' },
    )
    .min(1, 'must have at least one message'),
  max_completion_tokens: tokenCount,
  logprobs: z.boolean().nullish(),
  top_logprobs: optionalNumber,
  tools: z.array(z.unknown()).nullish(),
  functions: z.array(z.unknown()).nullish(),
  tool_choice: z.unknown().optional(),
  response_format: z.object({ type: z.string({ error: 'required: "text", "json_object" or "json_schema"' }) }, { error: 'must be an object such as {"type": "text"}' }).nullish(),
});
export type ChatCompletionBody = z.infer<typeof ChatCompletionBody>;

export const CompletionBody = z.object({
  ...common,
  prompt: z.union([z.string(), z.array(z.string())], {
    error: 'required: a string (or an array of one string); token arrays are not supported',
  }),
  logprobs: optionalNumber,
  echo: z.boolean().nullish(),
  suffix: z.string().nullish(),
  best_of: optionalNumber,
});
export type CompletionBody = z.infer<typeof CompletionBody>;

/** The body, checked against `schema`; the first problem as INVALID_ARGUMENT naming the field as the request spells it. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidArgumentError(BODY_FIELD, 'must be a JSON object (Content-Type: application/json)');
  }
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  throw new InvalidArgumentError(fieldPath(issue.path), issue.message);
}

/** ["messages", 0, "content"] → "messages[0].content". */
export function fieldPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return BODY_FIELD;
  return path.map((part, i) => (typeof part === 'number' ? `[${part}]` : `${i === 0 ? '' : '.'}${String(part)}`)).join('');
}
