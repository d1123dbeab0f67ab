import { PriorityClass } from '@autoglm/proto';
import fc from 'fast-check';
import { type QueueEntry, ReadyQueue } from './ready-queue';

const { URGENT, NORMAL, BACKGROUND, UNSPECIFIED } = PriorityClass;

let clock = 0;
function entry(id: string, priorityClass: PriorityClass, tenant = 'acme'): QueueEntry {
  clock += 1;
  return { id, priorityClass, tenant, readySinceMs: clock };
}

function queueOf(...entries: QueueEntry[]): ReadyQueue {
  const q = new ReadyQueue();
  for (const e of entries) q.push(e);
  return q;
}

const ids = (q: ReadyQueue): string[] => [...q.inOrder()].map((e) => e.id);

describe('ReadyQueue ordering', () => {
  it('runs urgent before normal before background, whatever the arrival order', () => {
    const q = queueOf(entry('bg', BACKGROUND), entry('n', NORMAL), entry('u', URGENT));
    expect(ids(q)).toEqual(['u', 'n', 'bg']);
  });

  it('is first in, first out within a class', () => {
    const q = queueOf(
      entry('n1', NORMAL),
      entry('u1', URGENT),
      entry('n2', NORMAL),
      entry('bg1', BACKGROUND),
      entry('u2', URGENT),
      entry('n3', NORMAL),
      entry('bg2', BACKGROUND),
    );
    expect(ids(q)).toEqual(['u1', 'u2', 'n1', 'n2', 'n3', 'bg1', 'bg2']);
  });

  it('treats an unspecified class as normal, in arrival order with the normal tasks', () => {
    const q = queueOf(entry('n1', NORMAL), entry('x', UNSPECIFIED), entry('n2', NORMAL), entry('u', URGENT), entry('bg', BACKGROUND));
    expect(ids(q)).toEqual(['u', 'n1', 'x', 'n2', 'bg']);
    expect(q.has('x', UNSPECIFIED)).toBe(true);
    expect(q.has('x', NORMAL)).toBe(true);
    expect(q.sizeOf(NORMAL)).toBe(3);
    expect(q.remove('x', UNSPECIFIED)).toBe(true);
    expect(ids(q)).toEqual(['u', 'n1', 'n2', 'bg']);
  });

  it('sends a re-pushed task (a retry, a preempted task) to the back of its class', () => {
    const q = queueOf(entry('a', NORMAL), entry('b', NORMAL), entry('c', NORMAL), entry('u', URGENT));
    q.push(entry('a', NORMAL));
    expect(ids(q)).toEqual(['u', 'b', 'c', 'a']);
    expect(q.size).toBe(4);
    expect(q.oldest(NORMAL)?.id).toBe('b');
  });

  it('keeps the latest copy of a re-pushed entry', () => {
    const q = queueOf(entry('a', NORMAL));
    const again = { id: 'a', priorityClass: NORMAL, tenant: 'acme', readySinceMs: 9_999 };
    q.push(again);
    expect([...q.inOrder()]).toEqual([again]);
  });
});

describe('ReadyQueue bookkeeping', () => {
  it('counts tasks per class and in total', () => {
    const q = queueOf(entry('u', URGENT), entry('n1', NORMAL), entry('n2', NORMAL));
    expect(q.size).toBe(3);
    expect([q.sizeOf(URGENT), q.sizeOf(NORMAL), q.sizeOf(BACKGROUND)]).toEqual([1, 2, 0]);
  });

  it('tells whether a task was queued when removing it', () => {
    const q = queueOf(entry('a', NORMAL));
    expect(q.remove('a', URGENT)).toBe(false);
    expect(q.remove('missing', NORMAL)).toBe(false);
    expect(q.remove('a', NORMAL)).toBe(true);
    expect(q.remove('a', NORMAL)).toBe(false);
    expect(q.size).toBe(0);
    expect(q.has('a', NORMAL)).toBe(false);
  });

  it('gives the longest-waiting task of a class, or nothing for an empty class', () => {
    const q = queueOf(entry('n1', NORMAL), entry('n2', NORMAL));
    expect(q.oldest(NORMAL)?.id).toBe('n1');
    expect(q.oldest(URGENT)).toBeUndefined();
    q.remove('n1', NORMAL);
    expect(q.oldest(NORMAL)?.id).toBe('n2');
  });

  it('is empty when new', () => {
    const q = new ReadyQueue();
    expect(q.size).toBe(0);
    expect(ids(q)).toEqual([]);
    expect(q.positionOf('x', NORMAL)).toBe(0);
  });
});

describe('ReadyQueue.inOrder while removing', () => {
  it('visits every task once when the loop removes the task it is looking at', () => {
    const q = queueOf(entry('u1', URGENT), entry('n1', NORMAL), entry('n2', NORMAL), entry('bg1', BACKGROUND), entry('u2', URGENT));
    const seen: string[] = [];
    for (const e of q.inOrder()) {
      seen.push(e.id);
      if (e.id !== 'n2') q.remove(e.id, e.priorityClass); // dispatch: placed ones leave, misses stay
    }
    expect(seen).toEqual(['u1', 'u2', 'n1', 'n2', 'bg1']);
    expect(ids(q)).toEqual(['n2']);
  });

  it('skips a later task removed before the loop reaches it (cancelled meanwhile)', () => {
    const q = queueOf(entry('a', NORMAL), entry('b', NORMAL), entry('c', BACKGROUND));
    const seen: string[] = [];
    for (const e of q.inOrder()) {
      seen.push(e.id);
      if (e.id === 'a') q.remove('c', BACKGROUND);
    }
    expect(seen).toEqual(['a', 'b']);
  });
});

describe('ReadyQueue.positionOf', () => {
  it('counts from 1 across classes in scheduling order', () => {
    const q = queueOf(entry('n1', NORMAL), entry('bg1', BACKGROUND), entry('u1', URGENT), entry('n2', NORMAL), entry('u2', URGENT));
    const order = ids(q);
    expect(order).toEqual(['u1', 'u2', 'n1', 'n2', 'bg1']);
    const classOf = new Map([...q.inOrder()].map((e) => [e.id, e.priorityClass]));
    expect(order.map((id) => q.positionOf(id, classOf.get(id)!))).toEqual([1, 2, 3, 4, 5]);
  });

  it('is 0 for a task that is not queued, or not queued under that class', () => {
    const q = queueOf(entry('a', NORMAL), entry('b', URGENT));
    expect(q.positionOf('missing', NORMAL)).toBe(0);
    expect(q.positionOf('a', URGENT)).toBe(0);
    expect(q.positionOf('a', BACKGROUND)).toBe(0);
  });

  it('moves a task up as the tasks ahead of it leave', () => {
    const q = queueOf(entry('u', URGENT), entry('n1', NORMAL), entry('n2', NORMAL));
    expect(q.positionOf('n2', NORMAL)).toBe(3);
    q.remove('u', URGENT);
    expect(q.positionOf('n2', NORMAL)).toBe(2);
    q.push(entry('u2', URGENT));
    expect(q.positionOf('n2', NORMAL)).toBe(3);
  });

  // Regression test (found in review, fixed).
  it('finds a task pushed with an unspecified class, as has() does', () => {
    const q = queueOf(entry('u', URGENT), entry('n', NORMAL), entry('x', UNSPECIFIED));
    expect(q.has('x', UNSPECIFIED)).toBe(true);
    expect(q.positionOf('x', UNSPECIFIED)).toBe(3);
  });
});

describe('ReadyQueue property', () => {
  const CLASSES = [URGENT, NORMAL, BACKGROUND] as const;
  const RANK = new Map<PriorityClass, number>(CLASSES.map((c, i) => [c, i]));

  type Op = { kind: 'push' | 'remove'; cls: number; n: number };
  const op: fc.Arbitrary<Op> = fc.record({
    kind: fc.constantFrom('push' as const, 'push' as const, 'remove' as const),
    cls: fc.integer({ min: 0, max: 2 }),
    n: fc.integer({ min: 0, max: 7 }),
  });

  it('is always sorted by (class, insertion order) and agrees with a plain model', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const q = new ReadyQueue();
        // The model: each live id with its class and the sequence number of its last push.
        const model = new Map<string, { cls: PriorityClass; seq: number }>();
        const removeAnswers: Array<[boolean, boolean]> = [];
        ops.forEach(({ kind, cls: c, n }, seq) => {
          const cls = CLASSES[c]!;
          const id = `${c}-${n}`; // one id per class, so a re-push never changes class
          if (kind === 'push') {
            q.push({ id, priorityClass: cls, tenant: 't', readySinceMs: seq });
            model.set(id, { cls, seq });
          } else {
            removeAnswers.push([q.remove(id, cls), model.delete(id)]);
          }
        });
        expect(removeAnswers.filter(([got, want]) => got !== want)).toEqual([]);
        const got = [...q.inOrder()];
        const want = [...model.entries()]
          .sort(([, a], [, b]) => RANK.get(a.cls)! - RANK.get(b.cls)! || a.seq - b.seq)
          .map(([id]) => id);
        expect(got.map((e) => e.id)).toEqual(want);
        expect(q.size).toBe(model.size);
        expect(CLASSES.map((c) => q.sizeOf(c))).toEqual(CLASSES.map((c) => want.filter((id) => model.get(id)!.cls === c).length));
        expect(want.map((id) => q.positionOf(id, model.get(id)!.cls))).toEqual(want.map((_, i) => i + 1));
      }),
      { numRuns: 150 },
    );
  });
});
