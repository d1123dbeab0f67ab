import { EnqueueRequest, RequeuedTask, type DeadLetterSelector, type Task, TaskState } from '@autoglm/proto';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, stateName, timestampToMillis, parseTenant } from '@autoglm/core';
import type { TaskStore } from '@autoglm/store';
import type { Intake } from './intake';
import type { Lifecycle } from './lifecycle';
import { UUID } from './paging';

/** Dead letters one `all` requeue or purge acts on at most. */
const MAX_DEAD_LETTERS_PER_CALL = 10_000;

/**
 * Tasks that used up their retries: kept until an operator requeues them (a
 * new task with the same spec) or purges them.
 */
export class DeadLetters {
  constructor(
    private readonly store: TaskStore,
    private readonly intake: Intake,
    private readonly lifecycle: Lifecycle,
    /** The freshest copy of a task. */
    private readonly find: (id: string) => Promise<Task | undefined>,
  ) {}

  /** Reads back how many dead letters the store holds (after a restart, or a purge). */
  async count(): Promise<void> {
    this.lifecycle.deadLetters = await this.store.countDeadLetters();
  }

  /** Submits a new task in place of each selected dead letter (idempotent: a retry returns the same new tasks). */
  async requeue(select: DeadLetterSelector | undefined): Promise<RequeuedTask[]> {
    const out: RequeuedTask[] = [];
    // Named ids answer again for ones requeued before (a retried call); `all` takes only the others.
    for (const dead of await this.select(select, (select?.taskIds.length ?? 0) > 0)) {
      if (dead.requeuedAs) {
        const earlier = await this.find(dead.requeuedAs);
        if (earlier) out.push(RequeuedTask.fromPartial({ deadLetterId: dead.id, task: earlier }));
        continue;
      }
      const spec = dead.spec!;
      const labels = { ...spec.labels, 'autoglm.requeued_from': dead.id };
      // Its dependencies had succeeded (it ran): the new task needs none.
      const { task } = await this.intake.enqueue(EnqueueRequest.fromPartial({ requestId: `requeue-of:${dead.id}`, tenant: dead.tenant, spec: { ...spec, labels, dependsOn: [] } }));
      await this.store.record({ ...dead, requeuedAs: task.id });
      out.push(RequeuedTask.fromPartial({ deadLetterId: dead.id, task }));
    }
    await this.count();
    return out;
  }

  /** Deletes the selected dead letters and their events; returns how many. */
  async purge(select: DeadLetterSelector | undefined): Promise<number> {
    // Requeued dead letters are purged too: their new tasks carry on on their own.
    const dead = await this.select(select, true);
    const purged = await this.store.purgeDeadLetters(dead.map((t) => t.id));
    await this.count();
    return purged;
  }

  private async select(select: DeadLetterSelector | undefined, includeRequeued: boolean): Promise<Task[]> {
    const ids = select?.taskIds ?? [];
    const tenant = select?.tenant ? parseTenant(select.tenant) : undefined;
    if (ids.length > 0) {
      if (select?.all) throw new InvalidArgumentError('select.all', 'give task_ids or all, not both');
      const tasks: Task[] = [];
      for (const [i, id] of ids.entries()) {
        if (!UUID.test(id)) throw new InvalidArgumentError(`select.task_ids[${i}]`, `"${id}" is not a task id (a UUID)`);
        const task = await this.store.get(id);
        if (!task || (tenant && task.tenant !== tenant)) throw new NotFoundError(`task ${id} does not exist`);
        if (task.state !== TaskState.DEAD_LETTER) throw new FailedPreconditionError(`task ${id} is ${stateName(task.state)}, not DEAD_LETTER`);
        if (!task.requeuedAs || includeRequeued) tasks.push(task);
      }
      return tasks;
    }
    if (!select?.all) throw new InvalidArgumentError('select', 'name the dead letters in task_ids, or set all');
    return this.store.deadLetters({
      tenant,
      finishedBeforeMs: select.finishedBefore ? timestampToMillis(select.finishedBefore) : undefined,
      limit: MAX_DEAD_LETTERS_PER_CALL,
      includeRequeued,
    });
  }
}
