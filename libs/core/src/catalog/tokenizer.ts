/**
 * Token counting for prompts and chat conversations.
 *
 * GLM-4's own tokenizer is a tiktoken-style byte-level BPE of about 150k
 * tokens that is not published on npm. cl100k_base (about 100k tokens) is the
 * same kind of tokenizer with the same pre-tokenisation regex family, so its
 * counts for English and code stay within a few per cent of GLM-4's; for
 * Chinese text GLM-4's larger vocabulary gives somewhat fewer tokens, so
 * cl100k errs on the side of more tokens, which is the safe side for context
 * checks and memory estimates. It is the stand-in until GLM's vocabulary is
 * packaged. o200k_base (about 200k tokens) is there for an operator's model
 * whose vocabulary is nearer that size.
 */
import { countTokens as countCl100kTokens } from 'gpt-tokenizer/cjs/encoding/cl100k_base';
import type * as O200kBase from 'gpt-tokenizer/cjs/encoding/o200k_base';

/** The vocabularies tokens can be counted in. */
export type TokenizerName = 'cl100k_base' | 'o200k_base';

/** Every {@link TokenizerName}, for validating configuration. */
export const TOKENIZER_NAMES: readonly TokenizerName[] = Object.freeze(['cl100k_base', 'o200k_base']);

/** The vocabulary of every built-in model and of any model that names none. */
export const DEFAULT_TOKENIZER: TokenizerName = 'cl100k_base';

/**
 * User text is text: a prompt that contains "<|endoftext|>" counts those
 * characters like any others instead of being refused by the library.
 */
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };

/**
 * Chat framing of GLM-4's template, in tokens: `[gMASK]<sop>` once, `<|role|>`
 * and a newline per turn, and `<|assistant|>` to prime the reply.
 */
const CHAT_PREFIX_TOKENS = 2;
const CHAT_TOKENS_PER_MESSAGE = 2;
const CHAT_REPLY_PRIME_TOKENS = 1;

/** One chat turn, as far as counting is concerned. */
export interface ChatTurn {
  readonly role: string;
  readonly content: string;
}

let o200kCount: typeof O200kBase.countTokens | undefined;

/**
 * Loaded on first use: its merge table costs about 45 MB of memory, which
 * every process importing this package would pay even when no model in its
 * catalog uses o200k_base.
 */
function countO200kTokens(text: string): number {
  if (o200kCount === undefined) {
    // A static import would load the table at start; see above.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const o200k = require('gpt-tokenizer/cjs/encoding/o200k_base') as typeof O200kBase;
    o200kCount = o200k.countTokens;
  }
  return o200kCount(text, PLAIN_TEXT);
}

/**
 * Tokens in `text` in the vocabulary `tokenizer`. Counts without building the
 * token array, so a prompt of megabytes costs time linear in its length and
 * no extra memory.
 */
export function countTokens(text: string, tokenizer: TokenizerName = DEFAULT_TOKENIZER): number {
  if (text.length === 0) return 0;
  return tokenizer === 'o200k_base' ? countO200kTokens(text) : countCl100kTokens(text, PLAIN_TEXT);
}

/** Tokens of a chat conversation as the model sees it: every turn's content plus the template's framing. */
export function countChatTokens(messages: readonly ChatTurn[], tokenizer: TokenizerName = DEFAULT_TOKENIZER): number {
  let total = CHAT_PREFIX_TOKENS + CHAT_REPLY_PRIME_TOKENS;
  for (const message of messages) {
    total += CHAT_TOKENS_PER_MESSAGE + countTokens(message.content, tokenizer);
  }
  return total;
}
