import { setMaxListeners } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ADMIN_TOKEN_FILE } from '../mesh/mesh-options';
import type { Command } from 'commander';
import { AutoglmClient } from '../sdk/client';
import { AutoglmError } from '../sdk/errors';
import type { CliIo } from './io';
import { println } from './io';
import type { Json } from './json';

/** Options every command takes (declared on the program). */
export interface GlobalOptions {
  address?: string;
  ca?: string;
  tenant?: string;
  token?: string;
  tokenFile?: string;
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

/** Where `autoglm up` (run in this directory, with its default data directory) leaves the first admin token. */
export const DEFAULT_TOKEN_FILE = path.join('.autoglm', ADMIN_TOKEN_FILE);

/**
 * The token in `file`, or in DEFAULT_TOKEN_FILE when none is named and it
 * exists (so the CLI next to a local mesh needs no set-up); '' when there is none.
 */
export function tokenFromFile(file: string | undefined): string {
  const chosen = file ?? (existsSync(DEFAULT_TOKEN_FILE) ? DEFAULT_TOKEN_FILE : undefined);
  if (chosen === undefined) return '';
  try {
    return readFileSync(chosen, 'utf8').trim();
  } catch (err) {
    throw new AutoglmError('INVALID_ARGUMENT', `--token-file: cannot read ${chosen} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); name a file holding an API token, or pass --token`);
  }
}

/** Where `autoglm up` (in this directory, default data directory) leaves its CA certificate. */
export const DEFAULT_CA_FILE = path.join('.autoglm', 'tls', 'ca.pem');

/**
 * The CA certificate in `file`; with none named, DEFAULT_CA_FILE when it
 * exists and the endpoint is the local mesh's default one (no --address);
 * undefined: plaintext.
 */
export function caFromFile(file: string | undefined, addressGiven: boolean): Buffer | undefined {
  const chosen = file ?? (!addressGiven && existsSync(DEFAULT_CA_FILE) ? DEFAULT_CA_FILE : undefined);
  if (chosen === undefined) return undefined;
  try {
    return readFileSync(chosen);
  } catch (err) {
    throw new AutoglmError('INVALID_ARGUMENT', `--ca: cannot read ${chosen} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); name the mesh's CA certificate (<data dir>/tls/ca.pem)`);
  }
}

/** The context of a command being run. */
export function commandContext(io: CliIo, command: Command): CommandContext {
  const globals = command.optsWithGlobals<GlobalOptions>();
  return {
    io,
    globals,
    async withClient(use) {
      const client = new AutoglmClient({ address: globals.address, tenant: globals.tenant, token: globals.token ?? tokenFromFile(globals.tokenFile), ca: caFromFile(globals.ca, globals.address !== undefined) });
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
