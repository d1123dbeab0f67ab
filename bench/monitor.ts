import pino from 'pino';
import { DEFAULT_FEEDBACK_CONFIG, DEFAULT_BACKLOG_RULES, DEFAULT_SLOS } from '@autoglm/core';
import { FeedbackDriver, FeedbackMetrics, LiveState, MonitorMetrics, MonitorSummary } from '@autoglm/monitor';
import {
  Event,
  NodeState,
  PriorityClass,
  ReplicaState,
  TaskKind,
  TaskState,
  type DecisionServiceClient,
  type Node,
  type Task,
  type TaskEvent,
} from '@autoglm/proto';
import { flag, percentile, printTable, rssMb, writeResult } from './lib/report';

/**
 * `npm run bench -- monitor [--agents 1000] [--tasks-per-second 5000] [--seconds 120] [--hour]`:
 * how many of decision's events the monitor ingests per second on one core,
 * and its memory as simulated time goes on. A synthetic stream as decision
 * sends it: batched `Event` messages (1,024 events each), every task going
 * PENDING → QUEUED → ASSIGNED → RUNNING → SUCCEEDED (about 2 s later, with its
 * result), one node snapshot per agent per second (8 GPUs, 2 replicas each),
 * 50 tenants, 10 models, a class mix. Timed: decoding the messages and every
 * observer the monitor runs on them (Prometheus metrics, the summary, the
 * feedback loop, the dashboard's live state), plus the loop's evaluation
 * every 10 simulated seconds and the dashboard's update every second (built
 * and serialised as its SSE clients are sent it).
 * Generating and encoding the stream is not timed. With
 * NODE_OPTIONS=--expose-gc the heap is measured after a collection (what is
 * live), otherwise with garbage in it. `--hour` runs a whole
 * simulated hour (about 94 million events at the defaults: minutes).
 */
export async function monitor(args: string[]): Promise<void> {
  const agents = Number(flag(args, '--agents') ?? 1000);
  const perSecond = Number(flag(args, '--tasks-per-second') ?? 5000);
  const seconds = args.includes('--hour') ? 3600 : Number(flag(args, '--seconds') ?? 120);
  const checkpoints = new Set([10, 60, 300, 900, 1800, 3600, seconds].filter((s) => s <= seconds));

  let simNowMs = Date.UTC(2026, 0, 1);
  const metrics = new MonitorMetrics();
  const summary = new MonitorSummary({ now: () => simNowMs });
  const feedback = new FeedbackDriver({
    decision: stubDecision(),
    config: DEFAULT_FEEDBACK_CONFIG,
    slos: DEFAULT_SLOS,
    backlogRules: DEFAULT_BACKLOG_RULES,
    evaluateEveryMs: 10_000,
    forecastIntervalMs: 10_000,
    sequencesPerReplica: 256,
    metrics: new FeedbackMetrics(metrics.registry, DEFAULT_SLOS),
    logger: pino({ level: 'silent' }),
    clock: () => simNowMs,
  });
  const live = new LiveState({ now: () => simNowMs });
  const observe = (event: Event): void => {
    metrics.observe(event);
    summary.observe(event);
    feedback.observe(event);
    live.observe(event);
  };
  /** Building and serialising each second's dashboard update (what every SSE client is sent), ms. */
  const updateMs: number[] = [];

  const stream = new SyntheticStream(agents, perSecond);
  const rows: Array<Record<string, string | number>> = [];
  const series: Array<{ simulatedSeconds: number; events: number; eventsPerSecond: number; cpuShare: number; rssMb: number; heapMb: number }> = [];
  let busyNs = 0n;
  let events = 0;
  for (let s = 1; s <= seconds; s++) {
    simNowMs += 1000;
    const messages = stream.second(simNowMs);
    const started = process.hrtime.bigint();
    for (const bytes of messages) {
      const message = Event.decode(bytes);
      if (message.kind?.$case === 'batch') {
        for (const e of message.kind.batch.events) observe(e);
        events += message.kind.batch.events.length;
      }
    }
    if (s % 10 === 0) await feedback.evaluate();
    const tickStarted = process.hrtime.bigint();
    JSON.stringify(live.tick());
    const tickEnded = process.hrtime.bigint();
    updateMs.push(Number(tickEnded - tickStarted) / 1e6);
    busyNs += tickEnded - started;
    if (checkpoints.has(s)) {
      const busySeconds = Number(busyNs) / 1e9;
      // Live heap, not garbage yet to be collected, when the run allows it (NODE_OPTIONS=--expose-gc).
      (globalThis as { gc?: () => void }).gc?.();
      const mem = process.memoryUsage();
      const point = { simulatedSeconds: s, events, eventsPerSecond: Math.round(events / busySeconds), cpuShare: busySeconds / s, rssMb: rssMb(), heapMb: Math.round(mem.heapUsed / 2 ** 20) };
      series.push(point);
      rows.push({ 'simulated s': s, events: point.events, 'events/s ingested': point.eventsPerSecond, 'of one core at this load': `${(point.cpuShare * 100).toFixed(1)}%`, 'RSS MB': point.rssMb, 'heap MB': point.heapMb });
    }
  }
  const snapshotStarted = process.hrtime.bigint();
  const snapshotBytes = JSON.stringify(live.snapshot()).length;
  const snapshotMs = Number(process.hrtime.bigint() - snapshotStarted) / 1e6;
  const sorted = [...updateMs].sort((a, b) => a - b);
  const update = { p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), snapshotMs, snapshotKb: Math.round(snapshotBytes / 1024) };
  const offered = perSecond * 5 + agents;
  printTable(`Monitor ingest: ${agents} agents, ${perSecond} tasks/s (${offered} events/s offered), one core`, rows);
  const last = series[series.length - 1]!;
  console.log(`\nheadroom: ingests ${(last.eventsPerSecond / offered).toFixed(1)}× the offered rate; target 50,000 events/s: ${last.eventsPerSecond >= 50_000 ? 'met' : 'missed'}`);
  console.log(`memory: RSS ${series[0]!.rssMb} MB after ${series[0]!.simulatedSeconds} s, ${last.rssMb} MB after ${last.simulatedSeconds} s`);
  console.log(
    `dashboard: an update is pushed once a second; building and serialising it takes p50 ${update.p50Ms.toFixed(2)} ms, p99 ${update.p99Ms.toFixed(2)} ms ` +
      `(so an event reaches the page within a second plus that); a new client's snapshot (${agents} nodes) ${update.snapshotMs.toFixed(1)} ms, ${update.snapshotKb} KiB`,
  );
  const file = writeResult('monitor', { agents, tasksPerSecond: perSecond, offeredEventsPerSecond: offered, seconds, series, dashboardUpdate: update });
  console.log(`\nwrote ${file}`);
}

const TENANTS = Array.from({ length: 50 }, (_, i) => `tenant-${i}`);
const MODELS = Array.from({ length: 10 }, (_, i) => `model-${i}`);
const CLASSES = [PriorityClass.URGENT, PriorityClass.NORMAL, PriorityClass.NORMAL, PriorityClass.BACKGROUND];

/** Decision's events for a fleet and a steady arrival rate, one simulated second at a time, encoded as batches. */
class SyntheticStream {
  private next = 0;
  /** Tasks started two seconds ago finish now. */
  private readonly running: Task[][] = [[], []];
  private sequence = 0;

  constructor(
    private readonly agents: number,
    private readonly perSecond: number,
  ) {}

  second(nowMs: number): Uint8Array[] {
    const events: Event[] = [];
    const time = { seconds: Math.floor(nowMs / 1000), nanos: 0 };
    const finishing = this.running.shift()!;
    for (const task of finishing) {
      const done: Task = {
        ...task,
        state: TaskState.SUCCEEDED,
        finishedAt: time,
        result: { output: '', finishReason: 'stop', promptTokens: 500, completionTokens: 200, exitCode: 0, queueTime: { seconds: 0, nanos: 50_000_000 }, runTime: { seconds: 2, nanos: 0 }, timeToFirstToken: { seconds: 0, nanos: 120_000_000 } },
      };
      events.push(this.event(done, TaskState.RUNNING, time));
    }
    const started: Task[] = [];
    for (let i = 0; i < this.perSecond; i++) {
      const n = this.next++;
      const inference = n % 4 !== 0;
      const task: Task = {
        id: `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`,
        requestId: '',
        tenant: TENANTS[n % TENANTS.length]!,
        spec: {
          kind: inference ? TaskKind.INFERENCE : TaskKind.BATCH,
          model: MODELS[n % MODELS.length]!,
          inputTokens: 500,
          maxOutputTokens: 256,
          gpuCount: inference ? 0 : 1,
          gpuMemoryBytes: 0,
          priorityClass: CLASSES[n % CLASSES.length]!,
          priority: 0,
          deadline: undefined,
          dependsOn: [],
          preemptible: false,
          maxRetries: 3,
          labels: {},
          interactive: inference,
          payload: undefined,
          deadlinePolicy: 0,
          policyVariant: '',
          cpuMillis: 0,
          memoryBytes: 0,
        },
        state: TaskState.PENDING,
        attempt: 1,
        sequence: 0,
        createdAt: time,
        updatedAt: time,
        startedAt: undefined,
        finishedAt: undefined,
        nodeId: `node-${n % this.agents}`,
        result: undefined,
        reason: '',
        failures: 0,
        leaseEpoch: 1,
        gpuIndices: [],
        requeuedAs: '',
      };
      let previous = TaskState.UNSPECIFIED;
      for (const state of [TaskState.PENDING, TaskState.QUEUED, TaskState.ASSIGNED, TaskState.RUNNING]) {
        events.push(this.event({ ...task, state }, previous, time));
        previous = state;
      }
      started.push(task);
    }
    this.running.push(started);
    for (let a = 0; a < this.agents; a++) events.push({ kind: { $case: 'node', node: node(`node-${a}`, time, a) } });
    const out: Uint8Array[] = [];
    for (let i = 0; i < events.length; i += 1024) out.push(Event.encode({ kind: { $case: 'batch', batch: { events: events.slice(i, i + 1024) } } }).finish());
    return out;
  }

  private event(task: Task, previousState: TaskState, time: { seconds: number; nanos: number }): Event {
    const taskEvent: TaskEvent = { taskId: task.id, sequence: ++this.sequence, state: task.state, previousState, time, reason: '', task: { ...task, sequence: this.sequence }, final: task.state === TaskState.SUCCEEDED };
    return { kind: { $case: 'task', task: taskEvent } };
  }
}

function node(nodeId: string, time: { seconds: number; nanos: number }, salt: number): Node {
  const gpus = Array.from({ length: 8 }, (_, index) => ({ index, name: 'H100', utilization: ((salt + index) % 10) / 10, memoryUsedBytes: 40 * 2 ** 30, memoryTotalBytes: 80 * 2 ** 30, temperatureC: 60, powerWatts: 400 }));
  const replicas = [0, 1].map((r) => ({
    replicaId: `${nodeId}-r${r}`,
    model: MODELS[(salt + r) % MODELS.length]!,
    gpuIndices: [r],
    state: ReplicaState.READY,
    external: false,
    capacityTokens: 400_000,
    numRequestsRunning: 10,
    numRequestsWaiting: 0,
    kvCacheUsagePerc: 0.3,
    sequences: 10,
    claimedTokens: 10_000,
    contextLength: 0,
  }));
  return {
    nodeId,
    address: '',
    state: NodeState.READY,
    gpus,
    models: [],
    backends: ['sim'],
    host: undefined,
    load: undefined,
    lastSeen: time,
    runningTasks: 12,
    replicas,
    gpuClaims: [],
    cpuMillis: 0,
    cpuClaimedMillis: 0,
    memoryBytes: 0,
    memoryClaimedBytes: 0,
    servedModels: [],
    stateReason: '',
    quarantinedUntil: undefined,
  };
}

/** Decision as the loop sees it here: every call answers at once. */
function stubDecision(): DecisionServiceClient {
  const ok = (...args: unknown[]) => {
    const callback = args[args.length - 1] as (err: null, res: object) => void;
    callback(null, {});
    return { cancel: () => undefined };
  };
  return { applyPolicy: ok, setNodeQuarantine: ok, reportAlerts: ok } as unknown as DecisionServiceClient;
}
