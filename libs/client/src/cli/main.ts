import { CommanderError } from 'commander';
import { MeshStartError } from '../mesh/mesh-start-error';
import { AutoglmError } from '../sdk/errors';
import { type CliIo, println, processIo } from './io';
import { buildProgram } from './program';

/**
 * Runs the CLI on `argv` (as process.argv: node, script, args...) and resolves
 * with the exit status. Every failure is printed as `error: <code>: <message>`.
 */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode = 0;
  const recordingIo: CliIo = {
    ...io,
    setExitCode: (code) => {
      exitCode = code;
    },
  };
  try {
    await buildProgram(recordingIo).parseAsync([...argv]);
    return exitCode;
  } catch (error) {
    // Commander has printed its own message (usage errors, --help, --version).
    if (error instanceof CommanderError) return error.exitCode;
    const { code, message } = describeError(error);
    println(io.stderr, `error: ${code}: ${message}`);
    return 1;
  }
}

/** The entry point of bin/autoglm.js. */
export function main(): void {
  run(process.argv, processIo()).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}

function describeError(error: unknown): { code: string; message: string } {
  if (error instanceof MeshStartError) return { code: 'UNAVAILABLE', message: error.message };
  const wrapped = AutoglmError.from(error);
  return { code: wrapped.code, message: wrapped.details };
}
