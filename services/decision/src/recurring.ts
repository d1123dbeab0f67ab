import { randomUUID } from 'node:crypto';
import {
  CreateScheduleResponse,
  DeleteScheduleResponse,
  EnqueueRequest,
  ListSchedulesResponse,
  ScheduleState,
  type ListSchedulesRequest,
  type Schedule,
  type StoreScheduleRequest,
  type Task,
} from '@autoglm/proto';
import {
  DEFAULT_TIME_ZONE,
  DomainError,
  dueFire,
  durationToMillis,
  fireRequestId,
  InvalidArgumentError,
  nextFireAfter,
  NotFoundError,
  parseCron,
  parseTimeZone,
  systemClock,
  timestampToMillis,
  toTimestamp,
  UnavailableError,
  type Clock,
} from '@autoglm/core';
import { isTransient, type ScheduleStore } from '@autoglm/store';
import type { Logger } from '@autoglm/runtime';

/** Label every task a schedule submits carries, naming the schedule. */
export const SCHEDULE_LABEL = 'autoglm.schedule_id';
/** How often due schedules are looked for. */
export const DEFAULT_SCHEDULE_POLL_MS = 1000;
/** Most schedules fired in one pass; the rest go in the next. */
const FIRE_BATCH = 256;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface RecurringTasksOptions {
  schedules: ScheduleStore;
  /** Submits a fired task: the scheduler's own enqueue path. */
  enqueue(request: EnqueueRequest): Promise<{ task: Task; created: boolean }>;
  logger: Logger;
  /** The clock schedules fire by. @default systemClock */
  clock?: Clock;
  /** How often due schedules are looked for. @default DEFAULT_SCHEDULE_POLL_MS (1000) */
  pollMs?: number;
}

/**
 * Recurring tasks: stores schedules and, on a timer, submits each active
 * schedule's task at its fire times through the scheduler's enqueue.
 *
 * - Idempotent fires: a fire's request id is `schedule:<id>:<fire time ms>`,
 *   so a fire submitted again (the store lost the answer, decision crashed
 *   between submitting and recording) finds the same task.
 * - Missed fires (decision down, or late) run at most once, for the latest
 *   fire time, unless older than the schedule's starting deadline (see
 *   libs/core/src/recurring/catch-up.ts).
 * - A fire refused for a reason that may pass (UNAVAILABLE,
 *   RESOURCE_EXHAUSTED) is tried again on the next pass, under the same
 *   request id, until a later fire time supersedes it; any other refusal is
 *   recorded in last_error and the schedule waits for its next fire time.
 * - Fires, pauses, resumes and deletes run one at a time, so a schedule is
 *   never fired after a pause or delete has answered.
 */
export class RecurringTasks {
  private readonly schedules: ScheduleStore;
  private readonly enqueue: RecurringTasksOptions['enqueue'];
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly pollMs: number;
  private tail: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  /** The timer's pass in progress, if any. */
  private pass: Promise<unknown> | undefined;

  constructor(options: RecurringTasksOptions) {
    this.schedules = options.schedules;
    this.enqueue = options.enqueue;
    this.logger = options.logger;
    this.clock = options.clock ?? systemClock;
    this.pollMs = options.pollMs ?? DEFAULT_SCHEDULE_POLL_MS;
  }

  /** Starts firing due schedules, one pass every pollMs. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      // A pass still running (a slow store) is not queued behind by another.
      if (this.pass) return;
      this.pass = this.fireDue()
        .catch((err: unknown) => this.logger.warn({ err }, 'firing due schedules failed; trying again'))
        .finally(() => {
          this.pass = undefined;
        });
    }, this.pollMs);
  }

  /** Stops the timer and waits for a pass in progress. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.tail.catch(() => undefined);
  }

  /** Makes a schedule durable. Idempotent on (tenant, request_id). */
  async create(request: StoreScheduleRequest): Promise<CreateScheduleResponse> {
    if (!request.tenant) throw new InvalidArgumentError('tenant', 'is required');
    if (!request.spec) throw new InvalidArgumentError('spec', 'is required');
    const cron = parseCron(request.cron, 'cron');
    const timeZone = request.timeZone ? parseTimeZone(request.timeZone, 'time_zone') : DEFAULT_TIME_ZONE;
    const now = this.clock();
    const { schedule, created } = await this.store(() =>
      this.schedules.insert({
        id: randomUUID(),
        tenant: request.tenant,
        requestId: request.requestId,
        cron: cron.source,
        timeZone,
        spec: request.spec!,
        state: request.paused ? ScheduleState.PAUSED : ScheduleState.ACTIVE,
        deadlineAfterMs: request.deadlineAfter ? durationToMillis(request.deadlineAfter) : 0,
        startingDeadlineMs: request.startingDeadline ? durationToMillis(request.startingDeadline) : 0,
        description: request.description,
        createdAtMs: now,
        nextFireAtMs: request.paused ? null : nextFireAfter(cron, now, timeZone),
      }),
    );
    if (created) this.logger.info({ scheduleId: schedule.id, tenant: schedule.tenant, cron: schedule.cron, timeZone }, 'schedule created');
    return CreateScheduleResponse.fromPartial({ schedule, created });
  }

  async get(rawId: string): Promise<Schedule> {
    const id = requireScheduleId(rawId);
    const schedule = await this.store(() => this.schedules.get(id));
    if (!schedule) throw new NotFoundError(`schedule ${id} does not exist`);
    return schedule;
  }

  /** A page of schedules, newest first. */
  async list(request: ListSchedulesRequest): Promise<ListSchedulesResponse> {
    const limit = request.pageSize === 0 ? 100 : request.pageSize;
    if (limit > 1000) throw new InvalidArgumentError('page_size', `must be at most 1000, got ${request.pageSize}`);
    const before = request.pageToken ? decodePageToken(request.pageToken) : undefined;
    const schedules = await this.store(() => this.schedules.list({ tenant: request.tenant || undefined, limit, before }));
    const last = schedules[schedules.length - 1];
    const nextPageToken = schedules.length === limit && last?.createdAt ? encodePageToken(timestampToMillis(last.createdAt), last.id) : '';
    return ListSchedulesResponse.fromPartial({ schedules, nextPageToken });
  }

  /** Stops it firing. Pausing a paused schedule changes nothing. */
  pause(rawId: string): Promise<Schedule> {
    const id = requireScheduleId(rawId);
    return this.exclusive(async () => {
      const current = await this.get(id);
      if (current.state === ScheduleState.PAUSED) return current;
      const paused = await this.store(() => this.schedules.setState(id, ScheduleState.PAUSED, null, this.clock()));
      if (!paused) throw new NotFoundError(`schedule ${id} does not exist`);
      this.logger.info({ scheduleId: id }, 'schedule paused');
      return paused;
    });
  }

  /** Fires again from its next fire time after now; fire times passed while paused are not made up. */
  resume(rawId: string): Promise<Schedule> {
    const id = requireScheduleId(rawId);
    return this.exclusive(async () => {
      const current = await this.get(id);
      if (current.state === ScheduleState.ACTIVE) return current;
      const now = this.clock();
      const next = nextFireAfter(current.cron, now, current.timeZone);
      const resumed = await this.store(() => this.schedules.setState(id, ScheduleState.ACTIVE, next, now));
      if (!resumed) throw new NotFoundError(`schedule ${id} does not exist`);
      this.logger.info({ scheduleId: id, nextFireAt: new Date(next).toISOString() }, 'schedule resumed');
      return resumed;
    });
  }

  /** Deletes it; tasks it submitted are not touched. */
  delete(rawId: string): Promise<DeleteScheduleResponse> {
    const id = requireScheduleId(rawId);
    return this.exclusive(async () => {
      const deleted = await this.store(() => this.schedules.delete(id));
      if (!deleted) throw new NotFoundError(`schedule ${id} does not exist`);
      this.logger.info({ scheduleId: id }, 'schedule deleted');
      return DeleteScheduleResponse.fromPartial({ schedule: deleted });
    });
  }

  /** One pass: fires every active schedule whose time has come. Resolves with the tasks it created. */
  fireDue(): Promise<number> {
    return this.exclusive(async () => {
      const now = this.clock();
      let created = 0;
      for (const schedule of await this.schedules.due(now, FIRE_BATCH)) {
        try {
          if (await this.fire(schedule, now)) created++;
        } catch (err) {
          // Not recorded: the schedule is still due, and the next pass fires it again under the same request id.
          this.logger.warn({ err, scheduleId: schedule.id }, 'recording a fire failed; trying again');
        }
      }
      return created;
    });
  }

  /** Fires one due schedule; true when that submitted a new task. */
  private async fire(schedule: Schedule, now: number): Promise<boolean> {
    const log = { scheduleId: schedule.id, tenant: schedule.tenant };
    const due = dueFire(
      parseCron(schedule.cron),
      schedule.timeZone,
      schedule.nextFireAt ? timestampToMillis(schedule.nextFireAt) : now,
      now,
      schedule.startingDeadline ? durationToMillis(schedule.startingDeadline) : 0,
    );
    if (!due) return false;
    const fireAt = new Date(due.fireAtMs).toISOString();
    if (due.missedEarlier) this.logger.warn({ ...log, fireAt }, 'schedule missed fire times; running only the latest');
    if (due.tooLate) {
      const error = `missed the fire time ${fireAt}: ${Math.round((now - due.fireAtMs) / 1000)} s late, past the starting deadline; waiting for the next`;
      this.logger.warn({ ...log, fireAt }, error);
      await this.schedules.recordFire(schedule.id, { fireAtMs: due.fireAtMs, error, nextFireAtMs: due.nextFireAtMs, atMs: now });
      return false;
    }
    const spec = schedule.spec!;
    const deadlineAfterMs = schedule.deadlineAfter ? durationToMillis(schedule.deadlineAfter) : 0;
    const request = EnqueueRequest.fromPartial({
      requestId: fireRequestId(schedule.id, due.fireAtMs),
      tenant: schedule.tenant,
      spec: {
        ...spec,
        deadline: deadlineAfterMs > 0 ? toTimestamp(due.fireAtMs + deadlineAfterMs) : undefined,
        labels: { ...spec.labels, [SCHEDULE_LABEL]: schedule.id },
      },
    });
    let submitted;
    try {
      submitted = await this.enqueue(request);
    } catch (err) {
      const retry = mayPass(err);
      const why = err instanceof DomainError ? err.message : 'internal error';
      this.logger.warn({ ...log, fireAt, err, retry }, 'schedule fire refused');
      await this.schedules.recordFire(schedule.id, {
        fireAtMs: due.fireAtMs,
        error: retry ? `${why}; trying again` : `fire at ${fireAt} refused: ${why}`,
        nextFireAtMs: retry ? due.fireAtMs : due.nextFireAtMs,
        atMs: now,
      });
      return false;
    }
    await this.schedules.recordFire(schedule.id, { fireAtMs: due.fireAtMs, taskId: submitted.task.id, error: '', nextFireAtMs: due.nextFireAtMs, atMs: now });
    this.logger.debug({ ...log, fireAt, taskId: submitted.task.id, created: submitted.created }, 'schedule fired');
    return submitted.created;
  }

  /** Runs `fn` after every earlier exclusive call has settled. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** A store call; a transient failure becomes UNAVAILABLE (the client retries). */
  private async store<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (isTransient(err)) throw new UnavailableError('the schedule store did not answer; retry (with the same request_id for CreateSchedule)', { cause: err });
      throw err;
    }
  }
}

/** A refusal that retrying the same fire may get past. */
function mayPass(err: unknown): boolean {
  if (err instanceof DomainError) return err.code === 'UNAVAILABLE' || err.code === 'RESOURCE_EXHAUSTED';
  return isTransient(err);
}

function requireScheduleId(id: string): string {
  if (!id) throw new InvalidArgumentError('schedule_id', 'is required');
  if (!UUID.test(id)) throw new InvalidArgumentError('schedule_id', `"${id.slice(0, 80)}" is not a schedule id (a UUID, as CreateSchedule and ListSchedules return)`);
  return id.toLowerCase();
}

function encodePageToken(createdAtMs: number, id: string): string {
  return Buffer.from(`${createdAtMs}|${id}`).toString('base64url');
}

function decodePageToken(token: string): { createdAtMs: number; id: string } {
  const [ms, id] = Buffer.from(token, 'base64url').toString().split('|');
  if (!ms || !id || !Number.isFinite(Number(ms)) || !UUID.test(id)) throw new InvalidArgumentError('page_token', 'is not a token from a previous page');
  return { createdAtMs: Number(ms), id };
}
