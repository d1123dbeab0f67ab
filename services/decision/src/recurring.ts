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
  DEFAULT_FIRE_RETRY_POLICY,
  DEFAULT_TIME_ZONE,
  DomainError,
  dueFire,
  durationToMillis,
  fireRequestId,
  fireRetryAt,
  InvalidArgumentError,
  nextFireAfter,
  NotFoundError,
  parseCron,
  parseTimeZone,
  ResourceExhaustedError,
  systemClock,
  timestampToMillis,
  toTimestamp,
  UnavailableError,
  type Clock,
  type DueFire,
  type RetryPolicy,
} from '@autoglm/core';
import { isTransient, type ScheduleStore } from '@autoglm/store';
import type { Logger } from '@autoglm/runtime';
import { decodePageToken, encodePageToken, pageLimit, UUID } from './paging';

/** Label every task a schedule submits carries, naming the schedule. */
export const SCHEDULE_LABEL = 'autoglm.schedule_id';
/** How often due schedules are looked for. */
export const DEFAULT_SCHEDULE_POLL_MS = 1000;
/** Most schedules fired in one pass; the rest go in the next. */
export const DEFAULT_FIRE_BATCH = 256;
/** How long stop() waits for a pass in progress. */
export const DEFAULT_STOP_TIMEOUT_MS = 10_000;
/** What last_error says of a failure whose details are for the log only. */
const INTERNAL = "internal error (see decision's log)";

export interface RecurringTasksOptions {
  schedules: ScheduleStore;
  /** Submits a fired task: the scheduler's own enqueue path. */
  enqueue(request: EnqueueRequest): Promise<{ task: Task; created: boolean }>;
  logger: Logger;
  /** The clock schedules fire by. @default systemClock */
  clock?: Clock;
  /** How often due schedules are looked for. @default DEFAULT_SCHEDULE_POLL_MS (1000) */
  pollMs?: number;
  /** Most schedules fired in one pass. @default DEFAULT_FIRE_BATCH (256) */
  batchSize?: number;
  /** Backoff of a fire tried again when its refusal gives no retry-after. @default DEFAULT_FIRE_RETRY_POLICY (1 s doubling to 5 min) */
  retry?: RetryPolicy;
  /** The backoff's jitter, in [0, 1). @default Math.random */
  random?: () => number;
  /** How long stop() waits for a pass in progress before stopping without it. @default DEFAULT_STOP_TIMEOUT_MS (10000) */
  stopTimeoutMs?: number;
}

/**
 * Recurring tasks: stores schedules and, on a timer, submits each active
 * schedule's task at its fire times through the scheduler's enqueue.
 *
 * - Idempotent fires: a fire's request id is `schedule:<id>:<fire time ms>`,
 *   so a fire submitted again (the store lost the answer, decision crashed
 *   between submitting and recording) finds the same task, and the fire count
 *   goes up once per fire time.
 * - Missed fires (decision down, or late) run at most once, for the latest
 *   fire time, unless older than the schedule's starting deadline (see
 *   libs/core/src/recurring/catch-up.ts).
 * - A fire that failed for a reason that may pass (UNAVAILABLE,
 *   RESOURCE_EXHAUSTED, the store not answering) stays pending and is tried
 *   again under the same request id after a backoff (the refusal's
 *   retry-after, else exponential; see fire-retry.ts), until a later fire
 *   time supersedes it. Any other failure is recorded in last_error and the
 *   schedule waits for its next fire time, or is paused when none can be
 *   computed.
 * - A schedule's fires, pauses, resumes and deletes run one at a time, so it
 *   is never fired after a pause or delete has answered; different schedules
 *   do not wait for each other.
 */
export class RecurringTasks {
  private readonly schedules: ScheduleStore;
  private readonly enqueue: RecurringTasksOptions['enqueue'];
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly pollMs: number;
  private readonly batchSize: number;
  private readonly retryPolicy: RetryPolicy;
  private readonly random: () => number;
  private readonly stopTimeoutMs: number;
  /** Per schedule id, the tail of its queued fires, pauses, resumes and deletes. */
  private readonly queues = new Map<string, Promise<void>>();
  /** Passes in progress: the timer's, or fireDue() called directly. */
  private readonly passes = new Set<Promise<number>>();
  private timer: NodeJS.Timeout | undefined;
  /** Set by stop(): a pass in progress fires no further schedule. */
  private stopping = false;

  constructor(options: RecurringTasksOptions) {
    this.schedules = options.schedules;
    this.enqueue = options.enqueue;
    this.logger = options.logger;
    this.clock = options.clock ?? systemClock;
    this.pollMs = options.pollMs ?? DEFAULT_SCHEDULE_POLL_MS;
    this.batchSize = options.batchSize ?? DEFAULT_FIRE_BATCH;
    this.retryPolicy = options.retry ?? DEFAULT_FIRE_RETRY_POLICY;
    this.random = options.random ?? Math.random;
    this.stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
  }

  /** Starts firing due schedules, one pass every pollMs. */
  start(): void {
    if (this.timer) return;
    this.stopping = false;
    this.timer = setInterval(() => {
      // A pass still running (a slow store) is not queued behind by another.
      if (this.passes.size > 0) return;
      this.fireDue().catch((err: unknown) => this.logger.warn({ err }, 'firing due schedules failed; trying again'));
    }, this.pollMs);
  }

  /**
   * Stops the timer, lets a pass in progress finish the schedule it is
   * firing (and fire no more), and waits for it, for at most stopTimeoutMs:
   * a hung store or enqueue call does not hold up shutdown.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.passes.size === 0) return;
    let timeout: NodeJS.Timeout | undefined;
    const finished = Promise.allSettled([...this.passes]).then(() => true);
    const waited = new Promise<false>((resolve) => (timeout = setTimeout(() => resolve(false), this.stopTimeoutMs)));
    const done = await Promise.race([finished, waited]);
    clearTimeout(timeout);
    if (!done) this.logger.warn({ waitedMs: this.stopTimeoutMs }, 'a schedule pass did not finish in time (a store or enqueue call hangs); stopping without it');
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
    const limit = pageLimit(request.pageSize);
    const before = request.pageToken ? decodePageToken(request.pageToken) : undefined;
    const schedules = await this.store(() => this.schedules.list({ tenant: request.tenant || undefined, limit, before }));
    const last = schedules[schedules.length - 1];
    const nextPageToken = schedules.length === limit && last?.createdAt ? encodePageToken(timestampToMillis(last.createdAt), last.id) : '';
    return ListSchedulesResponse.fromPartial({ schedules, nextPageToken });
  }

  /** Stops it firing, dropping a fire being tried again. Pausing a paused schedule changes nothing. */
  pause(rawId: string): Promise<Schedule> {
    const id = requireScheduleId(rawId);
    return this.serialized(id, async () => {
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
    return this.serialized(id, async () => {
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
    return this.serialized(id, async () => {
      const deleted = await this.store(() => this.schedules.delete(id));
      if (!deleted) throw new NotFoundError(`schedule ${id} does not exist`);
      this.logger.info({ scheduleId: id }, 'schedule deleted');
      return DeleteScheduleResponse.fromPartial({ schedule: deleted });
    });
  }

  /** One pass: fires every active schedule whose time has come, one after another. Resolves with the tasks it created and recorded. */
  fireDue(): Promise<number> {
    const pass = this.firePass();
    this.passes.add(pass);
    const settled = () => void this.passes.delete(pass);
    void pass.then(settled, settled);
    return pass;
  }

  private async firePass(): Promise<number> {
    if (this.stopping) return 0;
    const now = this.clock();
    let created = 0;
    for (const id of await this.schedules.due(now, this.batchSize)) {
      if (this.stopping) break;
      try {
        if (await this.serialized(id, () => this.fireIfDue(id, now))) created++;
      } catch (err) {
        // Nothing recorded (the store failed): still due, so a later pass fires it again under the same request id.
        this.logger.warn({ err, scheduleId: id }, 'firing a schedule failed and could not be recorded; trying again next pass');
      }
    }
    return created;
  }

  /** Fires one schedule if it is still due, as read under its lock (a pause or delete may have answered since due() was read). */
  private async fireIfDue(id: string, now: number): Promise<boolean> {
    const schedule = await this.schedules.get(id);
    if (!schedule || schedule.state !== ScheduleState.ACTIVE || !schedule.nextFireAt || timestampToMillis(schedule.nextFireAt) > now) return false;
    let due: DueFire;
    try {
      due = dueFireOf(schedule, now);
    } catch (err) {
      await this.cannotFire(schedule, now, err);
      return false;
    }
    try {
      return await this.fire(schedule, due, now);
    } catch (err) {
      // Thrown past fire()'s own handling: recording failed, or a bug.
      if (mayPass(err)) await this.retryLater(schedule, due, now, err);
      else await this.giveUpFire(schedule, due, now, err);
      return false;
    }
  }

  /** Submits one due fire and records what it did; true when that created a new task. */
  private async fire(schedule: Schedule, due: DueFire, now: number): Promise<boolean> {
    const log = { scheduleId: schedule.id, tenant: schedule.tenant };
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
      if (mayPass(err)) {
        await this.retryLater(schedule, due, now, err);
        return false;
      }
      const why = err instanceof DomainError ? err.message : INTERNAL;
      this.logger.warn({ ...log, fireAt, err }, 'schedule fire refused; waiting for the next fire time');
      await this.schedules.recordFire(schedule.id, { fireAtMs: due.fireAtMs, error: `fire at ${fireAt} refused: ${why}`, nextFireAtMs: due.nextFireAtMs, atMs: now });
      return false;
    }
    await this.schedules.recordFire(schedule.id, { fireAtMs: due.fireAtMs, taskId: submitted.task.id, error: '', nextFireAtMs: due.nextFireAtMs, atMs: now });
    this.logger.debug({ ...log, fireAt, taskId: submitted.task.id, created: submitted.created }, 'schedule fired');
    return submitted.created;
  }

  /** Keeps the fire pending and pushes the schedule back: after the refusal's retry-after, else an exponential backoff. */
  private async retryLater(schedule: Schedule, due: DueFire, now: number, err: unknown): Promise<void> {
    const samePending = schedule.pendingFireAt !== undefined && timestampToMillis(schedule.pendingFireAt) === due.fireAtMs;
    const attempts = (samePending ? schedule.pendingFireAttempts : 0) + 1;
    const retryAfterMs = err instanceof ResourceExhaustedError ? err.retryAfterMs : undefined;
    const retryAtMs = fireRetryAt({ nowMs: now, attempts, retryAfterMs, nextFireAtMs: due.nextFireAtMs }, this.retryPolicy, this.random);
    const fireAt = new Date(due.fireAtMs).toISOString();
    const retryAt = new Date(retryAtMs).toISOString();
    const why = err instanceof DomainError ? ` refused: ${err.message}` : ': the store did not answer';
    this.logger.warn({ scheduleId: schedule.id, tenant: schedule.tenant, fireAt, err, attempts, retryAt }, 'schedule fire failed; trying it again later');
    await this.schedules.recordRetry(schedule.id, { fireAtMs: due.fireAtMs, attempts, error: `fire at ${fireAt}${why}; trying again at ${retryAt}`, retryAtMs, atMs: now });
  }

  /** A failure trying again will not get past: recorded, and the schedule waits for its next fire time. */
  private async giveUpFire(schedule: Schedule, due: DueFire, now: number, err: unknown): Promise<void> {
    const fireAt = new Date(due.fireAtMs).toISOString();
    this.logger.error({ scheduleId: schedule.id, tenant: schedule.tenant, fireAt, err }, 'firing a schedule failed; waiting for its next fire time');
    const why = err instanceof DomainError ? err.message : INTERNAL;
    await this.schedules.recordFire(schedule.id, { fireAtMs: due.fireAtMs, error: `fire at ${fireAt} failed: ${why}; waiting for the next`, nextFireAtMs: due.nextFireAtMs, atMs: now });
  }

  /**
   * Which fire is due could not be worked out (a stored time zone this
   * server no longer knows): wait for the next fire time if there is one,
   * else pause the schedule, saying why.
   */
  private async cannotFire(schedule: Schedule, now: number, err: unknown): Promise<void> {
    const log = { scheduleId: schedule.id, tenant: schedule.tenant, cron: schedule.cron, timeZone: schedule.timeZone, err };
    const why = err instanceof DomainError ? err.message : INTERNAL;
    const fireAtMs = timestampToMillis(schedule.pendingFireAt ?? schedule.nextFireAt!);
    let next: number | undefined;
    try {
      next = nextFireAfter(schedule.cron, now, schedule.timeZone);
    } catch {
      next = undefined;
    }
    if (next === undefined) {
      this.logger.error(log, 'a schedule cannot be fired: no fire time can be computed; pausing it');
      await this.schedules.setState(schedule.id, ScheduleState.PAUSED, null, now, `paused: no fire time can be computed: ${why}; delete the schedule and create it again`);
      return;
    }
    this.logger.error(log, 'a schedule fire cannot be worked out; waiting for its next fire time');
    const fireAt = new Date(fireAtMs).toISOString();
    await this.schedules.recordFire(schedule.id, { fireAtMs, error: `fire at ${fireAt} failed: ${why}; waiting for the next`, nextFireAtMs: next, atMs: now });
  }

  /** Runs `fn` after every earlier call for the same schedule has settled; other schedules do not wait. */
  private serialized<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const result = (this.queues.get(id) ?? Promise.resolve()).then(fn);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(id, tail);
    void tail.then(() => {
      if (this.queues.get(id) === tail) this.queues.delete(id);
    });
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

/**
 * The fire due now, of a schedule whose next fire time is not after now: the
 * pending one (or a later one superseding it), else from the next fire time.
 * One is always due: a pending fire is stored with next_fire_at set to its
 * retry time, which fireRetryAt puts after it, so `from` <= next_fire_at <= now.
 */
function dueFireOf(schedule: Schedule, now: number): DueFire {
  const from = timestampToMillis(schedule.pendingFireAt ?? schedule.nextFireAt!);
  return dueFire(parseCron(schedule.cron), schedule.timeZone, from, now, schedule.startingDeadline ? durationToMillis(schedule.startingDeadline) : 0)!;
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
