/** What the simulations order running attempts by: when each ends, then start order (so runs are deterministic). */
export interface Ending {
  readonly endMs: number;
  readonly seq: number;
}

/** Running attempts by end time, earliest first: a binary heap. */
export class EndHeap<T extends Ending> {
  private readonly items: T[] = [];

  peek(): T | undefined {
    return this.items[0];
  }

  push(a: T): void {
    const h = this.items;
    h.push(a);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  pop(): T | undefined {
    const h = this.items;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: Ending, b: Ending): boolean {
  return a.endMs < b.endMs || (a.endMs === b.endMs && a.seq < b.seq);
}
