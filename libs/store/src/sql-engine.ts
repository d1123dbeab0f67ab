import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Pool, type PoolClient } from 'pg';

/** Runs SQL. Both engines speak the same PostgreSQL dialect. */
export interface SqlQueryable {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: T[] }>;
}

/** An embedded or external PostgreSQL. */
export interface SqlEngine extends SqlQueryable {
  readonly kind: 'pglite' | 'postgres';
  /** Runs `fn` in one transaction; commits when it resolves, rolls back when it throws. */
  transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** The data directory is in use by another live process. */
export class DataDirLockedError extends Error {
  constructor(readonly dataDir: string, readonly holderPid: number) {
    super(
      `data directory ${dataDir} is in use by process ${holderPid}; PGlite is single-process. ` +
        `Stop that process, or point AUTOGLM_DATA_DIR at another directory, or use AUTOGLM_DATABASE_URL for a shared PostgreSQL.`,
    );
    this.name = 'DataDirLockedError';
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the data directory's lock file (O_EXCL). A lock left by a dead process
 * (kill -9) is taken over; one held by a live process refuses.
 */
export function lockDataDir(dataDir: string): () => void {
  // The database holds prompts, outputs and job environments: the directory is its owner's alone.
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dataDir, 0o700);
  const lockPath = path.join(dataDir, 'autoglm.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(lockPath, 'wx', 0o600);
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      return () => {
        try {
          if (fs.readFileSync(lockPath, 'utf8') === String(process.pid)) fs.unlinkSync(lockPath);
        } catch {
          // Already gone: nothing to release.
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(fs.readFileSync(lockPath, 'utf8').trim());
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && pidAlive(holder)) {
        throw new DataDirLockedError(dataDir, holder);
      }
      fs.unlinkSync(lockPath);
    }
  }
  throw new Error(`could not take the lock on ${dataDir}`);
}

/** An error raised by the database, with PostgreSQL's SQLSTATE when there is one. */
export class SqlError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
    this.name = 'SqlError';
  }
}

/**
 * Whether an engine error may go away on its own, so the same write can be
 * tried again: a lost or refused connection, a server shutting down, a
 * serialisation conflict, or a commit whose answer never came (see
 * FaultyEngine). Anything else (a constraint, a syntax error, a dead PGlite
 * worker) is a bug or a permanent condition and is not retried.
 */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if ((err as { transient?: boolean }).transient === true) return true;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    // SQLSTATE class 08: connection exception; 57P01-03: shutting down; 40001/40P01: retry the transaction; 53300: too many connections.
    if (code.startsWith('08') || ['57P01', '57P02', '57P03', '40001', '40P01', '53300'].includes(code)) return true;
    if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH'].includes(code)) return true;
  }
  return /Connection terminated|connection timeout|Client has encountered a connection error/i.test(err.message);
}

/** Serialises callers: PGlite is one connection, and a transaction must not interleave with others. */
class Mutex {
  private tail: Promise<void> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

function workerScript(): string {
  // Built output sits beside this file; under ts-jest (sources) use the build.
  const beside = path.join(__dirname, 'pglite-worker.js');
  return fs.existsSync(beside) ? beside : path.join(__dirname, '..', 'dist', 'pglite-worker.js');
}

/**
 * Embedded PostgreSQL (WebAssembly) on a data directory, or in memory when
 * none is given, running in a worker thread (see pglite-worker.ts).
 */
export async function openPglite(dataDir?: string, options: { sharedBuffers?: string } = {}): Promise<SqlEngine> {
  const release = dataDir ? lockDataDir(dataDir) : () => {};
  const worker = new Worker(workerScript(), { workerData: { dataDir: dataDir ? path.join(dataDir, 'pgdata') : undefined, sharedBuffers: options.sharedBuffers } });
  const waiting = new Map<number, { resolve: (rows: unknown[]) => void; reject: (e: unknown) => void }>();
  let nextId = 1;
  let failed: Error | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    worker.once('message', (m: { ready: boolean; error?: string }) => (m.ready ? resolve() : reject(new Error(`PGlite failed to open ${dataDir ?? 'in memory'}: ${m.error}`))));
    worker.once('error', reject);
  });
  try {
    await ready;
  } catch (err) {
    release();
    await worker.terminate();
    throw err;
  }
  worker.on('message', (m: { id?: number; rows?: unknown[]; error?: string; code?: string }) => {
    if (m.id === undefined) return;
    const w = waiting.get(m.id);
    waiting.delete(m.id);
    if (!w) return;
    if (m.error !== undefined) w.reject(new SqlError(m.error, m.code));
    else w.resolve(m.rows ?? []);
  });
  const fail = (err: Error) => {
    failed = err;
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  };
  worker.on('error', fail);
  // A worker that exits without an error must not leave writes waiting forever.
  worker.on('exit', (code) => fail(new Error(`the PGlite worker exited (code ${code})`)));
  const send = <T>(sql: string, params?: unknown[]): Promise<{ rows: T[] }> =>
    new Promise((resolve, reject) => {
      if (failed) return reject(failed);
      const id = nextId++;
      waiting.set(id, { resolve: (rows) => resolve({ rows: rows as T[] }), reject });
      worker.postMessage({ id, sql, params });
    });
  const mutex = new Mutex();
  return {
    kind: 'pglite',
    query: <T>(sql: string, params?: unknown[]) => mutex.run(() => send<T>(sql, params)),
    transaction: <T>(fn: (tx: SqlQueryable) => Promise<T>) =>
      mutex.run(async () => {
        await send('BEGIN');
        try {
          const result = await fn({ query: send });
          await send('COMMIT');
          return result;
        } catch (err) {
          await send('ROLLBACK').catch(() => undefined);
          throw err;
        }
      }),
    close: () =>
      mutex.run(async () => {
        await new Promise<void>((resolve) => {
          worker.once('message', () => resolve());
          worker.postMessage('close');
        });
        await worker.terminate();
        release();
      }),
  };
}

/** External PostgreSQL through a `pg` pool. */
export async function openPostgres(url: string, poolSize = 8): Promise<SqlEngine> {
  const pool = new Pool({ connectionString: url, max: poolSize });
  // Fail at start, with the server's reason, rather than on the first submission.
  const probe = await pool.connect();
  probe.release();
  const wrap = (client: Pick<PoolClient, 'query'>): SqlQueryable => ({
    query: async <T>(sql: string, params?: unknown[]) => ({ rows: (await client.query(sql, params)).rows as T[] }),
  });
  return {
    kind: 'postgres',
    query: wrap(pool).query,
    transaction: async <T>(fn: (tx: SqlQueryable) => Promise<T>) => {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await fn(wrap(client));
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}
