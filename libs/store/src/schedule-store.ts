import { Schedule, ScheduleState, TaskSpec } from '@autoglm/proto';
import { toDuration, toTimestamp } from '@autoglm/core';
import type { SqlQueryable } from './sql-engine';

/** A schedule to store, before it has an id's worth of history. */
export interface NewSchedule {
  id: string;
  tenant: string;
  requestId: string;
  cron: string;
  timeZone: string;
  spec: TaskSpec;
  state: ScheduleState;
  deadlineAfterMs: number;
  startingDeadlineMs: number;
  description: string;
  createdAtMs: number;
  /** Null when paused. */
  nextFireAtMs: number | null;
}

/** What one fire time did: submitted a task, or gave up on it (with why). Settles any pending fire. */
export interface FireRecord {
  fireAtMs: number;
  /** The task submitted; absent when none was. */
  taskId?: string;
  /** Why no task was submitted; empty on success. */
  error: string;
  /** The fire time to wait for next. */
  nextFireAtMs: number;
  atMs: number;
}

/** A fire time refused for a reason that may pass: kept pending, tried again at `retryAtMs`. */
export interface FireRetry {
  fireAtMs: number;
  /** Failed tries of this fire time so far, this one included. */
  attempts: number;
  /** Why it is being tried again. */
  error: string;
  retryAtMs: number;
  atMs: number;
}

export interface ScheduleListFilter {
  tenant?: string;
  limit: number;
  /** Keyset cursor: schedules created before this (createdAtMs, id). */
  before?: { createdAtMs: number; id: string };
}

interface ScheduleRow {
  id: string;
  tenant: string;
  request_id: string | null;
  cron: string;
  time_zone: string;
  spec: Uint8Array;
  state: number;
  deadline_after_ms: number;
  starting_deadline_ms: number;
  description: string;
  created_at: number;
  updated_at: number;
  next_fire_at: number | null;
  last_fire_at: number | null;
  last_task_id: string | null;
  last_error: string;
  fire_count: number;
  pending_fire_at: number | null;
  pending_fire_attempts: number;
}

/**
 * Durable schedules (recurring tasks), in the task store's database. Every
 * write is one statement and idempotent, so a write whose answer was lost can
 * simply be made again. Works on both engines.
 */
export class ScheduleStore {
  constructor(private readonly engine: SqlQueryable) {}

  /**
   * Stores a new schedule. Idempotent on (tenant, request_id) and on the id:
   * a repeat resolves to the schedule stored first, with `created: false`.
   */
  async insert(s: NewSchedule): Promise<{ schedule: Schedule; created: boolean }> {
    const { rows } = await this.engine.query<ScheduleRow>(
      `INSERT INTO schedules (id, tenant, request_id, cron, time_zone, spec, state, deadline_after_ms, starting_deadline_ms, description,
                              created_at, updated_at, next_fire_at)
       VALUES ($1, $2, $3, $4, $5, decode($6, 'base64'), $7, $8, $9, $10, $11, $11, $12)
       ON CONFLICT DO NOTHING
       RETURNING *`,
      [
        s.id,
        s.tenant,
        s.requestId || null,
        s.cron,
        s.timeZone,
        Buffer.from(TaskSpec.encode(s.spec).finish()).toString('base64'),
        s.state,
        s.deadlineAfterMs,
        s.startingDeadlineMs,
        s.description,
        s.createdAtMs,
        s.nextFireAtMs,
      ],
    );
    if (rows[0]) return { schedule: rowToSchedule(rows[0]), created: true };
    // Written before under its own id (a retry after a lost answer): it is this one.
    const mine = await this.get(s.id);
    if (mine) return { schedule: mine, created: true };
    const prior = s.requestId ? await this.byRequestId(s.tenant, s.requestId) : undefined;
    if (!prior) throw new Error(`schedule ${s.id} was neither inserted nor found by its request id`);
    return { schedule: prior, created: false };
  }

  async get(id: string): Promise<Schedule | undefined> {
    const { rows } = await this.engine.query<ScheduleRow>(`SELECT * FROM schedules WHERE id = $1`, [id]);
    return rows[0] ? rowToSchedule(rows[0]) : undefined;
  }

  async byRequestId(tenant: string, requestId: string): Promise<Schedule | undefined> {
    const { rows } = await this.engine.query<ScheduleRow>(`SELECT * FROM schedules WHERE tenant = $1 AND request_id = $2`, [tenant, requestId]);
    return rows[0] ? rowToSchedule(rows[0]) : undefined;
  }

  /** Newest first, a page at a time. */
  async list(filter: ScheduleListFilter): Promise<Schedule[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.tenant) {
      params.push(filter.tenant);
      where.push(`tenant = $${params.length}`);
    }
    if (filter.before) {
      params.push(filter.before.createdAtMs, filter.before.id);
      where.push(`(created_at, id) < ($${params.length - 1}, $${params.length}::uuid)`);
    }
    params.push(filter.limit);
    const sql = `SELECT * FROM schedules ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY created_at DESC, id DESC LIMIT $${params.length}`;
    return (await this.engine.query<ScheduleRow>(sql, params)).rows.map(rowToSchedule);
  }

  /** The ids of active schedules whose next fire time is at or before `nowMs`, most overdue first. */
  async due(nowMs: number, limit: number): Promise<string[]> {
    const { rows } = await this.engine.query<{ id: string }>(
      `SELECT id FROM schedules WHERE state = ${ScheduleState.ACTIVE} AND next_fire_at <= $1 ORDER BY next_fire_at, id LIMIT $2`,
      [nowMs, limit],
    );
    return rows.map((r) => r.id);
  }

  /**
   * Pauses (next fire time null) or resumes (with its next fire time),
   * dropping any pending fire; `lastError`, when given, says why. The
   * schedule after, or undefined when there is none.
   */
  async setState(id: string, state: ScheduleState, nextFireAtMs: number | null, atMs: number, lastError?: string): Promise<Schedule | undefined> {
    const { rows } = await this.engine.query<ScheduleRow>(
      `UPDATE schedules SET state = $2, next_fire_at = $3, updated_at = $4, last_error = COALESCE($5, last_error),
         pending_fire_at = NULL, pending_fire_attempts = 0
       WHERE id = $1 RETURNING *`,
      [id, state, nextFireAtMs, atMs, lastError ?? null],
    );
    return rows[0] ? rowToSchedule(rows[0]) : undefined;
  }

  /**
   * Records what a fire time did, if the schedule is still active, and
   * settles the pending fire. The fire count goes up once per fire time that
   * submitted a task, however often this is written again.
   */
  async recordFire(id: string, fire: FireRecord): Promise<Schedule | undefined> {
    const submitted = fire.taskId !== undefined;
    const { rows } = await this.engine.query<ScheduleRow>(
      `UPDATE schedules SET
         fire_count = fire_count + CASE WHEN $6 AND (last_fire_at IS DISTINCT FROM $2 OR last_task_id IS NULL OR last_error <> '') THEN 1 ELSE 0 END,
         last_fire_at = $2,
         last_task_id = CASE WHEN $6 THEN $3::uuid ELSE last_task_id END,
         last_error = $4,
         next_fire_at = $5,
         updated_at = $7,
         pending_fire_at = NULL,
         pending_fire_attempts = 0
       WHERE id = $1 AND state = ${ScheduleState.ACTIVE}
       RETURNING *`,
      [id, fire.fireAtMs, fire.taskId ?? null, fire.error, fire.nextFireAtMs, submitted, fire.atMs],
    );
    return rows[0] ? rowToSchedule(rows[0]) : undefined;
  }

  /**
   * Keeps a fire time pending, to be tried again at `retryAtMs` (which is
   * also when due() next finds the schedule), if the schedule is still
   * active. Written again, it changes nothing more.
   */
  async recordRetry(id: string, retry: FireRetry): Promise<Schedule | undefined> {
    const { rows } = await this.engine.query<ScheduleRow>(
      `UPDATE schedules SET pending_fire_at = $2, pending_fire_attempts = $3, last_error = $4, next_fire_at = $5, updated_at = $6
       WHERE id = $1 AND state = ${ScheduleState.ACTIVE}
       RETURNING *`,
      [id, retry.fireAtMs, retry.attempts, retry.error, retry.retryAtMs, retry.atMs],
    );
    return rows[0] ? rowToSchedule(rows[0]) : undefined;
  }

  /** Deletes a schedule; the schedule as it was, or undefined when there was none. */
  async delete(id: string): Promise<Schedule | undefined> {
    const { rows } = await this.engine.query<ScheduleRow>(`DELETE FROM schedules WHERE id = $1 RETURNING *`, [id]);
    return rows[0] ? rowToSchedule(rows[0]) : undefined;
  }
}

function rowToSchedule(r: ScheduleRow): Schedule {
  const time = (v: number | null) => (v === null || v === undefined ? undefined : toTimestamp(Number(v)));
  const duration = (ms: number) => (Number(ms) > 0 ? toDuration(Number(ms)) : undefined);
  return Schedule.fromPartial({
    id: r.id,
    requestId: r.request_id ?? '',
    tenant: r.tenant,
    cron: r.cron,
    timeZone: r.time_zone,
    spec: TaskSpec.decode(r.spec),
    state: Number(r.state) as ScheduleState,
    deadlineAfter: duration(r.deadline_after_ms),
    startingDeadline: duration(r.starting_deadline_ms),
    description: r.description,
    createdAt: time(r.created_at),
    updatedAt: time(r.updated_at),
    nextFireAt: time(r.next_fire_at),
    lastFireAt: time(r.last_fire_at),
    lastTaskId: r.last_task_id ?? '',
    lastError: r.last_error,
    fireCount: Number(r.fire_count),
    pendingFireAt: time(r.pending_fire_at),
    pendingFireAttempts: Number(r.pending_fire_attempts),
  });
}
