import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { tempDir } from './temp-dir';

/** A throwaway PostgreSQL server (Debian's `postgresql` package) on 127.0.0.1, for tests. */
export interface PostgresServer {
  url: string;
  stop(): Promise<void>;
}

/** The server binaries' directory, or undefined when PostgreSQL is not installed. */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!fs.existsSync(root)) return undefined;
  const versions = fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, 'bin', 'initdb')));
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  return newest ? path.join(root, newest, 'bin') : undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * initdb into a temp dir and start `postgres` on a free port. PostgreSQL
 * refuses to run as root, so as root the server runs as the `postgres` user.
 */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('PostgreSQL is not installed: apt-get install -y postgresql');
  const dir = tempDir('pg');
  const dataDir = path.join(dir.dir, 'data');
  const asRoot = process.getuid?.() === 0;
  const run = (cmd: string, args: string[]) => (asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args]) as [string, string[]];
  if (asRoot) execFileSync('chown', ['-R', 'postgres:postgres', dir.dir]);
  fs.chmodSync(dir.dir, 0o700);
  execFileSync(...run(path.join(bin, 'initdb'), ['-D', dataDir, '-U', 'autoglm', '-A', 'trust', '--no-sync', '-E', 'UTF8']), { stdio: 'pipe' });
  const port = await freePort();
  const [cmd, args] = run(path.join(bin, 'postgres'), ['-D', dataDir, '-p', String(port), '-k', dir.dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off']);
  const server: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  server.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      execFileSync(path.join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port)], { stdio: 'pipe' });
      break;
    } catch {
      if (server.exitCode !== null || Date.now() > deadline) throw new Error(`PostgreSQL did not start: ${log}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  execFileSync(path.join(bin, 'createdb'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'autoglm', 'autoglm'], { stdio: 'pipe' });
  return {
    url: `postgres://autoglm@127.0.0.1:${port}/autoglm`,
    stop: async () => {
      if (server.exitCode === null) {
        const exited = new Promise((resolve) => server.once('exit', resolve));
        // pg_ctl signals the postmaster itself (runuser would not pass a signal on).
        execFileSync(...run(path.join(bin, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'fast']), { stdio: 'pipe' });
        await exited;
      }
      dir.remove();
    },
  };
}
