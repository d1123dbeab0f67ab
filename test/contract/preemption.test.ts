import type { MessageInit } from '@autoglm/client';
import { PriorityClass, TaskState, WaitingCause, type SubmitTaskRequest } from '@autoglm/proto';
import { startInProcessMesh, type InProcessMesh } from '../support/in-process-mesh';
import { until } from '../support/until';

const GiB = 2 ** 30;

/** A long simulated job taking 70 GiB on each of the host's two GPUs: nothing else fits beside it. */
const wholeHost = (priorityClass: PriorityClass, preemptible: boolean): MessageInit<SubmitTaskRequest> => ({
  payload: { $case: 'batch', batch: { expectedDuration: { seconds: 3600, nanos: 0 } } },
  priorityClass,
  preemptible,
  resources: { gpuCount: 2, gpuMemoryBytes: 70 * GiB },
});

describe('preemption through the public API', () => {
  let mesh: InProcessMesh;

  beforeEach(async () => {
    mesh = await startInProcessMesh();
  });

  afterEach(async () => {
    await mesh?.stop();
  });

  const stateOf = async (id: string) => (await mesh.client.get(id)).state;

  it('stops preemptible background work for urgent work, and requeues it with its history and no retry used', async () => {
    const { task: bg } = await mesh.client.submit(wholeHost(PriorityClass.BACKGROUND, true));
    await until(async () => ((await stateOf(bg!.id)) === TaskState.RUNNING ? true : undefined), 10_000, 'the background job to run');
    const { task: urgent } = await mesh.client.submit(wholeHost(PriorityClass.URGENT, false));
    await until(async () => ((await stateOf(urgent!.id)) === TaskState.RUNNING ? true : undefined), 10_000, 'the urgent job to run');

    const events = [];
    const stop = new AbortController();
    for await (const e of mesh.client.watch(bg!.id, 0, { signal: stop.signal })) {
      events.push(e);
      if (e.state === TaskState.QUEUED && e.sequence > 1) stop.abort();
    }
    expect(events.map((e) => e.state)).toEqual([TaskState.QUEUED, TaskState.ASSIGNED, TaskState.RUNNING, TaskState.PREEMPTED, TaskState.QUEUED]);
    expect(events[3]!.reason).toMatch(new RegExp(`^preempted by ${urgent!.id} after [0-9.]+ s \\([0-9.]+ GPU-s of work lost unless it checkpoints\\)$`));
    const requeued = await mesh.client.get(bg!.id);
    expect(requeued.attempt).toBe(2);
    expect(requeued.failures).toBe(0);
    const why = await mesh.client.explain(bg!.id);
    expect(why.waitingCause).toBe(WaitingCause.CAPACITY);
  });

  it('leaves work that is not preemptible alone: the urgent task waits for room', async () => {
    const { task: bg } = await mesh.client.submit(wholeHost(PriorityClass.BACKGROUND, false));
    await until(async () => ((await stateOf(bg!.id)) === TaskState.RUNNING ? true : undefined), 10_000, 'the background job to run');
    const { task: urgent } = await mesh.client.submit(wholeHost(PriorityClass.URGENT, false));
    const why = await until(async () => {
      const e = await mesh.client.explain(urgent!.id);
      return e.waitingCause === WaitingCause.CAPACITY ? e : undefined;
    }, 10_000, 'the urgent task to be explained as waiting for capacity');
    expect(why.waitingReason).toMatch(/no node has 2 free GPU\(s\) for it now; GPU\(s\) 0, 1 of node contract-node are held for it until it fits/);
    expect(await stateOf(bg!.id)).toBe(TaskState.RUNNING);
  });
});

describe('quota reclaim through the public API', () => {
  let mesh: InProcessMesh;

  beforeEach(async () => {
    mesh = await startInProcessMesh({
      decision: {
        preemptAfterMs: 0,
        urgentPreemptAfterMs: 0,
        tenants: [
          { name: 'owner', quota: { gpus: { nominal: 2, borrowingLimit: 0 } } },
          { name: 'borrower', quota: { gpus: { nominal: 0, borrowingLimit: 2 } } },
        ],
      },
    });
  });

  afterEach(async () => {
    await mesh?.stop();
  });

  it("gives a tenant its nominal GPUs back from a borrower's preemptible work, though that work is urgent", async () => {
    const { task: borrowed } = await mesh.client.submit({ ...wholeHost(PriorityClass.URGENT, true), tenant: 'borrower' });
    await until(async () => ((await mesh.client.get(borrowed!.id)).state === TaskState.RUNNING ? true : undefined), 10_000, "the borrower's job to run");
    const { task: owned } = await mesh.client.submit({ ...wholeHost(PriorityClass.BACKGROUND, false), tenant: 'owner' });
    await until(async () => ((await mesh.client.get(owned!.id)).state === TaskState.RUNNING ? true : undefined), 10_000, "the owner's job to run");
    const back = await mesh.client.get(borrowed!.id);
    expect(back.state).toBe(TaskState.QUEUED);
    expect(back.attempt).toBe(2);
    expect(back.reason).toMatch(new RegExp(`preempted by ${owned!.id}`));
  });
});
