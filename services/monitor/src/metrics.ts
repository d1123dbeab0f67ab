import {
  NodeState,
  TaskState,
  type Event,
  Node,
  type PolicyChange,
  type TaskEvent,
  type TaskResult,
} from '@autoglm/proto';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { durationSeconds } from './proto-time';
import { TaskTracker, type TaskLabels } from './task-tracker';

/**
 * Latency buckets from 5 ms to 10 min: a first token arrives in tens of
 * milliseconds to seconds, a queue wait or a long generation takes minutes, and
 * a batch job that runs longer than ten minutes is past caring about a bucket.
 */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
];

const PENDING_STATES: ReadonlySet<TaskState> = new Set([TaskState.PENDING, TaskState.WAITING_DEPS, TaskState.QUEUED]);
// Assigned counts as running, as in decision's QueueStats: the GPU is taken.
const RUNNING_STATES: ReadonlySet<TaskState> = new Set([TaskState.ASSIGNED, TaskState.RUNNING]);

const OUTCOME_LABELS: Partial<Record<TaskState, string>> = {
  [TaskState.SUCCEEDED]: 'succeeded',
  [TaskState.FAILED]: 'failed',
  [TaskState.CANCELLED]: 'cancelled',
  [TaskState.DEAD_LETTER]: 'dead_letter',
};

/** Options of {@link MonitorMetrics}. */
/** The label of tenants past the cap (see MonitorMetricsOptions.maxTenants). */
export const OTHER_TENANTS = '_other';

export interface MonitorMetricsOptions {
  /**
   * Tenants with series of their own, in the order first seen; later ones
   * share the series of tenant "_other", so tenant names cannot grow the
   * series without bound.
   * @default 200
   */
  readonly maxTenants?: number;
  /**
   * Also export the process's own metrics (CPU, memory, event-loop lag) with
   * the `autoglm_monitor_` prefix.
   * @default false
   */
  readonly processMetrics?: boolean;
}

/**
 * The Prometheus view of decision's event stream. Owns its registry, so that
 * several instances (tests, one per subscription) never share series.
 */
export class MonitorMetrics {
  /** The registry every series of the monitor is in (the feedback loop adds its own). */
  readonly registry = new Registry();
  private readonly tracker = new TaskTracker();
  private readonly tenants = new Set<string>();
  private readonly maxTenants: number;
  /** GPU indices last reported per node, to drop series for GPUs that vanish. */
  private readonly nodeGpus = new Map<string, ReadonlySet<string>>();

  private readonly eventsReceived = new Counter({
    name: 'autoglm_events_received_total',
    help: 'Events received from decision, by kind.',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  private readonly tasksPending = new Gauge({
    name: 'autoglm_tasks_pending',
    help: 'Tasks pending, waiting on dependencies or queued.',
    labelNames: ['tenant', 'class'] as const,
    registers: [this.registry],
  });
  private readonly tasksRunning = new Gauge({
    name: 'autoglm_tasks_running',
    help: 'Tasks assigned to an agent or running on it.',
    labelNames: ['tenant', 'class'] as const,
    registers: [this.registry],
  });
  private readonly taskOutcomes = new Counter({
    name: 'autoglm_task_outcomes_total',
    help: 'Transitions into a finished state; "failed" counts every failed attempt, retried or not.',
    labelNames: ['tenant', 'class', 'state'] as const,
    registers: [this.registry],
  });
  private readonly queueWait = new Histogram({
    name: 'autoglm_task_queue_wait_seconds',
    help: 'Time from a task becoming runnable to its assignment, per attempt.',
    labelNames: ['class'] as const,
    buckets: [...LATENCY_BUCKETS_SECONDS],
    registers: [this.registry],
  });
  private readonly runTime = new Histogram({
    name: 'autoglm_task_run_seconds',
    help: 'Time from start to finish on the agent, of tasks that succeeded.',
    labelNames: ['class', 'model'] as const,
    buckets: [...LATENCY_BUCKETS_SECONDS],
    registers: [this.registry],
  });
  private readonly timeToFirstToken = new Histogram({
    name: 'autoglm_task_time_to_first_token_seconds',
    help: 'Time from start to the first generated token, of inferences that succeeded.',
    labelNames: ['class', 'model'] as const,
    buckets: [...LATENCY_BUCKETS_SECONDS],
    registers: [this.registry],
  });
  private readonly gpuUtilization = new Gauge({
    name: 'autoglm_gpu_utilization_ratio',
    help: 'GPU busy fraction in [0, 1].',
    labelNames: ['node', 'gpu'] as const,
    registers: [this.registry],
  });
  private readonly gpuMemoryUsed = new Gauge({
    name: 'autoglm_gpu_memory_used_bytes',
    help: 'GPU memory in use.',
    labelNames: ['node', 'gpu'] as const,
    registers: [this.registry],
  });
  private readonly gpuMemoryTotal = new Gauge({
    name: 'autoglm_gpu_memory_total_bytes',
    help: 'GPU memory installed.',
    labelNames: ['node', 'gpu'] as const,
    registers: [this.registry],
  });
  private readonly nodeReady = new Gauge({
    name: 'autoglm_node_ready',
    help: '1 while a node is ready for work, 0 while draining or disconnected; gone once the node is lost.',
    labelNames: ['node'] as const,
    registers: [this.registry],
  });
  private readonly nodeRunningTasks = new Gauge({
    name: 'autoglm_node_running_tasks',
    help: 'Tasks assigned to a node and not finished, as decision counts them.',
    labelNames: ['node'] as const,
    registers: [this.registry],
  });
  private readonly nodeRequestsRunning = new Gauge({
    name: 'autoglm_node_num_requests_running',
    help: 'Sequences the node\'s model server is generating.',
    labelNames: ['node'] as const,
    registers: [this.registry],
  });
  private readonly nodeRequestsWaiting = new Gauge({
    name: 'autoglm_node_num_requests_waiting',
    help: 'Requests waiting for a batch slot on the node\'s model server.',
    labelNames: ['node'] as const,
    registers: [this.registry],
  });
  private readonly nodeKvCacheUsage = new Gauge({
    name: 'autoglm_node_kv_cache_usage_perc',
    help: 'KV-cache occupancy of the node\'s model server, in [0, 1].',
    labelNames: ['node'] as const,
    registers: [this.registry],
  });
  private readonly policyVersion = new Gauge({
    name: 'autoglm_policy_version',
    help: 'Version of the ordering policy in force, as of the last change seen.',
    registers: [this.registry],
  });

  constructor(options: MonitorMetricsOptions = {}) {
    this.maxTenants = options.maxTenants ?? 200;
    // Zero series from the start, so that rate() has a baseline before the
    // first event of a kind arrives.
    for (const kind of ['task', 'node', 'policy']) this.eventsReceived.inc({ kind }, 0);
    if (options.processMetrics === true) {
      collectDefaultMetrics({ register: this.registry, prefix: 'autoglm_monitor_' });
    }
  }

  /** The Content-Type of {@link render}'s output. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Applies one event of decision's stream. */
  observe(event: Event): void {
    const kind = event.kind;
    if (kind === undefined) return;
    this.eventsReceived.inc({ kind: kind.$case });
    switch (kind.$case) {
      case 'task':
        this.observeTask(kind.task);
        return;
      case 'node':
        this.observeNode(kind.node);
        return;
      case 'policy':
        this.observePolicy(kind.policy);
        return;
    }
  }

  /**
   * Forgets live tasks and nodes before decision's stream starts again with a
   * snapshot (what happened while away is not replayed): the pending, running
   * and node series start over from it. Counters and histograms keep counting.
   */
  resync(): void {
    this.tracker.clear();
    this.tasksPending.reset();
    this.tasksRunning.reset();
    for (const node of [...this.nodeGpus.keys()]) this.observeNode(Node.fromPartial({ nodeId: node, state: NodeState.LOST }));
  }

  /** Every series in the Prometheus text exposition format. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  private observeTask(event: TaskEvent): void {
    const transition = this.tracker.track(event);
    if (transition === undefined) return;
    const { labels, from, to } = transition;
    const series = { tenant: this.tenantLabel(labels.tenant), class: labels.priorityClass };

    if (from !== undefined) this.stateGauge(from)?.dec(series);
    this.stateGauge(to)?.inc(series);

    if (to === TaskState.ASSIGNED && transition.queueWaitSeconds !== undefined) {
      this.queueWait.observe({ class: labels.priorityClass }, transition.queueWaitSeconds);
    }
    const outcome = OUTCOME_LABELS[to];
    if (outcome !== undefined) this.taskOutcomes.inc({ ...series, state: outcome });
    if (to === TaskState.SUCCEEDED) this.observeLatencies(labels, transition.result);
  }

  private observeLatencies(labels: TaskLabels, result: TaskResult | undefined): void {
    if (result === undefined) return;
    const series = { class: labels.priorityClass, model: labels.model };
    if (result.runTime !== undefined) this.runTime.observe(series, durationSeconds(result.runTime));
    if (result.timeToFirstToken !== undefined) {
      this.timeToFirstToken.observe(series, durationSeconds(result.timeToFirstToken));
    }
  }

  private tenantLabel(tenant: string): string {
    if (this.tenants.has(tenant)) return tenant;
    if (this.tenants.size >= this.maxTenants) return OTHER_TENANTS;
    this.tenants.add(tenant);
    return tenant;
  }

  private stateGauge(state: TaskState): Gauge<'tenant' | 'class'> | undefined {
    if (PENDING_STATES.has(state)) return this.tasksPending;
    if (RUNNING_STATES.has(state)) return this.tasksRunning;
    return undefined;
  }

  private observeNode(node: Node): void {
    const nodeLabel = { node: node.nodeId };
    if (node.state !== NodeState.LOST) this.nodeReady.set(nodeLabel, node.state === NodeState.READY ? 1 : 0);
    const previousGpus = this.nodeGpus.get(node.nodeId) ?? new Set<string>();

    // A lost node's last readings are stale; reporting them would show load
    // on a machine that is gone.
    if (node.state === NodeState.LOST) {
      for (const gpu of previousGpus) this.removeGpuSeries(node.nodeId, gpu);
      this.nodeGpus.delete(node.nodeId);
      this.nodeReady.remove(nodeLabel);
      this.nodeRunningTasks.remove(nodeLabel);
      this.nodeRequestsRunning.remove(nodeLabel);
      this.nodeRequestsWaiting.remove(nodeLabel);
      this.nodeKvCacheUsage.remove(nodeLabel);
      return;
    }

    const gpus = new Set<string>();
    for (const status of node.gpus) {
      const gpu = String(status.index);
      gpus.add(gpu);
      const series = { node: node.nodeId, gpu };
      this.gpuUtilization.set(series, status.utilization);
      this.gpuMemoryUsed.set(series, status.memoryUsedBytes);
      this.gpuMemoryTotal.set(series, status.memoryTotalBytes);
    }
    for (const gpu of previousGpus) if (!gpus.has(gpu)) this.removeGpuSeries(node.nodeId, gpu);
    this.nodeGpus.set(node.nodeId, gpus);

    this.nodeRunningTasks.set(nodeLabel, node.runningTasks);
    if (node.load !== undefined) {
      this.nodeRequestsRunning.set(nodeLabel, node.load.numRequestsRunning);
      this.nodeRequestsWaiting.set(nodeLabel, node.load.numRequestsWaiting);
      this.nodeKvCacheUsage.set(nodeLabel, node.load.kvCacheUsagePerc);
    }
  }

  private removeGpuSeries(node: string, gpu: string): void {
    const series = { node, gpu };
    this.gpuUtilization.remove(series);
    this.gpuMemoryUsed.remove(series);
    this.gpuMemoryTotal.remove(series);
  }

  private observePolicy(change: PolicyChange): void {
    this.policyVersion.set(change.version);
  }
}
