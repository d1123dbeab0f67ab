import { TaskState } from '@autoglm/proto';
import { canTransition, isFinal, stateName } from './state-machine';

/*
 * An offline history checker. Chaos tests record every task event a run
 * emits (kill agents, drop leases, restart the decision service, ...) and hand
 * the recording to `checkHistory` at the end. It answers one question: did
 * every task walk the lifecycle graph of state-machine.ts, one legal step at a
 * time, and end exactly once? It knows nothing about how the events were
 * produced, so it also works on a log read back from the store or a file.
 */

const S = TaskState;

/**
 * One recorded transition of one task. A proto `TaskEvent` fits this shape;
 * `attempt` is the task's attempt number after the event, when the recorder
 * knows it.
 */
export interface HistoryEvent {
  taskId: string;
  /** Per-task, starts at 1, no gaps. */
  sequence: number;
  /** The state entered. */
  state: TaskState;
  /** The state left; UNSPECIFIED for the first event. */
  previousState: TaskState;
  /** This event ends the task: no event may follow it. */
  final: boolean;
  /** The task's attempt number after the event, when known. */
  attempt?: number;
}

/**
 * One broken rule. `rule` is a short stable id that tests can match on:
 *
 * - `bad-sequence`: a sequence number that is not a positive integer.
 * - `gap`: a sequence number is missing.
 * - `duplicate`: a sequence number appears twice (even with identical events).
 * - `bad-first`: event 1 does not come from UNSPECIFIED into PENDING, WAITING_DEPS or QUEUED.
 * - `broken-chain`: an event's previousState is not the state the event before it entered.
 * - `illegal`: the state machine forbids the transition.
 * - `final-flag`: `final` is false on SUCCEEDED, CANCELLED or DEAD_LETTER, or true on a state
 *   that cannot end a task (anything but those and FAILED).
 * - `after-final`: an event follows a final one.
 * - `two-successes`: the task succeeded more than once.
 * - `attempt-decreased`: the attempt number went down.
 * - `no-final`: the task never ended (only with `requireFinal`).
 * - `unknown-task`: an accepted task has no events at all: it was lost.
 *
 * `detail` says what was seen, for people; it is not stable.
 */
export interface Violation {
  taskId: string;
  rule: string;
  detail: string;
}

/** What `checkHistory` found. */
export interface HistoryReport {
  /** Tasks checked: those with events, plus accepted tasks that have none. */
  tasks: number;
  /** Events read. */
  events: number;
  /** Tasks whose last event (highest sequence) is final. */
  finished: number;
  /** Every broken rule, grouped by task in the order tasks first appear, then by sequence. */
  violations: Violation[];
}

export interface CheckHistoryOptions {
  /**
   * Ids of the tasks the system acknowledged (SubmitTask answered). Each must
   * have events; one that has none is reported as `unknown-task`. Tasks with
   * events that are not listed here are checked like the others and not
   * flagged: a submission can succeed even when its answer was lost.
   */
  accepted?: Iterable<string>;
  /** Require every task to end with a final event (default true). Turn off to check a run cut short. */
  requireFinal?: boolean;
}

/** States a task may enter first. */
const FIRST_STATES: ReadonlySet<TaskState> = new Set([S.PENDING, S.WAITING_DEPS, S.QUEUED]);

const name = stateName;

const bySequence = (a: HistoryEvent, b: HistoryEvent): number => a.sequence - b.sequence;

function isSortedBySequence(events: readonly HistoryEvent[]): boolean {
  for (let i = 1; i < events.length; i++) if (events[i - 1]!.sequence > events[i]!.sequence) return false;
  return true;
}

function sameEvent(a: HistoryEvent, b: HistoryEvent): boolean {
  return a.state === b.state && a.previousState === b.previousState && a.final === b.final && a.attempt === b.attempt;
}

function show(e: HistoryEvent): string {
  const attempt = e.attempt === undefined ? '' : `, attempt ${e.attempt}`;
  return `#${e.sequence} ${name(e.previousState)} -> ${name(e.state)}${e.final ? ' (final)' : ''}${attempt}`;
}

const validSequence = (e: HistoryEvent): boolean => Number.isSafeInteger(e.sequence) && e.sequence >= 1;

/**
 * Checks one task's events, in the order they were read. Returns whether the
 * task is finished, i.e. whether its last event is final.
 */
function checkTask(taskId: string, read: HistoryEvent[], requireFinal: boolean, out: Violation[]): boolean {
  const report = (rule: string, detail: string): void => {
    out.push({ taskId, rule, detail });
  };

  // Sequence numbers that cannot be placed (NaN, 0, 2.5) are reported and left out: they would upset the sort.
  let events = read;
  if (!read.every(validSequence)) {
    for (const e of read) if (!validSequence(e)) report('bad-sequence', `${show(e)}: sequence must be a positive integer`);
    events = read.filter(validSequence);
  }
  // Array#sort is stable, so among equal sequences the event read first comes first.
  if (!isSortedBySequence(events)) events.sort(bySequence);

  /** The event the next one must follow, or undefined after a gap (nothing to compare with). */
  let prior: HistoryEvent | undefined;
  /** The last event kept (duplicates and bad sequences are skipped). */
  let last: HistoryEvent | undefined;
  let expected = 1;
  let finalSeen: HistoryEvent | undefined;
  let successes = 0;
  let attempt: number | undefined;
  let attemptAt = 0;

  for (const e of events) {
    if (last !== undefined && e.sequence === last.sequence) {
      const how = sameEvent(e, last) ? 'identical' : `conflicting with ${show(last)}`;
      report('duplicate', `${show(e)}: sequence ${e.sequence} recorded again (${how})`);
      continue;
    }
    if (e.sequence !== expected) {
      const missing = e.sequence - expected === 1 ? `${expected}` : `${expected}..${e.sequence - 1}`;
      report('gap', `${show(e)}: missing sequence ${missing}`);
      prior = undefined; // The missing events explain any mismatch across the gap.
    }
    expected = e.sequence + 1;

    // Where the event comes from.
    if (e.sequence === 1) {
      if (e.previousState !== S.UNSPECIFIED || !FIRST_STATES.has(e.state)) {
        report('bad-first', `${show(e)}: a task starts from UNSPECIFIED in PENDING, WAITING_DEPS or QUEUED`);
      }
    } else if (prior !== undefined) {
      if (e.previousState !== prior.state) {
        report('broken-chain', `${show(e)}: previous event #${prior.sequence} entered ${name(prior.state)}`);
      }
      // After a final event the 'after-final' below says what is wrong; FAILED -> QUEUED would even be legal.
      if (!prior.final && !canTransition(prior.state, e.state)) {
        report('illegal', `${show(e)}: ${name(prior.state)} -> ${name(e.state)} is not a legal transition`);
      }
    }

    if (finalSeen !== undefined) {
      report('after-final', `${show(e)}: follows final event #${finalSeen.sequence} (${name(finalSeen.state)})`);
    }

    if (isFinal(e.state) ? !e.final : e.final && e.state !== S.FAILED) {
      report('final-flag', `${show(e)}: final must be ${!e.final} on ${name(e.state)}`);
    }

    if (e.state === S.SUCCEEDED && ++successes > 1) {
      report('two-successes', `${show(e)}: the task already succeeded`);
    }

    if (e.attempt !== undefined) {
      if (attempt !== undefined && e.attempt < attempt) {
        report('attempt-decreased', `${show(e)}: attempt was ${attempt} at #${attemptAt}`);
      }
      attempt = e.attempt;
      attemptAt = e.sequence;
    }

    if (e.final && finalSeen === undefined) finalSeen = e;
    prior = e;
    last = e;
  }

  if (requireFinal && finalSeen === undefined && last !== undefined) {
    report('no-final', `last event ${show(last)} does not end the task`);
  }
  return last?.final ?? false;
}

/**
 * Checks a recorded run: every task's events, taken in sequence order
 * (whatever order they arrive in), must form one legal walk on the lifecycle
 * graph that ends with exactly one final event. See `Violation` for the
 * rules.
 *
 * Runs in O(n log n) for n events (grouping, then one sort per task, skipped
 * when the task's events already arrive in order): about a second for a
 * recording of a million events, a few seconds if they come shuffled at random.
 */
export function checkHistory(
  events: Iterable<HistoryEvent>,
  options: CheckHistoryOptions = {},
): HistoryReport {
  const requireFinal = options.requireFinal ?? true;
  const byTask = new Map<string, HistoryEvent[]>();
  let count = 0;
  for (const e of events) {
    count++;
    const list = byTask.get(e.taskId);
    if (list === undefined) byTask.set(e.taskId, [e]);
    else list.push(e);
  }

  const violations: Violation[] = [];
  let finished = 0;
  for (const [taskId, list] of byTask) {
    if (checkTask(taskId, list, requireFinal, violations)) finished++;
  }

  let tasks = byTask.size;
  if (options.accepted !== undefined) {
    const reported = new Set<string>();
    for (const id of options.accepted) {
      if (byTask.has(id) || reported.has(id)) continue;
      reported.add(id);
      tasks++;
      violations.push({ taskId: id, rule: 'unknown-task', detail: 'accepted, but no event was recorded: the task was lost' });
    }
  }

  return { tasks, events: count, finished, violations };
}

/**
 * A readable summary of a report for a test failure message: a headline, the
 * count per rule, then the first `max` violations, one a line.
 *
 *     3 violations in 120 tasks (2400 events, 118 finished): gap 1, no-final 2
 *       t-17 [gap] #5 ASSIGNED -> RUNNING: missing sequence 4
 *       ...
 */
export function formatViolations(report: HistoryReport, max = 20): string {
  const { tasks, events, finished, violations } = report;
  const totals = `${tasks} task${tasks === 1 ? '' : 's'} (${events} event${events === 1 ? '' : 's'}, ${finished} finished)`;
  if (violations.length === 0) return `no violations in ${totals}`;

  const perRule = new Map<string, number>();
  for (const v of violations) perRule.set(v.rule, (perRule.get(v.rule) ?? 0) + 1);
  const rules = [...perRule].map(([rule, n]) => `${rule} ${n}`).join(', ');

  const shown = Math.max(0, Math.min(Math.floor(max), violations.length));
  const lines = [`${violations.length} violation${violations.length === 1 ? '' : 's'} in ${totals}: ${rules}`];
  for (const v of violations.slice(0, shown)) lines.push(`  ${v.taskId} [${v.rule}] ${v.detail}`);
  if (shown < violations.length) lines.push(`  ... and ${violations.length - shown} more`);
  return lines.join('\n');
}
