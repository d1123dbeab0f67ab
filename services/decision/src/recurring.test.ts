import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { EnqueueRequest, PriorityClass, ScheduleState, Task, TaskKind, TaskSpec, type Timestamp } from '@autoglm/proto';
import { fireRequestId, InvalidArgumentError, ResourceExhaustedError, timestampToMillis, UnavailableError } from '@autoglm/core';
import { InjectedFault, ScheduleStore, TaskStore, type FireRecord, type FireRetry } from '@autoglm/store';
import { RecurringTasks, SCHEDULE_LABEL, type RecurringTasksOptions } from './recurring';

const MINUTE = 60_000;
const T0 = Date.parse('2024-05-01T10:01:00Z');
const ms = (t: Timestamp | undefined) => (t === undefined ? undefined : timestampToMillis(t));

/** A store whose next `failures` fire writes (records and retries) fail as a lost connection does, as a crash between submitting and recording would leave it. */
class StoreFailingWrites extends ScheduleStore {
  failures = 0;
  override async recordFire(id: string, fire: FireRecord) {
    this.failIfAsked();
    return super.recordFire(id, fire);
  }
  override async recordRetry(id: string, retry: FireRetry) {
    this.failIfAsked();
    return super.recordRetry(id, retry);
  }
  private failIfAsked(): void {
    if (this.failures > 0) {
      this.failures--;
      throw new InjectedFault('transient');
    }
  }
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('RecurringTasks', () => {
  let tasks: TaskStore;
  let store: StoreFailingWrites;
  let now: number;
  let submitted: EnqueueRequest[];
  let refuse: ((request: EnqueueRequest) => Error | undefined) | undefined;
  /** Per schedule id: while set, its submissions wait for the promise. */
  let holds: Map<string, Promise<void>>;
  /** Hears each submission as it enters enqueue. */
  let onEnter: ((request: EnqueueRequest) => void) | undefined;
  let recurring: RecurringTasks;
  /** Tasks by request id: the scheduler's idempotence, as far as these tests need it. */
  let byRequestId: Map<string, Task>;

  const scheduleOf = (request: EnqueueRequest) => request.spec!.labels[SCHEDULE_LABEL]!;

  /** RecurringTasks over the test's store and fake enqueue; jitter-free backoff of 500 ms, 1 s, 2 s, 4 s at most. */
  function newRecurring(options: Partial<RecurringTasksOptions> = {}): RecurringTasks {
    return new RecurringTasks({
      schedules: store,
      logger: pino({ level: 'silent' }),
      clock: () => now,
      retry: { baseMs: 1000, maxMs: 8000 },
      random: () => 0,
      enqueue: async (request) => {
        submitted.push(request);
        onEnter?.(request);
        await holds.get(scheduleOf(request));
        const refusal = refuse?.(request);
        if (refusal) throw refusal;
        const known = byRequestId.get(request.requestId);
        if (known) return { task: known, created: false };
        const task = Task.fromPartial({ id: randomUUID(), requestId: request.requestId, tenant: request.tenant, spec: request.spec });
        byRequestId.set(request.requestId, task);
        return { task, created: true };
      },
      ...options,
    });
  }

  /** Lets every store call already queued finish: the engine runs one statement at a time, in order. */
  async function drainStore(): Promise<void> {
    for (let i = 0; i < 3; i++) await tasks.engine.query('SELECT 1');
  }

  beforeAll(async () => {
    tasks = await TaskStore.open();
  }, 30_000);
  afterAll(() => tasks.close());

  beforeEach(async () => {
    await tasks.engine.query('DELETE FROM schedules');
    now = T0;
    submitted = [];
    refuse = undefined;
    holds = new Map();
    onEnter = undefined;
    byRequestId = new Map();
    store = new StoreFailingWrites(tasks.engine);
    recurring = newRecurring();
  });

  afterEach(() => jest.restoreAllMocks());

  const create = (cron = '*/5 * * * *', extra: { startingDeadlineMs?: number; deadlineAfterMs?: number } = {}) =>
    recurring.create({
      requestId: '',
      tenant: 'acme',
      cron,
      timeZone: 'UTC',
      spec: TaskSpec.fromPartial({ kind: TaskKind.BATCH, priorityClass: PriorityClass.NORMAL, gpuCount: 1 }),
      deadlineAfter: extra.deadlineAfterMs ? { seconds: extra.deadlineAfterMs / 1000, nanos: 0 } : undefined,
      startingDeadline: extra.startingDeadlineMs ? { seconds: extra.startingDeadlineMs / 1000, nanos: 0 } : undefined,
      description: '',
      paused: false,
    });
  const createId = async (cron?: string) => (await create(cron)).schedule!.id;

  it('submits each fire time once, with its deadline and label, and waits for the next', async () => {
    const { schedule } = await create('*/5 * * * *', { deadlineAfterMs: 10 * MINUTE });
    const id = schedule!.id;
    expect(await recurring.fireDue()).toBe(0);
    now = T0 + 4 * MINUTE;
    expect(await recurring.fireDue()).toBe(1);
    expect(await recurring.fireDue()).toBe(0);
    const fireAt = T0 + 4 * MINUTE;
    expect(submitted).toHaveLength(1);
    expect(submitted[0]).toMatchObject({ requestId: `schedule:${id}:${fireAt}`, tenant: 'acme', spec: { labels: { 'autoglm.schedule_id': id } } });
    expect(timestampToMillis(submitted[0]!.spec!.deadline!)).toBe(fireAt + 10 * MINUTE);
    const after = await recurring.get(id);
    expect(after).toMatchObject({ fireCount: 1, lastError: '', lastTaskId: byRequestId.get(`schedule:${id}:${fireAt}`)!.id, pendingFireAttempts: 0 });
    expect(ms(after.nextFireAt)).toBe(fireAt + 5 * MINUTE);
    expect(after.pendingFireAt).toBeUndefined();
  });

  it('submits again under the same request id when the fire was not recorded, and counts it once', async () => {
    const id = await createId();
    const fireAt = T0 + 4 * MINUTE;
    now = fireAt;
    store.failures = 1;
    expect(await recurring.fireDue()).toBe(0);
    // Submitted, not recorded: kept pending, to be tried again after a backoff.
    let s = await recurring.get(id);
    expect(s).toMatchObject({ fireCount: 0, pendingFireAttempts: 1, lastError: `fire at ${new Date(fireAt).toISOString()}: the store did not answer; trying again at ${new Date(fireAt + 500).toISOString()}` });
    expect(ms(s.pendingFireAt)).toBe(fireAt);
    expect(await recurring.fireDue()).toBe(0);
    expect(submitted).toHaveLength(1);
    // Tried again: the same request id, so the task submitted before is found, not made again.
    now = fireAt + 500;
    expect(await recurring.fireDue()).toBe(0);
    expect(submitted.map((r) => r.requestId)).toEqual([fireRequestId(id, fireAt), fireRequestId(id, fireAt)]);
    expect(byRequestId.size).toBe(1);
    s = await recurring.get(id);
    expect(s).toMatchObject({ fireCount: 1, lastError: '', lastTaskId: [...byRequestId.values()][0]!.id, pendingFireAttempts: 0 });
    expect(ms(s.lastFireAt)).toBe(fireAt);
    expect(s.pendingFireAt).toBeUndefined();
  });

  it('fires again on the next pass when not even the retry could be recorded, and counts it once', async () => {
    const id = await createId();
    now = T0 + 4 * MINUTE;
    store.failures = 2;
    await recurring.fireDue();
    expect(await recurring.get(id)).toMatchObject({ fireCount: 0, lastError: '', pendingFireAt: undefined });
    expect(await recurring.fireDue()).toBe(0);
    expect(submitted.map((r) => r.requestId)).toEqual([fireRequestId(id, now), fireRequestId(id, now)]);
    expect(await recurring.get(id)).toMatchObject({ fireCount: 1, lastTaskId: byRequestId.get(fireRequestId(id, now))!.id });
  });

  it('tries a refusal that may pass again later for the same fire time, and records one that will not', async () => {
    const id = await createId();
    const fireAt = T0 + 4 * MINUTE;
    now = fireAt;
    refuse = () => new UnavailableError('the task store did not confirm the write; retry with the same request_id');
    await recurring.fireDue();
    let s = await recurring.get(id);
    expect(s.lastError).toBe(
      `fire at ${new Date(fireAt).toISOString()} refused: the task store did not confirm the write; retry with the same request_id; trying again at ${new Date(fireAt + 500).toISOString()}`,
    );
    expect(ms(s.nextFireAt)).toBe(fireAt + 500);
    expect(ms(s.pendingFireAt)).toBe(fireAt);
    refuse = undefined;
    now += 500;
    expect(await recurring.fireDue()).toBe(1);
    s = await recurring.get(id);
    expect(s).toMatchObject({ fireCount: 1, lastError: '' });
    expect(submitted.map((r) => r.requestId)).toEqual([fireRequestId(id, fireAt), fireRequestId(id, fireAt)]);

    refuse = () => new InvalidArgumentError('spec.model', 'no longer in the catalog');
    now = T0 + 9 * MINUTE;
    expect(await recurring.fireDue()).toBe(0);
    s = await recurring.get(id);
    expect(s.lastError).toBe(`fire at ${new Date(T0 + 9 * MINUTE).toISOString()} refused: spec.model: no longer in the catalog`);
    expect(ms(s.nextFireAt)).toBe(T0 + 14 * MINUTE);
    expect(s.pendingFireAt).toBeUndefined();
    expect(s.fireCount).toBe(1);
  });

  it("waits out RESOURCE_EXHAUSTED's retry-after, else backs off exponentially up to the cap, all under the fire's own request id", async () => {
    const id = await createId('0 * * * *');
    const fireAt = Date.parse('2024-05-01T11:00:00Z');
    now = fireAt;
    refuse = () => new ResourceExhaustedError('tenant acme is over its queue limit; retry after 30 s', 30_000);
    await recurring.fireDue();
    let s = await recurring.get(id);
    expect(s).toMatchObject({ pendingFireAttempts: 1, lastError: `fire at 2024-05-01T11:00:00.000Z refused: tenant acme is over its queue limit; retry after 30 s; trying again at 2024-05-01T11:00:30.000Z` });
    expect(ms(s.pendingFireAt)).toBe(fireAt);
    expect(ms(s.nextFireAt)).toBe(fireAt + 30_000);
    now = fireAt + 29_999;
    await recurring.fireDue();
    expect(submitted).toHaveLength(1);

    // No hint: half of 1 s * 2^(n-1) (the jitter is pinned to its low end), at most half of 8 s.
    refuse = () => new UnavailableError('the task store did not answer');
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      now = ms((await recurring.get(id)).nextFireAt)!;
      await recurring.fireDue();
      waits.push(ms((await recurring.get(id)).nextFireAt)! - now);
    }
    expect(waits).toEqual([1000, 2000, 4000, 4000, 4000]);
    s = await recurring.get(id);
    expect(s).toMatchObject({ pendingFireAttempts: 6, fireCount: 0 });
    expect(ms(s.pendingFireAt)).toBe(fireAt);

    refuse = undefined;
    now = ms(s.nextFireAt)!;
    expect(await recurring.fireDue()).toBe(1);
    expect(new Set(submitted.map((r) => r.requestId))).toEqual(new Set([fireRequestId(id, fireAt)]));
    expect(submitted).toHaveLength(7);
    s = await recurring.get(id);
    expect(s).toMatchObject({ fireCount: 1, lastError: '', pendingFireAttempts: 0, pendingFireAt: undefined });
    expect(ms(s.lastFireAt)).toBe(fireAt);
    expect(ms(s.nextFireAt)).toBe(fireAt + 60 * MINUTE);
  });

  it('never waits past the next fire time, which supersedes the pending one', async () => {
    const id = await createId('0 * * * *');
    const fireAt = Date.parse('2024-05-01T11:00:00Z');
    now = fireAt;
    refuse = () => new ResourceExhaustedError('over the limit', 2 * 60 * MINUTE);
    await recurring.fireDue();
    expect(ms((await recurring.get(id)).nextFireAt)).toBe(fireAt + 60 * MINUTE);
    refuse = undefined;
    now = fireAt + 60 * MINUTE;
    expect(await recurring.fireDue()).toBe(1);
    expect(submitted.map((r) => r.requestId)).toEqual([fireRequestId(id, fireAt), fireRequestId(id, fireAt + 60 * MINUTE)]);
    const s = await recurring.get(id);
    expect(s).toMatchObject({ fireCount: 1, pendingFireAt: undefined });
    expect(ms(s.lastFireAt)).toBe(fireAt + 60 * MINUTE);
  });

  it('does not let schedules being retried starve the other due schedules', async () => {
    recurring = newRecurring({ batchSize: 2 });
    // The stuck ones are the most overdue, so a pass looks at them first.
    const stuck = [await createId('*/5 * * * *'), await createId('*/5 * * * *')];
    const healthy = await createId('*/10 * * * *');
    now = T0 + 10 * MINUTE;
    refuse = (request) => (stuck.includes(scheduleOf(request)) ? new UnavailableError('the task store did not answer') : undefined);
    expect(await recurring.fireDue()).toBe(0);
    expect(await recurring.fireDue()).toBe(1);
    expect(submitted.map(scheduleOf)).toEqual([...stuck.sort(), healthy]);
    expect((await recurring.get(healthy)).fireCount).toBe(1);
  });

  it('pauses a schedule whose stored time zone is no longer known, saying why, rather than failing every pass', async () => {
    const id = await createId();
    await tasks.engine.query(`UPDATE schedules SET time_zone = 'Mars/Olympus_Mons' WHERE id = $1`, [id]);
    now = T0 + 4 * MINUTE;
    expect(await recurring.fireDue()).toBe(0);
    const s = await recurring.get(id);
    expect(s).toMatchObject({ state: ScheduleState.PAUSED, nextFireAt: undefined, fireCount: 0 });
    expect(s.lastError).toBe(
      'paused: no fire time can be computed: time_zone: "Mars/Olympus_Mons" is not a time zone this server knows; use an IANA time zone such as "Europe/Berlin", "America/New_York" or "UTC"; delete the schedule and create it again',
    );
    expect(submitted).toEqual([]);
    await expect(recurring.resume(id)).rejects.toThrow(/^time_zone: "Mars\/Olympus_Mons" is not a time zone/);
  });

  it('records a failure that trying again will not get past, and waits for the next fire time', async () => {
    const id = await createId();
    now = T0 + 4 * MINUTE;
    jest.spyOn(store, 'recordFire').mockRejectedValueOnce(new Error('value too long for type character varying(36)'));
    await recurring.fireDue();
    const s = await recurring.get(id);
    expect(s.lastError).toBe(`fire at ${new Date(now).toISOString()} failed: internal error (see decision's log); waiting for the next`);
    expect(ms(s.nextFireAt)).toBe(T0 + 9 * MINUTE);
    expect(await recurring.fireDue()).toBe(0);
    expect(submitted).toHaveLength(1);
  });

  it('skips a missed fire time older than the starting deadline', async () => {
    const { schedule } = await create('0 * * * *', { startingDeadlineMs: 10 * MINUTE });
    now = T0 + 59 * MINUTE + 3 * 60 * MINUTE + 30 * MINUTE;
    expect(await recurring.fireDue()).toBe(0);
    expect(submitted).toEqual([]);
    const s = await recurring.get(schedule!.id);
    expect(s.lastError).toMatch(/^missed the fire time 2024-05-01T14:00:00.000Z: 1800 s late, past the starting deadline; waiting for the next$/);
    expect(ms(s.nextFireAt)).toBe(Date.parse('2024-05-01T15:00:00Z'));
  });

  it('never fires after a pause or delete has answered, even one asked for during a fire', async () => {
    const id = await createId();
    now = T0 + 4 * MINUTE;
    const entered = deferred();
    const release = deferred();
    onEnter = () => entered.resolve();
    holds.set(id, release.promise);
    const recordFire = jest.spyOn(store, 'recordFire');
    const setState = jest.spyOn(store, 'setState');
    const firing = recurring.fireDue();
    await entered.promise;
    // The fire is inside enqueue. The pause queues behind it: it neither reads nor writes the schedule meanwhile.
    const pausing = recurring.pause(id);
    await drainStore();
    expect(setState).not.toHaveBeenCalled();
    release.resolve();
    expect(await firing).toBe(1);
    expect((await pausing).state).toBe(ScheduleState.PAUSED);
    expect(recordFire).toHaveBeenCalledTimes(1);
    expect(setState).toHaveBeenCalledTimes(1);
    expect(setState.mock.invocationCallOrder[0]!).toBeGreaterThan(recordFire.mock.invocationCallOrder[0]!);
    expect((await recurring.get(id)).fireCount).toBe(1);

    now = T0 + 60 * MINUTE;
    expect(await recurring.fireDue()).toBe(0);
    const resumed = await recurring.resume(id);
    expect(ms(resumed.nextFireAt)).toBe(T0 + 64 * MINUTE);
    await recurring.delete(id);
    now = T0 + 120 * MINUTE;
    expect(await recurring.fireDue()).toBe(0);
    expect(submitted).toHaveLength(1);
  });

  describe('with one schedule held in enqueue and another due after it', () => {
    let held: string;
    let other: string;
    let entered: Deferred<void>;
    let release: Deferred<void>;

    beforeEach(async () => {
      // Both due at 10:10; `held` first, its next fire time (10:05) being the older.
      held = await createId('*/5 * * * *');
      other = await createId('*/10 * * * *');
      now = T0 + 10 * MINUTE;
      entered = deferred();
      release = deferred();
      onEnter = (request) => scheduleOf(request) === held && entered.resolve();
      holds.set(held, release.promise);
    });

    it("answers another schedule's pause, resume, get and delete without waiting for the pass", async () => {
      const pass = recurring.fireDue();
      await entered.promise;
      expect((await recurring.pause(other)).state).toBe(ScheduleState.PAUSED);
      expect((await recurring.resume(other)).state).toBe(ScheduleState.ACTIVE);
      expect((await recurring.pause(other)).state).toBe(ScheduleState.PAUSED);
      expect((await recurring.get(held)).fireCount).toBe(0);
      const third = await createId('*/10 * * * *');
      await recurring.delete(third);
      release.resolve();
      expect(await pass).toBe(1);
      // `other` was due when the pass began, and paused before the pass reached it: not fired.
      expect(submitted.map(scheduleOf)).toEqual([held]);
      expect(await recurring.get(other)).toMatchObject({ state: ScheduleState.PAUSED, fireCount: 0 });
    }, 10_000);

    it('stop() lets the fire in progress finish and fires no other schedule', async () => {
      const pass = recurring.fireDue();
      await entered.promise;
      const stopped = recurring.stop();
      release.resolve();
      await stopped;
      expect(await pass).toBe(1);
      expect(submitted.map(scheduleOf)).toEqual([held]);
      expect((await recurring.get(held)).fireCount).toBe(1);
      expect((await recurring.get(other)).fireCount).toBe(0);
    }, 10_000);

    it('stop() gives up on a fire that hangs, after stopTimeoutMs, and says so', async () => {
      const logs: string[] = [];
      recurring = newRecurring({ stopTimeoutMs: 20, logger: pino({ level: 'warn' }, { write: (line: string) => void logs.push(line) }) });
      const pass = recurring.fireDue();
      await entered.promise;
      await recurring.stop();
      expect(logs.map((line) => (JSON.parse(line) as { msg: string }).msg)).toContain(
        'a schedule pass did not finish in time (a store or enqueue call hangs); stopping without it',
      );
      // Let the hung fire end, so the store can close.
      release.resolve();
      expect(await pass).toBe(1);
    }, 10_000);
  });
});
