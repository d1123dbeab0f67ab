import path from 'node:path';
import { AutoglmClient, startMesh, type Mesh, type MessageInit } from '@autoglm/client';
import { checkHistory, formatViolations } from '@autoglm/core';
import { TaskState, type SubmitTaskRequest, type Task, type TaskEvent } from '@autoglm/proto';

type SubmitRequest = MessageInit<SubmitTaskRequest>;
import { storeEngines } from '../support/engines';
import { readHistory } from '../support/history';
import { startPostgres, type PostgresServer } from '../support/postgres-server';
import { tempDir } from '../support/temp-dir';
import { until } from '../support/until';

/**
 * Fault injection with the services as real processes, on both store
 * engines: decision and agents are killed, an agent is frozen past its
 * lease, the store loses commits' answers. Afterwards the run's recorded
 * history is checked offline: every accepted task went through legal
 * transitions only and reached exactly one final state.
 */

/**
 * A simulated job that runs `ms` of wall time on one core of its host (no
 * GPU): the hosts offer 256 cores each, so hundreds of attempts are in
 * flight on every agent when the faults strike.
 */
const job = (ms: number): SubmitRequest => ({
  payload: { $case: 'batch', batch: { expectedDuration: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 } } },
  resources: { gpuCount: 0, cpuCores: 1, memoryBytes: 64 * 2 ** 20 },
});

/** Retries long enough to ride out a decision restart (the SDK reuses the request id). */
const PATIENT = { maxAttempts: 60, initialBackoffMs: 50, maxBackoffMs: 500 };

/** Default lease of decision: an agent silent this long is lost. */
const LEASE_MS = 3000;

interface Run {
  mesh: Mesh;
  client: AutoglmClient;
  postgres?: PostgresServer;
  dataDir: string;
  /** Deletes the data directory. */
  removeData(): void;
  /** Every task id a client got back from SubmitTask. */
  accepted: Set<string>;
  logs: string[];
}

async function startRun(engine: 'pglite' | 'postgres', name: string, env: Record<string, string> = {}): Promise<Run> {
  const data = tempDir(`chaos-${name}-${engine}`);
  const postgres = engine === 'postgres' ? await startPostgres() : undefined;
  const logs: string[] = [];
  const mesh = await startMesh({
    dataDir: data.dir,
    ports: 'ephemeral',
    agents: 4,
    logLevel: process.env.CHAOS_LOG_LEVEL ?? 'warn',
    databaseUrl: postgres?.url,
    // 256 cores per agent for the one-core jobs: one agent's lost work fits on the others at once.
    // Spread, not best-fit: the scenarios fault one agent each and need work on every one.
    env: { AUTOGLM_AGENT_CPUS: '256', AUTOGLM_PLACEMENT_MODE: 'spread', ...env },
    onLog: (service, line) => {
      if (service !== 'mesh') logs.push(`${service} ${line}`);
      if (process.env.CHAOS_LOG_GREP && new RegExp(process.env.CHAOS_LOG_GREP).test(line)) process.stderr.write(`${service} ${line}\n`);
    },
  });
  const client = new AutoglmClient({ address: mesh.publicAddress, tenant: `chaos-${name}`, token: mesh.adminToken, ca: mesh.ca, retry: PATIENT, timeoutMs: 20_000 });
  await until(async () => ((await client.listNodes()).nodes.length === 4 ? true : undefined), 20_000, '4 agents to register');
  return { mesh, client, postgres, dataDir: data.dir, removeData: data.remove, accepted: new Set(), logs };
}

async function submitMany(run: Run, requests: SubmitRequest[]): Promise<Task[]> {
  const responses = await Promise.all(requests.map((r) => run.client.submit(r)));
  const tasks = responses.map((r) => r.task!);
  for (const t of tasks) run.accepted.add(t.id);
  return tasks;
}

const UNFINISHED = [TaskState.PENDING, TaskState.WAITING_DEPS, TaskState.QUEUED, TaskState.ASSIGNED, TaskState.RUNNING, TaskState.FAILED, TaskState.PREEMPTED, TaskState.LOST];

/**
 * Waits until nothing is waiting, queued, running or waiting out a retry, and
 * the store agrees (a final transition may still be committing, retried
 * through injected faults).
 */
async function drained(run: Run, timeoutMs: number): Promise<void> {
  await until(
    async () => {
      const s = await run.client.queueStats();
      if (s.queued + s.running + s.waitingDeps + s.retrying > 0) return undefined;
      const open = await tasksIn(run, UNFINISHED);
      // A FAILED task that will not be retried is finished.
      return open.every((t) => t.finishedAt) ? true : undefined;
    },
    timeoutMs,
    'every task to finish',
  );
}

/** Every task of this run's tenant in one of `states` (newest first). */
async function tasksIn(run: Run, states: TaskState[]): Promise<Task[]> {
  const out: Task[] = [];
  let pageToken = '';
  do {
    const page = await run.client.list({ states, pageSize: 1000, pageToken });
    out.push(...page.tasks);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return out;
}

/** Stops everything a run started and deletes its data. */
async function stopRun(run: Run | undefined): Promise<void> {
  run?.client.close();
  await run?.mesh.stop();
  await run?.postgres?.stop();
  run?.removeData();
}

/** Stops the mesh and checks the history the store recorded. */
async function checkRecordedHistory(run: Run): Promise<void> {
  run.client.close();
  await run.mesh.stop();
  const events = await readHistory(run.postgres ? { databaseUrl: run.postgres.url } : { dataDir: path.join(run.dataDir, 'decision') });
  const report = checkHistory(events, { accepted: run.accepted });
  if (report.violations.length > 0) throw new Error(formatViolations(report));
  expect(report.finished).toBe(report.tasks);
  expect(report.tasks).toBeGreaterThanOrEqual(run.accepted.size);
}

const engines = storeEngines('chaos/durability.test');

describe.each(engines)('crashes and partitions on %s', (engine) => {
  let run: Run;

  beforeAll(async () => {
    run = await startRun(engine, 'crash');
  }, 90_000);

  afterAll(() => stopRun(run), 60_000);

  it('kill -9 of decision with over 1,000 accepted tasks unfinished, submissions going on: every accepted task finishes once', async () => {
    await submitMany(run, Array.from({ length: 1200 }, () => job(3000)));
    const before = await run.client.queueStats();
    expect(before.queued + before.running).toBeGreaterThanOrEqual(1000);

    // Submissions keep coming through the kill and the restart.
    let feeding = true;
    let fed = 0;
    const feeder = (async () => {
      while (feeding) fed += (await submitMany(run, Array.from({ length: 20 }, () => job(500)))).length;
    })();
    await until(async () => (fed >= 100 ? true : undefined), 20_000, 'submissions to flow');
    const decision = run.mesh.processes['decision']!;
    const pid = decision.pid!;
    expect(decision.kill('SIGKILL')).toBe(true);
    await decision.waitForRestart(pid);
    const atRestart = fed;
    await until(async () => (fed >= atRestart + 100 ? true : undefined), 30_000, 'submissions after the restart');
    feeding = false;
    await feeder;

    await drained(run, 90_000);
    const unsuccessful = await tasksIn(run, [TaskState.FAILED, TaskState.CANCELLED, TaskState.DEAD_LETTER]);
    expect(unsuccessful.map((t) => `${t.id} ${TaskState[t.state]}: ${t.reason}`)).toEqual([]);
    expect(decision.restarts).toBe(1);
  }, 180_000);

  it('kill -9 of one of 4 agents (for good) with 100+ tasks in flight: its tasks are requeued within 5 s and all complete once', async () => {
    // 600 tasks over 4 agents' 1,024 cores: about 150 land on each, and the lost ones fit on the others.
    const tasks = await submitMany(run, Array.from({ length: 600 }, () => job(2000)));
    const victim = 'agent-2';
    const onVictim = await until(
      async () => {
        const leased = (await tasksIn(run, [TaskState.ASSIGNED, TaskState.RUNNING])).filter((t) => t.nodeId === victim);
        return leased.length >= 100 ? leased : undefined;
      },
      20_000,
      `100 tasks leased to ${victim}`,
    );
    const killedAt = Date.now();
    // It stays dead: decision finds out from its silence.
    expect(run.mesh.processes[victim]!.kill('SIGKILL', { restart: false })).toBe(true);

    await drained(run, 90_000);
    const ids = new Set(tasks.map((t) => t.id));
    expect((await tasksIn(run, [TaskState.SUCCEEDED])).filter((t) => ids.has(t.id))).toHaveLength(tasks.length);
    // The lost attempts: each was requeued, and its next attempt placed, within 5 s of the kill.
    const delays = await Promise.all(
      onVictim.map(async (t) => {
        const events: TaskEvent[] = [];
        for await (const e of run.client.watch(t.id)) events.push(e);
        const lost = events.find((e) => e.state === TaskState.LOST);
        const requeued = events.find((e) => e.state === TaskState.QUEUED && e.sequence > (lost?.sequence ?? Infinity));
        const placed = events.find((e) => e.state === TaskState.ASSIGNED && e.sequence > (requeued?.sequence ?? Infinity));
        const at = (e: TaskEvent | undefined) => (e?.time ? e.time.seconds * 1000 + e.time.nanos / 1e6 - killedAt : Infinity);
        return { requeued: at(requeued), placed: at(placed), succeeded: events.filter((e) => e.state === TaskState.SUCCEEDED).length };
      }),
    );
    if (process.env.CHAOS_REPORT) {
      const max = (k: 'requeued' | 'placed') => Math.round(Math.max(...delays.map((d) => d[k])));
      process.stderr.write(`${engine}: ${onVictim.length} lost tasks, last requeued ${max('requeued')} ms and placed ${max('placed')} ms after the kill\n`);
    }
    expect(delays.every((d) => d.succeeded === 1)).toBe(true);
    expect(Math.max(...delays.map((d) => d.requeued))).toBeLessThan(5000);
    expect(Math.max(...delays.map((d) => d.placed))).toBeLessThan(5000);
  }, 180_000);

  it('SIGSTOP of an agent past its lease, then SIGCONT: its reports for the old attempts are rejected and its orphaned work is stopped', async () => {
    const tasks = await submitMany(run, Array.from({ length: 400 }, () => job(10_000)));
    const frozen = 'agent-3';
    const held = await until(
      async () => {
        const leased = (await tasksIn(run, [TaskState.RUNNING])).filter((t) => t.nodeId === frozen);
        return leased.length >= 50 ? leased : undefined;
      },
      20_000,
      `50 tasks running on ${frozen}`,
    );
    const rejectedBefore = (await run.client.queueStats()).rejectedReports;
    const agent = run.mesh.processes[frozen]!;
    expect(agent.kill('SIGSTOP')).toBe(true);
    try {
      // Decision declares it lost and requeues its work as new attempts.
      await until(
        async () => {
          const now = await Promise.all(held.map((t) => run.client.get(t.id)));
          return now.every((t) => t.attempt > 1) ? true : undefined;
        },
        LEASE_MS + 5000,
        `${frozen}'s tasks to be requeued`,
      );
    } finally {
      agent.kill('SIGCONT');
    }
    // Every old attempt's report (a success or the hand-back of stopped work) is refused.
    await until(
      async () => ((await run.client.queueStats()).rejectedReports - rejectedBefore >= held.length ? true : undefined),
      20_000,
      `${held.length} reports from ${frozen} to be rejected`,
    );
    await until(async () => (run.logs.some((l) => l.startsWith(frozen) && l.includes('self-fencing')) ? true : undefined), 10_000, `${frozen} to fence itself`);

    await drained(run, 90_000);
    const ids = new Set(tasks.map((t) => t.id));
    const succeeded = (await tasksIn(run, [TaskState.SUCCEEDED])).filter((t) => ids.has(t.id));
    expect(succeeded).toHaveLength(tasks.length);
    const heldIds = new Set(held.map((t) => t.id));
    for (const t of succeeded.filter((s) => heldIds.has(s.id))) expect(t.attempt).toBeGreaterThan(1);
  }, 180_000);

  it('recorded a legal history: each accepted task went through legal transitions only and reached exactly one final state', async () => {
    await checkRecordedHistory(run);
  }, 60_000);
});

describe.each(engines)('store faults on %s', (engine) => {
  let run: Run;

  beforeAll(async () => {
    // A quarter of writes fail before running and a quarter commit but lose their answer;
    // two tries per batch, so some submissions reach the client as UNAVAILABLE.
    run = await startRun(engine, 'faults', { AUTOGLM_STORE_FAULTS: 'transient=0.25,ambiguous=0.25,seed=42', AUTOGLM_STORE_SUBMIT_ATTEMPTS: '2' });
  }, 90_000);

  afterAll(() => stopRun(run), 60_000);

  it('on submissions and transitions: retries with the same request id yield one task, and each task completes once', async () => {
    // In small waves, so many store batches meet a fault. Each request is sent
    // twice at once and once more after: all three answers name the same task.
    // At least 200 requests; more (up to 600) until a submission has reached a
    // client as UNAVAILABLE after committing, which the faults make likely but
    // not certain in any given number of batches.
    const requestIds: string[] = [];
    const adopted = () => run.logs.some((l) => l.startsWith('decision') && l.includes('adopted a submission'));
    const mismatched: string[] = [];
    for (let i = 0; i < 200 || (!adopted() && i < 600); i += 10) {
      const wave = Array.from({ length: 10 }, (_, k) => `faulty-${i + k}`);
      requestIds.push(...wave);
      const send = () => Promise.all(wave.map((requestId) => submitMany(run, [{ ...job(200), requestId }]).then(([t]) => t!.id)));
      const [first, second] = await Promise.all([send(), send()]);
      const third = await send();
      wave.forEach((requestId, k) => {
        if (first[k] !== second[k] || second[k] !== third[k]) mismatched.push(requestId);
      });
    }
    expect(mismatched).toEqual([]);
    expect(run.accepted.size).toBe(requestIds.length);

    await drained(run, 90_000);
    const all = await tasksIn(run, []);
    expect(all).toHaveLength(requestIds.length);
    expect(all.filter((t) => t.state !== TaskState.SUCCEEDED).map((t) => `${t.id} ${TaskState[t.state]}: ${t.reason}`)).toEqual([]);
    // The faults happened, and some submissions reached clients as UNAVAILABLE after
    // committing: decision took those tasks in when the retry (or its own check) found them.
    expect(run.logs.some((l) => l.startsWith('decision') && l.includes('task store write failed'))).toBe(true);
    expect(adopted()).toBe(true);
  }, 180_000);

  it('recorded a legal history', async () => {
    await checkRecordedHistory(run);
  }, 60_000);
});
