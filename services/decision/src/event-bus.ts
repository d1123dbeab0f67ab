import type { Alert, Event, Node, PolicyChange, TaskEvent, TaskState } from '@autoglm/proto';

export type EventListener = (event: Event) => void;

/** What a subscriber wants. */
export interface EventFilter {
  /** Every task transition. */
  tasks?: boolean;
  /** Node snapshots. */
  nodes?: boolean;
  /** Only this task's transitions. */
  taskId?: string;
  /** Only transitions into these states (empty: all). */
  states?: TaskState[];
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

  /** Listeners of all tasks' or nodes' events (what Subscribe streams hold). */
  get subscriberCount(): number {
    return new Set([...this.allTasks, ...this.nodes]).size;
  }

  subscribe(filter: EventFilter, listener: EventListener): () => void {
    if (filter.taskId) {
      let set = this.byTask.get(filter.taskId);
      if (!set) this.byTask.set(filter.taskId, (set = new Set()));
      set.add(listener);
    } else if (filter.tasks) {
      const states = filter.states && filter.states.length > 0 ? new Set(filter.states) : undefined;
      const only: EventListener | undefined = states && ((event) => event.kind?.$case === 'task' && states.has(event.kind.task.state) && listener(event));
      this.allTasks.add(only ?? listener);
      if (only) {
        const unsubscribe = this.subscribe({ nodes: filter.nodes }, listener);
        return () => {
          this.allTasks.delete(only);
          unsubscribe();
        };
      }
    }
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

  /** One Event object goes to every listener (its encoding is shared, see shared-serializer.ts). */
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
    this.publishToAll({ kind: { $case: 'policy', policy } });
  }

  /** An alert change the monitor reported: to every subscriber of all tasks' or nodes' events. */
  publishAlert(alert: Alert): void {
    this.publishToAll({ kind: { $case: 'alert', alert } });
  }

  private publishToAll(event: Event): void {
    for (const l of this.allTasks) l(event);
    for (const l of this.nodes) if (!this.allTasks.has(l)) l(event);
  }
}
