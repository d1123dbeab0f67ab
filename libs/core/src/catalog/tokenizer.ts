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
 * packaged.
 */
import { countTokens as countCl100kTokens } from 'gpt-tokenizer/cjs/encoding/cl100k_base';

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

/**
 * Tokens in `text`. Counts without building the token array, so a prompt of
 * megabytes costs time linear in its length and no extra memory.
 */
export function countTokens(text: string): number {
  if (text.length === 0) return 0;
  return countCl100kTokens(text, PLAIN_TEXT);
}

/** Tokens of a chat conversation as the model sees it: every turn's content plus the template's framing. */
export function countChatTokens(messages: readonly ChatTurn[]): number {
  let total = CHAT_PREFIX_TOKENS + CHAT_REPLY_PRIME_TOKENS;
  for (const message of messages) {
    total += CHAT_TOKENS_PER_MESSAGE + countTokens(message.content);
  }
  return total;
}
