import { Readable } from 'node:stream';
import type { CliIo } from '@autoglm/client';

/** A CliIo that collects stdout and stderr, with empty stdin, for running `autoglm` in a test. */
export function captureIo(): CliIo & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    stdout: { write: (text: string) => ((io.out += text), true) },
    stderr: { write: (text: string) => ((io.err += text), true) },
    stdin: Readable.from(['']),
    onInterrupt: () => () => undefined,
    exit: (code: number) => {
      throw new Error(`exit ${code}`);
    },
    setExitCode: () => undefined,
  };
  return io;
}
