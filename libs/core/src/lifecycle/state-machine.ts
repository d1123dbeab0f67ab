import { TaskState } from '@autoglm/proto';

const S = TaskState;

/**
 * The legal transitions of docs/architecture.md, "Task lifecycle". Anything
 * else is a bug in the caller: it is refused (and logged by the caller), never
 * applied, so a task's history is always a walk on this graph.
 */
const NEXT: ReadonlyMap<TaskState, ReadonlySet<TaskState>> = new Map([
  [S.PENDING, new Set([S.WAITING_DEPS, S.QUEUED, S.CANCELLED])],
  [S.WAITING_DEPS, new Set([S.QUEUED, S.CANCELLED])],
  [S.QUEUED, new Set([S.ASSIGNED, S.CANCELLED])],
  [S.ASSIGNED, new Set([S.RUNNING, S.FAILED, S.CANCELLED, S.PREEMPTED, S.LOST])],
  [S.RUNNING, new Set([S.SUCCEEDED, S.FAILED, S.CANCELLED, S.PREEMPTED, S.LOST])],
  // A failed attempt waits out its retry backoff in FAILED; it can be cancelled meanwhile.
  [S.FAILED, new Set([S.QUEUED, S.DEAD_LETTER, S.CANCELLED])],
  [S.PREEMPTED, new Set([S.QUEUED, S.CANCELLED])],
  [S.LOST, new Set([S.QUEUED, S.DEAD_LETTER, S.CANCELLED])],
  // Never left: an operator's requeue (`autoglm dead-letters requeue`) submits a new task.
  [S.DEAD_LETTER, new Set()],
  [S.SUCCEEDED, new Set()],
  [S.CANCELLED, new Set()],
]);

/** Whether `from → to` is a legal transition. */
export function canTransition(from: TaskState, to: TaskState): boolean {
  return NEXT.get(from)?.has(to) ?? false;
}

/**
 * States that end a task. (A FAILED task is also over when retrying cannot
 * help: decision marks it finished.)
 */
export function isFinal(state: TaskState): boolean {
  return state === S.SUCCEEDED || state === S.CANCELLED || state === S.DEAD_LETTER;
}

/** States in which an attempt holds a lease on an agent. */
export function isLeased(state: TaskState): boolean {
  return state === S.ASSIGNED || state === S.RUNNING;
}

/** The state's name as users read it ("QUEUED"). */
export function stateName(state: TaskState): string {
  return TaskState[state] ?? `UNKNOWN(${state})`;
}

/** Thrown for a transition the state machine forbids. */
export class IllegalTransitionError extends Error {
  constructor(readonly taskId: string, readonly from: TaskState, readonly to: TaskState) {
    super(`task ${taskId}: illegal transition ${stateName(from)} -> ${stateName(to)}`);
    this.name = 'IllegalTransitionError';
  }
}
