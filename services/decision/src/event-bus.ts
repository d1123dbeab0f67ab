import type { Event, Node, PolicyChange, TaskEvent } from '@autoglm/proto';

export type EventListener = (event: Event) => void;

/** What a subscriber wants. */
export interface EventFilter {
  /** Every task transition. */
  tasks?: boolean;
  /** Node snapshots. */
  nodes?: boolean;
  /** Only this task's transitions. */
  taskId?: string;
}

/**
 * Decision's in-process fan-out of committed events. Task events are
 * published only after their transition is durable, in commit order, so a
 * subscriber never sees a state the store could lose.
 */
export class EventBus {
  private readonly allTasks = new Set<EventListener>();
  private readonly byTask = new Map<string, Set<EventListener>>();
  private readonly nodes = new Set<EventListener>();

  subscribe(filter: EventFilter, listener: EventListener): () => void {
    if (filter.taskId) {
      let set = this.byTask.get(filter.taskId);
      if (!set) this.byTask.set(filter.taskId, (set = new Set()));
      set.add(listener);
    } else if (filter.tasks) this.allTasks.add(listener);
    if (filter.nodes) this.nodes.add(listener);
    return () => {
      this.allTasks.delete(listener);
      this.nodes.delete(listener);
      if (filter.taskId) {
        const set = this.byTask.get(filter.taskId);
        set?.delete(listener);
        if (set?.size === 0) this.byTask.delete(filter.taskId);
      }
    };
  }

  publishTask(taskEvent: TaskEvent): void {
    const event: Event = { kind: { $case: 'task', task: taskEvent } };
    for (const l of this.allTasks) l(event);
    const set = this.byTask.get(taskEvent.taskId);
    if (set) for (const l of set) l(event);
  }

  publishNode(node: Node): void {
    if (this.nodes.size === 0) return;
    const event: Event = { kind: { $case: 'node', node } };
    for (const l of this.nodes) l(event);
  }

  publishPolicy(policy: PolicyChange): void {
    const event: Event = { kind: { $case: 'policy', policy } };
    for (const l of this.allTasks) l(event);
    for (const l of this.nodes) if (!this.allTasks.has(l)) l(event);
  }
}
