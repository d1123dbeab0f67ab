import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';

/**
 * Where one process's output goes: appended to its log file, passed to the
 * caller's callback, and the last lines kept for error messages.
 */
export class LogSink {
  private readonly file: WriteStream;
  private readonly tail: string[] = [];

  constructor(
    readonly path: string,
    private readonly name: string,
    private readonly onLine: ((name: string, line: string) => void) | undefined,
    private readonly tailLines = 40,
  ) {
    this.file = createWriteStream(path, { flags: 'a' });
    // A full disk or a vanished directory must not take the supervisor (and the mesh) down:
    // the lines still reach onLine and the tail.
    this.file.on('error', () => undefined);
  }

  write(line: string): void {
    if (!this.file.writableEnded) this.file.write(`${line}\n`);
    this.tail.push(line);
    if (this.tail.length > this.tailLines) this.tail.shift();
    this.onLine?.(this.name, line);
  }

  /** The last lines written, oldest first. */
  lastLines(): string[] {
    return [...this.tail];
  }

  /** Flushes and closes the file. */
  async close(): Promise<void> {
    if (this.file.closed) return;
    this.file.end();
    await once(this.file, 'close');
  }
}
