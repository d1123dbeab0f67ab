/**
 * One subscriber's backlog: the event bus pushes, the stream's writer takes,
 * waiting while there is nothing to take. Taking is O(1) (a head index, not
 * Array.shift), which matters for a slow subscriber with a long backlog.
 */
export class EventQueue<T> {
  private items: T[] = [];
  private head = 0;
  private wake: (() => void) | undefined;
  private readonly onAbort = () => this.wake?.();

  constructor(private readonly signal: AbortSignal) {
    signal.addEventListener('abort', this.onAbort, { once: true });
  }

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
    this.wake?.();
  }

  /** Up to `max` items, waiting for the first; empty once the signal has aborted. */
  async take(max: number): Promise<T[]> {
    while (this.length === 0) {
      if (this.signal.aborted) return [];
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
    const taken = this.items.slice(this.head, this.head + max);
    this.head += taken.length;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    }
    return taken;
  }

  /** The next item, or undefined once the signal has aborted. */
  async next(): Promise<T | undefined> {
    return (await this.take(1))[0];
  }

  /** Drops everything not yet taken. */
  clear(): void {
    this.items = [];
    this.head = 0;
  }

  close(): void {
    this.signal.removeEventListener('abort', this.onAbort);
  }
}
