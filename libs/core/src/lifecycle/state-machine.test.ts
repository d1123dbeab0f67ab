import { TaskState } from '@autoglm/proto';
import fc from 'fast-check';
import { canTransition, IllegalTransitionError, isFinal, isLeased, stateName } from './state-machine';
import { STORED_STATES as STATES } from './test-states';

const S = TaskState;

const name = (s: TaskState): string => stateName(s);
const edge = ([from, to]: readonly [TaskState, TaskState]): string => `${name(from)} -> ${name(to)}`;

/** The transitions drawn in docs/ARCHITECTURE.md, "Task lifecycle", and described under it. */
const DOCUMENTED: ReadonlyArray<readonly [TaskState, TaskState]> = [
  // The main line.
  [S.PENDING, S.WAITING_DEPS],
  [S.WAITING_DEPS, S.QUEUED],
  [S.QUEUED, S.ASSIGNED],
  [S.ASSIGNED, S.RUNNING],
  [S.RUNNING, S.SUCCEEDED],
  // A task without dependencies goes straight to the queue.
  [S.PENDING, S.QUEUED],
  // Failure: retried while retries are left, dead-lettered after.
  [S.RUNNING, S.FAILED],
  [S.FAILED, S.QUEUED],
  [S.FAILED, S.DEAD_LETTER],
  // Cancellation from every non-final state on the main line.
  [S.PENDING, S.CANCELLED],
  [S.WAITING_DEPS, S.CANCELLED],
  [S.QUEUED, S.CANCELLED],
  [S.ASSIGNED, S.CANCELLED],
  [S.RUNNING, S.CANCELLED],
  // Preemption and loss (agent died, lease expired) requeue the task.
  [S.RUNNING, S.PREEMPTED],
  [S.RUNNING, S.LOST],
  [S.ASSIGNED, S.LOST],
  [S.PREEMPTED, S.QUEUED],
  [S.LOST, S.QUEUED],
  // "A missed lease makes the task LOST and requeued with attempt+1" — unless no retries are left.
  [S.LOST, S.DEAD_LETTER],
  // Not drawn, added by this project: a failed attempt waits out its retry backoff in FAILED and can be cancelled meanwhile.
  [S.FAILED, S.CANCELLED],
];

/** Transitions that would corrupt a task's history. */
const FORBIDDEN: ReadonlyArray<readonly [TaskState, TaskState]> = [
  // Skipping the lease: nothing runs without being assigned first.
  [S.QUEUED, S.RUNNING],
  [S.PENDING, S.ASSIGNED],
  [S.PENDING, S.RUNNING],
  [S.WAITING_DEPS, S.ASSIGNED],
  [S.WAITING_DEPS, S.RUNNING],
  [S.FAILED, S.RUNNING],
  [S.PREEMPTED, S.RUNNING],
  [S.LOST, S.RUNNING],
  [S.FAILED, S.ASSIGNED],
  [S.PREEMPTED, S.ASSIGNED],
  [S.LOST, S.ASSIGNED],
  // Finishing without having run.
  [S.PENDING, S.SUCCEEDED],
  [S.QUEUED, S.SUCCEEDED],
  [S.ASSIGNED, S.SUCCEEDED],
  [S.QUEUED, S.FAILED],
  // Requeueing a running attempt without saying why (it goes through FAILED, PREEMPTED or LOST).
  [S.RUNNING, S.QUEUED],
  [S.ASSIGNED, S.QUEUED],
  [S.RUNNING, S.ASSIGNED],
  // Going back to dependency gating once queued.
  [S.QUEUED, S.WAITING_DEPS],
  [S.RUNNING, S.WAITING_DEPS],
  // Reviving a cancelled task.
  [S.CANCELLED, S.QUEUED],
  [S.CANCELLED, S.RUNNING],
  [S.CANCELLED, S.PENDING],
];

describe('canTransition', () => {
  it.each(DOCUMENTED.map((e) => [edge(e), e] as const))('allows %s', (_label, [from, to]) => {
    expect(canTransition(from, to)).toBe(true);
  });

  it.each(FORBIDDEN.map((e) => [edge(e), e] as const))('refuses %s', (_label, [from, to]) => {
    expect(canTransition(from, to)).toBe(false);
  });

  it.each([S.SUCCEEDED, S.CANCELLED].map((s) => [name(s), s] as const))('lets nothing leave %s', (_label, from) => {
    expect(STATES.filter((to) => canTransition(from, to)).map(name)).toEqual([]);
  });

  it('never returns a task to PENDING: a task is pending only until the scheduler first looks at it', () => {
    expect(STATES.filter((from) => canTransition(from, S.PENDING)).map(name)).toEqual([]);
  });

  it('has no self-loops: every transition is a change a watcher can see', () => {
    expect(STATES.filter((s) => canTransition(s, s)).map(name)).toEqual([]);
  });

  it('refuses UNSPECIFIED and unrecognised states on either side', () => {
    for (const s of STATES) {
      expect(canTransition(s, S.UNSPECIFIED)).toBe(false);
      expect(canTransition(S.UNSPECIFIED, s)).toBe(false);
      expect(canTransition(s, S.UNRECOGNIZED)).toBe(false);
      expect(canTransition(S.UNRECOGNIZED, s)).toBe(false);
      expect(canTransition(s, 42 as TaskState)).toBe(false);
    }
  });

  it('reaches RUNNING only from ASSIGNED and SUCCEEDED only from RUNNING', () => {
    expect(STATES.filter((s) => canTransition(s, S.RUNNING)).map(name)).toEqual(['ASSIGNED']);
    expect(STATES.filter((s) => canTransition(s, S.SUCCEEDED)).map(name)).toEqual(['RUNNING']);
  });

  // Regression test (found in review, fixed).
  it('lets nothing leave DEAD_LETTER, the final state of a task whose retries are used up', () => {
    expect(STATES.filter((to) => canTransition(S.DEAD_LETTER, to)).map(name)).toEqual([]);
  });
});

describe('isFinal / isLeased', () => {
  it('calls exactly SUCCEEDED, CANCELLED and DEAD_LETTER final', () => {
    expect(STATES.filter(isFinal).map(name)).toEqual(['SUCCEEDED', 'CANCELLED', 'DEAD_LETTER']);
  });

  it('holds a lease exactly while ASSIGNED or RUNNING', () => {
    expect(STATES.filter(isLeased).map(name)).toEqual(['ASSIGNED', 'RUNNING']);
  });

  it('never calls a leased state final', () => {
    for (const s of STATES) expect(isFinal(s) && isLeased(s)).toBe(false);
  });

  it('gives every non-final state a way out, so no task can get stuck', () => {
    for (const s of STATES.filter((x) => !isFinal(x))) {
      expect([name(s), STATES.some((to) => canTransition(s, to))]).toEqual([name(s), true]);
    }
  });
});

describe('random walks from QUEUED', () => {
  /** Follows canTransition from QUEUED, choosing among the legal next states with `choices`. */
  function walk(choices: number[]): TaskState[] {
    const path: TaskState[] = [S.QUEUED];
    for (const choice of choices) {
      const here = path[path.length - 1]!;
      const next = STATES.filter((to) => canTransition(here, to));
      if (next.length === 0) break;
      path.push(next[choice % next.length]!);
    }
    return path;
  }

  it('stops at SUCCEEDED or CANCELLED and never runs without an assignment', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 60 }), (choices) => {
        const path = walk(choices);
        const wrong: string[] = [];
        path.forEach((state, i) => {
          const prev = path[i - 1];
          if (prev === undefined) return;
          const step = `${name(prev)} -> ${name(state)}`;
          // Nothing follows a state that no transition may leave.
          if (prev === S.SUCCEEDED || prev === S.CANCELLED) wrong.push(`left a final state: ${step}`);
          if (state === S.RUNNING && prev !== S.ASSIGNED) wrong.push(`ran without an assignment: ${step}`);
          if (state === S.SUCCEEDED && prev !== S.RUNNING) wrong.push(`succeeded without running: ${step}`);
          if (state === S.ASSIGNED && prev !== S.QUEUED) wrong.push(`assigned without being queued: ${step}`);
          if (state === S.PENDING || state === S.WAITING_DEPS) wrong.push(`went back before the queue: ${step}`);
        });
        expect(wrong).toEqual([]);
        const last = path[path.length - 1]!;
        if (path.length < choices.length + 1) expect(isFinal(last)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  // The property of the brief as stated over every final state; fails on DEAD_LETTER -> QUEUED (see above).
  it('never leaves a final state', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 60 }), (choices) => {
        const path = walk(choices);
        const firstFinal = path.findIndex(isFinal);
        if (firstFinal >= 0) expect(path.slice(firstFinal).map(name)).toEqual([name(path[firstFinal]!)]);
      }),
      { numRuns: 300 },
    );
  });
});

describe('stateName / IllegalTransitionError', () => {
  it('names states as users read them', () => {
    expect(stateName(S.QUEUED)).toBe('QUEUED');
    expect(stateName(S.DEAD_LETTER)).toBe('DEAD_LETTER');
    expect(stateName(77 as TaskState)).toBe('UNKNOWN(77)');
  });

  it('says which task made which illegal transition', () => {
    const err = new IllegalTransitionError('t-1', S.SUCCEEDED, S.QUEUED);
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('IllegalTransitionError');
    expect(err.message).toBe('task t-1: illegal transition SUCCEEDED -> QUEUED');
    expect([err.taskId, err.from, err.to]).toEqual(['t-1', S.SUCCEEDED, S.QUEUED]);
  });
});
