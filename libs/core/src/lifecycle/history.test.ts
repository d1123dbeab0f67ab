import { TaskState } from '@autoglm/proto';
import fc from 'fast-check';
import { seededRandom } from '../random';
import { checkHistory, formatViolations, type HistoryEvent, type HistoryReport } from './history';
import { canTransition, isFinal, stateName } from './state-machine';
import { STORED_STATES as STATES } from './test-states';

const S = TaskState;

const FIRST_STATES: readonly TaskState[] = [S.PENDING, S.WAITING_DEPS, S.QUEUED];

/**
 * The events of one task walking through `states`, with sequences 1, 2, ...
 * and each previousState set to the state before. `final` is set on
 * SUCCEEDED, CANCELLED and DEAD_LETTER, and on a last FAILED when
 * `failedIsFinal`. `attempts`, when given, are the attempt numbers, one per event.
 */
function chain(
  taskId: string,
  states: readonly TaskState[],
  opts: { attempts?: readonly number[]; failedIsFinal?: boolean } = {},
): HistoryEvent[] {
  return states.map((state, i) => {
    const last = i === states.length - 1;
    const event: HistoryEvent = {
      taskId,
      sequence: i + 1,
      state,
      previousState: i === 0 ? S.UNSPECIFIED : states[i - 1]!,
      final: isFinal(state) || (last && state === S.FAILED && opts.failedIsFinal === true),
    };
    const attempt = opts.attempts?.[i];
    if (attempt !== undefined) event.attempt = attempt;
    return event;
  });
}

/** "task:rule" for each violation, in report order. */
const found = (report: HistoryReport): string[] => report.violations.map((v) => `${v.taskId}:${v.rule}`);

/** A deterministic shuffle, so a failing property replays. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const random = seededRandom(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const SUCCESS = [S.PENDING, S.QUEUED, S.ASSIGNED, S.RUNNING, S.SUCCEEDED];

describe('checkHistory on valid histories', () => {
  const valid: Array<[string, HistoryEvent[]]> = [
    ['a straight success', chain('t', SUCCESS, { attempts: [1, 1, 1, 1, 1] })],
    [
      'a retry: FAILED, back to the queue, then success, with the attempt rising',
      chain('t', [S.QUEUED, S.ASSIGNED, S.RUNNING, S.FAILED, S.QUEUED, S.ASSIGNED, S.RUNNING, S.SUCCEEDED], {
        attempts: [1, 1, 1, 1, 2, 2, 2, 2],
      }),
    ],
    [
      'a lost lease: LOST, requeued, then success',
      chain('t', [S.QUEUED, S.ASSIGNED, S.LOST, S.QUEUED, S.ASSIGNED, S.RUNNING, S.SUCCEEDED], {
        attempts: [1, 1, 1, 2, 2, 2, 2],
      }),
    ],
    ['a preemption, requeued, then success', chain('t', [S.QUEUED, S.ASSIGNED, S.RUNNING, S.PREEMPTED, S.QUEUED, S.ASSIGNED, S.RUNNING, S.SUCCEEDED])],
    ['a task that waits for its dependencies', chain('t', [S.PENDING, S.WAITING_DEPS, S.QUEUED, S.ASSIGNED, S.RUNNING, S.SUCCEEDED])],
    ['a task that starts waiting for its dependencies', chain('t', [S.WAITING_DEPS, S.QUEUED, S.ASSIGNED, S.RUNNING, S.SUCCEEDED])],
    [
      'a failure that retrying cannot fix, final on FAILED',
      chain('t', [S.QUEUED, S.ASSIGNED, S.RUNNING, S.FAILED], { failedIsFinal: true }),
    ],
    [
      'a task dead-lettered after its retries are used up',
      chain('t', [S.QUEUED, S.ASSIGNED, S.RUNNING, S.FAILED, S.QUEUED, S.ASSIGNED, S.LOST, S.DEAD_LETTER], {
        attempts: [1, 1, 1, 1, 2, 2, 2, 2],
      }),
    ],
    ['a task cancelled while pending', chain('t', [S.PENDING, S.CANCELLED])],
    ['a task cancelled during its retry backoff', chain('t', [S.QUEUED, S.ASSIGNED, S.RUNNING, S.FAILED, S.CANCELLED])],
    ['events without attempt numbers', chain('t', SUCCESS)],
  ];

  it.each(valid)('accepts %s', (_label, events) => {
    const report = checkHistory(events, { accepted: ['t'] });
    expect(formatViolations(report)).toBe(`no violations in 1 task (${events.length} events, 1 finished)`);
    expect(report).toEqual({ tasks: 1, events: events.length, finished: 1, violations: [] });
  });

  it('accepts the events of many tasks interleaved in any order', () => {
    const events = valid.flatMap(([, history], i) => history.map((e) => ({ ...e, taskId: `t-${i}` })));
    for (const seed of [1, 2, 3, 42]) {
      const report = checkHistory(shuffled(events, seed), { accepted: valid.map((_, i) => `t-${i}`) });
      expect(found(report)).toEqual([]);
      expect(report).toMatchObject({ tasks: valid.length, events: events.length, finished: valid.length });
    }
  });

  it('accepts a task still in flight when requireFinal is off, and does not count it finished', () => {
    const events = [...chain('done', SUCCESS), ...chain('busy', [S.QUEUED, S.ASSIGNED, S.RUNNING])];
    expect(checkHistory(events, { requireFinal: false })).toEqual({ tasks: 2, events: 8, finished: 1, violations: [] });
  });

  it('does not flag tasks with events that were never acknowledged (their answer may have been lost)', () => {
    const events = [...chain('acked', SUCCESS), ...chain('unacked', SUCCESS)];
    expect(found(checkHistory(events, { accepted: ['acked'] }))).toEqual([]);
  });

  it('reads any iterable, once', () => {
    function* generate(): Generator<HistoryEvent> {
      yield* chain('a', SUCCESS);
      yield* chain('b', [S.PENDING, S.CANCELLED]);
    }
    expect(checkHistory(generate())).toEqual({ tasks: 2, events: 7, finished: 2, violations: [] });
  });

  it('reports an empty history as empty', () => {
    expect(checkHistory([])).toEqual({ tasks: 0, events: 0, finished: 0, violations: [] });
  });

  it('checks a million events, every task out of order, in a few seconds', () => {
    const steps = [S.QUEUED, S.ASSIGNED, S.RUNNING, S.FAILED, S.QUEUED, S.ASSIGNED, S.RUNNING, S.SUCCEEDED];
    const histories = Array.from({ length: 125_000 }, (_, t) => chain(`t-${t}`, steps, { attempts: [1, 1, 1, 1, 2, 2, 2, 2] }));
    // Interleaved as a busy run records them (every task's first step, then every task's second, ...), then reversed.
    const events = steps.flatMap((_, step) => histories.map((h) => h[step]!)).reverse();
    const started = performance.now();
    const report = checkHistory(events);
    const seconds = (performance.now() - started) / 1000;
    expect(report).toEqual({ tasks: 125_000, events: 1_000_000, finished: 125_000, violations: [] });
    expect(seconds).toBeLessThan(10); // Generous for slow CI machines; typically around a second.
  });
});

describe('checkHistory reports each broken rule with the task it concerns', () => {
  const ok = chain('ok', SUCCESS); // An innocent bystander: never reported.

  /** Checks `ok` plus `events` (shuffled, so order never matters) and returns "task:rule" list. */
  const check = (events: HistoryEvent[], options?: Parameters<typeof checkHistory>[1]): string[] =>
    found(checkHistory(shuffled([...ok, ...events], 5), options));

  it('gap: a missing sequence number', () => {
    const events = chain('t', SUCCESS).filter((e) => e.sequence !== 3);
    expect(check(events)).toEqual(['t:gap']);
    expect(checkHistory(events).violations[0]!.detail).toContain('missing sequence 3');
  });

  it('gap: a history that does not start at 1', () => {
    expect(check(chain('t', SUCCESS).slice(1))).toEqual(['t:gap']);
  });

  it('duplicate: the same sequence recorded twice, even with an identical event', () => {
    const events = chain('t', SUCCESS);
    expect(check([...events, { ...events[2]! }])).toEqual(['t:duplicate']);
  });

  it('duplicate: two different events under one sequence number', () => {
    const events = chain('t', SUCCESS);
    const other: HistoryEvent = { ...events[1]!, state: S.CANCELLED, final: true };
    const report = checkHistory([...events, other]);
    expect(found(report)).toEqual(['t:duplicate']);
    expect(report.violations[0]!.detail).toContain('conflicting');
  });

  it('bad-first: a first event that does not start a task', () => {
    const running = chain('t', [S.RUNNING, S.SUCCEEDED]);
    expect(check(running)).toEqual(['t:bad-first']);
    const fromQueued = chain('u', SUCCESS);
    fromQueued[0] = { ...fromQueued[0]!, previousState: S.QUEUED };
    expect(check(fromQueued)).toEqual(['u:bad-first']);
  });

  it('broken-chain: an event that does not leave the state the task was in', () => {
    const events = chain('t', SUCCESS);
    events[3] = { ...events[3]!, previousState: S.QUEUED }; // Says QUEUED -> RUNNING, but the task was ASSIGNED.
    expect(check(events)).toEqual(['t:broken-chain']);
  });

  it('illegal: a transition the state machine forbids', () => {
    expect(check(chain('t', [S.QUEUED, S.RUNNING, S.SUCCEEDED]))).toEqual(['t:illegal']);
  });

  it('final-flag: a SUCCEEDED, CANCELLED or DEAD_LETTER event not marked final', () => {
    for (const end of [S.SUCCEEDED, S.CANCELLED, S.DEAD_LETTER]) {
      const states = end === S.DEAD_LETTER ? [S.QUEUED, S.ASSIGNED, S.LOST, end] : [S.QUEUED, S.ASSIGNED, S.RUNNING, end];
      const events = chain('t', states);
      events[3] = { ...events[3]!, final: false };
      // Not marked final, so the task also never ended.
      expect([stateName(end), check(events)]).toEqual([stateName(end), ['t:final-flag', 't:no-final']]);
    }
  });

  it('final-flag: a final event in a state that cannot end a task', () => {
    const events = chain('t', [S.QUEUED, S.ASSIGNED, S.RUNNING, S.PREEMPTED]);
    events[3] = { ...events[3]!, final: true };
    expect(check(events)).toEqual(['t:final-flag']);
  });

  it('after-final: an event after the final one, even a transition that would otherwise be legal', () => {
    const events = chain('t', [S.QUEUED, S.ASSIGNED, S.RUNNING, S.FAILED, S.QUEUED], { failedIsFinal: false });
    events[3] = { ...events[3]!, final: true }; // FAILED for good, then requeued anyway.
    expect(check(events)).toEqual(['t:after-final']);
  });

  it('two-successes: a task that succeeds twice', () => {
    const events = chain('t', SUCCESS);
    events.push({ ...events[4]!, sequence: 6 }); // RUNNING -> SUCCEEDED again.
    expect(check(events)).toEqual(expect.arrayContaining(['t:two-successes', 't:after-final']));
  });

  it('attempt-decreased: an attempt number that goes down', () => {
    const events = chain('t', [S.QUEUED, S.ASSIGNED, S.LOST, S.QUEUED, S.ASSIGNED, S.RUNNING, S.SUCCEEDED], {
      attempts: [1, 1, 1, 2, 1, 2, 2],
    });
    expect(check(events)).toEqual(['t:attempt-decreased']);
  });

  it('attempt-decreased: compares with the last known attempt when some events have none', () => {
    const events = chain('t', SUCCESS);
    events[1] = { ...events[1]!, attempt: 3 };
    events[3] = { ...events[3]!, attempt: 2 };
    expect(check(events)).toEqual(['t:attempt-decreased']);
  });

  it('no-final: a task that never ended', () => {
    expect(check(chain('t', [S.QUEUED, S.ASSIGNED, S.RUNNING]))).toEqual(['t:no-final']);
    expect(check(chain('t', [S.QUEUED, S.ASSIGNED, S.RUNNING]), { requireFinal: false })).toEqual([]);
  });

  it('no-final: a FAILED event not marked final is a retry waiting to happen, not an end', () => {
    expect(check(chain('t', [S.QUEUED, S.ASSIGNED, S.RUNNING, S.FAILED]))).toEqual(['t:no-final']);
  });

  it('unknown-task: an accepted task without a single event, reported once', () => {
    expect(check([], { accepted: ['ok', 'lost', 'lost'] })).toEqual(['lost:unknown-task']);
    expect(checkHistory(ok, { accepted: ['ok', 'lost'] })).toMatchObject({ tasks: 2, finished: 1 });
  });

  it('bad-sequence: a sequence number that is not a positive integer', () => {
    const events = chain('t', SUCCESS);
    for (const sequence of [0, -1, 2.5, Number.NaN]) {
      expect([sequence, check([...events, { ...events[0]!, sequence }])]).toEqual([sequence, ['t:bad-sequence']]);
    }
  });

  it('reports every task with a problem, each with its own rule', () => {
    const gap = chain('a', SUCCESS).filter((e) => e.sequence !== 2);
    const illegal = chain('b', [S.QUEUED, S.RUNNING, S.SUCCEEDED]);
    const open = chain('c', [S.QUEUED]);
    expect(check([...gap, ...illegal, ...open], { accepted: ['ok', 'a', 'b', 'c', 'd'] }).sort()).toEqual([
      'a:gap',
      'b:illegal',
      'c:no-final',
      'd:unknown-task',
    ]);
  });
});

describe('formatViolations', () => {
  const events = [
    ...chain('a', [S.QUEUED, S.RUNNING, S.SUCCEEDED]),
    ...chain('b', [S.QUEUED, S.ASSIGNED]),
    ...chain('c', [S.PENDING]),
  ];
  const report = checkHistory(events, { accepted: ['a', 'b', 'c', 'd'] });

  it('says how many violations of which rule, then lists them one a line', () => {
    expect(formatViolations(report).split('\n')).toEqual([
      '4 violations in 4 tasks (6 events, 1 finished): illegal 1, no-final 2, unknown-task 1',
      '  a [illegal] #2 QUEUED -> RUNNING: QUEUED -> RUNNING is not a legal transition',
      '  b [no-final] last event #2 QUEUED -> ASSIGNED does not end the task',
      '  c [no-final] last event #1 UNSPECIFIED -> PENDING does not end the task',
      '  d [unknown-task] accepted, but no event was recorded: the task was lost',
    ]);
  });

  it('lists at most `max` violations and says how many it left out', () => {
    const lines = formatViolations(report, 2).split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[3]).toBe('  ... and 2 more');
    expect(formatViolations(report, 0).split('\n')).toEqual([lines[0], '  ... and 4 more']);
  });
});

// ---------------------------------------------------------------------------
// Properties over random legal walks.

/** One task's random walk on the lifecycle graph, driven by `choices`, ending in a final state. */
interface WalkSpec {
  start: TaskState;
  choices: number[];
  end: number;
  withAttempts: boolean;
}

const walkSpec: fc.Arbitrary<WalkSpec> = fc.record({
  start: fc.constantFrom(...FIRST_STATES),
  choices: fc.array(fc.nat(), { maxLength: 30 }),
  end: fc.nat(),
  withAttempts: fc.boolean(),
});

const legalNext = (from: TaskState): TaskState[] => STATES.filter((to) => canTransition(from, to));

/**
 * Walks canTransition from `start`. At FAILED the walk may also stop, as a
 * failure that retrying cannot fix. Once `choices` run out, the walk heads for
 * a final state. The attempt starts at 1 and rises each time the task is requeued.
 */
function walkEvents(taskId: string, spec: WalkSpec): HistoryEvent[] {
  const path: TaskState[] = [spec.start];
  let failedForGood = false;
  const here = (): TaskState => path[path.length - 1]!;

  for (const choice of spec.choices) {
    if (isFinal(here())) break;
    const next = legalNext(here());
    const pick = choice % (next.length + (here() === S.FAILED ? 1 : 0));
    if (pick === next.length) {
      failedForGood = true;
      break;
    }
    path.push(next[pick]!);
  }
  while (!isFinal(here()) && !failedForGood) {
    const finals = legalNext(here()).filter(isFinal);
    if (finals.length === 0) throw new Error(`no final state reachable in one step from ${stateName(here())}`);
    const pick = spec.end % (finals.length + (here() === S.FAILED ? 1 : 0));
    if (pick === finals.length) failedForGood = true;
    else path.push(finals[pick]!);
  }

  let attempt = 1;
  return path.map((state, i) => {
    const previousState = i === 0 ? S.UNSPECIFIED : path[i - 1]!;
    if (state === S.QUEUED && (previousState === S.FAILED || previousState === S.LOST || previousState === S.PREEMPTED)) {
      attempt++;
    }
    const event: HistoryEvent = {
      taskId,
      sequence: i + 1,
      state,
      previousState,
      final: isFinal(state) || (failedForGood && i === path.length - 1),
    };
    if (spec.withAttempts) event.attempt = attempt;
    return event;
  });
}

const runSpec = fc.record({ walks: fc.array(walkSpec, { minLength: 1, maxLength: 6 }), seed: fc.nat() });

const taskIds = (n: number): string[] => Array.from({ length: n }, (_, i) => `t-${i}`);

describe('checkHistory on random legal walks', () => {
  it('finds no violation in any legal run, in any order', () => {
    fc.assert(
      fc.property(runSpec, ({ walks, seed }) => {
        const histories = walks.map((w, i) => walkEvents(`t-${i}`, w));
        const events = shuffled(histories.flat(), seed);
        const report = checkHistory(events, { accepted: taskIds(walks.length) });
        expect(formatViolations(report)).toBe(formatViolations({ ...report, violations: [] }));
        expect(report).toEqual({ tasks: walks.length, events: events.length, finished: walks.length, violations: [] });
      }),
      { numRuns: 500 },
    );
  });

  type Mutation = 'drop' | 'duplicate' | 'illegal-state' | 'wrong-chain' | 'flip-final' | 'append-after-final' | 'lower-attempt';
  const MUTATIONS: readonly Mutation[] = [
    'drop',
    'duplicate',
    'illegal-state',
    'wrong-chain',
    'flip-final',
    'append-after-final',
    'lower-attempt',
  ];

  /**
   * Applies `mutation` to event `index` of `history` (a finished legal walk:
   * at least two events, only the last one final) and returns the new history
   * with the rules, any one of which the checker must report.
   */
  function mutate(history: HistoryEvent[], mutation: Mutation, index: number, pick: number): [HistoryEvent[], string[]] {
    const out = history.map((e) => ({ ...e }));
    const i = index % out.length;
    const e = out[i]!;
    const before = out[i - 1];
    switch (mutation) {
      case 'drop':
        // A hole in the sequence; or, for the last event, a task that never ended.
        out.splice(i, 1);
        return [out, ['gap', 'no-final']];
      case 'duplicate':
        out.push({ ...e });
        return [out, ['duplicate']];
      case 'illegal-state': {
        // A state the task cannot enter from where it was.
        const wrong = before === undefined
          ? [S.UNSPECIFIED, ...STATES.filter((s) => !FIRST_STATES.includes(s))]
          : [S.UNSPECIFIED, ...STATES.filter((s) => !canTransition(before.state, s))];
        e.state = wrong[pick % wrong.length]!;
        return [out, [before === undefined ? 'bad-first' : 'illegal']];
      }
      case 'wrong-chain': {
        const others = [S.UNSPECIFIED, ...STATES].filter((s) => s !== e.previousState);
        e.previousState = others[pick % others.length]!;
        return [out, [before === undefined ? 'bad-first' : 'broken-chain']];
      }
      case 'flip-final':
        // Wrong for a state that must (not) be final; for FAILED, either an end with events after it or a lost end.
        e.final = !e.final;
        return [out, ['final-flag', 'after-final', 'no-final']];
      case 'append-after-final': {
        const last = out[out.length - 1]!;
        const state = STATES[pick % STATES.length]!;
        out.push({ taskId: last.taskId, sequence: last.sequence + 1, state, previousState: last.state, final: isFinal(state) });
        return [out, ['after-final']];
      }
      case 'lower-attempt': {
        const j = Math.max(1, i); // Needs an event before it.
        const prior = out[j - 1]!;
        prior.attempt ??= 1;
        out[j]!.attempt = prior.attempt - 1 - (pick % 3);
        return [out, ['attempt-decreased']];
      }
    }
  }

  it('catches any single mutation of a legal run, and blames only the mutated task', () => {
    fc.assert(
      fc.property(
        runSpec,
        fc.constantFrom(...MUTATIONS),
        fc.nat(),
        fc.nat(),
        fc.nat(),
        ({ walks, seed }, mutation, victimChoice, index, pick) => {
          const ids = taskIds(walks.length);
          const histories = walks.map((w, i) => walkEvents(ids[i]!, w));
          const victim = victimChoice % walks.length;
          const [mutated, expected] = mutate(histories[victim]!, mutation, index, pick);
          histories[victim] = mutated;

          const report = checkHistory(shuffled(histories.flat(), seed), { accepted: ids });
          const blamed = new Set(report.violations.map((v) => v.taskId));
          const rules = report.violations.map((v) => v.rule);
          expect([...blamed]).toEqual([ids[victim]]);
          if (!rules.some((r) => expected.includes(r))) {
            throw new Error(`${mutation}: expected one of ${expected.join(', ')}\n${formatViolations(report)}`);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
