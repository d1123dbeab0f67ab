import fc from 'fast-check';
import { SubmitTaskRequest, SubmitWorkflowRequest, type WorkflowStep } from '@autoglm/proto';
import { InvalidArgumentError } from '../errors';
import { DEFAULT_MODEL_CATALOG } from './models';
import type { ParseContext } from './parse-submission';
import { parseWorkflow } from './parse-workflow';

const CTX: ParseContext = { catalog: DEFAULT_MODEL_CATALOG, now: new Date('2026-03-01T12:00:00.000Z'), defaultMaxRetries: 3 };
const job = SubmitTaskRequest.fromPartial({ payload: { $case: 'batch', batch: { command: ['true'] } } });
const step = (name: string, after: string[] = [], task: SubmitTaskRequest = job): WorkflowStep => ({ name, after, task });
const workflow = (steps: WorkflowStep[]) => SubmitWorkflowRequest.fromPartial({ tenant: 'team-a', requestId: 'wf-1', steps });

function rejection(fn: () => unknown): InvalidArgumentError {
  try {
    fn();
  } catch (error: unknown) {
    if (error instanceof InvalidArgumentError) return error;
    throw error;
  }
  throw new Error('expected an InvalidArgumentError, nothing was thrown');
}

describe('parseWorkflow', () => {
  it('orders the steps dependencies first and turns names into indexes of that order', () => {
    const parsed = parseWorkflow(workflow([step('report', ['train', 'eval']), step('eval', ['train']), step('prep'), step('train', ['prep'])]), CTX);
    expect(parsed.steps.map((s) => s.name)).toEqual(['prep', 'train', 'eval', 'report']);
    expect(parsed.steps.map((s) => s.requestIndex)).toEqual([2, 3, 1, 0]);
    expect(parsed.steps.map((s) => s.after)).toEqual([[], [0], [1], [1, 2]]);
    expect(parsed.tenant).toBe('team-a');
  });

  it('rejects a cycle, spelling it out', () => {
    const e = rejection(() => parseWorkflow(workflow([step('a', ['c']), step('b', ['a']), step('c', ['b']), step('d')]), CTX));
    expect(e.field).toBe('steps[0].after[0]');
    expect(e.message).toMatch(/the steps form a cycle: a -> c -> b -> a \(each waits for the next\)/);
  });

  it('rejects unknown, repeated and self references, duplicate and bad names, and a foreign tenant', () => {
    expect(rejection(() => parseWorkflow(workflow([step('a', ['nope'])]), CTX)).message).toMatch(/steps\[0\]\.after\[0\]: "nope" is not a step of this workflow/);
    expect(rejection(() => parseWorkflow(workflow([step('a', ['a'])]), CTX)).message).toMatch(/cannot wait for itself/);
    expect(rejection(() => parseWorkflow(workflow([step('a'), step('b', ['a', 'a'])]), CTX)).field).toBe('steps[1].after[1]');
    expect(rejection(() => parseWorkflow(workflow([step('a'), step('a')]), CTX)).message).toMatch(/steps\[1\]\.name: "a" is also the name of steps\[0\]/);
    expect(rejection(() => parseWorkflow(workflow([step('has space')]), CTX)).field).toBe('steps[0].name');
    expect(rejection(() => parseWorkflow(workflow([]), CTX)).field).toBe('steps');
    expect(rejection(() => parseWorkflow(workflow([step('a', [], { ...job, tenant: 'other' })]), CTX)).field).toBe('steps[0].task.tenant');
    expect(rejection(() => parseWorkflow({ ...workflow([step('a')]), requestId: 'schedule:x:1' }, CTX)).field).toBe('request_id');
  });

  it('names the step when its task is bad', () => {
    const e = rejection(() => parseWorkflow(workflow([step('ok'), step('bad', [], { ...job, priority: 5000 })]), CTX));
    expect(e.field).toBe('steps[1].task.priority');
    expect(e.message).toMatch(/^steps\[1\]\.task\.priority: /);
  });

  it('accepts exactly the acyclic graphs, in an order that respects every edge', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 30 }), (n, pairs) => {
        const edges = new Map<number, Set<number>>();
        for (const [a, b] of pairs) if (a % n !== b % n) (edges.get(a % n) ?? edges.set(a % n, new Set()).get(a % n)!).add(b % n);
        const steps = Array.from({ length: n }, (_, i) => step(`s${i}`, [...(edges.get(i) ?? [])].map((d) => `s${d}`)));
        const cyclic = hasCycle(n, edges);
        let parsed;
        try {
          parsed = parseWorkflow(workflow(steps), CTX);
        } catch (e) {
          expect(e).toBeInstanceOf(InvalidArgumentError);
          expect((e as Error).message).toMatch(/cycle/);
          expect(cyclic).toBe(true);
          return;
        }
        expect(cyclic).toBe(false);
        parsed.steps.forEach((s, pos) => s.after.forEach((d) => expect(d).toBeLessThan(pos)));
        expect(parsed.steps.map((s) => s.requestIndex).sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
      }),
    );
  });
});

function hasCycle(n: number, edges: Map<number, Set<number>>): boolean {
  const state = new Array<number>(n).fill(0);
  const visit = (i: number): boolean => {
    if (state[i] === 1) return true;
    if (state[i] === 2) return false;
    state[i] = 1;
    for (const d of edges.get(i) ?? []) if (visit(d)) return true;
    state[i] = 2;
    return false;
  };
  for (let i = 0; i < n; i++) if (visit(i)) return true;
  return false;
}
