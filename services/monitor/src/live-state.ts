import { NodeState, ReplicaState, TaskState, type Event, type Node, type TaskEvent } from '@autoglm/proto';
import { timestampToMillis } from '@autoglm/core';
import { LatencyWindow } from './live-state-latency';
import { RingBuffer } from './live-state-ring';
import { PRIORITY_CLASS_LABELS, type PriorityClassLabel } from './priority-class-label';
import { durationSeconds } from './proto-time';
import { TaskTracker, type TaskLabels, type TaskTransition } from './task-tracker';

/** Options of {@link LiveState}. */
export interface LiveStateOptions {
  /**
   * The clock, in milliseconds since the epoch.
   * @default Date.now
   */
  readonly now?: () => number;
  /**
   * Samples kept (one per tick, so seconds of history at one tick a second).
   * @default 900
   */
  readonly historySamples?: number;
  /**
   * Tenants counted under their own name; later ones are counted as "_other",
   * so tenant names cannot grow the state without bound. A slot is never
   * freed, even once its tenant has nothing live: a task stays counted under
   * the name it was first counted under, and a tenant past the cap stays in
   * "_other" until the monitor restarts.
   * @default 200
   */
  readonly maxTenants?: number;
  /**
   * Tenants in each sample: the busiest, so a chart stays readable.
   * @default 8
   */
  readonly tenantsPerSample?: number;
  /**
   * How far back the latency percentiles look (whole seconds).
   * @default 60000
   */
  readonly latencyWindowMs?: number;
}

/** One GPU of a node, as last reported. */
export interface LiveGpu {
  readonly index: number;
  readonly name: string;
  /** Busy fraction in [0, 1]. */
  readonly utilization: number;
  readonly memoryUsedBytes: number;
  readonly memoryTotalBytes: number;
}

/** A model replica loaded on a node. */
export interface LiveReplica {
  readonly model: string;
  /** "loading" or "ready". */
  readonly state: string;
  readonly gpuIndices: readonly number[];
  /** Sequences decision has placed on it. */
  readonly sequences: number;
}

/** A node as the heat map draws it. */
export interface LiveNode {
  readonly nodeId: string;
  /** "ready", "draining", "disconnected", "quarantined". */
  readonly state: string;
  /** Why it is quarantined or draining, when decision says. */
  readonly stateReason: string;
  readonly quarantinedUntilMs: number | null;
  readonly runningTasks: number;
  readonly gpus: readonly LiveGpu[];
  readonly replicas: readonly LiveReplica[];
}

/** What one tick saw: the charts' points. */
export interface LiveSample {
  /** Milliseconds since the epoch. */
  readonly t: number;
  /** Pending (waiting on dependencies or queued) per class, in PRIORITY_CLASS_LABELS order. */
  readonly pending: readonly number[];
  /** Assigned or running per class, in PRIORITY_CLASS_LABELS order. */
  readonly running: readonly number[];
  /** The busiest tenants: [pending, running]. */
  readonly tenants: Readonly<Record<string, readonly [number, number]>>;
  /** Arrivals per second since the previous tick. */
  readonly submitted: number;
  /** Finished attempts per second since the previous tick (failures included). */
  readonly finished: number;
  /** Failed attempts per second since the previous tick. */
  readonly failed: number;
  /** Queue wait (seconds) of attempts placed within the latency window: median and 99th percentile. */
  readonly queueP50: number | null;
  readonly queueP99: number | null;
  /** The engine's time to first token (seconds) of inferences that succeeded within the window. */
  readonly ttftP50: number | null;
  readonly ttftP99: number | null;
}

/** Live tasks of one class or tenant. */
export interface LiveQueueRow {
  readonly name: string;
  readonly pending: number;
  readonly running: number;
}

/** A task that moved lately. */
export interface LiveTaskRow {
  readonly taskId: string;
  readonly tenant: string;
  readonly priorityClass: PriorityClassLabel;
  readonly model: string;
  /** Lower-case state name, e.g. "running". */
  readonly state: string;
  readonly atMs: number;
}

/** What every message to the dashboard carries in full (it is small). */
export interface LiveCurrent {
  readonly since: number;
  readonly eventsReceived: number;
  readonly byClass: readonly LiveQueueRow[];
  /** Tenants with live tasks, busiest first (at most 20). */
  readonly byTenant: readonly LiveQueueRow[];
  /** The last tasks that moved, newest first (at most 15). */
  readonly recentTasks: readonly LiveTaskRow[];
}

/** Everything, for a dashboard that has just connected. */
export interface LiveSnapshot extends LiveCurrent {
  readonly nodes: readonly LiveNode[];
  /** Oldest first. */
  readonly samples: readonly LiveSample[];
}

/** What changed since the previous tick. */
export interface LiveDelta extends LiveCurrent {
  /** Nothing moved: no task transition, no node report, and the sample is the previous one's but for its time. */
  readonly quiet: boolean;
  /** Nodes reported since the previous tick (replace them). */
  readonly nodes: readonly LiveNode[];
  /** Nodes lost since the previous tick. */
  readonly removedNodes: readonly string[];
  /** The samples taken since (one). */
  readonly samples: readonly LiveSample[];
}

/** The label of tenants past the cap. */
export const OTHER_TENANT = '_other';

const PENDING_STATES: ReadonlySet<TaskState> = new Set([TaskState.PENDING, TaskState.WAITING_DEPS, TaskState.QUEUED]);
const RUNNING_STATES: ReadonlySet<TaskState> = new Set([TaskState.ASSIGNED, TaskState.RUNNING]);
const BY_TENANT_ROWS = 20;
const RECENT_TASK_ROWS = 15;
/** Transitions remembered for the recent-task rows: a task often moves twice in a row. */
const RECENT_TRANSITIONS = RECENT_TASK_ROWS * 4;
/** GPU memory as drawn: finer changes are noise, and would resend every node every second. */
const MEMORY_STEP_BYTES = 100 * 2 ** 20;

/** Lower-case names indexed by enum value, made once rather than per event. */
function lowerCaseNames(names: Record<string, string | number>): readonly string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(names)) if (typeof value === 'number' && value >= 0) out[value] = name.toLowerCase();
  return out;
}
const TASK_STATE_NAMES = lowerCaseNames(TaskState);
const NODE_STATE_NAMES = lowerCaseNames(NodeState);

interface Counts {
  pending: number;
  running: number;
}

/**
 * The dashboard's view of decision's event stream. Each event costs O(1)
 * (counters, rings); the series, percentiles and snapshots are made once per
 * tick, not per event.
 */
export class LiveState {
  private readonly now: () => number;
  private readonly since: number;
  private readonly maxTenants: number;
  private readonly tenantsPerSample: number;
  private readonly tracker = new TaskTracker();
  private readonly byClass: Counts[] = PRIORITY_CLASS_LABELS.map(() => ({ pending: 0, running: 0 }));
  private readonly byTenant = new Map<string, Counts>();
  private readonly nodes = new Map<string, LiveNode>();
  private readonly changedNodes = new Set<string>();
  private readonly removedNodes = new Set<string>();
  private readonly samples: RingBuffer<LiveSample>;
  private readonly queueWaits: LatencyWindow;
  private readonly ttfts: LatencyWindow;
  // The recent transitions, as columns: a row object is made only for the few shown.
  private readonly recentIds: string[] = [];
  private readonly recentLabels: TaskLabels[] = [];
  private readonly recentStates: TaskState[] = [];
  private readonly recentAtMs: number[] = [];
  private recentNext = 0;
  private recentCount = 0;
  private taskEvents = 0;
  private taskEventsAtTick = 0;
  private submitted = 0;
  private finished = 0;
  private failed = 0;
  private lastTickMs: number;

  constructor(options: LiveStateOptions = {}) {
    this.now = options.now ?? Date.now;
    this.since = this.now();
    this.lastTickMs = this.since;
    this.samples = new RingBuffer(options.historySamples ?? 900);
    this.maxTenants = options.maxTenants ?? 200;
    this.tenantsPerSample = options.tenantsPerSample ?? 8;
    this.queueWaits = new LatencyWindow(options.latencyWindowMs ?? 60_000);
    this.ttfts = new LatencyWindow(options.latencyWindowMs ?? 60_000);
  }

  /** Applies one event of decision's stream. */
  observe(event: Event): void {
    switch (event.kind?.$case) {
      case 'task':
        this.taskEvents += 1;
        this.observeTask(event.kind.task);
        return;
      case 'node':
        this.observeNode(event.kind.node);
        return;
      default:
        return;
    }
  }

  /**
   * Forgets live tasks and nodes before decision's stream starts again with a
   * snapshot (what happened while away is not replayed); the page is told the
   * nodes are gone, and the snapshot brings back those that are not.
   */
  resync(): void {
    this.tracker.clear();
    for (const c of this.byClass) c.pending = c.running = 0;
    this.byTenant.clear();
    for (const id of this.nodes.keys()) this.removedNodes.add(id);
    this.nodes.clear();
    this.changedNodes.clear();
  }

  /** Takes a sample and returns what changed since the previous tick. */
  tick(): LiveDelta {
    const previous = this.samples.newest(1)[0];
    const sample = this.sample();
    const quiet =
      this.taskEvents === this.taskEventsAtTick && this.changedNodes.size === 0 && this.removedNodes.size === 0 && previous !== undefined && sameReadings(previous, sample);
    this.taskEventsAtTick = this.taskEvents;
    const nodes: LiveNode[] = [];
    for (const id of this.changedNodes) {
      const node = this.nodes.get(id);
      if (node !== undefined) nodes.push(node);
    }
    const removedNodes = [...this.removedNodes];
    this.changedNodes.clear();
    this.removedNodes.clear();
    return { ...this.current(), quiet, nodes, removedNodes, samples: [sample] };
  }

  /** Everything as of the last tick (nodes and counts as of now). */
  snapshot(): LiveSnapshot {
    const nodes = [...this.nodes.values()].sort((a, b) => a.nodeId.localeCompare(b.nodeId));
    return { ...this.current(), nodes, samples: this.samples.toArray() };
  }

  private current(): LiveCurrent {
    const byTenant = [...this.byTenant.entries()]
      .filter(([, c]) => c.pending + c.running > 0)
      .sort(([a, x], [b, y]) => y.pending + y.running - (x.pending + x.running) || a.localeCompare(b))
      .slice(0, BY_TENANT_ROWS)
      .map(([name, c]) => ({ name, pending: c.pending, running: c.running }));
    const seen = new Set<string>();
    const recentTasks: LiveTaskRow[] = [];
    for (let i = 1; i <= this.recentCount && recentTasks.length < RECENT_TASK_ROWS; i += 1) {
      const at = (this.recentNext - i + RECENT_TRANSITIONS) % RECENT_TRANSITIONS;
      const taskId = this.recentIds[at]!;
      if (seen.has(taskId)) continue;
      seen.add(taskId);
      const labels = this.recentLabels[at]!;
      const state = TASK_STATE_NAMES[this.recentStates[at]!] ?? 'unspecified';
      recentTasks.push({ taskId, tenant: labels.tenant, priorityClass: labels.priorityClass, model: labels.model, state, atMs: this.recentAtMs[at]! });
    }
    return {
      since: this.since,
      eventsReceived: this.taskEvents,
      byClass: PRIORITY_CLASS_LABELS.map((name, i) => ({ name, pending: this.byClass[i]!.pending, running: this.byClass[i]!.running })),
      byTenant,
      recentTasks,
    };
  }

  private sample(): LiveSample {
    const t = this.now();
    const seconds = Math.max(0.001, (t - this.lastTickMs) / 1000);
    this.lastTickMs = t;
    const busiest = [...this.byTenant.entries()]
      .filter(([, c]) => c.pending + c.running > 0)
      .sort(([, x], [, y]) => y.pending + y.running - (x.pending + x.running))
      .slice(0, this.tenantsPerSample);
    // Built from entries: a tenant named "__proto__" is a key like any other.
    const tenants: Record<string, readonly [number, number]> = Object.fromEntries(busiest.map(([name, c]) => [name, [c.pending, c.running] as const]));
    const [queueP50, queueP99] = this.queueWaits.percentiles(t);
    const [ttftP50, ttftP99] = this.ttfts.percentiles(t);
    const sample: LiveSample = {
      t,
      pending: this.byClass.map((c) => c.pending),
      running: this.byClass.map((c) => c.running),
      tenants,
      submitted: this.submitted / seconds,
      finished: this.finished / seconds,
      failed: this.failed / seconds,
      queueP50,
      queueP99,
      ttftP50,
      ttftP99,
    };
    this.submitted = 0;
    this.finished = 0;
    this.failed = 0;
    this.samples.push(sample);
    return sample;
  }

  private observeTask(event: TaskEvent): void {
    const transition = this.tracker.track(event);
    if (transition === undefined) return;
    const { labels, from, to } = transition;
    const atMs = this.now();
    const classCounts = this.byClass[PRIORITY_CLASS_LABELS.indexOf(labels.priorityClass)]!;
    const tenantCounts = this.tenantCounts(labels.tenant);
    if (from !== undefined) {
      move(classCounts, from, -1);
      move(tenantCounts, from, -1);
    }
    // Only creation: a retry re-entering QUEUED is new to the tracker but no arrival.
    if (transition.reportedFrom === TaskState.UNSPECIFIED) this.submitted += 1;
    move(classCounts, to, 1);
    move(tenantCounts, to, 1);

    if (to === TaskState.ASSIGNED && transition.queueWaitSeconds !== undefined) this.queueWaits.record(atMs, transition.queueWaitSeconds);
    if (isOutcome(transition)) {
      this.finished += 1;
      if (to !== TaskState.SUCCEEDED && to !== TaskState.CANCELLED) this.failed += 1;
    }
    const ttft = transition.result?.timeToFirstToken;
    if (to === TaskState.SUCCEEDED && ttft !== undefined) this.ttfts.record(atMs, durationSeconds(ttft));
    // The feed shows what happened; a snapshot says only where things are.
    if (transition.snapshot) return;
    const at = this.recentNext;
    this.recentIds[at] = transition.taskId;
    this.recentLabels[at] = labels;
    this.recentStates[at] = to;
    this.recentAtMs[at] = atMs;
    this.recentNext = (at + 1) % RECENT_TRANSITIONS;
    if (this.recentCount < RECENT_TRANSITIONS) this.recentCount += 1;
  }

  private tenantCounts(tenant: string): Counts {
    let counts = this.byTenant.get(tenant);
    if (counts !== undefined) return counts;
    const name = this.byTenant.size >= this.maxTenants ? OTHER_TENANT : tenant;
    counts = this.byTenant.get(name);
    if (counts === undefined) {
      counts = { pending: 0, running: 0 };
      this.byTenant.set(name, counts);
    }
    return counts;
  }

  private observeNode(node: Node): void {
    // A lost node's last readings describe a machine that is no longer there.
    if (node.state === NodeState.LOST) {
      if (this.nodes.delete(node.nodeId)) this.removedNodes.add(node.nodeId);
      this.changedNodes.delete(node.nodeId);
      return;
    }
    const view: LiveNode = {
      nodeId: node.nodeId,
      state: NODE_STATE_NAMES[node.state] ?? 'unspecified',
      stateReason: node.stateReason,
      quarantinedUntilMs: node.quarantinedUntil === undefined ? null : timestampToMillis(node.quarantinedUntil),
      runningTasks: node.runningTasks,
      gpus: node.gpus.map((g) => ({
        index: g.index,
        name: g.name,
        utilization: Math.round(g.utilization * 100) / 100,
        memoryUsedBytes: Math.round(g.memoryUsedBytes / MEMORY_STEP_BYTES) * MEMORY_STEP_BYTES,
        memoryTotalBytes: g.memoryTotalBytes,
      })),
      replicas: node.replicas.map((r) => ({
        model: r.model,
        state: r.state === ReplicaState.READY ? 'ready' : r.state === ReplicaState.LOADING ? 'loading' : 'unknown',
        gpuIndices: [...r.gpuIndices],
        sequences: r.sequences,
      })),
    };
    // Every node reports every second; only a change the page would draw is sent.
    const previous = this.nodes.get(node.nodeId);
    if (previous !== undefined && sameNode(previous, view)) return;
    this.nodes.set(node.nodeId, view);
    this.changedNodes.add(node.nodeId);
    this.removedNodes.delete(node.nodeId);
  }
}

function move(counts: Counts, state: TaskState, by: 1 | -1): void {
  // Clamped: a task first seen mid-life leaves a state it was never counted in.
  if (PENDING_STATES.has(state)) counts.pending = Math.max(0, counts.pending + by);
  else if (RUNNING_STATES.has(state)) counts.running = Math.max(0, counts.running + by);
}

/** An attempt that ended with an outcome, counted once (a FAILED then DEAD_LETTER is one failure). */
function isOutcome(t: TaskTransition): boolean {
  switch (t.to) {
    case TaskState.SUCCEEDED:
    case TaskState.FAILED:
    case TaskState.CANCELLED:
      return true;
    case TaskState.DEAD_LETTER:
      return t.reportedFrom !== TaskState.FAILED;
    default:
      return false;
  }
}

function sameReadings(a: LiveSample, b: LiveSample): boolean {
  const { t: _a, ...x } = a;
  const { t: _b, ...y } = b;
  return JSON.stringify(x) === JSON.stringify(y);
}

function sameNode(a: LiveNode, b: LiveNode): boolean {
  if (a.state !== b.state || a.stateReason !== b.stateReason || a.quarantinedUntilMs !== b.quarantinedUntilMs || a.runningTasks !== b.runningTasks) return false;
  if (a.gpus.length !== b.gpus.length || a.replicas.length !== b.replicas.length) return false;
  for (let i = 0; i < a.gpus.length; i += 1) {
    const x = a.gpus[i]!;
    const y = b.gpus[i]!;
    if (x.index !== y.index || x.name !== y.name || x.utilization !== y.utilization || x.memoryUsedBytes !== y.memoryUsedBytes || x.memoryTotalBytes !== y.memoryTotalBytes) return false;
  }
  for (let i = 0; i < a.replicas.length; i += 1) {
    const x = a.replicas[i]!;
    const y = b.replicas[i]!;
    if (x.model !== y.model || x.state !== y.state || x.sequences !== y.sequences || x.gpuIndices.length !== y.gpuIndices.length) return false;
    if (x.gpuIndices.some((g, j) => g !== y.gpuIndices[j])) return false;
  }
  return true;
}
