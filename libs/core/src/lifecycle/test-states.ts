import { TaskState } from '@autoglm/proto';

const S = TaskState;

/**
 * Test aid: every state a stored task can be in (UNSPECIFIED and UNRECOGNIZED
 * are never stored), written out rather than taken from the state machine, so
 * the tests of the state machine and of the history checker do not derive
 * their cases from the code they test.
 */
export const STORED_STATES: readonly TaskState[] = [
  S.PENDING,
  S.WAITING_DEPS,
  S.QUEUED,
  S.ASSIGNED,
  S.RUNNING,
  S.SUCCEEDED,
  S.FAILED,
  S.CANCELLED,
  S.DEAD_LETTER,
  S.PREEMPTED,
  S.LOST,
];
