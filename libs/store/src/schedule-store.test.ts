import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { PriorityClass, ScheduleState, TaskKind, TaskSpec } from '@autoglm/proto';
import { timestampToMillis } from '@autoglm/core';
import { startPostgres, type PostgresServer } from '../../../test/support/postgres-server';
import { storeEngines } from '../../../test/support/engines';
import { ScheduleStore, type NewSchedule } from './schedule-store';
import { TaskStore } from './task-store';

const T0 = Date.parse('2024-05-01T10:00:00Z');

function newSchedule(overrides: Partial<NewSchedule> = {}): NewSchedule {
  return {
    id: randomUUID(),
    tenant: 'acme',
    requestId: '',
    cron: '*/5 * * * *',
    timeZone: 'Europe/Berlin',
    spec: TaskSpec.fromPartial({ kind: TaskKind.BATCH, priorityClass: PriorityClass.BACKGROUND, gpuCount: 1, labels: { team: 'search' } }),
    state: ScheduleState.ACTIVE,
    deadlineAfterMs: 600_000,
    startingDeadlineMs: 0,
    description: 'nightly',
    createdAtMs: T0,
    nextFireAtMs: T0 + 300_000,
    ...overrides,
  };
}

// Both engines run the same tests.
const engines = storeEngines('schedule-store.test');

describe.each(engines)('ScheduleStore on %s', (engine) => {
  let dir: string;
  let tasks: TaskStore;
  let store: ScheduleStore;
  let postgres: PostgresServer | undefined;
  const open = () => TaskStore.open(engine === 'postgres' ? { databaseUrl: postgres!.url } : { dataDir: dir });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autoglm-schedules-'));
    if (engine === 'postgres') postgres = await startPostgres();
    tasks = await open();
    store = new ScheduleStore(tasks.engine);
  }, 60_000);

  afterAll(async () => {
    await tasks.close();
    await postgres?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('stores a schedule and reads it back, spec and all', async () => {
    const s = newSchedule();
    const { schedule, created } = await store.insert(s);
    expect(created).toBe(true);
    const back = await store.get(s.id);
    expect(back).toEqual(schedule);
    expect(back).toMatchObject({ id: s.id, tenant: 'acme', cron: '*/5 * * * *', timeZone: 'Europe/Berlin', state: ScheduleState.ACTIVE, description: 'nightly', fireCount: 0, lastTaskId: '' });
    expect(back!.spec!.labels).toEqual({ team: 'search' });
    expect(back!.deadlineAfter).toEqual({ seconds: 600, nanos: 0 });
    expect(back!.startingDeadline).toBeUndefined();
    expect(timestampToMillis(back!.nextFireAt!)).toBe(T0 + 300_000);
  });

  it('is idempotent on (tenant, request_id) and on the id', async () => {
    const first = newSchedule({ requestId: 'nightly-1' });
    expect((await store.insert(first)).created).toBe(true);
    const again = await store.insert(newSchedule({ requestId: 'nightly-1' }));
    expect(again).toMatchObject({ created: false, schedule: { id: first.id } });
    // The same write made again (its answer was lost): it is the one written.
    expect(await store.insert(first)).toMatchObject({ created: true, schedule: { id: first.id } });
    expect((await store.insert(newSchedule({ requestId: 'nightly-1', tenant: 'globex' }))).created).toBe(true);
  });

  it('lists newest first, by tenant, a page at a time', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const s = newSchedule({ tenant: 'lister', createdAtMs: T0 + i });
      ids.push(s.id);
      await store.insert(s);
    }
    const first = await store.list({ tenant: 'lister', limit: 3 });
    expect(first.map((s) => s.id)).toEqual([ids[4], ids[3], ids[2]]);
    const last = first[2]!;
    const second = await store.list({ tenant: 'lister', limit: 3, before: { createdAtMs: timestampToMillis(last.createdAt!), id: last.id } });
    expect(second.map((s) => s.id)).toEqual([ids[1], ids[0]]);
  });

  it('finds due active schedules only, and pauses and resumes', async () => {
    const due = newSchedule({ tenant: 'due', nextFireAtMs: T0 - 10 * 365 * 86_400_000 });
    const later = newSchedule({ tenant: 'due', nextFireAtMs: T0 + 86_400_000 * 365 * 50 });
    await store.insert(due);
    await store.insert(later);
    const now = T0 - 10 * 365 * 86_400_000 + 1;
    expect(await store.due(now, 100)).toEqual([due.id]);

    const paused = await store.setState(due.id, ScheduleState.PAUSED, null, T0 + 1);
    expect(paused).toMatchObject({ state: ScheduleState.PAUSED, nextFireAt: undefined });
    expect(await store.due(now, 100)).toEqual([]);
    // A paused schedule records no fire.
    expect(await store.recordFire(due.id, { fireAtMs: now, taskId: randomUUID(), error: '', nextFireAtMs: now + 1, atMs: T0 })).toBeUndefined();
    const resumed = await store.setState(due.id, ScheduleState.ACTIVE, now - 1, T0 + 2);
    expect(resumed).toMatchObject({ state: ScheduleState.ACTIVE, fireCount: 0 });
    expect(await store.due(now, 100)).toEqual([due.id]);
    expect(await store.setState(randomUUID(), ScheduleState.PAUSED, null, T0)).toBeUndefined();
  });

  it('records fires, counting each fire time that submitted a task once however often it is written', async () => {
    const s = newSchedule();
    await store.insert(s);
    const fireAtMs = T0 + 300_000;
    const failed = await store.recordFire(s.id, { fireAtMs, error: 'store unavailable; will retry', nextFireAtMs: fireAtMs, atMs: fireAtMs });
    expect(failed).toMatchObject({ fireCount: 0, lastError: 'store unavailable; will retry', lastTaskId: '' });
    const taskId = randomUUID();
    const fire = { fireAtMs, taskId, error: '', nextFireAtMs: fireAtMs + 300_000, atMs: fireAtMs + 5 };
    expect(await store.recordFire(s.id, fire)).toMatchObject({ fireCount: 1, lastTaskId: taskId, lastError: '' });
    expect(await store.recordFire(s.id, fire)).toMatchObject({ fireCount: 1 });
    const next = await store.recordFire(s.id, { ...fire, fireAtMs: fireAtMs + 300_000, taskId: randomUUID(), nextFireAtMs: fireAtMs + 600_000 });
    expect(next!.fireCount).toBe(2);
    expect(timestampToMillis(next!.lastFireAt!)).toBe(fireAtMs + 300_000);
    expect(timestampToMillis(next!.nextFireAt!)).toBe(fireAtMs + 600_000);
  });

  it('keeps a retried fire pending with the time to try it again, which due() sorts by, until a fire record or a pause settles it', async () => {
    const stuck = newSchedule({ tenant: 'retry', nextFireAtMs: T0 });
    const other = newSchedule({ tenant: 'retry', nextFireAtMs: T0 + 1 });
    await store.insert(stuck);
    await store.insert(other);
    const retry = { fireAtMs: T0, attempts: 2, error: 'refused: over the limit; trying again', retryAtMs: T0 + 30_000, atMs: T0 + 5 };
    const pending = await store.recordRetry(stuck.id, retry);
    expect(pending).toMatchObject({ pendingFireAttempts: 2, lastError: 'refused: over the limit; trying again', fireCount: 0, lastFireAt: undefined });
    expect(timestampToMillis(pending!.pendingFireAt!)).toBe(T0);
    expect(timestampToMillis(pending!.nextFireAt!)).toBe(T0 + 30_000);
    expect(await store.recordRetry(stuck.id, retry)).toEqual(pending);
    // Backing off, it is no longer the most overdue.
    const due = (await store.due(T0 + 10, 100)).filter((id) => id === stuck.id || id === other.id);
    expect(due).toEqual([other.id]);

    const fired = await store.recordFire(stuck.id, { fireAtMs: T0, taskId: randomUUID(), error: '', nextFireAtMs: T0 + 300_000, atMs: T0 + 30_000 });
    expect(fired).toMatchObject({ fireCount: 1, lastError: '', pendingFireAt: undefined, pendingFireAttempts: 0 });
    expect(timestampToMillis(fired!.lastFireAt!)).toBe(T0);

    await store.recordRetry(stuck.id, { ...retry, fireAtMs: T0 + 300_000, attempts: 1, retryAtMs: T0 + 301_000 });
    const paused = await store.setState(stuck.id, ScheduleState.PAUSED, null, T0 + 302_000, 'paused: no fire time can be computed');
    expect(paused).toMatchObject({ state: ScheduleState.PAUSED, pendingFireAt: undefined, pendingFireAttempts: 0, lastError: 'paused: no fire time can be computed', fireCount: 1 });
    expect(await store.recordRetry(stuck.id, retry)).toBeUndefined();
    // Without a reason, a pause or resume leaves last_error as it was.
    expect((await store.setState(stuck.id, ScheduleState.ACTIVE, T0 + 600_000, T0 + 303_000))!.lastError).toBe('paused: no fire time can be computed');
  });

  it('deletes', async () => {
    const s = newSchedule();
    await store.insert(s);
    expect((await store.delete(s.id))?.id).toBe(s.id);
    expect(await store.get(s.id)).toBeUndefined();
    expect(await store.delete(s.id)).toBeUndefined();
  });

  it('keeps schedules across a reopen', async () => {
    const s = newSchedule({ tenant: 'durable' });
    await store.insert(s);
    await tasks.close();
    tasks = await open();
    store = new ScheduleStore(tasks.engine);
    expect((await store.get(s.id))?.cron).toBe('*/5 * * * *');
  }, 60_000);
});
