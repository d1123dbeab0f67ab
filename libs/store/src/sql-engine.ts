import * as fs from 'node:fs';
import * as path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
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
  fs.mkdirSync(dataDir, { recursive: true });
  const lockPath = path.join(dataDir, 'autoglm.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(lockPath, 'wx');
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

/** Embedded PostgreSQL (WebAssembly) on a data directory, or in memory when none is given. */
export async function openPglite(dataDir?: string): Promise<SqlEngine> {
  const release = dataDir ? lockDataDir(dataDir) : () => {};
  let db: PGlite;
  try {
    db = new PGlite(dataDir ? path.join(dataDir, 'pgdata') : undefined);
    await db.waitReady;
  } catch (err) {
    release();
    throw err;
  }
  return {
    kind: 'pglite',
    query: async <T>(sql: string, params?: unknown[]) => ({ rows: (await db.query<T>(sql, params)).rows }),
    transaction: <T>(fn: (tx: SqlQueryable) => Promise<T>) =>
      db.transaction((tx) => fn({ query: async <R>(sql: string, params?: unknown[]) => ({ rows: (await tx.query<R>(sql, params)).rows }) })),
    close: async () => {
      await db.close();
      release();
    },
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
