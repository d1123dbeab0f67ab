/**
 * A fixed number of the latest items: pushing past the capacity overwrites
 * the oldest, so memory stays bounded however fast items come.
 */
export class RingBuffer<T> {
  private readonly items: (T | undefined)[];
  private next = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, not ${capacity}`);
    this.items = new Array<T | undefined>(capacity);
  }

  get length(): number {
    return this.count;
  }

  push(item: T): void {
    this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count += 1;
  }

  /** The items, oldest first. */
  toArray(): T[] {
    return this.newest(this.count).reverse();
  }

  /** Up to `n` items, newest first. */
  newest(n: number): T[] {
    const out: T[] = [];
    const take = Math.min(n, this.count);
    for (let i = 1; i <= take; i += 1) out.push(this.items[(this.next - i + this.capacity) % this.capacity] as T);
    return out;
  }
}
