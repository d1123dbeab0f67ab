import { Metadata } from '@grpc/grpc-js';
import { DecisionServiceClient, TaskState, type Event, type TaskEvent } from '@autoglm/proto';
import { createClient } from '@autoglm/runtime';
import { startInProcessMesh, type InProcessMesh } from '../support/in-process-mesh';
import { until } from '../support/until';

describe('server-streaming RPCs against real servers', () => {
  let mesh: InProcessMesh;
  beforeAll(async () => {
    mesh = await startInProcessMesh();
  }, 60_000);
  afterEach(() => mesh.expectNoLeakedStreams());
  afterAll(() => mesh?.stop(), 30_000);

  it('WatchTask streams to the final state and ends', async () => {
    const { task } = await mesh.client.submit({ payload: { $case: 'batch', batch: { expectedDuration: { seconds: 0, nanos: 1_000_000 } } } });
    const states: TaskState[] = [];
    for await (const e of mesh.client.watch(task!.id)) states.push(e.state);
    expect(states).toEqual([TaskState.QUEUED, TaskState.ASSIGNED, TaskState.RUNNING, TaskState.SUCCEEDED]);
  });

  it('a client that stops watching early closes the stream on every server', async () => {
    const { task } = await mesh.client.submit({ payload: { $case: 'batch', batch: { expectedDuration: { seconds: 3600, nanos: 0 } } } });
    const abort = new AbortController();
    const seen: TaskEvent[] = [];
    const watching = (async () => {
      for await (const e of mesh.client.watch(task!.id, 0, { signal: abort.signal })) seen.push(e);
    })().catch(() => undefined);
    await until(async () => (seen.some((e) => e.state === TaskState.RUNNING) ? true : undefined), 10_000, 'RUNNING to be streamed');
    abort.abort();
    await watching;
    await mesh.client.cancel(task!.id);
  });

  it('Subscribe with batched delivery keeps every task event, in order', async () => {
    const decision = createClient(DecisionServiceClient, mesh.decision.grpcAddress);
    const call = decision.subscribe({ taskEvents: true, nodeEvents: false, taskId: '', afterSequence: 0, states: [], batched: true, snapshot: false }, new Metadata());
    const seen = new Map<string, number[]>();
    let batches = 0;
    call.on('data', (event: Event) => {
      const events = event.kind?.$case === 'batch' ? (batches++, event.kind.batch.events) : [event];
      for (const e of events) if (e.kind?.$case === 'task') seen.set(e.kind.task.taskId, [...(seen.get(e.kind.task.taskId) ?? []), e.kind.task.sequence]);
    });
    call.on('error', () => undefined);
    const ids = (await Promise.all(Array.from({ length: 50 }, () => mesh.client.submit({ payload: { $case: 'batch', batch: {} } })))).map((r) => r.task!.id);
    await until(async () => (ids.every((id) => seen.get(id)?.length === 4) ? true : undefined), 10_000, 'all four events of every task');
    for (const id of ids) expect(seen.get(id)).toEqual([1, 2, 3, 4]);
    expect(batches).toBeGreaterThan(0);
    call.cancel();
    decision.close();
  });

  it('Subscribe with snapshot starts with every unfinished task as it is and every node, then the live events', async () => {
    const running = (await mesh.client.submit({ payload: { $case: 'batch', batch: { expectedDuration: { seconds: 3600, nanos: 0 } } } })).task!.id;
    await until(async () => ((await mesh.client.get(running)).state === TaskState.RUNNING ? true : undefined), 10_000, 'the task to run');
    const finished = (await mesh.client.submit({ payload: { $case: 'batch', batch: {} } })).task!.id;
    await until(async () => ((await mesh.client.get(finished)).finishedAt ? true : undefined), 10_000, 'the short task to finish');
    const decision = createClient(DecisionServiceClient, mesh.decision.grpcAddress);
    const call = decision.subscribe({ taskEvents: true, nodeEvents: true, taskId: '', afterSequence: 0, states: [], batched: true, snapshot: true }, new Metadata());
    const seen: Event[] = [];
    call.on('data', (event: Event) => seen.push(...(event.kind?.$case === 'batch' ? event.kind.batch.events : [event])));
    call.on('error', () => undefined);
    await until(async () => (seen.some((e) => e.kind?.$case === 'node') ? true : undefined), 10_000, 'the snapshot');
    const snapshotTasks = seen.flatMap((e) => (e.kind?.$case === 'task' ? [e.kind.task] : []));
    // The running task as it is (a snapshot names its state as both states), and nothing of the finished one.
    expect(snapshotTasks).toEqual([expect.objectContaining({ taskId: running, state: TaskState.RUNNING, previousState: TaskState.RUNNING, sequence: 3, final: false })]);
    expect(snapshotTasks[0]!.task?.spec?.payload).toBeUndefined();
    expect(seen.find((e) => e.kind?.$case === 'node')).toMatchObject({ kind: { node: { nodeId: 'contract-node' } } });
    // Then live: its cancel.
    await mesh.client.cancel(running);
    await until(async () => (seen.some((e) => e.kind?.$case === 'task' && e.kind.task.taskId === running && e.kind.task.state === TaskState.CANCELLED) ? true : undefined), 10_000, 'the live cancel');
    call.cancel();
    decision.close();
  });

  it('WatchTask of an unknown task fails with NOT_FOUND before any stream opens to decision', async () => {
    const watch = async () => {
      for await (const _ of mesh.client.watch('6f1d2c1e-0000-4000-8000-000000000000')) void _;
    };
    await expect(watch()).rejects.toMatchObject({ code: 'NOT_FOUND', details: 'task 6f1d2c1e-0000-4000-8000-000000000000 does not exist' });
  });
});
