import { type PriorityClass, type Task, type TaskEvent, type TaskResult, TaskState } from '@autoglm/proto';
import {
  canTransition,
  classValue,
  DeadlineOutcomes,
  FailedPreconditionError,
  InvalidArgumentError,
  isFinal,
  retryDelayMs,
  stateName,
  timestampToMillis,
  toTimestamp,
  type Clock,
  type QueuedTaskPatch,
  type RetryPolicy,
} from '@autoglm/core';
import type { StoredEvent, TaskStore } from '@autoglm/store';
import type { Logger } from '@autoglm/runtime';
import type { EventBus } from './event-bus';
import type { ExperimentStats } from './experiment-stats';
import type { Live } from './live';
import type { TaskBook } from './task-book';

const S = TaskState;

/** What the lifecycle asks of the queue and the leases, wired in by the Scheduler. */
export interface LifecycleHooks {
  /** Queues a runnable task and asks for a dispatch pass. */
  enqueueReady(entry: Live): void;
  /** A queued task's dependents or lent class changed. */
  updateQueued(id: string, patch: QueuedTaskPatch): void;
  /** Ends the task's hold on its node, if it has one. */
  releaseLease(entry: Live): void;
}

export interface LifecycleOptions {
  book: TaskBook;
  store: TaskStore;
  bus: EventBus;
  logger: Logger;
  clock: Clock;
  retry: RetryPolicy;
  experiments: ExperimentStats;
}

/**
 * How tasks move: every transition is checked against the state machine,
 * applied in memory at once, made durable with its event and published only
 * after the commit. Also what happens after an attempt ends without success
 * (retry with backoff, dead letter, requeue), and the dependency graph
 * (gating, priority inheritance, settling dependents when a task ends).
 */
export class Lifecycle {
  /** Per task: the unfinished tasks waiting on it. */
  readonly dependents = new Map<string, Set<string>>();
  readonly deadlines = new DeadlineOutcomes();
  succeeded = 0;
  failed = 0;
  deadLetters = 0;
  private hooks!: LifecycleHooks;
  private readonly book: TaskBook;
  private readonly store: TaskStore;
  private readonly bus: EventBus;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly retry: RetryPolicy;
  private readonly experiments: ExperimentStats;

  constructor(o: LifecycleOptions) {
    this.book = o.book;
    this.store = o.store;
    this.bus = o.bus;
    this.logger = o.logger;
    this.clock = o.clock;
    this.retry = o.retry;
    this.experiments = o.experiments;
  }

  wire(hooks: LifecycleHooks): void {
    this.hooks = hooks;
  }

  /**
   * The one way a task changes state: checked against the state machine,
   * applied in memory at once (so later decisions see it), made durable with
   * its event, and published after the commit.
   */
  transition(entry: Live, to: TaskState, reason: string, patch: Partial<Task> = {}): Promise<void> {
    const from = entry.state;
    if (!canTransition(from, to)) {
      this.logger.error({ taskId: entry.id, from: stateName(from), to: stateName(to) }, 'illegal transition refused');
      return Promise.reject(new FailedPreconditionError(`task ${entry.id} is ${stateName(from)} and cannot become ${stateName(to)}`));
    }
    const now = this.clock();
    // A fresh object per transition: the store and subscribers hold snapshots.
    const task: Task = { ...entry.task, ...patch, state: to, sequence: entry.task.sequence + 1, updatedAt: toTimestamp(now), reason };
    entry.task = task;
    const event: StoredEvent = { sequence: task.sequence, state: to, previousState: from, atMs: now, reason, final: isFinal(to) || !!patch.finishedAt };
    return this.store.record(task, event).then(() => this.publish(task, event));
  }

  publish(task: Task, event: StoredEvent): void {
    this.bus.publishTask(taskEventOf(task, event));
  }

  /** An event for each unfinished task as it is now (a Subscribe snapshot: previous_state is the state itself). */
  *snapshot(states: readonly TaskState[]): Generator<TaskEvent> {
    for (const entry of this.book.live.values()) {
      const task = this.book.read(entry);
      if (states.length > 0 && !states.includes(task.state)) continue;
      const atMs = task.updatedAt ? timestampToMillis(task.updatedAt) : this.clock();
      yield taskEventOf(task, { sequence: task.sequence, state: task.state, previousState: task.state, atMs, reason: task.reason, final: false });
    }
  }

  /** Moves a task to a final state, forgets it, and settles its dependents. */
  async finish(entry: Live, state: TaskState, reason: string, patch: Partial<Task> = {}): Promise<void> {
    const done = this.transition(entry, state, reason, { ...patch, finishedAt: toTimestamp(this.clock()) });
    clearTimeout(entry.retryTimer);
    entry.retryTimer = undefined;
    // Out of the live set at once, so a cancel or report in between finds it over;
    // readable from `finishing` until the store has it.
    this.book.live.delete(entry.id);
    this.book.finishing.set(entry.id, entry);
    try {
      await done;
    } finally {
      this.book.finishing.delete(entry.id);
    }
    if (state === S.SUCCEEDED) this.succeeded += 1;
    else this.failed += 1;
    if (state === S.DEAD_LETTER) this.deadLetters += 1;
    const deadline = entry.task.spec?.deadline;
    if (deadline) {
      const outcome = DeadlineOutcomes.of(state === S.SUCCEEDED, timestampToMillis(entry.task.finishedAt!), timestampToMillis(deadline));
      if (outcome) this.deadlines.record(entry.tenant, entry.task.spec!.priorityClass, outcome);
      this.experiments.deadline(entry.task.spec!, outcome);
    }
    // Ended while waiting: its dependencies no longer have it behind them.
    for (const dep of entry.waitingOn ?? []) {
      this.dependents.get(dep)?.delete(entry.id);
      this.refreshLineage(dep);
    }
    const waiting = this.dependents.get(entry.id);
    this.dependents.delete(entry.id);
    for (const id of waiting ?? []) {
      const dependent = this.book.live.get(id);
      if (!dependent?.waitingOn) continue;
      if (state !== S.SUCCEEDED) {
        await this.finish(dependent, S.CANCELLED, `dependency ${entry.id} ended ${stateName(state)}`);
        continue;
      }
      dependent.waitingOn.delete(entry.id);
      if (dependent.waitingOn.size === 0 && dependent.state === S.WAITING_DEPS) await this.release(dependent);
    }
  }

  /** Records a failed (FAILED) or lost (LOST) attempt, counting it against the task's retries (unless told not to), then goes on. */
  async failAttempt(entry: Live, how: 'failed' | 'lost', reason: string, result?: TaskResult, counts = true): Promise<void> {
    this.hooks.releaseLease(entry);
    await this.transition(entry, how === 'failed' ? S.FAILED : S.LOST, reason, { result, failures: entry.task.failures + (counts ? 1 : 0) });
    await this.afterFailure(entry, reason, how === 'failed');
  }

  /**
   * After a counted failure: DEAD_LETTER when the failures exceed max_retries;
   * else the next attempt, at once (a lost node) or after a backoff with
   * jitter (a failed attempt).
   */
  async afterFailure(entry: Live, reason: string, backoff: boolean): Promise<void> {
    if (this.book.live.get(entry.id) !== entry) return;
    const { failures, spec } = entry.task;
    if (failures > spec!.maxRetries) {
      await this.finish(entry, S.DEAD_LETTER, `${reason}; no retries left after ${failures} failed attempts`);
      return;
    }
    if (!backoff) {
      await this.requeue(entry, reason);
      return;
    }
    const delay = retryDelayMs(failures, this.retry);
    entry.retryTimer = setTimeout(() => {
      entry.retryTimer = undefined;
      this.requeue(entry, `${reason} (retried after ${delay} ms)`).catch((err: unknown) => this.logger.error({ err, taskId: entry.id }, 'retry failed'));
    }, delay);
    entry.retryTimer.unref?.();
  }

  /** The next attempt: back to the queue with attempt + 1. */
  async requeue(entry: Live, reason: string): Promise<void> {
    const from = entry.state;
    // Cancelled (or finished) meanwhile: nothing to requeue.
    if (this.book.live.get(entry.id) !== entry || (from !== S.FAILED && from !== S.LOST && from !== S.PREEMPTED)) return;
    const attempt = entry.task.attempt;
    // A preempted task keeps its age: it was runnable all along, and the age bound is its guarantee.
    // Its queue time (reported) counts from now all the same.
    if (from !== S.PREEMPTED) entry.readySinceMs = this.clock();
    entry.queuedAtMs = this.clock();
    await this.transition(entry, S.QUEUED, `attempt ${attempt + 1} after: ${reason}`, { attempt: attempt + 1, nodeId: '', gpuIndices: [] });
    this.hooks.enqueueReady(entry);
  }

  /**
   * An attempt whose node is gone (silent past its lease, or back without
   * it). A batch task is requeued; an interactive one is cancelled, because
   * its client's stream went with the agent.
   */
  async loseAttempt(entry: Live, reason: string): Promise<void> {
    if (!entry.task.spec?.interactive) {
      // Never reported running: the attempt did not start, so it is not the task's failure.
      await this.failAttempt(entry, 'lost', reason, undefined, entry.state === S.RUNNING);
      return;
    }
    await this.transition(entry, S.LOST, reason);
    if (this.book.live.get(entry.id) === entry) await this.finish(entry, S.CANCELLED, reason);
  }

  // ---- dependencies --------------------------------------------------------

  /** The dependencies not yet succeeded; refuses ones that do not exist or will never succeed. */
  async unmetDependencies(dependsOn: string[], field: string): Promise<Set<string>> {
    const states = await this.dependencyStates(dependsOn);
    const unmet = new Set<string>();
    dependsOn.forEach((dep, i) => {
      const state = states.get(dep);
      if (state === undefined) throw new InvalidArgumentError(`${field}[${i}]`, `task ${dep} does not exist`);
      if (state === S.CANCELLED || state === S.DEAD_LETTER || (state === S.FAILED && !this.book.live.has(dep))) {
        throw new InvalidArgumentError(`${field}[${i}]`, `task ${dep} ended ${stateName(state)} and will never succeed`);
      }
      if (state !== S.SUCCEEDED) unmet.add(dep);
    });
    return unmet;
  }

  /** A task registered as waiting on `unmet`: gated, with priority lent down the chain. */
  async wait(entry: Live, unmet: Set<string>): Promise<void> {
    entry.waitingOn = unmet;
    for (const dep of unmet) this.addDependent(dep, entry.id);
    // A dependency that ended while this task was being committed has settled its dependents already.
    await this.settleEndedDependencies(entry);
    this.book.restLater(entry);
  }

  /** Gates a recovered or adopted waiting task on its dependencies again (queued if they all succeeded, cancelled if one failed). */
  async gateOnDependencies(entry: Live): Promise<void> {
    const deps = entry.task.spec!.dependsOn;
    const states = await this.dependencyStates(deps);
    const unmet = new Set<string>();
    for (const dep of deps) {
      const state = states.get(dep) ?? S.UNSPECIFIED;
      // Live, or ending right now (its dependents are settled once that commits).
      if (this.book.live.has(dep) || (this.book.finishing.has(dep) && state !== S.SUCCEEDED)) unmet.add(dep);
      else if (state !== S.SUCCEEDED) {
        await this.finish(entry, S.CANCELLED, `dependency ${dep} ended ${stateName(state)}`);
        return;
      }
    }
    if (unmet.size === 0) {
      await this.release(entry);
      return;
    }
    await this.wait(entry, unmet);
  }

  /**
   * Dependency weight and priority inheritance: a task's direct waiting
   * dependents count for it, and the highest class among them is lent to it;
   * a change flows on down to what it waits on in turn.
   */
  refreshLineage(taskId: string, seen = new Set<string>()): void {
    if (seen.has(taskId)) return;
    seen.add(taskId);
    const entry = this.book.live.get(taskId);
    if (!entry) return;
    let lent: PriorityClass | undefined;
    for (const id of this.dependents.get(taskId) ?? []) {
      const d = this.book.live.get(id);
      if (!d) continue;
      for (const c of [d.priorityClass, d.inheritedClass]) {
        if (c !== undefined && (lent === undefined || classValue(c) > classValue(lent))) lent = c;
      }
    }
    const inheritedClass = lent !== undefined && classValue(lent) > classValue(entry.priorityClass) ? lent : undefined;
    const changed = inheritedClass !== entry.inheritedClass;
    entry.inheritedClass = inheritedClass;
    this.hooks.updateQueued(taskId, { inheritedClass, dependents: this.dependents.get(taskId)?.size ?? 0 });
    if (changed) for (const dep of entry.waitingOn ?? []) this.refreshLineage(dep, seen);
  }

  /** A waiting task whose dependencies have all succeeded: runnable, its age counting from now. */
  private async release(entry: Live): Promise<void> {
    entry.waitingOn = undefined;
    entry.readySinceMs = this.clock();
    await this.transition(entry, S.QUEUED, 'dependencies succeeded');
    this.hooks.enqueueReady(entry);
  }

  private async dependencyStates(ids: string[]): Promise<Map<string, TaskState>> {
    const states = new Map<string, TaskState>();
    const missing: string[] = [];
    for (const id of ids) {
      const entry = this.book.entry(id);
      if (entry) states.set(id, entry.state);
      else missing.push(id);
    }
    for (const [id, state] of await this.store.states(missing)) states.set(id, state);
    return states;
  }

  /**
   * For a task just registered as waiting: settles the dependencies that ended
   * meanwhile (between reading their state and registering), whose own
   * settling of dependents ran before this task was among them.
   */
  private async settleEndedDependencies(entry: Live): Promise<void> {
    const gone = [...(entry.waitingOn ?? [])].filter((dep) => !this.book.live.has(dep) && !this.book.finishing.has(dep));
    if (gone.length === 0) return;
    const states = await this.store.states(gone);
    for (const dep of gone) {
      if (this.book.live.get(entry.id) !== entry || !entry.waitingOn?.has(dep)) return;
      this.dependents.get(dep)?.delete(entry.id);
      const state = states.get(dep) ?? S.UNSPECIFIED;
      if (state !== S.SUCCEEDED) {
        await this.finish(entry, S.CANCELLED, `dependency ${dep} ended ${stateName(state)}`);
        return;
      }
      entry.waitingOn.delete(dep);
    }
    if (entry.waitingOn?.size === 0 && entry.state === S.WAITING_DEPS) await this.release(entry);
  }

  private addDependent(dep: string, taskId: string): void {
    let set = this.dependents.get(dep);
    if (!set) this.dependents.set(dep, (set = new Set()));
    set.add(taskId);
    this.refreshLineage(dep);
  }
}

/**
 * A task's event as subscribers get it. Events describe transitions: the
 * prompt stays out of them (GetTask has it), which keeps every subscriber's
 * stream small however long the prompts are. Built as a plain object:
 * fromPartial would deep-copy the task once more per event.
 */
function taskEventOf(task: Task, event: StoredEvent): TaskEvent {
  const spec = task.spec && task.spec.payload ? { ...task.spec, payload: undefined } : task.spec;
  return {
    taskId: task.id,
    sequence: event.sequence,
    state: event.state,
    previousState: event.previousState,
    time: toTimestamp(event.atMs),
    reason: event.reason,
    task: { ...task, spec },
    final: event.final ?? false,
  };
}
