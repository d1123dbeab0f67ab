import { randomUUID } from 'node:crypto';
import {
  DeadlinePolicy,
  EnqueueRequest,
  type EnqueueWorkflowRequest,
  type Placement,
  PriorityClass,
  Task,
  TaskState,
  type TaskSpec,
} from '@autoglm/proto';
import {
  AbortedError,
  AlreadyExistsError,
  CancelledError,
  FailedPreconditionError,
  InvalidArgumentError,
  isSheddable,
  NotFoundError,
  ResourceExhaustedError,
  timestampToMillis,
  toTimestamp,
  unmeetableDeadline,
  UnavailableError,
  variantOf,
  type Clock,
  type Fleet,
  type Policy,
  type RunTimePredictor,
  type WaitPredictor,
} from '@autoglm/core';
import { isTransient, type StoredEvent, type TaskStore } from '@autoglm/store';
import { captureTraceContext, type Logger } from '@autoglm/runtime';
import type { AgentSessions } from './agent-sessions';
import type { DispatchLoop } from './dispatch-loop';
import type { ExperimentStats } from './experiment-stats';
import type { Lifecycle } from './lifecycle';
import type { TaskBook } from './task-book';

const S = TaskState;

/** A submission whose commit may have happened although the store said it failed. */
interface InDoubt {
  traceContext?: Record<string, string>;
  checks: number;
}

export interface IntakeOptions {
  book: TaskBook;
  lifecycle: Lifecycle;
  sessions: AgentSessions;
  queue: DispatchLoop;
  store: TaskStore;
  fleet: Fleet;
  logger: Logger;
  clock: Clock;
  runTimes: RunTimePredictor;
  waits: WaitPredictor;
  experiments: ExperimentStats;
  /** Sheddable submissions are refused while their class has this many queued, or any past the age bound. */
  shedQueueLimit: number;
  /** The policy in force (its age bound sizes the shedding hint). */
  policy: () => Policy;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
export const className = (c: PriorityClass): string => (c === PriorityClass.URGENT ? 'urgent' : c === PriorityClass.BACKGROUND ? 'background' : 'normal');

/**
 * Where work comes in: submissions and workflows made durable (and their
 * admission checks: shedding, unmeetable deadlines), interactive Admits
 * waiting for their placement, submissions the store could not confirm, and
 * cancels.
 */
export class Intake {
  /** Admits waiting for their placement. */
  private readonly admissions = new Map<string, { resolve: (p: Placement) => void; reject: (e: unknown) => void }>();
  private readonly inDoubt = new Map<string, InDoubt>();
  private readonly o: IntakeOptions;

  constructor(options: IntakeOptions) {
    this.o = options;
  }

  /** Makes a parsed submission durable and queues it (or gates it on its dependencies). */
  async enqueue(req: EnqueueRequest): Promise<{ task: Task; created: boolean }> {
    const spec = req.spec;
    if (!spec) throw new InvalidArgumentError('spec', 'is required');
    const unmet = await this.o.lifecycle.unmetDependencies(spec.dependsOn, 'depends_on');
    if (isSheddable(spec.priority)) await this.shedIfOverloaded(req.tenant, req.requestId, spec, 'spec');
    await this.refuseUnmeetable(req.tenant, req.requestId, spec, unmet.size > 0, 'spec');
    const { task, event } = this.newTask(req.requestId, req.tenant, spec, unmet);
    const traceContext = captureTraceContext();
    let submitted;
    try {
      submitted = await this.o.store.submit(task, event);
    } catch (err) {
      this.submissionInDoubt([task], traceContext, err);
      throw err;
    }
    return this.accepted(submitted, event, unmet, traceContext);
  }

  /**
   * Makes a parsed workflow durable in one transaction (every step, or none)
   * and queues or gates each step. Steps name earlier steps by index; their
   * ids are assigned here, so the whole graph exists before any step can run.
   */
  async enqueueWorkflow(req: EnqueueWorkflowRequest): Promise<{ tasks: Task[]; created: boolean }> {
    if (req.steps.length === 0) throw new InvalidArgumentError('steps', 'required: a workflow has at least one step');
    if (req.requestId) {
      const again = await this.workflowSentBefore(req);
      if (again) return { tasks: again, created: false };
    }
    const ids: string[] = [];
    const items: Array<{ task: Task; event: StoredEvent; unmet: Set<string> }> = [];
    for (const [i, step] of req.steps.entries()) {
      // Errors name the step as the client numbered it.
      const at = `steps[${step.requestIndex}]`;
      if (!step.spec) throw new InvalidArgumentError(`${at}.task`, 'is required');
      const unmet = await this.o.lifecycle.unmetDependencies(step.spec.dependsOn, `${at}.task.depends_on`);
      const local = step.after.map((k, j) => {
        if (!Number.isInteger(k) || k >= i) throw new InvalidArgumentError(`${at}.after[${j}]`, `${k} is not an earlier step: steps must come after the steps they wait for`);
        return ids[k]!;
      });
      for (const id of local) unmet.add(id);
      const spec = { ...step.spec, dependsOn: [...step.spec.dependsOn, ...local] };
      const requestId = req.requestId ? `${req.requestId}/${step.name}` : '';
      if (isSheddable(spec.priority)) await this.shedIfOverloaded(req.tenant, requestId, spec, `${at}.task`);
      await this.refuseUnmeetable(req.tenant, requestId, spec, unmet.size > 0, `${at}.task`);
      const { task, event } = this.newTask(requestId, req.tenant, spec, unmet);
      ids.push(task.id);
      items.push({ task, event, unmet });
    }
    const traceContext = captureTraceContext();
    let submitted;
    try {
      submitted = await this.o.store.submitAll(items);
    } catch (err) {
      this.submissionInDoubt(items.map((item) => item.task), traceContext, err);
      throw err;
    }
    if (submitted.some((r) => r.created) && submitted.some((r) => !r.created)) {
      // Only a concurrent submission of another workflow under the same request id gets here.
      this.o.logger.error({ requestId: req.requestId, tenant: req.tenant }, 'workflow steps partly existed already: two different workflows were sent under one request id at once');
    }
    const tasks: Task[] = [];
    // In order: a step's dependencies are registered before it looks for them.
    for (const [i, result] of submitted.entries()) {
      tasks.push((await this.accepted(result, items[i]!.event, items[i]!.unmet, traceContext)).task);
    }
    return { tasks, created: submitted.some((r) => r.created) };
  }

  /**
   * Queues an interactive inference and resolves once it is placed. `onAdmitted`
   * runs when it is durable. Aborting before placement cancels the task.
   */
  async admit(req: EnqueueRequest, onAdmitted: (task: Task, queuePosition: number) => Promise<void>, signal: AbortSignal): Promise<Placement> {
    const { task, created } = await this.enqueue(req);
    if (!created) throw new FailedPreconditionError(`request ${req.requestId} already started task ${task.id}; an Infer stream cannot be resumed`);
    const placed = new Promise<Placement>((resolve, reject) => this.admissions.set(task.id, { resolve, reject }));
    // Settled (by cancel) possibly before anyone awaits it: never an unhandled rejection.
    placed.catch(() => undefined);
    const giveUp = (why: string) => {
      if (this.admissions.delete(task.id)) {
        this.cancel(task.id, why).catch((err: unknown) => this.o.logger.warn({ err, taskId: task.id }, 'cancel of an abandoned admission failed'));
      }
    };
    const onAbort = () => giveUp('client went away before placement');
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    try {
      await onAdmitted(task, this.o.queue.dispatcher.queue.positionOf(task.id)).catch((err: unknown) => {
        giveUp('could not tell the client it was admitted');
        throw err;
      });
      return await placed;
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.admissions.delete(task.id);
    }
  }

  /** An Admit's task was placed (its lease committed): the Admit answers with the placement. */
  placed(taskId: string, placement: Placement): void {
    this.admissions.get(taskId)?.resolve(placement);
  }

  /** An Admit's task was cancelled by decision before its placement was answered (preempted while committing): the Admit fails, and may be sent again. */
  abandoned(taskId: string, why: string): void {
    this.admissions.get(taskId)?.reject(new AbortedError(`task ${taskId} was cancelled before it started: ${why}; send the request again`));
  }

  /** Cancels a task that has not finished; a finished one is returned as it is. */
  async cancel(taskId: string, reason: string): Promise<Task> {
    const { book, lifecycle } = this.o;
    const entry = book.live.get(taskId);
    if (!entry) {
      const ending = book.finishing.get(taskId);
      if (ending) return ending.task;
      const stored = await this.o.store.get(taskId);
      if (!stored) throw new NotFoundError(`task ${taskId} does not exist`);
      return stored;
    }
    if (entry.task.finishedAt) return entry.task;
    const why = reason || 'cancelled by client';
    // The agent stops the work before the CANCELLED commit: stopping early is safe, running unrecorded work is not.
    this.o.sessions.revoke(entry, why);
    clearTimeout(entry.retryTimer);
    entry.retryTimer = undefined;
    this.o.queue.dispatcher.dequeue(taskId);
    this.admissions.get(taskId)?.reject(new CancelledError(`task ${taskId} was cancelled: ${why}`));
    await lifecycle.finish(entry, S.CANCELLED, why);
    return entry.task;
  }

  /**
   * Settles submissions whose commit the store could not confirm: one that
   * turns out durable is queued (it is a task like any other); one that is
   * still absent after a few checks never committed. Called periodically.
   */
  async resolveInDoubt(): Promise<void> {
    if (this.inDoubt.size === 0) return;
    const ids = [...this.inDoubt.keys()];
    const found = await this.o.store.states(ids);
    for (const id of ids) {
      const doubt = this.inDoubt.get(id);
      if (!doubt) continue;
      if (!found.has(id)) {
        if (++doubt.checks >= 3) this.inDoubt.delete(id);
        continue;
      }
      this.inDoubt.delete(id);
      if (this.o.book.entry(id)) continue;
      const task = await this.o.store.get(id);
      if (task && !task.finishedAt) await this.adopt(task, doubt.traceContext);
    }
  }

  /**
   * A workflow whose request id was used before: the same workflow sent
   * again gets its tasks (queued as they were); a different one is refused
   * before anything is written, since a mix would leave new steps waiting on
   * steps that were never created.
   */
  private async workflowSentBefore(req: EnqueueWorkflowRequest): Promise<Task[] | undefined> {
    const requestIds = req.steps.map((step) => `${req.requestId}/${step.name}`);
    const found = new Map((await this.o.store.byRequestIds(req.tenant, requestIds)).map((t) => [t.requestId, t]));
    if (found.size === 0) return undefined;
    const missing = req.steps.find((_, i) => !found.has(requestIds[i]!));
    if (missing) {
      throw new AlreadyExistsError(`request_id: "${req.requestId}" was used for a workflow without a step "${missing.name}"; send this workflow under a new request_id`);
    }
    const tasks: Task[] = [];
    for (const requestId of requestIds) {
      const task = found.get(requestId)!;
      const event: StoredEvent = { sequence: task.sequence, state: task.state, previousState: S.UNSPECIFIED, atMs: this.o.clock(), reason: '' };
      tasks.push((await this.accepted({ task, created: false }, event, new Set(), undefined)).task);
    }
    return tasks;
  }

  /**
   * deadline_policy REFUSE_UNMEETABLE: refuses the submission when its
   * predicted finish (the wait its class has seen lately, unless it would be
   * placed at once, plus its predicted run time) is past its deadline. A task
   * waiting for dependencies is not judged: its start depends on theirs.
   */
  private async refuseUnmeetable(tenant: string, requestId: string, spec: TaskSpec, gated: boolean, field: string): Promise<void> {
    if (spec.deadlinePolicy !== DeadlinePolicy.REFUSE_UNMEETABLE || !spec.deadline || gated) return;
    const now = this.o.clock();
    const kind = this.o.book.demandOf(spec).kind;
    const placedAtOnce = this.o.fleet.hasRoom(kind) && !classesAtOrAbove(spec.priorityClass).some((pc) => this.o.queue.dispatcher.queue.classCounts(pc).queued > 0);
    const waitMs = this.o.waits.predict(spec.priorityClass, placedAtOnce);
    const runMs = this.o.runTimes.predict(spec, tenant);
    const late = unmeetableDeadline(now, timestampToMillis(spec.deadline), waitMs, runMs);
    if (!late) return;
    // A retry of a submission already accepted gets its task, as always.
    if (requestId && (await this.o.store.byRequestId(tenant, requestId))) return;
    this.o.lifecycle.deadlines.record(tenant, spec.priorityClass, 'refused');
    const seen = this.o.runTimes.observations(spec);
    throw new FailedPreconditionError(
      `${field}.deadline: ${new Date(timestampToMillis(spec.deadline)).toISOString()} cannot be met: predicted run ${seconds(runMs)} (${seen > 0 ? `learned from ${seen} tasks like it` : 'from its size; nothing like it has run yet'})` +
        ` after a predicted wait of ${seconds(waitMs)} for ${className(spec.priorityClass)} work ends ${seconds(late.lateMs)} past it;` +
        ' set a later deadline or a higher priority class, or deadline_policy BEST_EFFORT to run it anyway',
    );
  }

  /**
   * Load shedding: a sheddable submission (negative priority) is refused
   * while its class's queue is at its limit (count, or tasks past the age
   * bound), with a hint of when to retry. A retry of one already accepted
   * (same request id) gets its task, as always.
   */
  private async shedIfOverloaded(tenant: string, requestId: string, spec: TaskSpec, field: string): Promise<void> {
    const { queued, overdue } = this.o.queue.dispatcher.queue.classCounts(spec.priorityClass);
    if (queued < this.o.shedQueueLimit && overdue === 0) return;
    if (await this.o.store.byRequestId(tenant, requestId)) return;
    const maxAgeMs = this.o.policy().maxAgeMs;
    const why = overdue > 0 ? `${overdue} tasks of this class have waited past the ${Math.round(maxAgeMs / 1000)} s age bound` : `${queued} tasks of this class are queued (limit ${this.o.shedQueueLimit})`;
    const retryAfterMs = Math.min(60_000, Math.max(1000, Math.round(maxAgeMs / 10)));
    throw new ResourceExhaustedError(
      `${field}.priority: ${spec.priority} is sheddable and the ${className(spec.priorityClass)} queue is full: ${why}; retry after ${retryAfterMs / 1000} s, or submit with priority 0 or more`,
      retryAfterMs,
    );
  }

  private newTask(requestId: string, tenant: string, spec: TaskSpec, unmet: Set<string>): { task: Task; event: StoredEvent } {
    const now = this.o.clock();
    const state = unmet.size > 0 ? S.WAITING_DEPS : S.QUEUED;
    const id = randomUUID();
    const experiment = this.o.experiments.experiment;
    if (experiment) {
      const v = experiment.variants[variantOf(experiment, tenant, requestId, id)]!;
      spec = { ...spec, policyVariant: `${experiment.name}/${v.name}` };
    }
    const task = Task.fromPartial({
      id,
      requestId,
      tenant,
      spec,
      state,
      attempt: 1,
      sequence: 1,
      createdAt: toTimestamp(now),
      updatedAt: toTimestamp(now),
      reason: unmet.size > 0 ? `waiting for ${[...unmet].join(', ')}` : '',
    });
    return { task, event: { sequence: 1, state, previousState: S.UNSPECIFIED, atMs: now, reason: task.reason } };
  }

  /**
   * A submission the store did not confirm: the commit may have happened with
   * its answer lost. Found out later (resolveInDoubt), so a task that is
   * durable is never left out of the queue.
   */
  private submissionInDoubt(tasks: Task[], traceContext: Record<string, string> | undefined, err: unknown): void {
    if (!(err instanceof UnavailableError || isTransient(err))) return;
    for (const task of tasks) this.inDoubt.set(task.id, { traceContext, checks: 0 });
    if (!(err instanceof UnavailableError)) throw new UnavailableError('the task store did not confirm the write; retry with the same request_id', { cause: err });
  }

  /** After the store answered a submission: queues or gates a new task; finds the one a repeated request id names. */
  private async accepted(
    submitted: { task: Task; created: boolean },
    event: StoredEvent,
    unmet: Set<string>,
    traceContext: Record<string, string> | undefined,
  ): Promise<{ task: Task; created: boolean }> {
    const { book, lifecycle } = this.o;
    const { task, created } = submitted;
    if (!created) {
      const known = book.entry(task.id);
      if (known) return { task: book.read(known), created };
      // Committed by an earlier call whose answer was lost: this process never queued it.
      if (!task.finishedAt) await this.adopt(task);
      const adopted = book.live.get(task.id);
      return { task: adopted ? book.read(adopted) : task, created };
    }
    this.inDoubt.delete(task.id);
    this.o.experiments.submitted(task);
    const entry = book.newLive(task, event.atMs, traceContext);
    book.live.set(task.id, entry);
    lifecycle.publish(task, event);
    if (unmet.size === 0) {
      this.o.queue.enqueueReady(entry);
      return { task, created };
    }
    await lifecycle.wait(entry, unmet);
    return { task: entry.task, created };
  }

  /**
   * Takes in a durable task this process does not know: one whose commit was
   * confirmed only to a later retry. It is queued (or gated) like a new one.
   */
  private async adopt(task: Task, traceContext?: Record<string, string>): Promise<void> {
    const { book, lifecycle } = this.o;
    if (book.entry(task.id)) return;
    this.inDoubt.delete(task.id);
    const entry = book.newLive(task, this.o.clock(), traceContext);
    book.live.set(task.id, entry);
    this.o.experiments.submitted(task);
    this.o.logger.warn({ taskId: task.id }, 'adopted a submission whose commit was confirmed late');
    // An Infer whose start was refused has no client stream to serve.
    if (task.spec?.interactive) await lifecycle.finish(entry, S.CANCELLED, 'its Infer stream was refused before the submission was confirmed');
    else if (task.state === S.WAITING_DEPS || task.state === S.PENDING) await lifecycle.gateOnDependencies(entry);
    else if (task.state === S.QUEUED) this.o.queue.enqueueReady(entry);
  }
}

function classesAtOrAbove(priorityClass: PriorityClass): PriorityClass[] {
  const order = [PriorityClass.BACKGROUND, PriorityClass.NORMAL, PriorityClass.URGENT];
  return order.slice(Math.max(0, order.indexOf(priorityClass)));
}
