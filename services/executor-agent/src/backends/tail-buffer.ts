/** Keeps the last `maxBytes` bytes of a stream, so a chatty process cannot grow the agent's memory. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    for (let first = this.chunks[0]; first !== undefined && this.bytes - first.length >= this.maxBytes; first = this.chunks[0]) {
      this.chunks.shift();
      this.bytes -= first.length;
    }
  }

  /** The kept tail as UTF-8, starting at a character boundary so a cut never shows a broken character. */
  text(): string {
    let tail = Buffer.concat(this.chunks);
    if (tail.length > this.maxBytes) tail = tail.subarray(tail.length - this.maxBytes);
    let start = 0;
    // Skip UTF-8 continuation bytes (10xxxxxx) left over from a character cut in half.
    while (start < tail.length && start < 3 && ((tail[start] as number) & 0xc0) === 0x80) start++;
    return tail.subarray(start).toString('utf8');
  }
}
