import { fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Metadata } from '@grpc/grpc-js';
import { toTimestamp } from '@autoglm/core';
import { DecisionServiceClient, PriorityClass, Task, TaskKind, TaskSpec, TaskState, type QueueStats } from '@autoglm/proto';
import { createClient } from '@autoglm/runtime';
import { TaskStore, type StoredEvent, type TaskStoreOptions } from '@autoglm/store';
import { startPostgres, type PostgresServer } from '../test/support/postgres-server';
import { printTable, writeResult, flag, rssMb } from './lib/report';

/**
 * Durability costs, on both engines, in one run:
 * - acknowledged durable submissions per second: the store resolves a
 *   submission only after its commit. Group commit (what decision uses)
 *   against one transaction per task, with the same number in flight;
 * - decision restart time with 100,000 queued tasks: a fresh decision process
 *   on the same store, from fork to ready (queue rebuilt, serving), and its
 *   memory afterwards.
 */
export async function durability(args: string[]): Promise<void> {
  const submissions = Number(flag(args, '--submissions') ?? 40_000);
  const perTaskSubmissions = Number(flag(args, '--per-task-submissions') ?? 4_000);
  const inFlight = Number(flag(args, '--in-flight') ?? 512);
  const queued = Number(flag(args, '--queued') ?? 100_000);
  const engines = (flag(args, '--engines') ?? 'pglite,postgres').split(',') as Array<'pglite' | 'postgres'>;

  const rows: Array<Record<string, string | number>> = [];
  const result: Record<string, unknown> = { submissions, perTaskSubmissions, inFlight, queued };
  for (const engine of engines) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `autoglm-durability-${engine}-`));
    let postgres: PostgresServer | undefined;
    try {
      if (engine === 'postgres') postgres = await startPostgres();
      const where: TaskStoreOptions = postgres ? { databaseUrl: postgres.url } : { dataDir: dir };

      const store = await TaskStore.open(where);
      const grouped = await measure(submissions, inFlight, (task, event) => store.submit(task, event));
      const single = await measure(perTaskSubmissions, inFlight, (task, event) => submitInOwnTransaction(store, task, event));
      // The queue a restarted decision rebuilds (on top of the tasks above, which stay queued too).
      const fill = Math.max(0, queued - submissions - perTaskSubmissions);
      await measure(fill, inFlight, (task, event) => store.submit(task, event));
      await store.close();

      const restart = await restartDecision(engine === 'postgres' ? { AUTOGLM_DATABASE_URL: postgres!.url } : { AUTOGLM_DATA_DIR: dir });
      result[engine] = { groupCommitPerSecond: grouped, oneTransactionPerTaskPerSecond: single, restart };
      rows.push({
        engine,
        'group commit acks/s': grouped,
        '1 txn per task acks/s': single,
        speed: `${(grouped / single).toFixed(1)}x`,
        'restart queued': restart.queued,
        'restart s': restart.readyMs / 1000,
        'rss MB': restart.rssMb,
      });
    } finally {
      await postgres?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  printTable(`durability: acknowledged durable submissions (${inFlight} in flight) and decision restart with ${queued.toLocaleString()} queued tasks`, rows);
  console.log('\ntargets: >= 5,000 acks/s on PGlite, >= 10,000 acks/s on PostgreSQL, restart < 10 s');
  console.log(`wrote ${writeResult('durability', result)}`);
}

/** Submissions per second with `inFlight` outstanding at a time. */
async function measure(total: number, inFlight: number, submit: (task: Task, event: StoredEvent) => Promise<unknown>): Promise<number> {
  if (total === 0) return 0;
  let next = 0;
  const start = performance.now();
  const lane = async () => {
    while (next < total) {
      next += 1;
      const { task, event } = newTask();
      await submit(task, event);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, total) }, lane));
  return Math.round(total / ((performance.now() - start) / 1000));
}

/** The baseline: each submission in its own transaction (two statements: the task row, its event). */
async function submitInOwnTransaction(store: TaskStore, task: Task, event: StoredEvent): Promise<void> {
  await store.engine.transaction(async (tx) => {
    await tx.query(
      `INSERT INTO tasks (id, tenant, request_id, state, attempt, seq, priority_class, created_at, updated_at, reason, spec)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, '', $9)`,
      [task.id, task.tenant, task.requestId, task.state, task.attempt, task.sequence, task.spec!.priorityClass, event.atMs, Buffer.from(TaskSpec.encode(task.spec!).finish())],
    );
    await tx.query(`INSERT INTO task_events (task_id, seq, state, prev_state, at, reason) VALUES ($1, 1, $2, 0, $3, '')`, [task.id, task.state, event.atMs]);
  });
}

let counter = 0;
function newTask(): { task: Task; event: StoredEvent } {
  const now = Date.now();
  counter += 1;
  const task = Task.fromPartial({
    id: randomUUID(),
    requestId: `bench-${counter}-${now}`,
    tenant: `tenant-${counter % 3}`,
    state: TaskState.QUEUED,
    attempt: 1,
    sequence: 1,
    createdAt: toTimestamp(now),
    updatedAt: toTimestamp(now),
    spec: {
      kind: TaskKind.BATCH,
      priorityClass: [PriorityClass.URGENT, PriorityClass.NORMAL, PriorityClass.BACKGROUND][counter % 3],
      gpuCount: 1,
      gpuMemoryBytes: 2 * 1024 ** 3,
      maxRetries: 3,
      labels: { team: 'bench' },
      payload: { $case: 'batch', batch: { command: ['python', 'train.py', '--epochs', '3'], env: {}, expectedDuration: { seconds: 60, nanos: 0 } } },
    },
  });
  return { task, event: { sequence: 1, state: TaskState.QUEUED, previousState: TaskState.UNSPECIFIED, atMs: now, reason: '' } };
}

/** Starts decision on the filled store; times fork → ready, and checks the queue it rebuilt. */
async function restartDecision(env: Record<string, string>): Promise<{ readyMs: number; queued: number; rssMb: number }> {
  const entry = path.resolve(__dirname, '..', 'services', 'decision', 'dist', 'main.js');
  const start = performance.now();
  const child = fork(entry, [], {
    env: { ...process.env, ...env, AUTOGLM_DECISION_LISTEN: '127.0.0.1:0', AUTOGLM_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const address = await new Promise<string>((resolve, reject) => {
      child.once('message', (m: { type?: string; grpcAddress?: string }) => (m.type === 'ready' && m.grpcAddress ? resolve(m.grpcAddress) : reject(new Error(`unexpected ${JSON.stringify(m)}`))));
      child.once('exit', (code) => reject(new Error(`decision exited with ${code} before it was ready`)));
    });
    const readyMs = performance.now() - start;
    const client = createClient(DecisionServiceClient, address);
    const stats = await new Promise<QueueStats>((resolve, reject) => client.getQueueStats({}, new Metadata(), (err, res) => (err ? reject(err) : resolve(res!))));
    client.close();
    const rss = rssMb(child.pid!);
    return { readyMs, queued: stats.queued, rssMb: rss };
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
}
