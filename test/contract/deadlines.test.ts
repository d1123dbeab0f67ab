import { runCli, type AutoglmError, type MessageInit } from '@autoglm/client';
import { DeadlinePolicy, PriorityClass, TaskState, type SubmitTaskRequest } from '@autoglm/proto';
import { startInProcessMesh, type InProcessMesh } from '../support/in-process-mesh';
import { untilFinished } from '../support/until';
import { captureIo } from '../support/cli-io';

/** A batch job its submitter expects to take `seconds` (the simulator runs it 20x faster), due `dueInMs` from now. */
const due = (seconds: number, dueInMs: number, deadlinePolicy: DeadlinePolicy): MessageInit<SubmitTaskRequest> => ({
  payload: { $case: 'batch', batch: { expectedDuration: { seconds, nanos: 0 } } },
  deadline: { seconds: Math.floor((Date.now() + dueInMs) / 1000), nanos: 0 },
  deadlinePolicy,
  priorityClass: PriorityClass.URGENT,
});

describe('deadlines through the public API', () => {
  let mesh: InProcessMesh;

  beforeAll(async () => {
    mesh = await startInProcessMesh();
  }, 30_000);

  afterAll(async () => {
    await mesh?.stop();
  }, 30_000);

  const ended = (id: string) => untilFinished(mesh.client, id);

  it('refuses a deadline it predicts cannot be met when asked to, runs it anyway otherwise, and counts the outcomes', async () => {
    // An hour's job due in ten seconds: no wait could make that.
    const refused = await mesh.client.submit(due(3600, 10_000, DeadlinePolicy.REFUSE_UNMEETABLE)).catch((e: unknown) => e as AutoglmError);
    expect(refused).toMatchObject({ code: 'FAILED_PRECONDITION' });
    expect((refused as AutoglmError).message).toMatch(
      /^spec\.deadline: .*Z cannot be met: predicted run 3600 s \(from its size; nothing like it has run yet\) after a predicted wait of 0\.0 s for urgent work ends 35\d\d s past it; set a later deadline/,
    );

    // In time: accepted and met.
    const { task: fine } = await mesh.client.submit(due(2, 60_000, DeadlinePolicy.REFUSE_UNMEETABLE));
    expect((await ended(fine!.id)).state).toBe(TaskState.SUCCEEDED);

    // Best effort: accepted, and missed (a 40 s job runs 2 s in the simulator; due in about 1 s).
    const { task: late } = await mesh.client.submit(due(40, 1_500, DeadlinePolicy.BEST_EFFORT));
    expect((await ended(late!.id)).state).toBe(TaskState.SUCCEEDED);

    const stats = await mesh.client.queueStats();
    expect(stats.deadlines).toEqual([{ tenant: 'contract', priorityClass: PriorityClass.URGENT, met: 1, missed: 1, refused: 1 }]);
    expect(stats.preempted).toBe(0);

    const io = captureIo();
    expect(await runCli(['node', 'autoglm', '--address', mesh.parser.grpcAddress, '--token', mesh.adminToken, 'stats'], io)).toBe(0);
    expect(io.out).toMatch(/TENANT\s+CLASS\s+DEADLINES MET\s+MISSED\s+REFUSED\n\s*contract\s+URGENT\s+1\s+1\s+1/);
    expect(io.out).toMatch(/preempted 0/);
  }, 60_000);

  it('needs a deadline to refuse by', async () => {
    const e = await mesh.client.submit({ payload: { $case: 'batch', batch: {} }, deadlinePolicy: DeadlinePolicy.REFUSE_UNMEETABLE }).catch((err: unknown) => err as AutoglmError);
    expect(e).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((e as AutoglmError).message).toBe('deadline_policy: REFUSE_UNMEETABLE needs a deadline: set deadline, or leave deadline_policy unset');
  });
});
