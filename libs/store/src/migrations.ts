import type { SqlEngine } from './sql-engine';

/**
 * Versioned schema. Append only: a released migration is never edited, a new
 * version is added. Times are epoch milliseconds in double precision so both
 * engines return plain numbers.
 */
export const MIGRATIONS: ReadonlyArray<{ version: number; name: string; sql: string }> = [
  // fillfactor 70 leaves room in each page so a transition (which changes no
  // indexed column) is a HOT update: no new index entries, a third of the work.
  {
    version: 1,
    name: 'tasks and events',
    sql: `
      CREATE TABLE tasks (
        id uuid PRIMARY KEY,
        tenant text NOT NULL,
        request_id text,
        state smallint NOT NULL,
        attempt integer NOT NULL,
        seq integer NOT NULL,
        priority_class smallint NOT NULL,
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL,
        started_at double precision,
        finished_at double precision,
        node_id text NOT NULL DEFAULT '',
        reason text NOT NULL DEFAULT '',
        spec bytea NOT NULL,
        result bytea
      ) WITH (fillfactor = 70);
      CREATE UNIQUE INDEX tasks_request_id ON tasks (tenant, request_id) WHERE request_id IS NOT NULL;
      CREATE INDEX tasks_unfinished ON tasks (created_at) WHERE finished_at IS NULL;
      CREATE INDEX tasks_tenant_created ON tasks (tenant, created_at DESC, id);
      CREATE INDEX tasks_created ON tasks (created_at DESC, id);
      CREATE TABLE task_events (
        task_id uuid NOT NULL,
        seq integer NOT NULL,
        state smallint NOT NULL,
        prev_state smallint NOT NULL,
        at double precision NOT NULL,
        reason text NOT NULL DEFAULT '',
        PRIMARY KEY (task_id, seq)
      );
    `,
  },
  // Issue 3: retry budget, lease fencing across restarts, dead letters, and
  // events that say whether they end the task. State 9 is DEAD_LETTER. The
  // unfinished-tasks index gains the id, so a restart reads them in order
  // without sorting.
  {
    version: 2,
    name: 'leases, failures, dead letters, final events',
    sql: `
      ALTER TABLE tasks
        ADD COLUMN failures integer NOT NULL DEFAULT 0,
        ADD COLUMN lease_epoch double precision NOT NULL DEFAULT 0,
        ADD COLUMN gpu_indices smallint[] NOT NULL DEFAULT '{}',
        ADD COLUMN requeued_as uuid;
      ALTER TABLE task_events ADD COLUMN final boolean NOT NULL DEFAULT false;
      CREATE INDEX tasks_dead_letters ON tasks (finished_at, id) WHERE state = 9 AND requeued_as IS NULL;
      DROP INDEX tasks_unfinished;
      CREATE INDEX tasks_unfinished ON tasks (created_at, id) WHERE finished_at IS NULL;
      CREATE TABLE decision_incarnations (
        incarnation serial PRIMARY KEY,
        started_at double precision NOT NULL,
        pid integer NOT NULL
      );
    `,
  },
  // Recurring tasks: a cron expression in a time zone and the parsed task it
  // submits. next_fire_at is null while paused (state 2); the due index
  // holds active schedules only. A fire refused for a reason that may pass
  // keeps its fire time in pending_fire_at while next_fire_at moves on to
  // when it is tried again, so schedules backing off sort behind the rest.
  {
    version: 3,
    name: 'schedules',
    sql: `
      CREATE TABLE schedules (
        id uuid PRIMARY KEY,
        tenant text NOT NULL,
        request_id text,
        cron text NOT NULL,
        time_zone text NOT NULL,
        spec bytea NOT NULL,
        state smallint NOT NULL,
        deadline_after_ms double precision NOT NULL DEFAULT 0,
        starting_deadline_ms double precision NOT NULL DEFAULT 0,
        description text NOT NULL DEFAULT '',
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL,
        next_fire_at double precision,
        last_fire_at double precision,
        last_task_id uuid,
        last_error text NOT NULL DEFAULT '',
        fire_count integer NOT NULL DEFAULT 0,
        pending_fire_at double precision,
        pending_fire_attempts integer NOT NULL DEFAULT 0
      );
      CREATE UNIQUE INDEX schedules_request_id ON schedules (tenant, request_id) WHERE request_id IS NOT NULL;
      CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE state = 1;
      CREATE INDEX schedules_tenant_created ON schedules (tenant, created_at DESC, id);
      CREATE INDEX schedules_created ON schedules (created_at DESC, id)
    `,
  },
  // API tokens: the SHA-256 of each secret (never the secret), the tenant and
  // role it stands for. Revoked tokens are kept (revoked_at) so a listing
  // shows them and a lookup tells "revoked" from "unknown".
  {
    version: 4,
    name: 'api tokens',
    sql: `
      CREATE TABLE api_tokens (
        id uuid PRIMARY KEY,
        secret_sha256 text NOT NULL UNIQUE,
        tenant text NOT NULL,
        role smallint NOT NULL,
        name text NOT NULL DEFAULT '',
        prefix text NOT NULL DEFAULT '',
        created_at double precision NOT NULL,
        expires_at double precision,
        revoked_at double precision
      );
      CREATE INDEX api_tokens_tenant_created ON api_tokens (tenant, created_at DESC, id)
    `,
  },
];

/** Applies the migrations not yet applied, each in its own transaction. Safe to run again. */
export async function migrate(engine: SqlEngine): Promise<number[]> {
  await engine.query(`CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at double precision NOT NULL)`);
  const applied = new Set((await engine.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => Number(r.version)));
  const done: number[] = [];
  for (const m of MIGRATIONS) {
    if (applied.has(m.version)) continue;
    await engine.transaction(async (tx) => {
      // Two replicas racing to migrate: the second blocks here, then finds the row and skips.
      await tx.query('LOCK TABLE schema_migrations IN EXCLUSIVE MODE');
      const again = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [m.version]);
      if (again.rows.length > 0) return;
      for (const statement of m.sql.split(';').map((s) => s.trim()).filter(Boolean)) await tx.query(statement);
      await tx.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, Date.now()]);
    });
    done.push(m.version);
  }
  return done;
}
