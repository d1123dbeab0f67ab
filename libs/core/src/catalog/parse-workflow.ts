/**
 * Turns a SubmitWorkflow request (a DAG of steps naming each other) into the
 * steps decision makes durable together, dependencies first, or rejects it
 * with an InvalidArgumentError naming the field: a bad step, a name used
 * twice, an `after` naming no step, or a cycle (spelled out step by step).
 */
import type { EnqueueWorkflowStep, SubmitWorkflowRequest } from '@autoglm/proto';
import { InvalidArgumentError } from '../errors';
import { parseSubmission, type ParseContext } from './parse-submission';
import { parseRequestId, parseTenant } from './submission-fields';

/** Most steps in one workflow. */
export const MAX_WORKFLOW_STEPS = 1000;
const STEP_NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export interface ParsedWorkflow {
  readonly requestId: string;
  readonly tenant: string;
  /** The steps in an order where every step comes after the steps it names in `after` (each with its index in the request). */
  readonly steps: EnqueueWorkflowStep[];
}

export function parseWorkflow(request: SubmitWorkflowRequest, ctx: ParseContext): ParsedWorkflow {
  const tenant = parseTenant(request.tenant);
  const requestId = parseRequestId(request.requestId);
  if (request.steps.length === 0) throw new InvalidArgumentError('steps', 'required: a workflow has at least one step');
  if (request.steps.length > MAX_WORKFLOW_STEPS) {
    throw new InvalidArgumentError('steps', `has ${request.steps.length} steps; at most ${MAX_WORKFLOW_STEPS} (split it, with depends_on across the parts)`);
  }
  const indexOf = new Map<string, number>();
  request.steps.forEach((step, i) => {
    if (!STEP_NAME_PATTERN.test(step.name)) {
      throw new InvalidArgumentError(`steps[${i}].name`, `${JSON.stringify(step.name.slice(0, 80))} is not a step name: use 1-64 characters of A-Z a-z 0-9 . _ -`);
    }
    const first = indexOf.get(step.name);
    if (first !== undefined) throw new InvalidArgumentError(`steps[${i}].name`, `"${step.name}" is also the name of steps[${first}]; names must be unique`);
    indexOf.set(step.name, i);
  });
  const after = request.steps.map((step, i) => {
    const seen = new Set<number>();
    return step.after.map((name, j) => {
      const k = indexOf.get(name);
      if (k === undefined) throw new InvalidArgumentError(`steps[${i}].after[${j}]`, `"${name.slice(0, 80)}" is not a step of this workflow; name a step, or use task.depends_on for a task that already exists`);
      if (k === i) throw new InvalidArgumentError(`steps[${i}].after[${j}]`, `step "${name}" cannot wait for itself`);
      if (seen.has(k)) throw new InvalidArgumentError(`steps[${i}].after[${j}]`, `"${name}" is listed twice; list each step once`);
      seen.add(k);
      return k;
    });
  });
  const order = topologicalOrder(after, (cycle) => {
    const names = cycle.map((k) => request.steps[k]!.name);
    const at = cycle[0]!;
    const j = request.steps[at]!.after.indexOf(names[1] ?? names[0]!);
    throw new InvalidArgumentError(`steps[${at}].after[${j}]`, `the steps form a cycle: ${[...names, names[0]].join(' -> ')} (each waits for the next); remove one of these dependencies`);
  });
  const position = new Map(order.map((k, pos) => [k, pos]));
  const steps = order.map((k): EnqueueWorkflowStep => {
    const step = request.steps[k]!;
    if (!step.task) throw new InvalidArgumentError(`steps[${k}].task`, 'required: the task this step runs');
    if (step.task.tenant !== '' && step.task.tenant !== tenant) {
      throw new InvalidArgumentError(`steps[${k}].task.tenant`, `"${step.task.tenant.slice(0, 80)}" differs from the workflow's tenant "${tenant}"; leave it empty`);
    }
    let spec;
    try {
      ({ spec } = parseSubmission({ ...step.task, tenant, requestId: '' }, ctx));
    } catch (err) {
      throw err instanceof InvalidArgumentError ? new InvalidArgumentError(`steps[${k}].task.${err.field}`, err.message.slice(err.field.length + 2)) : err;
    }
    return { name: step.name, spec, after: after[k]!.map((d) => position.get(d)!), requestIndex: k };
  });
  return { requestId, tenant, steps };
}

/**
 * Kahn's algorithm (steps ready from the start in the request's order). On a cycle, calls `onCycle` with one cycle's steps, each waiting
 * for the next (and the last for the first).
 */
function topologicalOrder(after: number[][], onCycle: (cycle: number[]) => never): number[] {
  const n = after.length;
  const waiting = after.map((deps) => deps.length);
  const dependents: number[][] = Array.from({ length: n }, () => []);
  after.forEach((deps, i) => deps.forEach((d) => dependents[d]!.push(i)));
  const ready: number[] = [];
  for (let i = 0; i < n; i++) if (waiting[i] === 0) ready.push(i);
  const order: number[] = [];
  for (let head = 0; head < ready.length; head++) {
    const i = ready[head]!;
    order.push(i);
    for (const k of dependents[i]!) if (--waiting[k]! === 0) ready.push(k);
  }
  if (order.length === n) return order;
  // Every step left waits on another step left: walk `after` among them until a step repeats.
  const left = new Set<number>();
  for (let i = 0; i < n; i++) if (waiting[i]! > 0) left.add(i);
  const path: number[] = [];
  const at = new Map<number, number>();
  let i = Math.min(...left);
  while (!at.has(i)) {
    at.set(i, path.length);
    path.push(i);
    i = after[i]!.find((d) => left.has(d))!;
  }
  return onCycle(path.slice(at.get(i)!));
}
