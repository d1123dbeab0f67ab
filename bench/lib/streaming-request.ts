/** What every stream asks for, through any door: the same chat turn and the same output budget. */
export interface StreamRequest {
  model: string;
  messages: Array<{ role: string; content: string }>;
  /** The sim generates exactly this many tokens (it never stops early). */
  maxTokens: number;
}

/** A short chat turn, as an interactive client sends. */
export function streamRequest(model: string, maxTokens: number): StreamRequest {
  return {
    model,
    messages: [{ role: 'user', content: 'Explain in a few sentences why continuous batching raises the throughput of an LLM server.' }],
    maxTokens,
  };
}
