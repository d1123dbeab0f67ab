import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { PriorityClass, Task, TaskKind, TaskResult, TaskState } from '@autoglm/proto';
import { toTimestamp } from '@autoglm/core';
import { migrate, MIGRATIONS } from './migrations';
import { DataDirLockedError, lockDataDir } from './sql-engine';
import { postgresBinDir, startPostgres, type PostgresServer } from '../../../test/support/postgres-server';
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

// Both engines run the same tests. PostgreSQL comes from Debian's package (.ci/run
// installs it); outside CI a machine without it skips that engine, saying so.
const hasPostgres = postgresBinDir() !== undefined;
if (!hasPostgres && process.env.CI !== 'true') process.stderr.write('task-store.test: PostgreSQL not installed; testing PGlite only\n');
const engines = hasPostgres || process.env.CI === 'true' ? (['pglite', 'postgres'] as const) : (['pglite'] as const);

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

  it('keeps tasks across a reopen', async () => {
    const t = newTask();
    await store.submit(t, queuedEvent());
    await store.close();
    store = await open();
    expect((await store.unfinished()).map((u) => u.id)).toContain(t.id);
  });
});
