import {
  NodeState,
  TaskState,
  type Event,
  type GetSummaryResponse,
  type Node,
  type NodeLoadSummary,
  type OutcomeSummary,
  type TaskEvent,
  type Timestamp,
} from '@autoglm/proto';
import { PRIORITY_CLASS_LABELS, type PriorityClassLabel } from './priority-class-label';
import { timestampFromMillis } from './proto-time';
import { TaskTracker } from './task-tracker';

/** Options of {@link MonitorSummary}. */
export interface MonitorSummaryOptions {
  /**
   * The clock, in milliseconds since the epoch; read once, for `since`.
   * @default Date.now
   */
  readonly now?: () => number;
}

interface OutcomeTally {
  readonly tenant: string;
  readonly priorityClass: PriorityClassLabel;
  succeeded: number;
  failed: number;
  queueSecondsSum: number;
  queueSamples: number;
}

/** What GetSummary (and the dashboard) report: outcomes per tenant and class, load per node. */
export class MonitorSummary {
  private readonly since: Timestamp;
  private readonly tracker = new TaskTracker();
  private readonly outcomes = new Map<string, OutcomeTally>();
  private readonly nodes = new Map<string, NodeLoadSummary>();
  private taskEvents = 0;

  constructor(options: MonitorSummaryOptions = {}) {
    this.since = timestampFromMillis((options.now ?? Date.now)());
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

  /** Forgets live tasks and nodes before decision's stream starts again with a snapshot; outcomes so far stay. */
  resync(): void {
    this.tracker.clear();
    this.nodes.clear();
  }

  /** The summary as of now: outcomes by tenant then class (urgent first), nodes by id. */
  snapshot(): GetSummaryResponse {
    const outcomes: OutcomeSummary[] = [...this.outcomes.values()]
      .sort(
        (a, b) =>
          a.tenant.localeCompare(b.tenant) ||
          PRIORITY_CLASS_LABELS.indexOf(a.priorityClass) - PRIORITY_CLASS_LABELS.indexOf(b.priorityClass),
      )
      .map((tally) => ({
        tenant: tally.tenant,
        priorityClass: tally.priorityClass,
        succeeded: tally.succeeded,
        failed: tally.failed,
        meanQueueSeconds: tally.queueSamples === 0 ? 0 : tally.queueSecondsSum / tally.queueSamples,
      }));
    const nodes = [...this.nodes.values()]
      .sort((a, b) => a.nodeId.localeCompare(b.nodeId))
      .map((node) => ({ ...node }));
    return { since: { ...this.since }, eventsReceived: this.taskEvents, outcomes, nodes };
  }

  private observeTask(event: TaskEvent): void {
    const transition = this.tracker.track(event);
    if (transition === undefined) return;
    const { to } = transition;
    const succeeded = to === TaskState.SUCCEEDED;
    // A task that fails its last attempt may be reported FAILED and then
    // DEAD_LETTER; it failed once.
    const failed =
      to === TaskState.FAILED ||
      to === TaskState.CANCELLED ||
      (to === TaskState.DEAD_LETTER && transition.reportedFrom !== TaskState.FAILED);
    if (!succeeded && !failed) return;

    const tally = this.tally(transition.labels.tenant, transition.labels.priorityClass);
    if (succeeded) tally.succeeded += 1;
    else tally.failed += 1;
    if (transition.queueWaitSeconds !== undefined) {
      tally.queueSecondsSum += transition.queueWaitSeconds;
      tally.queueSamples += 1;
    }
  }

  private tally(tenant: string, priorityClass: PriorityClassLabel): OutcomeTally {
    // JSON of the pair cannot collide whatever characters a tenant name holds.
    const key = JSON.stringify([tenant, priorityClass]);
    let tally = this.outcomes.get(key);
    if (tally === undefined) {
      tally = { tenant, priorityClass, succeeded: 0, failed: 0, queueSecondsSum: 0, queueSamples: 0 };
      this.outcomes.set(key, tally);
    }
    return tally;
  }

  private observeNode(node: Node): void {
    // Lost nodes leave the summary: their last readings describe a machine
    // that is no longer there.
    if (node.state === NodeState.LOST) {
      this.nodes.delete(node.nodeId);
      return;
    }
    let utilization = 0;
    let used = 0;
    let total = 0;
    for (const gpu of node.gpus) {
      utilization += gpu.utilization;
      used += gpu.memoryUsedBytes;
      total += gpu.memoryTotalBytes;
    }
    this.nodes.set(node.nodeId, {
      nodeId: node.nodeId,
      gpuUtilization: node.gpus.length === 0 ? 0 : utilization / node.gpus.length,
      gpuMemoryUsedBytes: used,
      gpuMemoryTotalBytes: total,
    });
  }
}
