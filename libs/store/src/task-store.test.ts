import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { PriorityClass, Task, TaskKind, TaskResult, TaskState } from '@autoglm/proto';
import { toTimestamp } from '@autoglm/core';
import { migrate, MIGRATIONS } from './migrations';
import { DataDirLockedError, lockDataDir, openPglite } from './sql-engine';
import { FaultyEngine, parseFaultSpec } from './faulty-engine';
import { startPostgres, type PostgresServer } from '../../../test/support/postgres-server';
import { storeEngines } from '../../../test/support/engines';
import { TaskStore, type StoredEvent } from './task-store';

function newTask(overrides: Partial<Task> = {}): Task {
  return Task.fromPartial({
    id: randomUUID(),
    tenant: 'acme',
    state: TaskState.QUEUED,
    attempt: 1,
    sequence: 1,
    createdAt: toTimestamp(Date.now()),
    updatedAt: toTimestamp(Date.now()),
    spec: { kind: TaskKind.INFERENCE, model: 'glm-4-9b', priorityClass: PriorityClass.NORMAL, inputTokens: 12 },
    ...overrides,
  });
}

const queuedEvent = (): StoredEvent => ({ sequence: 1, state: TaskState.QUEUED, previousState: TaskState.UNSPECIFIED, atMs: Date.now(), reason: '' });

// Both engines run the same tests.
const engines = storeEngines('task-store.test');

describe.each(engines)('TaskStore on %s', (engine) => {
  let dir: string;
  let store: TaskStore;
  let postgres: PostgresServer | undefined;
  const open = () => TaskStore.open(engine === 'postgres' ? { databaseUrl: postgres!.url } : { dataDir: dir });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autoglm-store-'));
    if (engine === 'postgres') postgres = await startPostgres();
    store = await open();
  }, 60_000);

  afterAll(async () => {
    await store.close();
    await postgres?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('applies its migrations once, however often it is opened', async () => {
    const again = await migrate(store.engine);
    expect(again).toEqual([]);
    const { rows } = await store.engine.query<{ version: number }>('SELECT version FROM schema_migrations');
    expect(rows.map((r) => Number(r.version))).toEqual(MIGRATIONS.map((m) => m.version));
  });

  it('makes concurrent submissions durable in one group commit and reads them back', async () => {
    const tasks = Array.from({ length: 500 }, () => newTask());
    const results = await Promise.all(tasks.map((t) => store.submit(t, queuedEvent())));
    expect(results.every((r) => r.created)).toBe(true);
    const back = await store.get(tasks[7]!.id);
    expect(back?.spec?.model).toBe('glm-4-9b');
    expect(back?.state).toBe(TaskState.QUEUED);
  });

  it('returns the first task for a repeated (tenant, request_id), within a batch and across batches', async () => {
    const a = newTask({ requestId: 'req-1' });
    const b = newTask({ requestId: 'req-1' });
    const [ra, rb] = await Promise.all([store.submit(a, queuedEvent()), store.submit(b, queuedEvent())]);
    expect(ra!.created).toBe(true);
    expect(rb!.created).toBe(false);
    expect(rb!.task.id).toBe(a.id);
    const later = await store.submit(newTask({ requestId: 'req-1' }), queuedEvent());
    expect(later.created).toBe(false);
    expect(later.task.id).toBe(a.id);
    const otherTenant = await store.submit(newTask({ requestId: 'req-1', tenant: 'globex' }), queuedEvent());
    expect(otherTenant.created).toBe(true);
  });

  it('makes a workflow durable all together or not at all, and a retry finds the same tasks', async () => {
    const steps = [newTask({ requestId: 'wf-1/a' }), newTask({ requestId: 'wf-1/b' })];
    const first = await store.submitAll(steps.map((task) => ({ task, event: queuedEvent() })));
    expect(first.map((r) => r.created)).toEqual([true, true]);
    const again = await store.submitAll([newTask({ requestId: 'wf-1/a' }), newTask({ requestId: 'wf-1/b' })].map((task) => ({ task, event: queuedEvent() })));
    expect(again.map((r) => [r.created, r.task.id])).toEqual(steps.map((t) => [false, t.id]));
    // One bad row (a state out of range) and nothing of its workflow lands.
    const good = newTask();
    const bad = newTask({ state: 99999 as TaskState });
    await expect(store.submitAll([good, bad].map((task) => ({ task, event: queuedEvent() })))).rejects.toThrow();
    expect(await store.get(good.id)).toBeUndefined();
  });

  it('records transitions with gapless events and keeps the last row state', async () => {
    const t = newTask();
    await store.submit(t, queuedEvent());
    const assigned = { ...t, state: TaskState.ASSIGNED, sequence: 2, nodeId: 'node-1' };
    const running = { ...assigned, state: TaskState.RUNNING, sequence: 3, startedAt: toTimestamp(Date.now()) };
    const done = { ...running, state: TaskState.SUCCEEDED, sequence: 4, finishedAt: toTimestamp(Date.now()), result: TaskResult.fromPartial({ output: 'hi', completionTokens: 2 }) };
    const ev = (seq: number, state: TaskState, prev: TaskState): StoredEvent => ({ sequence: seq, state, previousState: prev, atMs: Date.now(), reason: '' });
    await Promise.all([
      store.record(assigned, ev(2, TaskState.ASSIGNED, TaskState.QUEUED)),
      store.record(running, ev(3, TaskState.RUNNING, TaskState.ASSIGNED)),
      store.record(done, ev(4, TaskState.SUCCEEDED, TaskState.RUNNING)),
    ]);
    const back = await store.get(t.id);
    expect(back?.state).toBe(TaskState.SUCCEEDED);
    expect(back?.result?.output).toBe('hi');
    expect((await store.events(t.id, 0)).map((e) => e.sequence)).toEqual([1, 2, 3, 4]);
    expect((await store.events(t.id, 2)).map((e) => e.state)).toEqual([TaskState.RUNNING, TaskState.SUCCEEDED]);
    expect((await store.unfinished()).some((u) => u.id === t.id)).toBe(false);
  });

  // The lock guards PGlite's single-process data directory; PostgreSQL has its own.
  if (engine === 'pglite') {
    it('refuses a second process on the same data directory', () => {
      // This process holds the lock; a different live pid must be refused.
      const lockFile = path.join(dir, 'autoglm.lock');
      const mine = fs.readFileSync(lockFile, 'utf8');
      fs.writeFileSync(lockFile, String(process.ppid));
      try {
        expect(() => lockDataDir(dir)).toThrow(DataDirLockedError);
      } finally {
        fs.writeFileSync(lockFile, mine);
      }
    });
  }

  it('numbers decision incarnations so lease epochs never repeat across restarts', async () => {
    const first = await store.newIncarnation();
    expect(await store.newIncarnation()).toBe(first + 1);
  });

  it('keeps the lease, failure count and GPUs of an attempt, and marks final events', async () => {
    const t = newTask();
    await store.submit(t, queuedEvent());
    const assigned = { ...t, state: TaskState.ASSIGNED, sequence: 2, nodeId: 'node-1', leaseEpoch: 2 ** 32 * 7 + 3, gpuIndices: [2, 5], failures: 1 };
    await store.record(assigned, { sequence: 2, state: TaskState.ASSIGNED, previousState: TaskState.QUEUED, atMs: Date.now(), reason: '' });
    const back = await store.get(t.id);
    expect(back).toMatchObject({ leaseEpoch: 2 ** 32 * 7 + 3, gpuIndices: [2, 5], failures: 1 });
    const cancelled = { ...assigned, state: TaskState.CANCELLED, sequence: 3, finishedAt: toTimestamp(Date.now()) };
    await store.record(cancelled, { sequence: 3, state: TaskState.CANCELLED, previousState: TaskState.ASSIGNED, atMs: Date.now(), reason: 'x', final: true });
    expect((await store.events(t.id, 0)).map((e) => e.final)).toEqual([false, false, true]);
  });

  it('lists, counts and purges dead letters, and forgets a requeued one', async () => {
    const before = await store.countDeadLetters();
    const dead = [newTask({ tenant: 'dl' }), newTask({ tenant: 'dl' }), newTask({ tenant: 'dl-other' })];
    for (const t of dead) {
      await store.submit(t, queuedEvent());
      await store.record(
        { ...t, state: TaskState.DEAD_LETTER, sequence: 2, finishedAt: toTimestamp(Date.now()) },
        { sequence: 2, state: TaskState.DEAD_LETTER, previousState: TaskState.QUEUED, atMs: Date.now(), reason: 'no retries left', final: true },
      );
    }
    expect(await store.countDeadLetters()).toBe(before + 3);
    expect((await store.deadLetters({ tenant: 'dl', limit: 10 })).map((t) => t.id).sort()).toEqual([dead[0]!.id, dead[1]!.id].sort());
    await store.record({ ...(await store.get(dead[0]!.id))!, requeuedAs: randomUUID() });
    expect((await store.deadLetters({ tenant: 'dl', limit: 10 })).map((t) => t.id)).toEqual([dead[1]!.id]);
    // Only dead letters are purged: a live task named by mistake stays.
    const alive = newTask();
    await store.submit(alive, queuedEvent());
    expect(await store.purgeDeadLetters([dead[1]!.id, dead[2]!.id, alive.id])).toBe(2);
    expect(await store.get(dead[2]!.id)).toBeUndefined();
    expect(await store.events(dead[2]!.id, 0)).toEqual([]);
    expect(await store.get(alive.id)).toBeDefined();
    expect(await store.countDeadLetters()).toBe(before);
  });

  it('stores a reason with a NUL byte, and a bad row fails only its own write, not its batch', async () => {
    const a = newTask();
    const b = newTask();
    await Promise.all([store.submit(a, queuedEvent()), store.submit(b, queuedEvent())]);
    const failed = { ...a, state: TaskState.FAILED, sequence: 2, reason: 'exit 1: \u0000garbage' };
    // An event for a sequence that skips ahead is fine; one with an unknown state value is not (smallint overflow).
    const broken = { ...b, state: 99999 as TaskState, sequence: 2 };
    const [ok, bad] = await Promise.allSettled([
      store.record(failed, { sequence: 2, state: TaskState.FAILED, previousState: TaskState.QUEUED, atMs: Date.now(), reason: failed.reason }),
      store.record(broken, { sequence: 2, state: 99999 as TaskState, previousState: TaskState.QUEUED, atMs: Date.now(), reason: '' }),
    ]);
    expect(ok.status).toBe('fulfilled');
    expect(bad.status).toBe('rejected');
    expect((await store.get(a.id))?.reason).toBe('exit 1: \ufffdgarbage');
    expect((await store.get(b.id))?.state).toBe(TaskState.QUEUED);
  });

  it('never takes a row back to an older transition', async () => {
    const t = newTask();
    await store.submit(t, queuedEvent());
    await store.record({ ...t, state: TaskState.CANCELLED, sequence: 3 });
    await store.record({ ...t, state: TaskState.ASSIGNED, sequence: 2 });
    expect((await store.get(t.id))?.state).toBe(TaskState.CANCELLED);
  });

  it('pages through every event in (task, sequence) order', async () => {
    const seen: string[] = [];
    for await (const page of store.allEvents(7)) for (const e of page) seen.push(`${e.taskId}:${String(e.sequence).padStart(4, '0')}`);
    expect(seen.length).toBeGreaterThan(500);
    expect(seen).toEqual([...seen].sort());
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('keeps tasks across a reopen', async () => {
    const t = newTask();
    await store.submit(t, queuedEvent());
    await store.close();
    store = await open();
    expect((await store.unfinished()).map((u) => u.id)).toContain(t.id);
  });
});

describe.each(engines)('TaskStore under injected store faults on %s', (engine) => {
  let dir: string;
  let postgres: PostgresServer | undefined;
  const open = (submitAttempts: number) =>
    TaskStore.open({
      ...(engine === 'postgres' ? { databaseUrl: postgres!.url } : { dataDir: dir }),
      faults: { transient: 0, ambiguous: 0, seed: 11 },
      submitAttempts,
      retryDelayMs: 1,
    });
  const faultsOf = (store: TaskStore) => store.engine as FaultyEngine;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autoglm-faults-'));
    if (engine === 'postgres') postgres = await startPostgres();
  }, 60_000);

  afterAll(async () => {
    await postgres?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('writes every submission and transition exactly once when commits fail or lose their answer', async () => {
    const store = await open(1000);
    try {
      faultsOf(store).setFaults({ transient: 0.3, ambiguous: 0.3 });
      const tasks = Array.from({ length: 300 }, (_, i) => newTask({ requestId: i % 2 === 0 ? `faulty-${i}` : '' }));
      // Concurrent submissions in small batches, so many batches meet a fault.
      const results = [];
      for (let i = 0; i < tasks.length; i += 20) {
        results.push(...(await Promise.all(tasks.slice(i, i + 20).map((t) => store.submit(t, queuedEvent())))));
      }
      expect(results.map((r) => r.created)).toEqual(tasks.map(() => true));
      await Promise.all(
        tasks.map((t) =>
          store.record(
            { ...t, state: TaskState.CANCELLED, sequence: 2, finishedAt: toTimestamp(Date.now()) },
            { sequence: 2, state: TaskState.CANCELLED, previousState: TaskState.QUEUED, atMs: Date.now(), reason: 'done', final: true },
          ),
        ),
      );
      expect(faultsOf(store).injected.ambiguous).toBeGreaterThan(0);
      expect(faultsOf(store).injected.transient).toBeGreaterThan(0);
      faultsOf(store).setFaults({ transient: 0, ambiguous: 0 });
      const ids = new Set(tasks.map((t) => t.id));
      const events: string[] = [];
      for await (const page of store.allEvents()) for (const e of page) if (ids.has(e.taskId)) events.push(`${e.taskId}:${e.sequence}`);
      expect(events.length).toBe(2 * tasks.length);
      expect(new Set(events).size).toBe(events.length);
      const back = await store.states(tasks.map((t) => t.id));
      expect([...back.values()].every((s) => s === TaskState.CANCELLED)).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('refuses a submission it cannot confirm with UNAVAILABLE; the retry with the same request id finds the committed task', async () => {
    const store = await open(2);
    try {
      // Every write commits and loses its answer: both attempts fail.
      faultsOf(store).setFaults({ ambiguous: 1 });
      const first = newTask({ requestId: 'lost-reply' });
      await expect(store.submit(first, queuedEvent())).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/request_id/) });
      faultsOf(store).setFaults({ ambiguous: 0 });
      const retry = await store.submit(newTask({ requestId: 'lost-reply' }), queuedEvent());
      expect(retry).toMatchObject({ created: false, task: { id: first.id } });
      expect((await store.events(first.id, 0)).length).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('parses AUTOGLM_STORE_FAULTS and names a bad entry', () => {
    expect(parseFaultSpec('transient=0.1, ambiguous=0.2,seed=9')).toEqual({ transient: 0.1, ambiguous: 0.2, seed: 9 });
    expect(() => parseFaultSpec('transient=2')).toThrow(/between 0 and 1/);
    expect(() => parseFaultSpec('flaky=0.1')).toThrow(/"flaky=0.1"/);
  });
});

describe('embedded PGlite', () => {
  it('takes its buffer cache size (shared_buffers) from the options, and PostgreSQL’s default without', async () => {
    const dirs = [fs.mkdtempSync(path.join(os.tmpdir(), 'autoglm-pglite-')), fs.mkdtempSync(path.join(os.tmpdir(), 'autoglm-pglite-'))];
    const sized = await openPglite(dirs[0], { sharedBuffers: '32MB' });
    const plain = await openPglite(dirs[1]);
    try {
      expect((await sized.query<{ shared_buffers: string }>('SHOW shared_buffers')).rows[0]!.shared_buffers).toBe('32MB');
      expect((await plain.query<{ shared_buffers: string }>('SHOW shared_buffers')).rows[0]!.shared_buffers).toBe('128MB');
    } finally {
      await sized.close();
      await plain.close();
      for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
