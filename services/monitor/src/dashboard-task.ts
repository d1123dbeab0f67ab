import { Metadata, status, type ClientReadableStream } from '@grpc/grpc-js';
import {
  PriorityClass,
  TaskState,
  WaitingCause,
  type DecisionServiceClient,
  type Event,
  type PriorityExplanation,
  type Task,
  type TaskEvent,
  type Timestamp,
} from '@autoglm/proto';
import { timestampToMillis } from '@autoglm/core';
import { callUnary, isServiceError } from '@autoglm/runtime';
import { durationSeconds } from './proto-time';

/** Decision's task ids. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Events of one task shown at most: a task retried without end still answers quickly. */
const MAX_TIMELINE = 500;

/** Why a task lookup failed, with the HTTP status that says so. */
export class TaskLookupError extends Error {
  constructor(
    /** 400 malformed id, 404 unknown task, 502 decision failed, 504 decision too slow. */
    readonly httpStatus: 400 | 404 | 502 | 504,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TaskLookupError';
  }
}

/** One transition of the task. */
export interface TaskTimelineEntry {
  readonly sequence: number;
  readonly state: string;
  readonly previousState: string;
  readonly atMs: number | null;
  readonly reason: string;
}

/** What the dashboard shows of one task; times in epoch milliseconds, durations in seconds. */
export interface TaskView {
  readonly task: {
    readonly id: string;
    readonly tenant: string;
    readonly state: string;
    readonly priorityClass: string;
    readonly model: string;
    readonly kind: string;
    readonly nodeId: string;
    readonly gpuIndices: readonly number[];
    readonly attempt: number;
    readonly failures: number;
    readonly reason: string;
    readonly createdAtMs: number | null;
    readonly startedAtMs: number | null;
    readonly finishedAtMs: number | null;
    readonly queueSeconds: number | null;
    readonly runSeconds: number | null;
    readonly ttftSeconds: number | null;
  };
  /** Oldest first; null when decision could not replay it (`timelineError` says why). */
  readonly timeline: readonly TaskTimelineEntry[] | null;
  readonly timelineError?: string;
  readonly explanation: {
    readonly priority: number;
    readonly queuePosition: number;
    readonly tasksAhead: number;
    readonly waitingReason: string;
    readonly waitingCause: string;
    readonly overdue: boolean;
    readonly tenantUsageOverShare: number;
    readonly reservedNode: string;
    readonly factors: ReadonlyArray<{ readonly name: string; readonly value: number; readonly weight: number; readonly contribution: number }>;
  } | null;
  readonly explanationError?: string;
}

/**
 * Looks a task up in decision under the monitor's identity: the task
 * (GetTask), its latest transitions (Subscribe to the task from MAX_TIMELINE
 * before its current sequence, read up to that sequence, then cancelled) and its priority
 * (ExplainTask), each under `deadlineMs`.
 */
export async function lookUpTask(decision: DecisionServiceClient, rawId: string, deadlineMs: number): Promise<TaskView> {
  if (!UUID.test(rawId)) throw new TaskLookupError(400, `"${rawId.slice(0, 64)}" is not a task id (a UUID)`);
  const taskId = rawId.toLowerCase();
  let task: Task;
  try {
    task = await callUnary(decision.getTask.bind(decision), { taskId }, { deadlineMs });
  } catch (err) {
    throw lookupError(err, taskId);
  }
  const [timeline, explanation] = await Promise.allSettled([
    readTimeline(decision, taskId, task.sequence, deadlineMs),
    callUnary(decision.explainTask.bind(decision), { taskId }, { deadlineMs }),
  ]);
  return {
    task: taskSummary(task),
    timeline: timeline.status === 'fulfilled' ? timeline.value.map(timelineEntry) : null,
    ...(timeline.status === 'rejected' ? { timelineError: lookupError(timeline.reason, taskId).message } : {}),
    explanation: explanation.status === 'fulfilled' ? explanationSummary(explanation.value) : null,
    ...(explanation.status === 'rejected' ? { explanationError: lookupError(explanation.reason, taskId).message } : {}),
  };
}

/** The task's latest events (at most MAX_TIMELINE) up to `upTo`, its sequence when looked up; sequences are per task. */
function readTimeline(decision: DecisionServiceClient, taskId: string, upTo: number, deadlineMs: number): Promise<TaskEvent[]> {
  return new Promise((resolve, reject) => {
    const events: TaskEvent[] = [];
    let done = false;
    const call: ClientReadableStream<Event> = decision.subscribe(
      { taskEvents: true, nodeEvents: false, taskId, afterSequence: Math.max(0, upTo - MAX_TIMELINE), states: [], batched: false, snapshot: false },
      new Metadata(),
      { deadline: Date.now() + deadlineMs },
    );
    const finish = (): void => {
      if (done) return;
      done = true;
      call.cancel();
      resolve(events);
    };
    call.on('data', (event: Event) => {
      if (event.kind?.$case !== 'task') return;
      events.push(event.kind.task);
      if (event.kind.task.sequence >= upTo || events.length >= MAX_TIMELINE) finish();
    });
    // A finished task's stream ends by itself after its last event.
    call.on('end', finish);
    call.on('error', (err: Error) => {
      if (done) return;
      done = true;
      reject(err);
    });
  });
}

function lookupError(err: unknown, taskId: string): TaskLookupError {
  if (err instanceof TaskLookupError) return err;
  if (isServiceError(err)) {
    switch (err.code) {
      case status.NOT_FOUND:
        return new TaskLookupError(404, `task ${taskId} does not exist`, { cause: err });
      case status.INVALID_ARGUMENT:
        return new TaskLookupError(400, err.details, { cause: err });
      case status.DEADLINE_EXCEEDED:
        return new TaskLookupError(504, 'decision did not answer in time', { cause: err });
      default:
        break;
    }
  }
  // Decision's own words may name internal addresses: the log has them, the page does not.
  return new TaskLookupError(502, 'decision could not be asked; see the monitor log', { cause: err });
}

function taskSummary(task: Task): TaskView['task'] {
  const result = task.result;
  return {
    id: task.id,
    tenant: task.tenant,
    state: enumName(TaskState, task.state),
    priorityClass: enumName(PriorityClass, task.spec?.priorityClass ?? PriorityClass.UNSPECIFIED),
    model: task.spec?.model ?? '',
    kind: task.spec?.payload?.$case ?? (task.spec?.interactive ? 'inference' : ''),
    nodeId: task.nodeId,
    gpuIndices: [...task.gpuIndices],
    attempt: task.attempt,
    failures: task.failures,
    reason: task.reason,
    createdAtMs: millis(task.createdAt),
    startedAtMs: millis(task.startedAt),
    finishedAtMs: millis(task.finishedAt),
    queueSeconds: result?.queueTime === undefined ? null : durationSeconds(result.queueTime),
    runSeconds: result?.runTime === undefined ? null : durationSeconds(result.runTime),
    ttftSeconds: result?.timeToFirstToken === undefined ? null : durationSeconds(result.timeToFirstToken),
  };
}

function timelineEntry(event: TaskEvent): TaskTimelineEntry {
  return {
    sequence: event.sequence,
    state: enumName(TaskState, event.state),
    previousState: enumName(TaskState, event.previousState),
    atMs: millis(event.time),
    reason: event.reason,
  };
}

function explanationSummary(e: PriorityExplanation): NonNullable<TaskView['explanation']> {
  return {
    priority: e.priority,
    queuePosition: e.queuePosition,
    tasksAhead: e.tasksAhead,
    waitingReason: e.waitingReason,
    waitingCause: enumName(WaitingCause, e.waitingCause),
    overdue: e.overdue,
    tenantUsageOverShare: e.tenantUsageOverShare,
    reservedNode: e.reservedNode,
    factors: e.factors.map((f) => ({ name: f.name, value: f.value, weight: f.weight, contribution: f.contribution })),
  };
}

function enumName(names: Record<number, string>, value: number): string {
  return (names[value] ?? 'unspecified').toLowerCase();
}

function millis(t: Timestamp | undefined): number | null {
  return t === undefined ? null : timestampToMillis(t);
}
