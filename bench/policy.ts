import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { EnqueueRequest, PriorityClass, TaskKind } from '@autoglm/proto';
import { DecisionConfigSchema, startDecision } from '@autoglm/decision';
import { TaskStore } from '@autoglm/store';
import { DEFAULT_PLACEMENT_POLICY, DEFAULT_POLICY, Dispatcher, FairShare, Fleet, seededRandom, type Claim, type Demand, type QueuedTaskInit } from '@autoglm/core';
import { postgresBinDir, startPostgres } from '../test/support/postgres-server';
import { printTable, writeResult, flag, rssMb } from './lib/report';

/**
 * The scheduling policy's own cost, without the network or the store:
 * - ordering: one decision = take the highest-priority task out of a queue of
 *   N and put a new one in (so the queue stays at N);
 * - dispatch: one decision = a GPU frees, a dispatch pass runs (fair share,
 *   quota, overdue list, placement) and refills it, with N queued behind;
 * - memory: RSS of a fresh process holding N queued tasks in the dispatcher
 *   (queue, fair share), measured in a child so nothing else is counted;
 * - decision memory: a whole decision (scheduler, task records, its store
 *   client) in a child, on an existing store as a restarted decision has:
 *   its RSS after 10,000 tasks are submitted through Scheduler.enqueue
 *   (durable, queued, no agent to run them; start-up churn is over by then)
 *   and after D (a million by default; fewer are projected to a million from
 *   the growth in between). Embedded PGlite as shipped, with V8's default
 *   heap limit and with the heap capped (--decision-heap-mb, 768), then
 *   capped with a 32 MB buffer cache (AUTOGLM_PGLITE_SHARED_BUFFERS), and an
 *   external PostgreSQL (capped) when Debian's postgresql is installed.
 *   Embedded PGlite runs in decision's process, so its memory is counted; a
 *   PostgreSQL server's is not.
 *
 * The workload: 50 tenants, three classes, priorities -1000..1000, one task
 * in ten with a deadline, one in five with dependents.
 */
export async function policy(args: string[]): Promise<void> {
  if (args[0] === '--hold') return holdQueued(Number(args[1]));
  if (args[0] === '--hold-decision') return holdInDecision(Number(args[1]), args[2]!, JSON.parse(args[3]!) as StoreChoice);
  const queued = Number(flag(args, '--queued') ?? 100_000);
  const million = Number(flag(args, '--memory-tasks') ?? 1_000_000);
  const ordering = measureOrdering(queued, 300_000);
  const dispatch = measureDispatch(queued, 100_000);
  const memory = await measureMemory(million);
  const decisionTasks = Number(flag(args, '--decision-tasks') ?? 1_000_000);
  // Growth is measured from the 10,000-task baseline (DECISION_WARM_UP), so there must be more.
  if (!(decisionTasks > DECISION_WARM_UP)) throw new Error(`--decision-tasks: ${decisionTasks} is not more than the ${DECISION_WARM_UP.toLocaleString('en')} tasks the baseline is taken at`);
  const heapMb = Number(flag(args, '--decision-heap-mb') ?? 768);
  const capped = `${heapMb} MB heap`;
  const stores: Array<{ store: string; options: StoreChoice; heapMb?: number }> = [
    { store: 'embedded PGlite, V8 default heap', options: {} },
    { store: `embedded PGlite, ${capped}`, options: {}, heapMb },
    { store: `embedded PGlite, ${capped}, 32 MB buffer cache`, options: { pgliteSharedBuffers: '32MB' }, heapMb },
  ];
  const postgres = postgresBinDir() ? await startPostgres() : undefined;
  if (postgres) stores.push({ store: `external PostgreSQL, ${capped}`, options: { databaseUrl: postgres.url }, heapMb });
  const decisions: Array<DecisionMemory & { store: string; projectedMb: number }> = [];
  try {
    for (const { store, options, heapMb: cap } of stores) {
      const m = await measureDecision(decisionTasks, options, cap);
      decisions.push({ store, ...m, projectedMb: m.rssMb + (m.bytesPerTask * (million - decisionTasks)) / 2 ** 20 });
    }
  } finally {
    await postgres?.stop();
  }
  const atMillion = decisionTasks === million ? '' : ' (projected)';
  const rows = [
    { measure: `ordering decisions/s, ${queued.toLocaleString('en')} queued`, value: Math.round(ordering.perSecond), target: '≥ 50,000', ratio: (ordering.perSecond / 50_000).toFixed(2) + '×' },
    { measure: `dispatch decisions/s, ${queued.toLocaleString('en')} queued`, value: Math.round(dispatch.perSecond), target: '≥ 50,000', ratio: (dispatch.perSecond / 50_000).toFixed(2) + '×' },
    { measure: `queue RSS MB, ${million.toLocaleString('en')} queued (policy structures only)`, value: memory.rssMb, target: '', ratio: '' },
    { measure: 'queue bytes per queued task', value: Math.round(memory.bytesPerTask), target: '', ratio: '' },
    ...decisions.flatMap((d) => [
      { measure: `decision RSS MB, ${million.toLocaleString('en')} queued${atMillion}: ${d.store}`, value: Math.round(d.projectedMb), target: '< 1,024', ratio: (d.projectedMb / 1024).toFixed(2) + '×' },
      { measure: `  RSS MB with 10,000 queued / JS heap bytes per task`, value: `${d.baselineMb} / ${Math.round(d.heapBytesPerTask)}`, target: '', ratio: '' },
      { measure: `  submissions/s while filling`, value: Math.round(d.submitsPerSecond), target: '', ratio: '' },
    ]),
  ];
  if (!postgres) console.log('(external PostgreSQL not measured: Debian\'s postgresql is not installed)');
  printTable('Scheduling policy: decisions per second and queue memory', rows);
  console.log(`\n${writeResult('policy', { queued, ordering, dispatch, memory, decisionTasks, decisions })}`);
}

interface StoreChoice {
  databaseUrl?: string;
  pgliteSharedBuffers?: string;
}

interface DecisionMemory {
  tasks: number;
  rssMb: number;
  baselineMb: number;
  bytesPerTask: number;
  heapBytesPerTask: number;
  submitsPerSecond: number;
}

/**
 * A decision on an existing, empty store in a child, filled with `tasks`
 * queued tasks; with `heapMb`, its V8 heap capped there (--max-old-space-size,
 * as a deployment with a memory budget runs it: uncapped, V8 lets garbage
 * pile up towards its own limit, a quarter of the machine's memory, before
 * collecting, and the RSS shows that rather than what is held).
 */
async function measureDecision(tasks: number, store: StoreChoice, heapMb?: number): Promise<DecisionMemory> {
  // The data directory (or database) exists already, as a restarted decision finds it
  // (creating a PGlite directory leaves that process holding some 500 MB more).
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'autoglm-bench-decision-'));
  try {
    const schema = await TaskStore.open({ dataDir, ...store });
    await schema.close();
    const report = await probe<Omit<DecisionMemory, 'tasks' | 'bytesPerTask'> & { baselineTasks: number }>(
      ['--hold-decision', String(tasks), dataDir, JSON.stringify(store)],
      heapMb ? [`--max-old-space-size=${heapMb}`] : [],
    );
    return { ...report, tasks, bytesPerTask: ((report.rssMb - report.baselineMb) * 2 ** 20) / (tasks - report.baselineTasks) };
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

const TENANTS = 50;
/** Tasks a measured decision is given before its baseline RSS is read. */
const DECISION_WARM_UP = 10_000;

function taskAt(i: number, random: () => number, nowMs: number): QueuedTaskInit {
  const r = random();
  return {
    id: `task-${i.toString(36).padStart(8, '0')}-${Math.floor(random() * 2 ** 40).toString(16)}`,
    tenant: `tenant-${Math.floor(random() * TENANTS)}`,
    priorityClass: r < 0.2 ? PriorityClass.URGENT : r < 0.7 ? PriorityClass.NORMAL : PriorityClass.BACKGROUND,
    priority: Math.floor(random() * 2001) - 1000,
    readySinceMs: nowMs,
    deadlineMs: random() < 0.1 ? nowMs + 60_000 + random() * 3_600_000 : undefined,
    predictedRunMs: 1000 + random() * 60_000,
    dependents: random() < 0.2 ? Math.floor(random() * 10) : 0,
    resourceShare: random() * 0.25,
  };
}

function newDispatcher(fleet: Fleet, nowMs: number, demands: Map<string, Demand>): Dispatcher {
  const fairShare = new FairShare(
    Array.from({ length: TENANTS }, (_, i) => ({ name: `tenant-${i}`, share: 1 + (i % 3) })),
    { halfLifeMs: DEFAULT_POLICY.fairShareHalfLifeMs, nowMs },
  );
  return new Dispatcher({ fleet, fairShare, policy: DEFAULT_POLICY, nowMs, demandOf: (id) => demands.get(id) });
}

const GiB = 2 ** 30;
const DEMAND: Demand = { kind: 'gpus', model: '', gpuCount: 1, gpuMemoryBytes: 4 * GiB, tokens: 0, cpuMillis: 0, memoryBytes: 0 };

function measureOrdering(queued: number, decisions: number): { perSecond: number; decisions: number } {
  const random = seededRandom(1);
  let now = 1_700_000_000_000;
  const fleet = new Fleet(undefined, () => now);
  const d = newDispatcher(fleet, now, new Map());
  let i = 0;
  for (; i < queued; i++) d.enqueue(taskAt(i, random, now), now);
  const tasks = Array.from({ length: decisions }, (_, k) => taskAt(i + k, random, now));
  const start = process.hrtime.bigint();
  for (let k = 0; k < decisions; k++) {
    // The clock moves 1 ms per decision: ages grow, deadline urgency is re-keyed as it goes.
    now += 1;
    if (k % 64 === 0) d.queue.maintain(now);
    const best = d.queue.popBest();
    if (best) d.queue.remove(best.id);
    d.queue.push({ ...tasks[k]!, readySinceMs: now }, now);
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { perSecond: decisions / seconds, decisions };
}

function measureDispatch(queued: number, decisions: number): { perSecond: number; decisions: number; placed: number } {
  const random = seededRandom(2);
  let now = 1_700_000_000_000;
  const fleet = new Fleet({ ...DEFAULT_PLACEMENT_POLICY, maxGpuUtilization: 1, staleTelemetryMs: Infinity }, () => now);
  for (let n = 0; n < 64; n++) {
    fleet.upsert({ nodeId: `node-${n}`, address: '', models: ['*'], backends: ['sim'], cpuMillis: 0, memoryBytes: 0, gpus: Array.from({ length: 8 }, (_, g) => ({ index: g, memoryTotalBytes: 80 * GiB })) });
  }
  const demands = new Map<string, Demand>();
  const d = newDispatcher(fleet, now, demands);
  d.fleetChanged(now);
  const running: Array<{ id: string; claim: Claim }> = [];
  const add = (k: number) => {
    const t = taskAt(k, random, now);
    demands.set(t.id, DEMAND);
    d.enqueue(t, now);
  };
  let i = 0;
  for (; i < queued + 512; i++) add(i);
  for (const p of d.dispatch(now)) running.push({ id: p.task.id, claim: p.claim });
  let placed = 0;
  const start = process.hrtime.bigint();
  for (let k = 0; k < decisions; k++) {
    now += 1;
    // A random running task finishes; a new one arrives; a pass fills the freed GPU.
    const j = Math.floor(random() * running.length);
    const done = running[j]!;
    running[j] = running[running.length - 1]!;
    running.pop();
    fleet.release(done.claim);
    d.release(done.id, now);
    demands.delete(done.id);
    add(i++);
    for (const p of d.dispatch(now)) {
      running.push({ id: p.task.id, claim: p.claim });
      placed += 1;
    }
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { perSecond: decisions / seconds, decisions, placed };
}

/** Runs this benchmark in a child (so nothing else is counted in its memory) and returns what it reports. */
async function probe<T>(args: string[], nodeFlags: string[] = []): Promise<T> {
  const child = fork(__filename.endsWith('.ts') ? require.resolve('./run.ts') : __filename, ['policy', ...args], {
    execArgv: [...process.execArgv, '--expose-gc', ...nodeFlags],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    return await new Promise<T>((resolve, reject) => {
      child.once('message', (m) => resolve(m as T));
      child.once('exit', (code) => reject(new Error(`memory probe ${args[0]} exited with ${code}`)));
    });
  } finally {
    child.kill();
  }
}

/** A child holding `tasks` queued tasks in a dispatcher alone: its RSS. */
async function measureMemory(tasks: number): Promise<{ rssMb: number; baselineMb: number; bytesPerTask: number; tasks: number }> {
  const report = await probe<{ rssMb: number; baselineMb: number }>(['--hold', String(tasks)]);
  return { ...report, tasks, bytesPerTask: ((report.rssMb - report.baselineMb) * 2 ** 20) / tasks };
}

/** In the child: fill a dispatcher with `tasks` queued tasks, then report RSS after a GC. */
function holdQueued(tasks: number): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const baselineMb = rssMb();
  const random = seededRandom(3);
  const now = 1_700_000_000_000;
  const fleet = new Fleet(undefined, () => now);
  const d = newDispatcher(fleet, now, new Map());
  for (let i = 0; i < tasks; i++) d.enqueue(taskAt(i, random, now), now);
  gc?.();
  const heldMb = rssMb();
  if (d.size !== tasks) throw new Error(`queued ${d.size}, expected ${tasks}`);
  process.send!({ rssMb: heldMb, baselineMb });
}

/** In the child: a decision on an existing empty store; RSS with 10,000 tasks submitted and queued, then with `tasks`. */
async function holdInDecision(tasks: number, dir: string, store: StoreChoice): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const decision = await startDecision(DecisionConfigSchema.parse({ listen: '127.0.0.1:0', dataDir: dir, ...store }), pino({ level: 'silent' }));
  const classes = [PriorityClass.URGENT, PriorityClass.NORMAL, PriorityClass.BACKGROUND];
  const warmUp = DECISION_WARM_UP;
  let baselineMb = 0;
  let baselineHeap = 0;
  let startedAt = 0;
  for (let i = 0; i < tasks; i += 2000) {
    if (i === warmUp) {
      gc?.();
      baselineMb = rssMb();
      baselineHeap = process.memoryUsage().heapUsed;
      startedAt = performance.now();
    }
    await Promise.all(
      Array.from({ length: Math.min(2000, tasks - i) }, (_, k) =>
        decision.scheduler.enqueue(
          EnqueueRequest.fromPartial({
            tenant: `tenant-${(i + k) % TENANTS}`,
            spec: {
              kind: TaskKind.BATCH,
              gpuCount: 1,
              gpuMemoryBytes: 4 * GiB,
              priorityClass: classes[(i + k) % 3],
              maxRetries: 3,
              payload: { $case: 'batch', batch: { command: ['python', 'train.py', '--shard', String(i + k)], env: {} } },
            },
          }),
        ),
      ),
    );
  }
  const seconds = (performance.now() - startedAt) / 1000;
  // Past the turn in which the last tasks were queued, so they are at rest as queued tasks are.
  await new Promise((resolve) => setImmediate(resolve));
  gc?.();
  const heldMb = rssMb();
  const heapBytesPerTask = (process.memoryUsage().heapUsed - baselineHeap) / (tasks - warmUp);
  const queued = decision.scheduler.queueStats().queued;
  await decision.stop();
  if (queued !== tasks) throw new Error(`queued ${queued}, expected ${tasks}`);
  process.send!({ rssMb: heldMb, baselineMb, baselineTasks: warmUp, heapBytesPerTask, submitsPerSecond: (tasks - warmUp) / seconds });
}
