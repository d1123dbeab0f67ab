import { setMaxListeners } from 'node:events';
import type { Command } from 'commander';
import { AutoglmClient } from '../sdk/client';
import type { CliIo } from './io';
import { println } from './io';
import type { Json } from './json';

/** Options every command takes (declared on the program). */
export interface GlobalOptions {
  address?: string;
  tenant: string;
  token?: string;
  json?: boolean;
}

/** What a command's action gets besides its own arguments. */
export interface CommandContext {
  io: CliIo;
  globals: GlobalOptions;
  /** A client for the duration of `use`, closed afterwards. */
  withClient<T>(use: (client: AutoglmClient) => Promise<T>): Promise<T>;
  /** One JSON document on a line of stdout. */
  printJson(value: Json): void;
}

/** The context of a command being run. */
export function commandContext(io: CliIo, command: Command): CommandContext {
  const globals = command.optsWithGlobals<GlobalOptions>();
  return {
    io,
    globals,
    async withClient(use) {
      const client = new AutoglmClient({ address: globals.address, tenant: globals.tenant, token: globals.token });
      try {
        return await use(client);
      } finally {
        client.close();
      }
    },
    printJson: (value) => println(io.stdout, JSON.stringify(value)),
  };
}

/** Runs `body` with an AbortSignal that the first Ctrl-C aborts; a second one ends the process. */
export async function interruptible<T>(io: CliIo, onFirst: string | undefined, body: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  // One signal stops every watch of `autoglm watch`: hundreds of listeners are expected.
  setMaxListeners(0, controller.signal);
  const remove = io.onInterrupt(() => {
    if (controller.signal.aborted) {
      io.exit(130);
      return;
    }
    if (onFirst !== undefined) println(io.stderr, onFirst);
    controller.abort();
  });
  try {
    return await body(controller.signal);
  } finally {
    remove();
  }
}
