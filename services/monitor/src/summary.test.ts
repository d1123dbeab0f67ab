import { Event, NodeState, PriorityClass, Task, TaskEvent, TaskResult, TaskState } from '@autoglm/proto';
import { MonitorSummary } from './summary';

const T0_MS = 1_760_000_000_123;

function transition(
  taskId: string,
  tenant: string,
  priorityClass: PriorityClass,
  sequence: number,
  previousState: TaskState,
  state: TaskState,
  result?: Partial<TaskResult>,
): Event {
  const task = Task.fromPartial({
    id: taskId,
    tenant,
    spec: { model: 'glm-4-9b', priorityClass },
    state,
    result: result === undefined ? undefined : TaskResult.fromPartial(result),
  });
  return Event.fromPartial({
    kind: { $case: 'task', task: TaskEvent.fromPartial({ taskId, sequence, state, previousState, task }) },
  });
}

function finished(taskId: string, tenant: string, priorityClass: PriorityClass, state: TaskState, queueSeconds?: number): Event[] {
  const queueTime = queueSeconds === undefined ? undefined : { seconds: Math.floor(queueSeconds), nanos: Math.round((queueSeconds % 1) * 1e9) };
  return [
    transition(taskId, tenant, priorityClass, 1, TaskState.UNSPECIFIED, TaskState.QUEUED),
    transition(taskId, tenant, priorityClass, 2, TaskState.QUEUED, TaskState.ASSIGNED),
    transition(taskId, tenant, priorityClass, 3, TaskState.ASSIGNED, TaskState.RUNNING),
    transition(taskId, tenant, priorityClass, 4, TaskState.RUNNING, state, { queueTime }),
  ];
}

function node(nodeId: string, state: NodeState, gpus: Array<[number, number, number]>): Event {
  return Event.fromPartial({
    kind: {
      $case: 'node',
      node: {
        nodeId,
        state,
        gpus: gpus.map(([utilization, memoryUsedBytes, memoryTotalBytes], index) => ({
          index,
          utilization,
          memoryUsedBytes,
          memoryTotalBytes,
        })),
      },
    },
  });
}

describe('MonitorSummary', () => {
  it('starts empty, stamped with the time it started', () => {
    expect(new MonitorSummary({ now: () => T0_MS }).snapshot()).toEqual({
      since: { seconds: 1_760_000_000, nanos: 123_000_000 },
      eventsReceived: 0,
      outcomes: [],
      nodes: [],
    });
  });

  it('counts outcomes per tenant and class with their mean queue wait', () => {
    const summary = new MonitorSummary();
    const events = [
      ...finished('a1', 'acme', PriorityClass.URGENT, TaskState.SUCCEEDED, 0.2),
      ...finished('a2', 'acme', PriorityClass.URGENT, TaskState.SUCCEEDED, 0.4),
      ...finished('a3', 'acme', PriorityClass.URGENT, TaskState.CANCELLED, 0.9),
      ...finished('b1', 'acme', PriorityClass.BACKGROUND, TaskState.SUCCEEDED, 30),
      ...finished('z1', 'zeta', PriorityClass.UNSPECIFIED, TaskState.DEAD_LETTER, 1),
      // Cancelled while queued: counted, but it has no queue wait to average.
      transition('a4', 'acme', PriorityClass.URGENT, 1, TaskState.UNSPECIFIED, TaskState.QUEUED),
      transition('a4', 'acme', PriorityClass.URGENT, 2, TaskState.QUEUED, TaskState.CANCELLED),
      node('node-1', NodeState.READY, [[0.5, 1, 2]]),
    ];
    for (const event of events) summary.observe(event);

    const snapshot = summary.snapshot();
    expect(snapshot.eventsReceived).toBe(events.length - 1);
    expect(snapshot.outcomes).toEqual([
      { tenant: 'acme', priorityClass: 'urgent', succeeded: 2, failed: 2, meanQueueSeconds: expect.closeTo(0.5, 9) },
      { tenant: 'acme', priorityClass: 'background', succeeded: 1, failed: 0, meanQueueSeconds: 30 },
      { tenant: 'zeta', priorityClass: 'normal', succeeded: 0, failed: 1, meanQueueSeconds: 1 },
    ]);
  });

  it('counts a last failed attempt once when it is then dead-lettered', () => {
    const summary = new MonitorSummary();
    for (const event of finished('t', 'acme', PriorityClass.NORMAL, TaskState.FAILED)) summary.observe(event);
    summary.observe(transition('t', 'acme', PriorityClass.NORMAL, 5, TaskState.FAILED, TaskState.DEAD_LETTER));
    expect(summary.snapshot().outcomes).toEqual([
      { tenant: 'acme', priorityClass: 'normal', succeeded: 0, failed: 1, meanQueueSeconds: 0 },
    ]);
  });

  it('keeps each node\'s latest GPU load and drops lost nodes', () => {
    const summary = new MonitorSummary();
    const GIB = 1024 ** 3;
    summary.observe(node('node-b', NodeState.READY, [[0.2, 10 * GIB, 80 * GIB]]));
    summary.observe(node('node-a', NodeState.READY, [[1, 70 * GIB, 80 * GIB], [0.5, 30 * GIB, 80 * GIB]]));
    summary.observe(node('node-c', NodeState.READY, []));
    summary.observe(node('node-b', NodeState.DRAINING, [[0, 2 * GIB, 80 * GIB]]));
    summary.observe(node('node-c', NodeState.LOST, []));

    expect(summary.snapshot().nodes).toEqual([
      { nodeId: 'node-a', gpuUtilization: 0.75, gpuMemoryUsedBytes: 100 * GIB, gpuMemoryTotalBytes: 160 * GIB },
      { nodeId: 'node-b', gpuUtilization: 0, gpuMemoryUsedBytes: 2 * GIB, gpuMemoryTotalBytes: 80 * GIB },
    ]);
  });

  it('hands out a copy that later events do not change', () => {
    const summary = new MonitorSummary();
    summary.observe(node('node-a', NodeState.READY, [[0.5, 1, 2]]));
    const before = summary.snapshot();
    summary.observe(node('node-a', NodeState.READY, [[0.9, 1, 2]]));
    expect(before.nodes[0]?.gpuUtilization).toBe(0.5);
  });
});
