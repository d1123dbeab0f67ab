import { TaskState, type TaskEvent, type TaskResult, type Timestamp } from '@autoglm/proto';
import { priorityClassLabel, type PriorityClassLabel } from './priority-class-label';
import { durationSeconds, secondsBetween } from './proto-time';

/** The labels a task is reported under, fixed when the monitor first sees it. */
export interface TaskLabels {
  readonly tenant: string;
  readonly priorityClass: PriorityClassLabel;
  /** The model, or "none" for work that names none (some batch jobs). */
  readonly model: string;
}

/** One task transition as the monitor understands it. */
export interface TaskTransition {
  readonly taskId: string;
  readonly labels: TaskLabels;
  /**
   * The state the monitor last saw the task in; undefined when it had not seen
   * the task (first event, or the monitor started after the task did). Gauges
   * must only give back what they were given, so this — not the event's
   * previous_state — is the state to leave.
   */
  readonly from: TaskState | undefined;
  readonly to: TaskState;
  /** The event's own previous_state, as decision recorded it. */
  readonly reportedFrom: TaskState;
  /**
   * On entering ASSIGNED: how long this attempt waited to be placed. On entering
   * a finished state: the wait of the attempt that finished, where known.
   */
  readonly queueWaitSeconds: number | undefined;
  readonly result: TaskResult | undefined;
  /**
   * From a Subscribe snapshot: the task is in `to` now, nothing happened.
   * Counts of what is pending or running take it; nothing else does.
   */
  readonly snapshot: boolean;
}

/** States a task is remembered in: the ones counted as pending or running. */
const LIVE_STATES: ReadonlySet<TaskState> = new Set([
  TaskState.PENDING,
  TaskState.WAITING_DEPS,
  TaskState.QUEUED,
  TaskState.ASSIGNED,
  TaskState.RUNNING,
]);

/** States that end an attempt with an outcome worth counting. */
const OUTCOME_STATES: ReadonlySet<TaskState> = new Set([
  TaskState.SUCCEEDED,
  TaskState.FAILED,
  TaskState.CANCELLED,
  TaskState.DEAD_LETTER,
]);

interface TrackedTask {
  labels: TaskLabels;
  state: TaskState;
  sequence: number;
  /** When it last became runnable (entered QUEUED). */
  queuedSince: Timestamp | undefined;
  /** The wait measured when its current attempt was assigned. */
  queueWaitSeconds: number | undefined;
}

/**
 * Remembers each live task's last state so that a transition can be turned
 * into "leave this state, enter that one". Only tasks in a live state are kept:
 * a task that finishes, fails, is preempted or is lost is forgotten, so memory
 * follows the number of live tasks, not the number ever seen. A task that comes
 * back (a retry re-entering QUEUED) is simply seen afresh.
 */
export class TaskTracker {
  private readonly tasks = new Map<string, TrackedTask>();

  /** Live tasks remembered. */
  get size(): number {
    return this.tasks.size;
  }

  /** Forgets every task (the stream is about to start again with a snapshot). */
  clear(): void {
    this.tasks.clear();
  }

  /**
   * Records a transition. Returns undefined for an event that cannot be
   * attributed (no task and never seen) or that is older than what was already
   * applied (a replay after resubscribing).
   */
  track(event: TaskEvent): TaskTransition | undefined {
    const tracked = this.tasks.get(event.taskId);
    if (tracked !== undefined && event.sequence > 0 && event.sequence <= tracked.sequence) {
      return undefined;
    }
    const task = event.task;
    const labels: TaskLabels | undefined =
      tracked?.labels ??
      (task === undefined
        ? undefined
        : {
            tenant: task.tenant,
            priorityClass: priorityClassLabel(task.spec?.priorityClass),
            model: task.spec?.model || 'none',
          });
    if (labels === undefined) return undefined;
    // A snapshot's event names its state as both states (no transition is to itself).
    const snapshot = event.previousState === event.state;
    // A snapshot of a task between attempts (FAILED or LOST, awaiting its retry) holds nothing to count.
    if (snapshot && !LIVE_STATES.has(event.state)) return undefined;

    const at = event.time ?? task?.updatedAt;
    let queueWaitSeconds: number | undefined;
    if (snapshot) {
      // Its wait (if any) was measured when it happened, before this subscription.
    } else if (event.state === TaskState.ASSIGNED) {
      queueWaitSeconds = measureQueueWait(task?.result, at, tracked?.queuedSince, task?.createdAt);
    } else if (OUTCOME_STATES.has(event.state)) {
      const reported = task?.result?.queueTime;
      queueWaitSeconds = reported !== undefined ? durationSeconds(reported) : tracked?.queueWaitSeconds;
    }

    const transition: TaskTransition = {
      taskId: event.taskId,
      labels,
      from: tracked?.state,
      to: event.state,
      reportedFrom: event.previousState,
      queueWaitSeconds,
      result: snapshot ? undefined : task?.result,
      snapshot,
    };

    if (LIVE_STATES.has(event.state)) {
      this.tasks.set(event.taskId, {
        labels,
        state: event.state,
        sequence: event.sequence,
        queuedSince: event.state === TaskState.QUEUED ? at : tracked?.queuedSince,
        queueWaitSeconds: event.state === TaskState.ASSIGNED ? queueWaitSeconds : tracked?.queueWaitSeconds,
      });
    } else {
      this.tasks.delete(event.taskId);
    }
    return transition;
  }
}

/**
 * Decision's own figure wins when it sent one. Otherwise the wait runs from
 * when the monitor saw the task become runnable, or, when it did not see that
 * (dependencies, a monitor started later), from creation — an overestimate for
 * a task that waited on dependencies, but never a missing sample.
 */
function measureQueueWait(
  result: TaskResult | undefined,
  assignedAt: Timestamp | undefined,
  queuedSince: Timestamp | undefined,
  createdAt: Timestamp | undefined,
): number | undefined {
  if (result?.queueTime !== undefined) return durationSeconds(result.queueTime);
  const since = queuedSince ?? createdAt;
  if (assignedAt === undefined || since === undefined) return undefined;
  // Clocks are decision's throughout, but a clamp keeps a histogram free of
  // negative samples should one timestamp come from elsewhere.
  return Math.max(0, secondsBetween(since, assignedAt));
}
