import { PriorityClass } from '@autoglm/proto';

/** What the queue needs to know of a runnable task. */
export interface QueueEntry {
  id: string;
  priorityClass: PriorityClass;
  tenant: string;
  /** When it became runnable (epoch ms). Within a class the order is push order, which is this order. */
  readySinceMs: number;
}

const CLASS_ORDER = [PriorityClass.URGENT, PriorityClass.NORMAL, PriorityClass.BACKGROUND] as const;

/**
 * Runnable tasks ordered by priority class, then by how long they have been
 * runnable. One insertion-ordered map per class gives O(1) push, remove and
 * peek; iteration walks urgent, then normal, then background.
 */
export class ReadyQueue<E extends QueueEntry = QueueEntry> {
  private readonly byClass = new Map<PriorityClass, Map<string, E>>(CLASS_ORDER.map((c) => [c, new Map()]));

  get size(): number {
    let n = 0;
    for (const q of this.byClass.values()) n += q.size;
    return n;
  }

  /** Adds a task at the back of its class. Re-adding an id moves it to the back. */
  push(entry: E): void {
    const q = this.classQueue(entry.priorityClass);
    q.delete(entry.id);
    q.set(entry.id, entry);
  }

  /** Removes a task; returns whether it was queued. */
  remove(id: string, priorityClass: PriorityClass): boolean {
    return this.classQueue(priorityClass).delete(id);
  }

  has(id: string, priorityClass: PriorityClass): boolean {
    return this.classQueue(priorityClass).has(id);
  }

  /** Queued tasks of one class. */
  sizeOf(priorityClass: PriorityClass): number {
    return this.classQueue(priorityClass).size;
  }

  /** The longest-waiting task of a class, if any. */
  oldest(priorityClass: PriorityClass): E | undefined {
    for (const e of this.classQueue(priorityClass).values()) return e;
    return undefined;
  }

  /** Tasks in scheduling order. Removing the yielded task while iterating is safe. */
  *inOrder(): IterableIterator<E> {
    for (const c of CLASS_ORDER) yield* this.classQueue(c).values();
  }

  /** 1-based position in scheduling order, or 0 when not queued. O(n): for explanations, not the hot path. */
  positionOf(id: string, priorityClass: PriorityClass): number {
    priorityClass = (CLASS_ORDER as readonly PriorityClass[]).includes(priorityClass) ? priorityClass : PriorityClass.NORMAL;
    let ahead = 0;
    for (const c of CLASS_ORDER) {
      const q = this.classQueue(c);
      if (c !== priorityClass) {
        ahead += q.size;
        continue;
      }
      if (!q.has(id)) return 0;
      for (const key of q.keys()) {
        ahead += 1;
        if (key === id) return ahead;
      }
    }
    return 0;
  }

  private classQueue(priorityClass: PriorityClass): Map<string, E> {
    // UNSPECIFIED (and unknown values) are NORMAL: the parser normalises, this guards.
    return this.byClass.get(priorityClass) ?? this.byClass.get(PriorityClass.NORMAL)!;
  }
}
