import { NodeState, PriorityClass, ReplicaState, ScheduleState, TaskKind, TaskState, WaitingCause, type TaskEvent } from '@autoglm/proto';

function nameOf(enumObject: Record<number, string>, value: number): string {
  return enumObject[value] ?? `UNKNOWN(${value})`;
}

/** "SUCCEEDED", "DEAD_LETTER", ... */
export const stateName = (state: TaskState): string => nameOf(TaskState, state);
/** "URGENT", "NORMAL", "BACKGROUND"; UNSPECIFIED reads as NORMAL, as the server treats it. */
export const className = (priorityClass: PriorityClass): string =>
  priorityClass === PriorityClass.UNSPECIFIED ? 'NORMAL' : nameOf(PriorityClass, priorityClass);
/** "INFERENCE", "BATCH". */
export const kindName = (kind: TaskKind): string => nameOf(TaskKind, kind);
/** "capacity", "quota", ...; empty when not waiting. */
export const waitingCauseName = (cause: WaitingCause): string =>
  cause === WaitingCause.UNSPECIFIED ? '' : nameOf(WaitingCause, cause).toLowerCase().replace(/_/g, ' ');
/** "READY", "DRAINING", "LOST". */
export const nodeStateName = (state: NodeState): string => nameOf(NodeState, state);
/** "LOADING", "READY". */
export const replicaStateName = (state: ReplicaState): string => nameOf(ReplicaState, state);
/** "ACTIVE", "PAUSED". */
export const scheduleStateName = (state: ScheduleState): string => nameOf(ScheduleState, state);

/** States a task never leaves. FAILED is not one: a failed attempt is retried or dead-lettered. */
export const FINAL_STATES: ReadonlySet<TaskState> = new Set([TaskState.SUCCEEDED, TaskState.CANCELLED, TaskState.DEAD_LETTER]);

/**
 * Whether this event ends its task: a final state, or FAILED when no retry
 * follows (decision marks the task finished; a retried FAILED goes on to QUEUED).
 */
export function endsTask(event: Pick<TaskEvent, 'state' | 'task' | 'final'>): boolean {
  return event.final || FINAL_STATES.has(event.state) || (event.state === TaskState.FAILED && event.task?.finishedAt !== undefined);
}
