import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AutoglmError, runCli as cli, type MessageInit } from '@autoglm/client';
import { PriorityClass, TaskState, type SubmitTaskRequest, type Task, type WorkflowStep } from '@autoglm/proto';
import { timestampToMillis } from '@autoglm/core';
import { startInProcessMesh, type InProcessMesh } from '../support/in-process-mesh';
import { untilFinished } from '../support/until';
import { captureIo } from '../support/cli-io';

/** A simulated batch job (time scale 20: 2 s is 0.1 s), failing for good when asked. */
const job = (simSeconds: number, fail = false): MessageInit<SubmitTaskRequest> => ({
  payload: { $case: 'batch', batch: { expectedDuration: { seconds: simSeconds, nanos: 0 }, env: fail ? { AUTOGLM_SIM_FAIL: 'permanent' } : {} } },
  maxRetries: 0,
});
const step = (name: string, after: string[], task = job(2)): MessageInit<WorkflowStep> => ({ name, after, task });

describe('workflows through the public API', () => {
  let mesh: InProcessMesh;

  beforeAll(async () => {
    mesh = await startInProcessMesh();
  }, 30_000);

  afterAll(async () => {
    await mesh?.stop();
  }, 30_000);

  const settled = (id: string) => untilFinished(mesh.client, id);
  const count = async () => (await mesh.client.list({ pageSize: 500 })).tasks.length;

  it('accepts a DAG in one call, names steps by name, and runs them in dependency order', async () => {
    const { task: earlier } = await mesh.client.submit(job(1));
    const { tasks, created } = await mesh.client.submitWorkflow({
      requestId: 'pipeline-1',
      steps: [
        step('report', ['train', 'eval']),
        step('eval', ['train']),
        { name: 'prep', after: [], task: { ...job(2), dependsOn: [earlier!.id] } },
        step('train', ['prep'], { ...job(2), priorityClass: PriorityClass.URGENT }),
      ],
    });
    expect(created).toBe(true);
    expect(tasks).toHaveLength(4);
    const [report, evaluate, prep, train] = tasks as [Task, Task, Task, Task];
    expect(report.requestId).toBe('pipeline-1/report');
    expect(train.spec!.dependsOn).toEqual([prep.id]);
    expect(new Set(report.spec!.dependsOn)).toEqual(new Set([train.id, evaluate.id]));
    expect(prep.spec!.dependsOn).toEqual([earlier!.id]);
    expect(report.state).toBe(TaskState.WAITING_DEPS);

    const done = await Promise.all([earlier!, prep, train, evaluate, report].map((t) => settled(t.id)));
    expect(done.map((t) => t.state)).toEqual(Array(5).fill(TaskState.SUCCEEDED));
    const [e, p, t, v, r] = done;
    const ended = (x: Task) => timestampToMillis(x.finishedAt!);
    const started = (x: Task) => timestampToMillis(x.startedAt!);
    expect(started(p!)).toBeGreaterThanOrEqual(ended(e!));
    expect(started(t!)).toBeGreaterThanOrEqual(ended(p!));
    expect(started(v!)).toBeGreaterThanOrEqual(ended(t!));
    expect(started(r!)).toBeGreaterThanOrEqual(Math.max(ended(t!), ended(v!)));

    // The same request id again: the same tasks, nothing new.
    const before = await count();
    const again = await mesh.client.submitWorkflow({ requestId: 'pipeline-1', steps: [step('report', ['train', 'eval']), step('eval', ['train']), step('prep', []), step('train', ['prep'])] });
    expect(again.created).toBe(false);
    expect(again.tasks.map((x) => x.id)).toEqual(tasks.map((x) => x.id));
    expect(await count()).toBe(before);
  }, 60_000);

  it('gets an urgent step through when it waits on a background step behind a queue of background work', async () => {
    // Each job takes 70 GiB on both of the host's GPUs, so they run one at a time: 30 background jobs queue up.
    const wholeHost = (simSeconds: number, priorityClass = PriorityClass.BACKGROUND): MessageInit<SubmitTaskRequest> => ({
      ...job(simSeconds),
      priorityClass,
      resources: { gpuCount: 2, gpuMemoryBytes: 70 * 2 ** 30 },
    });
    const backlog = [];
    for (let i = 0; i < 30; i++) backlog.push((await mesh.client.submit(wholeHost(4))).task!);
    const { tasks } = await mesh.client.submitWorkflow({
      steps: [
        { name: 'prepare', after: [], task: wholeHost(4) },
        { name: 'answer', after: ['prepare'], task: wholeHost(2, PriorityClass.URGENT) },
      ],
    });
    const [prepare, answer] = await Promise.all(tasks.map((t) => settled(t.id)));
    expect(answer!.state).toBe(TaskState.SUCCEEDED);
    // The background step inherits the urgent class of the step waiting on it: it runs next, ahead of the backlog.
    const backlogStarts = await Promise.all(backlog.map(async (t) => (await settled(t.id)).startedAt!));
    const startedAfter = backlogStarts.filter((s) => timestampToMillis(s) > timestampToMillis(prepare!.startedAt!)).length;
    expect(startedAfter).toBeGreaterThanOrEqual(27);
  }, 90_000);

  it('cancels the steps after one that fails for good', async () => {
    const { tasks } = await mesh.client.submitWorkflow({ steps: [step('extract', [], job(1, true)), step('load', ['extract']), step('index', ['load'])] });
    const ends = await Promise.all(tasks.map((t) => settled(t.id)));
    expect(ends.map((t) => t.state)).toEqual([TaskState.FAILED, TaskState.CANCELLED, TaskState.CANCELLED]);
    expect(ends[1]!.reason).toBe(`dependency ${tasks[0]!.id} ended FAILED`);
    expect(ends[2]!.reason).toBe(`dependency ${tasks[1]!.id} ended CANCELLED`);
  }, 60_000);

  it('refuses a cycle, an unknown step or an unknown task with INVALID_ARGUMENT, creating nothing', async () => {
    const before = await count();
    const refused = (request: Parameters<typeof mesh.client.submitWorkflow>[0]) =>
      mesh.client.submitWorkflow(request).then(
        () => {
          throw new Error('accepted');
        },
        (e: unknown) => e as AutoglmError,
      );
    const cycle = await refused({ steps: [step('a', ['b']), step('b', ['c']), step('c', ['a'])] });
    expect(cycle.code).toBe('INVALID_ARGUMENT');
    expect(cycle.message).toBe('steps[0].after[0]: the steps form a cycle: a -> b -> c -> a (each waits for the next); remove one of these dependencies');
    expect((await refused({ steps: [step('a', ['nope'])] })).message).toMatch(/steps\[0\]\.after\[0\]: "nope" is not a step of this workflow/);
    // Listed before the step it waits for: the error still names it as the client numbered it.
    const unknown = await refused({ steps: [{ name: 'b', after: ['a'], task: { ...job(1), dependsOn: ['123e4567-e89b-12d3-a456-426614174000'] } }, step('a', [])] });
    expect(unknown.code).toBe('INVALID_ARGUMENT');
    expect(unknown.message).toMatch(/^steps\[0\]\.task\.depends_on\[0\]: task 123e4567-e89b-12d3-a456-426614174000 does not exist/);
    expect(await count()).toBe(before);
  });

  it('refuses a different workflow under a request id already used, writing nothing', async () => {
    const first = await mesh.client.submitWorkflow({ requestId: 'reused', steps: [step('a', []), step('b', ['a'])] });
    const before = await count();
    const e = await mesh.client.submitWorkflow({ requestId: 'reused', steps: [step('a', []), step('c', ['a'])] }).catch((err: unknown) => err as AutoglmError);
    expect(e).toMatchObject({ code: 'ALREADY_EXISTS' });
    expect((e as AutoglmError).message).toBe('request_id: "reused" was used for a workflow without a step "c"; send this workflow under a new request_id');
    expect(await count()).toBe(before);
    const again = await mesh.client.submitWorkflow({ requestId: 'reused', steps: [step('a', []), step('b', ['a'])] });
    expect(again.tasks.map((t) => t.id)).toEqual(first.tasks.map((t) => t.id));
  });

  it('is submitted from a JSON file by `autoglm workflow`', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'autoglm-wf-')), 'wf.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        requestId: 'cli-wf',
        steps: [
          { name: 'prep', task: { batch: { expectedDuration: { seconds: 1 } } } },
          { name: 'train', after: ['prep'], task: { batch: { expectedDuration: { seconds: 1 } }, priorityClass: 'PRIORITY_CLASS_URGENT' } },
        ],
      }),
    );
    const io = captureIo();
    const code = await cli(['node', 'autoglm', '--address', mesh.parser.grpcAddress, '--token', mesh.adminToken, '--tenant', 'contract', 'workflow', file], io);
    expect(io.err).toBe('');
    expect(code).toBe(0);
    expect(io.out).toMatch(/STEP\s+TASK\s+STATE/);
    expect(io.out).toMatch(/train\s+[0-9a-f-]{36}\s+WAITING_DEPS/);
    const train = (await mesh.client.list({ pageSize: 500 })).tasks.find((t) => t.requestId === 'cli-wf/train')!;
    expect(train.spec!.priorityClass).toBe(PriorityClass.URGENT);

    fs.writeFileSync(file, '{"steps": [{"name": "a", "task": {"batch": {}}}');
    const notJson = captureIo();
    expect(await cli(['node', 'autoglm', '--address', mesh.parser.grpcAddress, '--token', mesh.adminToken, 'workflow', file], notJson)).toBe(1);
    expect(notJson.err).toMatch(/wf\.json is not JSON: /);
    fs.writeFileSync(file, '{"steps": [{"name": "a", "task": {"deadline": "tomorrow", "batch": {}}}]}');
    const bad = captureIo();
    expect(await cli(['node', 'autoglm', '--address', mesh.parser.grpcAddress, '--token', mesh.adminToken, 'workflow', file], bad)).toBe(1);
    expect(bad.err).toMatch(/is not a SubmitWorkflowRequest: .*deadline: object expected/);
  });
});
