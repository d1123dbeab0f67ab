import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { EnqueueRequest, PriorityClass, ScheduleState, Task, TaskKind, TaskSpec } from '@autoglm/proto';
import { InvalidArgumentError, timestampToMillis, UnavailableError } from '@autoglm/core';
import { ScheduleStore, TaskStore, type FireRecord } from '@autoglm/store';
import { RecurringTasks } from './recurring';

const MINUTE = 60_000;
const T0 = Date.parse('2024-05-01T10:01:00Z');

/** A store whose next `failures` fire records throw, as a crash between submitting and recording would leave it. */
class StoreFailingRecords extends ScheduleStore {
  failures = 0;
  override async recordFire(id: string, fire: FireRecord) {
    if (this.failures > 0) {
      this.failures--;
      throw new Error('lost the connection');
    }
    return super.recordFire(id, fire);
  }
}

describe('RecurringTasks', () => {
  let tasks: TaskStore;
  let store: StoreFailingRecords;
  let now: number;
  let submitted: EnqueueRequest[];
  let refuse: ((request: EnqueueRequest) => Error | undefined) | undefined;
  /** While set, submissions wait for it. */
  let blocker: Promise<void> | undefined;
  let recurring: RecurringTasks;
  /** Tasks by request id: the scheduler's idempotence, as far as these tests need it. */
  let byRequestId: Map<string, Task>;

  beforeAll(async () => {
    tasks = await TaskStore.open();
  }, 30_000);
  afterAll(() => tasks.close());

  beforeEach(async () => {
    await tasks.engine.query('DELETE FROM schedules');
    now = T0;
    submitted = [];
    refuse = undefined;
    blocker = undefined;
    byRequestId = new Map();
    store = new StoreFailingRecords(tasks.engine);
    recurring = new RecurringTasks({
      schedules: store,
      logger: pino({ level: 'silent' }),
      clock: () => now,
      enqueue: async (request) => {
        submitted.push(request);
        await blocker;
        const refusal = refuse?.(request);
        if (refusal) throw refusal;
        const known = byRequestId.get(request.requestId);
        if (known) return { task: known, created: false };
        const task = Task.fromPartial({ id: randomUUID(), requestId: request.requestId, tenant: request.tenant, spec: request.spec });
        byRequestId.set(request.requestId, task);
        return { task, created: true };
      },
    });
  });

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
    expect(after).toMatchObject({ fireCount: 1, lastError: '', lastTaskId: byRequestId.get(`schedule:${id}:${fireAt}`)!.id });
    expect(timestampToMillis(after.nextFireAt!)).toBe(fireAt + 5 * MINUTE);
  });

  it('submits again under the same request id when the fire was not recorded, and finds the same task', async () => {
    const { schedule } = await create();
    now = T0 + 4 * MINUTE;
    store.failures = 1;
    await recurring.fireDue();
    expect((await recurring.get(schedule!.id)).fireCount).toBe(0);
    // The next pass: the same request id, so the task submitted before is found, not made again.
    expect(await recurring.fireDue()).toBe(0);
    expect(submitted.map((r) => r.requestId)).toEqual([`schedule:${schedule!.id}:${T0 + 4 * MINUTE}`, `schedule:${schedule!.id}:${T0 + 4 * MINUTE}`]);
    expect(byRequestId.size).toBe(1);
    expect(await recurring.get(schedule!.id)).toMatchObject({ fireCount: 1, lastTaskId: [...byRequestId.values()][0]!.id });
  });

  it('tries a refusal that may pass again at the same fire time, and records one that will not', async () => {
    const { schedule } = await create();
    const id = schedule!.id;
    now = T0 + 4 * MINUTE;
    refuse = () => new UnavailableError('the task store did not confirm the write; retry with the same request_id');
    await recurring.fireDue();
    let s = await recurring.get(id);
    expect(s.lastError).toBe('the task store did not confirm the write; retry with the same request_id; trying again');
    expect(timestampToMillis(s.nextFireAt!)).toBe(T0 + 4 * MINUTE);
    refuse = undefined;
    now += 1000;
    expect(await recurring.fireDue()).toBe(1);
    s = await recurring.get(id);
    expect(s).toMatchObject({ fireCount: 1, lastError: '' });

    refuse = () => new InvalidArgumentError('spec.model', 'no longer in the catalog');
    now = T0 + 9 * MINUTE;
    expect(await recurring.fireDue()).toBe(0);
    s = await recurring.get(id);
    expect(s.lastError).toBe(`fire at ${new Date(T0 + 9 * MINUTE).toISOString()} refused: spec.model: no longer in the catalog`);
    expect(timestampToMillis(s.nextFireAt!)).toBe(T0 + 14 * MINUTE);
    expect(s.fireCount).toBe(1);
  });

  it('skips a missed fire time older than the starting deadline', async () => {
    const { schedule } = await create('0 * * * *', { startingDeadlineMs: 10 * MINUTE });
    now = T0 + 59 * MINUTE + 3 * 60 * MINUTE + 30 * MINUTE;
    expect(await recurring.fireDue()).toBe(0);
    expect(submitted).toEqual([]);
    const s = await recurring.get(schedule!.id);
    expect(s.lastError).toMatch(/^missed the fire time 2024-05-01T14:00:00.000Z: 1800 s late, past the starting deadline; waiting for the next$/);
    expect(timestampToMillis(s.nextFireAt!)).toBe(Date.parse('2024-05-01T15:00:00Z'));
  });

  it('never fires after a pause or delete has answered, even one asked for during a fire', async () => {
    const { schedule } = await create();
    const id = schedule!.id;
    now = T0 + 4 * MINUTE;
    let release!: () => void;
    blocker = new Promise<void>((resolve) => (release = resolve));
    const slow = recurring.fireDue();
    // The pause queues behind the fire in progress, which is waiting in enqueue.
    const pausing = recurring.pause(id);
    let pauseAnswered = false;
    void pausing.then(() => (pauseAnswered = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(submitted).toHaveLength(1);
    expect(pauseAnswered).toBe(false);
    release();
    expect(await slow).toBe(1);
    expect((await pausing).state).toBe(ScheduleState.PAUSED);
    now = T0 + 60 * MINUTE;
    expect(await recurring.fireDue()).toBe(0);
    const resumed = await recurring.resume(id);
    expect(timestampToMillis(resumed.nextFireAt!)).toBe(T0 + 64 * MINUTE);
    await recurring.delete(id);
    now = T0 + 120 * MINUTE;
    expect(await recurring.fireDue()).toBe(0);
    expect(submitted).toHaveLength(1);
  });
});
