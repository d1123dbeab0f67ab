/**
 * Reads a `text/event-stream` body and yields each event's data. Only the
 * `data` field matters to OpenAI-compatible servers; comments (`:`), `event`,
 * `id` and `retry` fields are skipped. Lines may end in LF or CRLF (a lone CR,
 * which the SSE spec also allows, is not used by any LLM server we target).
 * Breaking out of the loop cancels the body, which closes the connection.
 */
export async function* sseData(body: ReadableStream<Uint8Array>): AsyncGenerator<string, void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let data: string[] = [];
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        buffer += decoder.decode();
        finished = true;
      } else {
        buffer += decoder.decode(value, { stream: true });
      }
      let newline = buffer.indexOf('\n');
      while (newline >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, '');
        buffer = buffer.slice(newline + 1);
        if (line === '') {
          if (data.length > 0) yield data.join('\n');
          data = [];
        } else if (line.startsWith('data:')) {
          const value = line.slice(5);
          data.push(value.startsWith(' ') ? value.slice(1) : value);
        }
        newline = buffer.indexOf('\n');
      }
      if (finished) {
        // A server that closes without the final blank line still meant its last event.
        if (buffer.startsWith('data:')) data.push(buffer.slice(5).replace(/^ /, '').replace(/\r$/, ''));
        if (data.length > 0) yield data.join('\n');
        return;
      }
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
