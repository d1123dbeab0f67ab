/** A stream the CLI writes to. */
export interface OutputStream {
  write(text: string): unknown;
  /** True when a person is looking at it (progress bars redraw in place). */
  isTTY?: boolean;
}

/** Everything the CLI touches outside itself, so tests can run it in-process. */
export interface CliIo {
  stdout: OutputStream;
  stderr: OutputStream;
  stdin: NodeJS.ReadableStream;
  /** Calls `handler` on SIGINT/SIGTERM until the returned function is called. */
  onInterrupt(handler: () => void): () => void;
  /** Ends the process now (a second Ctrl-C). */
  exit(code: number): void;
  /** The exit status once the command returns (a watched task that did not succeed). */
  setExitCode(code: number): void;
}

/** The real process. */
export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    onInterrupt(handler) {
      process.on('SIGINT', handler);
      process.on('SIGTERM', handler);
      return () => {
        process.removeListener('SIGINT', handler);
        process.removeListener('SIGTERM', handler);
      };
    },
    exit: (code) => process.exit(code),
    setExitCode: (code) => {
      process.exitCode = code;
    },
  };
}

/** Writes a line. */
export function println(stream: OutputStream, line = ''): void {
  stream.write(`${line}\n`);
}
