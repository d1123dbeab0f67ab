import { Task, TaskEvent, TaskResult, TaskSpec, TaskState } from '@autoglm/proto';
import { timestampToMillis, toTimestamp, UnavailableError } from '@autoglm/core';
import { FaultyEngine, type FaultSpec } from './faulty-engine';
import { migrate } from './migrations';
import { isTransient, openPglite, openPostgres, type SqlEngine, type SqlQueryable } from './sql-engine';

/** One transition as stored: the event row. */
export interface StoredEvent {
  sequence: number;
  state: TaskState;
  previousState: TaskState;
  atMs: number;
  reason: string;
  /** The event ends the task (see TaskEvent.final). */
  final?: boolean;
}

export interface SubmitResult {
  /** The durable task: the one passed in, or the one stored earlier under the same request id. */
  task: Task;
  created: boolean;
}

interface InsertOp {
  kind: 'insert';
  task: Task;
  event: StoredEvent;
  resolve: (r: SubmitResult) => void;
  reject: (e: unknown) => void;
}

interface UpdateOp {
  kind: 'update';
  task: Task;
  event: StoredEvent | undefined;
  resolve: () => void;
  reject: (e: unknown) => void;
}

type WriteOp = InsertOp | UpdateOp;

export interface TaskStoreOptions {
  /** PGlite data directory; ignored when databaseUrl is set. Undefined = in memory. */
  dataDir?: string;
  /** External PostgreSQL, e.g. postgres://user@127.0.0.1:5432/autoglm. */
  databaseUrl?: string;
  /** PGlite's shared_buffers (e.g. "32MB"); ignored when databaseUrl is set. @default PostgreSQL's 128MB */
  pgliteSharedBuffers?: string;
  /** Most operations written in one transaction. @default 4096 */
  maxBatch?: number;
  /**
   * Times a batch is tried when the engine fails transiently (a dropped
   * connection, a commit whose answer was lost) before its submissions are
   * refused with UNAVAILABLE. Transitions are never refused: decision has
   * already acted on them, so they are retried until they land. @default 5
   */
  submitAttempts?: number;
  /** First retry delay; doubles up to 2 s. @default 50 */
  retryDelayMs?: number;
  /** Told about each failed write attempt (for logs and metrics). */
  onWriteError?: (err: unknown, attempt: number, willRetry: boolean) => void;
  /** Test aid: inject store faults (see FaultyEngine). */
  faults?: FaultSpec;
}

/** Which dead letters a requeue or purge acts on. */
export interface DeadLetterFilter {
  ids?: string[];
  tenant?: string;
  finishedBeforeMs?: number;
  limit: number;
  /** Also those already requeued (purge takes them; requeue does not). */
  includeRequeued?: boolean;
}

export interface ListFilter {
  tenant?: string;
  states?: TaskState[];
  limit: number;
  /** Keyset cursor: tasks created before this (createdAtMs, id). */
  before?: { createdAtMs: number; id: string };
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
const ms = (ts: { seconds: number; nanos: number } | undefined) => (ts ? timestampToMillis(ts) : null);

/**
 * The durable task store. Writes are group-committed: operations that arrive
 * while a transaction is in flight are written together in the next one, with
 * one multi-row statement per table, and each caller's promise resolves only
 * after that commit. Reads go straight to the engine.
 */
export class TaskStore {
  private pending: WriteOp[] = [];
  /** The write in flight; the next batch collects while it runs (group commit). */
  private inFlight: Promise<void> | undefined;
  private scheduled = false;
  private closed = false;
  private readonly maxBatch: number;
  private readonly submitAttempts: number;
  private readonly retryDelayMs: number;
  private readonly onWriteError: TaskStoreOptions['onWriteError'];

  private constructor(
    readonly engine: SqlEngine,
    options: TaskStoreOptions,
    /** The engine without injected faults, for set-up writes. */
    private readonly setupEngine: SqlEngine = engine,
  ) {
    this.maxBatch = options.maxBatch ?? 4096;
    this.submitAttempts = Math.max(1, options.submitAttempts ?? 5);
    this.retryDelayMs = options.retryDelayMs ?? 50;
    this.onWriteError = options.onWriteError;
  }

  /** Opens the engine, applies migrations, and returns a ready store. */
  static async open(options: TaskStoreOptions = {}): Promise<TaskStore> {
    const opened = options.databaseUrl ? await openPostgres(options.databaseUrl) : await openPglite(options.dataDir, { sharedBuffers: options.pgliteSharedBuffers });
    try {
      await migrate(opened);
      // PGlite runs no autovacuum: without fresh statistics the planner sorts a
      // whole table on disk where an index would do (a restart's read, 4x slower).
      if (opened.kind === 'pglite') await opened.query('ANALYZE');
    } catch (err) {
      await opened.close();
      throw err;
    }
    // Faults start after the migrations: they test the hot path, not set-up.
    const engine = options.faults ? new FaultyEngine(opened, options.faults) : opened;
    return new TaskStore(engine, options, opened);
  }

  /**
   * Registers a new decision process and returns its incarnation number
   * (1, 2, ...). Lease epochs are built from it, so a lease granted by an
   * earlier process never equals one granted by a later one.
   */
  async newIncarnation(): Promise<number> {
    const { rows } = await this.setupEngine.query<{ incarnation: number }>(
      `INSERT INTO decision_incarnations (started_at, pid) VALUES ($1, $2) RETURNING incarnation`,
      [Date.now(), process.pid],
    );
    return Number(rows[0]!.incarnation);
  }

  /**
   * Makes a new task durable with its first event. Idempotent on
   * (tenant, request_id): a second submission resolves to the stored task.
   */
  submit(task: Task, event: StoredEvent): Promise<SubmitResult> {
    return new Promise((resolve, reject) => this.enqueue({ kind: 'insert', task, event, resolve, reject }));
  }

  /**
   * Makes several new tasks durable together (a workflow): one statement, so
   * one transaction: all of them or none. Idempotent on each task's (tenant,
   * request_id) like submit. Transient failures are retried a few times, then
   * refused with UNAVAILABLE (the client retries with its request id).
   */
  async submitAll(items: ReadonlyArray<{ task: Task; event: StoredEvent }>): Promise<SubmitResult[]> {
    if (this.closed) throw new Error('task store is closed');
    const ops: InsertOp[] = items.map(({ task, event }) => ({ kind: 'insert', task, event, resolve: () => undefined, reject: () => undefined }));
    for (let attempt = 1; ; attempt++) {
      try {
        const results = await writeBatch(this.engine, ops);
        return ops.map((op) => results.get(op) ?? { task: op.task, created: true });
      } catch (err) {
        const retry = isTransient(err) && attempt < this.submitAttempts;
        this.onWriteError?.(err, attempt, retry);
        if (!isTransient(err)) throw err;
        if (!retry) throw new UnavailableError('the task store did not confirm the write; retry with the same request_id', { cause: err });
        await new Promise<void>((resolve) => setTimeout(resolve, Math.min(2000, this.retryDelayMs * 2 ** Math.min(attempt - 1, 10))).unref());
      }
    }
  }

  /** Records a transition: the task's new row and its event (or the row alone, when no state changed). */
  record(task: Task, event?: StoredEvent): Promise<void> {
    return new Promise((resolve, reject) => this.enqueue({ kind: 'update', task, event, resolve, reject }));
  }

  async get(id: string): Promise<Task | undefined> {
    const { rows } = await this.engine.query<Row>(`SELECT * FROM tasks WHERE id = $1`, [id]);
    return rows[0] ? rowToTask(rows[0]) : undefined;
  }

  /** The task a tenant submitted under a request id, if any. */
  async byRequestId(tenant: string, requestId: string): Promise<Task | undefined> {
    if (!requestId) return undefined;
    const { rows } = await this.engine.query<Row>(`SELECT * FROM tasks WHERE tenant = $1 AND request_id = $2`, [tenant, requestId]);
    return rows[0] ? rowToTask(rows[0]) : undefined;
  }

  /** The tenant's tasks stored under any of these request ids. */
  async byRequestIds(tenant: string, requestIds: string[]): Promise<Task[]> {
    if (requestIds.length === 0) return [];
    const { rows } = await this.engine.query<Row>(`SELECT * FROM tasks WHERE tenant = $1 AND request_id = ANY($2::text[])`, [tenant, requestIds]);
    return rows.map(rowToTask);
  }

  /** States of the given ids that exist. */
  async states(ids: string[]): Promise<Map<string, TaskState>> {
    if (ids.length === 0) return new Map();
    const { rows } = await this.engine.query<{ id: string; state: number }>(`SELECT id, state FROM tasks WHERE id = ANY($1::uuid[])`, [ids]);
    return new Map(rows.map((r) => [r.id, Number(r.state) as TaskState]));
  }

  /** Dead letters (not requeued yet, unless asked), oldest first. */
  async deadLetters(filter: DeadLetterFilter): Promise<Task[]> {
    const where = [`state = ${TaskState.DEAD_LETTER}`, ...(filter.includeRequeued ? [] : ['requeued_as IS NULL'])];
    const params: unknown[] = [];
    if (filter.ids) {
      params.push(filter.ids);
      where.push(`id = ANY($${params.length}::uuid[])`);
    }
    if (filter.tenant) {
      params.push(filter.tenant);
      where.push(`tenant = $${params.length}`);
    }
    if (filter.finishedBeforeMs !== undefined) {
      params.push(filter.finishedBeforeMs);
      where.push(`finished_at < $${params.length}`);
    }
    params.push(filter.limit);
    const sql = `SELECT * FROM tasks WHERE ${where.join(' AND ')} ORDER BY finished_at, id LIMIT $${params.length}`;
    return (await this.engine.query<Row>(sql, params)).rows.map(rowToTask);
  }

  /** How many dead letters wait for an operator. */
  async countDeadLetters(): Promise<number> {
    const { rows } = await this.engine.query<{ n: number }>(`SELECT count(*)::int AS n FROM tasks WHERE state = ${TaskState.DEAD_LETTER} AND requeued_as IS NULL`);
    return Number(rows[0]?.n ?? 0);
  }

  /** Deletes these dead letters and their events (only tasks still DEAD_LETTER); returns how many. */
  async purgeDeadLetters(ids: string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const { rows } = await this.engine.query<{ n: number }>(
      `WITH gone AS (DELETE FROM tasks WHERE id = ANY($1::uuid[]) AND state = ${TaskState.DEAD_LETTER} RETURNING id),
            ev AS (DELETE FROM task_events WHERE task_id IN (SELECT id FROM gone))
       SELECT count(*)::int AS n FROM gone`,
      [ids],
    );
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * Every task not in a final state, oldest first: what decision rebuilds its
   * queue from. Read in pages, each aggregated into one JSON document by the
   * database: engines (PGlite above all) spend far more per returned row and
   * column than per byte, and a restart reads every unfinished task.
   */
  async unfinished(pageSize = 20_000): Promise<Task[]> {
    const tasks: Task[] = [];
    for await (const page of this.unfinishedPages(pageSize)) for (const task of page) tasks.push(task);
    return tasks;
  }

  /** `unfinished`, a page at a time: a caller that keeps less than a Task per row holds one page at most. */
  async *unfinishedPages(pageSize = 20_000): AsyncGenerator<Task[]> {
    let after: [number, string] | undefined;
    for (;;) {
      const { rows } = await this.engine.query<{ page: string | null }>(
        `SELECT json_agg(json_build_array(id, tenant, request_id, state, attempt, seq, created_at, updated_at, started_at,
                  node_id, reason, encode(spec, 'base64'), failures, lease_epoch, gpu_indices) ORDER BY created_at, id)::text AS page
         FROM (SELECT * FROM tasks WHERE finished_at IS NULL ${after ? 'AND (created_at, id) > ($1, $2::uuid)' : ''}
               ORDER BY created_at, id LIMIT ${Math.max(1, Math.floor(pageSize))}) p`,
        after ?? [],
      );
      const page = rows[0]?.page ? (JSON.parse(rows[0].page) as UnfinishedRow[]) : [];
      yield page.map((r) =>
        taskOf({
          id: r[0], tenant: r[1], requestId: r[2] ?? '', state: r[3], attempt: r[4], sequence: r[5],
          createdAtMs: r[6], updatedAtMs: r[7], startedAtMs: r[8], finishedAtMs: null, nodeId: r[9], reason: r[10],
          spec: TaskSpec.decode(Buffer.from(r[11], 'base64')), result: undefined, failures: r[12], leaseEpoch: r[13], gpuIndices: r[14] ?? [], requeuedAs: '',
        }),
      );
      if (page.length < pageSize) return;
      const last = page[page.length - 1]!;
      after = [last[6], last[0]];
    }
  }

  async list(filter: ListFilter): Promise<Task[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.tenant) {
      params.push(filter.tenant);
      where.push(`tenant = $${params.length}`);
    }
    if (filter.states && filter.states.length > 0) {
      params.push(filter.states);
      where.push(`state = ANY($${params.length}::int2[])`);
    }
    if (filter.before) {
      params.push(filter.before.createdAtMs, filter.before.id);
      where.push(`(created_at, id) < ($${params.length - 1}, $${params.length}::uuid)`);
    }
    params.push(filter.limit);
    const sql = `SELECT * FROM tasks ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY created_at DESC, id DESC LIMIT $${params.length}`;
    return (await this.engine.query<Row>(sql, params)).rows.map(rowToTask);
  }

  /** A task's events after `afterSequence`, in order. */
  async events(taskId: string, afterSequence: number): Promise<TaskEvent[]> {
    const { rows } = await this.engine.query<EventRow>(
      `SELECT task_id, seq, state, prev_state, at, reason, final FROM task_events WHERE task_id = $1 AND seq > $2 ORDER BY seq`,
      [taskId, afterSequence],
    );
    return rows.map(rowToEvent);
  }

  /**
   * Every event of every task, in (task, sequence) order, a page at a time:
   * the full history, for audits and the chaos tests' history checker.
   */
  async *allEvents(pageSize = 10_000): AsyncGenerator<TaskEvent[]> {
    let after: { taskId: string; seq: number } | undefined;
    for (;;) {
      const { rows } = await this.engine.query<EventRow>(
        after
          ? `SELECT task_id, seq, state, prev_state, at, reason, final FROM task_events WHERE (task_id, seq) > ($1::uuid, $2) ORDER BY task_id, seq LIMIT $3`
          : `SELECT task_id, seq, state, prev_state, at, reason, final FROM task_events ORDER BY task_id, seq LIMIT $1`,
        after ? [after.taskId, after.seq, pageSize] : [pageSize],
      );
      if (rows.length === 0) return;
      yield rows.map(rowToEvent);
      const last = rows[rows.length - 1]!;
      after = { taskId: last.task_id, seq: Number(last.seq) };
    }
  }

  /** Waits for pending writes, then closes the engine. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.pending.length > 0 || this.inFlight) {
      await (this.inFlight ?? this.flush());
    }
    await this.engine.close();
  }

  private enqueue(op: WriteOp): void {
    if (this.closed) {
      op.reject(new Error('task store is closed'));
      return;
    }
    this.pending.push(op);
    if (!this.inFlight && !this.scheduled) {
      this.scheduled = true;
      // setImmediate lets every submission of the current I/O turn join this batch.
      setImmediate(() => {
        this.scheduled = false;
        void this.flush();
      });
    }
  }

  private flush(): Promise<void> {
    if (this.inFlight || this.pending.length === 0) return this.inFlight ?? Promise.resolve();
    this.inFlight = this.writePending().finally(() => {
      this.inFlight = undefined;
      if (this.pending.length > 0) void this.flush();
    });
    return this.inFlight;
  }

  /**
   * Writes one batch. Every statement of a batch is idempotent (inserts skip
   * rows that exist, updates set whole rows, events skip existing sequence
   * numbers), so a batch whose commit may or may not have happened is simply
   * written again. Submissions are refused after `submitAttempts` transient
   * failures (the client retries with its request id); transitions are
   * retried until they land, because decision has already acted on them.
   */
  private async writePending(): Promise<void> {
    let batch = this.pending.splice(0, this.maxBatch);
    for (let attempt = 1; ; attempt++) {
      try {
        const results = await writeBatch(this.engine, batch);
        for (const op of batch) {
          if (op.kind === 'insert') op.resolve(results.get(op) ?? { task: op.task, created: true });
          else op.resolve();
        }
        return;
      } catch (err) {
        const transient = isTransient(err);
        // Once the store is closing, transitions get a few tries more, not forever:
        // decision's restart redoes what did not land (it rebuilds from the store).
        const keepUpdates = transient && batch.some((op) => op.kind === 'update') && !(this.closed && attempt >= this.submitAttempts);
        const keepInserts = transient && attempt < this.submitAttempts;
        this.onWriteError?.(err, attempt, keepInserts || keepUpdates);
        if (!transient) {
          // One bad row must not fail the others: write them one at a time, so only it is refused.
          if (batch.length > 1) await this.writeOneByOne(batch);
          else batch[0]?.reject(err);
          return;
        }
        if (!keepInserts) {
          const refused = new UnavailableError('the task store did not confirm the write; retry with the same request_id', { cause: err });
          for (const op of batch) if (op.kind === 'insert') op.reject(refused);
          batch = batch.filter((op) => op.kind === 'update');
        }
        if (!keepUpdates) {
          const lost = new UnavailableError('the task store is closing and did not confirm the transition', { cause: err });
          for (const op of batch) if (op.kind === 'update') op.reject(lost);
          batch = batch.filter((op) => op.kind === 'insert');
        }
        if (batch.length === 0) return;
        await new Promise<void>((resolve) => setTimeout(resolve, Math.min(2000, this.retryDelayMs * 2 ** Math.min(attempt - 1, 10))).unref());
      }
    }
  }

  /** After a batch failed for a reason retrying cannot fix: each operation on its own, in order. */
  private async writeOneByOne(batch: WriteOp[]): Promise<void> {
    for (const op of batch) {
      try {
        const results = await writeBatch(this.engine, [op]);
        if (op.kind === 'insert') op.resolve(results.get(op) ?? { task: op.task, created: true });
        else op.resolve();
      } catch (err) {
        op.reject(err);
      }
    }
  }
}

/**
 * Writes one batch in a single statement: inserts (skipping idempotent
 * repeats), row updates (the last transition of each task wins) and event
 * rows, as data-modifying CTEs. One statement is one implicit transaction and
 * one round trip, which is what makes small group commits cheap on PGlite.
 * A task is never inserted and transitioned in the same batch: decision only
 * transitions a task after its insert has committed.
 */
async function writeBatch(tx: SqlQueryable, batch: WriteOp[]): Promise<Map<InsertOp, SubmitResult>> {
  const results = new Map<InsertOp, SubmitResult>();
  const inserts = batch.filter((op): op is InsertOp => op.kind === 'insert');
  const updates = batch.filter((op): op is UpdateOp => op.kind === 'update');

  // Duplicates inside one batch: the first wins, later ones get its result.
  const firstByKey = new Map<string, InsertOp>();
  const unique: InsertOp[] = [];
  for (const op of inserts) {
    const key = requestKey(op.task);
    if (key && firstByKey.has(key)) continue;
    if (key) firstByKey.set(key, op);
    unique.push(op);
  }
  const lastById = new Map<string, Task>();
  for (const op of updates) lastById.set(op.task.id, op.task);
  const rows = [...lastById.values()];
  const events: Array<{ taskId: string; event: StoredEvent; isNew: boolean }> = [
    ...unique.map((o) => ({ taskId: o.task.id, event: o.event, isNew: true })),
    ...updates.filter((o) => o.event).map((o) => ({ taskId: o.task.id, event: o.event!, isNew: false })),
  ];

  const { rows: inserted } = await tx.query<{ id: string }>(
    `WITH ins AS (
       INSERT INTO tasks (id, tenant, request_id, state, attempt, seq, priority_class, created_at, updated_at, reason, spec)
       SELECT u.id, u.tenant, u.request_id, u.state, u.attempt, u.seq, u.pc, u.created, u.created, u.reason, decode(u.spec, 'base64')
       FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int2[], $5::int4[], $6::int4[], $7::int2[], $8::float8[], $9::text[], $10::text[])
         AS u(id, tenant, request_id, state, attempt, seq, pc, created, reason, spec)
       ON CONFLICT DO NOTHING
       RETURNING id
     ), upd AS (
       UPDATE tasks t SET state = u.state, attempt = u.attempt, seq = u.seq, updated_at = u.updated, started_at = u.started,
         finished_at = u.finished, node_id = u.node, reason = u.reason, result = decode(u.result, 'base64'),
         failures = u.failures, lease_epoch = u.epoch, gpu_indices = string_to_array(u.gpus, ',')::int2[], requeued_as = u.requeued_as
       FROM unnest($11::uuid[], $12::int2[], $13::int4[], $14::int4[], $15::float8[], $16::float8[], $17::float8[], $18::text[], $19::text[], $20::text[],
                   $28::int4[], $29::float8[], $30::text[], $31::uuid[])
         AS u(id, state, attempt, seq, updated, started, finished, node, reason, result, failures, epoch, gpus, requeued_as)
       -- A retried write never takes a row back to an older transition.
       WHERE t.id = u.id AND t.seq <= u.seq
       RETURNING t.id
     ), ev AS (
       INSERT INTO task_events (task_id, seq, state, prev_state, at, reason, final)
       SELECT e.task_id, e.seq, e.state, e.prev_state, e.at, e.reason, e.final
       FROM unnest($21::uuid[], $22::int4[], $23::int2[], $24::int2[], $25::float8[], $26::text[], $27::bool[], $32::bool[])
         AS e(task_id, seq, state, prev_state, at, reason, is_new, final)
       WHERE NOT e.is_new OR e.task_id IN (SELECT id FROM ins)
       -- A batch written again after a commit whose answer was lost: its events are there.
       ON CONFLICT DO NOTHING
       RETURNING 1
     )
     SELECT id FROM ins`,
    [
      unique.map((o) => o.task.id),
      unique.map((o) => text(o.task.tenant)),
      unique.map((o) => o.task.requestId || null),
      unique.map((o) => o.task.state),
      unique.map((o) => o.task.attempt),
      unique.map((o) => o.task.sequence),
      unique.map((o) => o.task.spec?.priorityClass ?? 0),
      unique.map((o) => ms(o.task.createdAt)),
      unique.map((o) => text(o.task.reason)),
      unique.map((o) => b64(TaskSpec.encode(o.task.spec ?? TaskSpec.fromPartial({})).finish())),
      rows.map((t) => t.id),
      rows.map((t) => t.state),
      rows.map((t) => t.attempt),
      rows.map((t) => t.sequence),
      rows.map((t) => ms(t.updatedAt)),
      rows.map((t) => ms(t.startedAt)),
      rows.map((t) => ms(t.finishedAt)),
      rows.map((t) => text(t.nodeId)),
      rows.map((t) => text(t.reason)),
      rows.map((t) => (t.result ? b64(TaskResult.encode(t.result).finish()) : null)),
      events.map((e) => e.taskId),
      events.map((e) => e.event.sequence),
      events.map((e) => e.event.state),
      events.map((e) => e.event.previousState),
      events.map((e) => e.event.atMs),
      events.map((e) => text(e.event.reason)),
      events.map((e) => e.isNew),
      rows.map((t) => t.failures),
      rows.map((t) => t.leaseEpoch),
      rows.map((t) => t.gpuIndices.join(',')),
      rows.map((t) => t.requeuedAs || null),
      events.map((e) => e.event.final ?? false),
    ],
  );

  const created = new Set(inserted.map((r) => r.id));
  const conflicted = unique.filter((o) => !created.has(o.task.id));
  const existing = new Map<string, Task>();
  if (conflicted.length > 0) {
    // Rare: idempotent repeats (a task stored earlier under the same request id),
    // or this very batch written again after a commit whose answer was lost
    // (the task is there under its own id: it counts as created).
    const ids = await tx.query<{ id: string }>(`SELECT id FROM tasks WHERE id = ANY($1::uuid[])`, [conflicted.map((o) => o.task.id)]);
    for (const row of ids.rows) created.add(row.id);
    const byKey = conflicted.filter((o) => !created.has(o.task.id));
    const found = byKey.length === 0 ? { rows: [] as Row[] } : await tx.query<Row>(
      `SELECT t.* FROM tasks t JOIN unnest($1::text[], $2::text[]) AS k(tenant, request_id) ON t.tenant = k.tenant AND t.request_id = k.request_id`,
      [byKey.map((o) => o.task.tenant), byKey.map((o) => o.task.requestId)],
    );
    for (const row of found.rows) existing.set(`${row.tenant}\u0000${row.request_id}`, rowToTask(row));
  }
  for (const op of inserts) {
    if (created.has(op.task.id)) {
      results.set(op, { task: op.task, created: true });
      continue;
    }
    const key = requestKey(op.task);
    const prior = (key && existing.get(key)) || (key && created.has(firstByKey.get(key)?.task.id ?? '') ? firstByKey.get(key)!.task : undefined);
    if (!prior) throw new Error(`task ${op.task.id} was neither inserted nor found by its request id`);
    results.set(op, { task: prior, created: false });
  }
  return results;
}

/**
 * PostgreSQL text cannot hold NUL: a reason quoting a job's stderr may carry
 * one, and it would fail its whole batch. It is stored as U+FFFD.
 */
function text(value: string): string {
  return value.includes('\u0000') ? value.replaceAll('\u0000', '\ufffd') : value;
}

function requestKey(task: Task): string | undefined {
  return task.requestId ? `${task.tenant}\u0000${task.requestId}` : undefined;
}

interface Row {
  id: string;
  tenant: string;
  request_id: string | null;
  state: number;
  attempt: number;
  seq: number;
  priority_class: number;
  created_at: number;
  updated_at: number;
  started_at: number | null;
  finished_at: number | null;
  node_id: string;
  reason: string;
  spec: Uint8Array;
  result: Uint8Array | null;
  failures: number;
  lease_epoch: number;
  gpu_indices: number[] | null;
  requeued_as: string | null;
}

interface EventRow {
  task_id: string;
  seq: number;
  state: number;
  prev_state: number;
  at: number;
  reason: string;
  final: boolean;
}

function rowToEvent(r: EventRow): TaskEvent {
  return TaskEvent.fromPartial({
    taskId: r.task_id,
    sequence: Number(r.seq),
    state: Number(r.state),
    previousState: Number(r.prev_state),
    time: toTimestamp(Number(r.at)),
    reason: r.reason,
    final: r.final,
  });
}

/** A row of unfinished()'s JSON page, in json_build_array order. */
type UnfinishedRow = [string, string, string | null, number, number, number, number, number, number | null, string, string, string, number, number, number[] | null];

/** A task's columns, decoded. */
interface TaskColumns {
  id: string;
  tenant: string;
  requestId: string;
  state: number;
  attempt: number;
  sequence: number;
  createdAtMs: number;
  updatedAtMs: number;
  startedAtMs: number | null;
  finishedAtMs: number | null;
  nodeId: string;
  reason: string;
  spec: TaskSpec;
  result: TaskResult | undefined;
  failures: number;
  leaseEpoch: number;
  gpuIndices: number[];
  requeuedAs: string;
}

/** Builds the Task directly (every field set), without fromPartial's deep copy: restarts build 100,000s. */
function taskOf(c: TaskColumns): Task {
  const time = (v: number | null) => (v === null || v === undefined ? undefined : toTimestamp(Number(v)));
  return {
    id: c.id,
    requestId: c.requestId,
    tenant: c.tenant,
    spec: c.spec,
    state: Number(c.state) as TaskState,
    attempt: Number(c.attempt),
    sequence: Number(c.sequence),
    createdAt: time(c.createdAtMs),
    updatedAt: time(c.updatedAtMs),
    startedAt: time(c.startedAtMs),
    finishedAt: time(c.finishedAtMs),
    nodeId: c.nodeId,
    result: c.result,
    reason: c.reason,
    failures: Number(c.failures ?? 0),
    leaseEpoch: Number(c.leaseEpoch ?? 0),
    gpuIndices: c.gpuIndices.map(Number),
    requeuedAs: c.requeuedAs,
  };
}

function rowToTask(row: Row): Task {
  return taskOf({
    id: row.id,
    tenant: row.tenant,
    requestId: row.request_id ?? '',
    state: row.state,
    attempt: row.attempt,
    sequence: row.seq,
    createdAtMs: row.created_at,
    updatedAtMs: row.updated_at,
    startedAtMs: row.started_at,
    finishedAtMs: row.finished_at,
    nodeId: row.node_id,
    reason: row.reason,
    spec: TaskSpec.decode(row.spec),
    result: row.result ? TaskResult.decode(row.result) : undefined,
    failures: row.failures,
    leaseEpoch: row.lease_epoch,
    gpuIndices: row.gpu_indices ?? [],
    requeuedAs: row.requeued_as ?? '',
  });
}

