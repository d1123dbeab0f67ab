import { Event, NodeState, PriorityClass, ReplicaState, Task, TaskEvent, TaskResult, TaskState, type Duration } from '@autoglm/proto';
import { LiveState, OTHER_TENANT } from './live-state';
import { RingBuffer } from './live-state-ring';

const T0 = 1_760_000_000_000;
const MIB = 2 ** 20;

/** Within the histograms' resolution (buckets 10 % wide) of `expected`. */
function expectNear(actual: number | null, expected: number): void {
  expect(actual).not.toBeNull();
  expect(Math.abs(actual! - expected)).toBeLessThanOrEqual(expected * 0.06);
}

function ms(millis: number): Duration {
  return { seconds: Math.floor(millis / 1000), nanos: (millis % 1000) * 1e6 };
}

/** Publishes a task's transitions as decision would, one per call. */
function life(id: string, tenant: string, priorityClass: PriorityClass) {
  let sequence = 0;
  let previous = TaskState.UNSPECIFIED;
  return (state: TaskState, result?: Partial<TaskResult>): Event => {
    sequence += 1;
    const event = TaskEvent.fromPartial({
      taskId: id,
      sequence,
      state,
      previousState: previous,
      task: Task.fromPartial({ id, tenant, spec: { model: 'glm-4-9b', priorityClass }, state, sequence, result: result && TaskResult.fromPartial(result) }),
    });
    previous = state;
    return Event.fromPartial({ kind: { $case: 'task', task: event } });
  };
}

/** A node's report; `noise` (under 0.005) moves its readings by less than the dashboard draws. */
function node(nodeId: string, state: NodeState, stateReason = '', noise = 0): Event {
  return Event.fromPartial({
    kind: {
      $case: 'node',
      node: {
        nodeId,
        state,
        stateReason,
        runningTasks: 1,
        gpus: [
          { index: 0, name: 'NVIDIA H100', utilization: 0.8 + noise, memoryUsedBytes: 40_000 * MIB + noise * 1e9, memoryTotalBytes: 80_000 * MIB },
          { index: 1, name: 'NVIDIA H100', utilization: 0.1, memoryUsedBytes: 2000 * MIB, memoryTotalBytes: 80_000 * MIB },
        ],
        replicas: [{ replicaId: 'r1', model: 'glm-4-9b', gpuIndices: [1], state: ReplicaState.LOADING, sequences: 3 }],
      },
    },
  });
}

describe('LiveState', () => {
  let now: number;
  let live: LiveState;
  const clock = () => now;

  beforeEach(() => {
    now = T0;
    live = new LiveState({ now: clock, historySamples: 3, maxTenants: 2 });
  });

  it('counts live tasks by class and tenant through their lives, and samples them each tick', () => {
    const a = life('a', 'acme', PriorityClass.URGENT);
    const b = life('b', 'beta', PriorityClass.BACKGROUND);
    live.observe(a(TaskState.PENDING));
    live.observe(a(TaskState.QUEUED));
    live.observe(b(TaskState.QUEUED));
    live.observe(a(TaskState.ASSIGNED, { queueTime: ms(250) }));
    live.observe(a(TaskState.RUNNING));
    now += 1000;
    const first = live.tick();
    expect(first.byClass).toEqual([
      { name: 'urgent', pending: 0, running: 1 },
      { name: 'normal', pending: 0, running: 0 },
      { name: 'background', pending: 1, running: 0 },
    ]);
    expect(first.byTenant).toEqual([
      { name: 'acme', pending: 0, running: 1 },
      { name: 'beta', pending: 1, running: 0 },
    ]);
    expect(first.samples).toEqual([
      expect.objectContaining({ t: T0 + 1000, pending: [0, 0, 1], running: [1, 0, 0], tenants: { acme: [0, 1], beta: [1, 0] }, submitted: 2, finished: 0, queueP50: 0.25 }),
    ]);

    live.observe(a(TaskState.SUCCEEDED, { queueTime: ms(250), timeToFirstToken: ms(40) }));
    live.observe(b(TaskState.CANCELLED));
    now += 2000;
    const second = live.tick().samples[0]!;
    // Two outcomes in two seconds; a cancellation is no failure.
    expect(second).toMatchObject({ pending: [0, 0, 0], running: [0, 0, 0], tenants: {}, finished: 1, failed: 0, ttftP50: 0.04, ttftP99: 0.04 });
    expect(live.snapshot().recentTasks.map((t) => `${t.taskId}:${t.state}`)).toEqual(['b:cancelled', 'a:succeeded']);
  });

  it('takes latency percentiles over the recent window only', () => {
    for (let i = 1; i <= 100; i += 1) {
      const t = life(`t${i}`, 'acme', PriorityClass.NORMAL);
      live.observe(t(TaskState.QUEUED));
      live.observe(t(TaskState.ASSIGNED, { queueTime: ms(i * 10) }));
    }
    const first = live.tick().samples[0]!;
    expectNear(first.queueP50, 0.5);
    expectNear(first.queueP99, 0.99);
    now += 61_000;
    expect(live.tick().samples[0]).toMatchObject({ queueP50: null, queueP99: null });
  });

  it('keeps every sample of the last minute in the percentiles, however many came since', () => {
    // A backlog 30 s ago: 200 attempts waited 30 s. Then 10,000 quick ones (2 % slow in all).
    for (let i = 0; i < 200; i += 1) {
      const t = life(`slow${i}`, 'acme', PriorityClass.NORMAL);
      live.observe(t(TaskState.QUEUED));
      live.observe(t(TaskState.ASSIGNED, { queueTime: ms(30_000) }));
    }
    now += 1000;
    live.tick();
    now += 29_000;
    for (let i = 0; i < 10_000; i += 1) {
      const t = life(`fast${i}`, 'acme', PriorityClass.NORMAL);
      live.observe(t(TaskState.QUEUED));
      live.observe(t(TaskState.ASSIGNED, { queueTime: ms(10) }));
    }
    now += 1000;
    const sample = live.tick().samples[0]!;
    expectNear(sample.queueP50!, 0.01);
    expectNear(sample.queueP99!, 30);
    // A minute after the backlog, it has left the window.
    now += 30_000;
    expectNear(live.tick().samples[0]!.queueP99, 0.01);
  });

  it('counts an arrival once: a retry re-entering the queue is no new submission', () => {
    const a = life('a', 'acme', PriorityClass.NORMAL);
    live.observe(a(TaskState.QUEUED));
    live.observe(a(TaskState.ASSIGNED));
    live.observe(a(TaskState.FAILED));
    live.observe(a(TaskState.QUEUED));
    now += 1000;
    expect(live.tick().samples[0]).toMatchObject({ submitted: 1, failed: 1, pending: [0, 1, 0] });
  });

  it('lists the latest tasks that moved, newest first, once each', () => {
    for (let i = 0; i < 30; i += 1) {
      const t = life(`t${i}`, 'acme', PriorityClass.NORMAL);
      live.observe(t(TaskState.QUEUED));
      live.observe(t(TaskState.ASSIGNED));
      live.observe(t(TaskState.RUNNING));
    }
    const rows = live.tick().recentTasks;
    expect(rows.map((r) => r.taskId)).toEqual(Array.from({ length: 15 }, (_, i) => `t${29 - i}`));
    expect(rows[0]).toEqual({ taskId: 't29', tenant: 'acme', priorityClass: 'normal', model: 'glm-4-9b', state: 'running', atMs: T0 });
  });

  it('resends a node only when what the page draws of it changed', () => {
    live.observe(node('n1', NodeState.READY));
    expect(live.tick().nodes).toHaveLength(1);
    // A reading 0.4 % and 4 MB off is the same picture.
    live.observe(node('n1', NodeState.READY, '', 0.004));
    expect(live.tick()).toMatchObject({ nodes: [], quiet: true });
    live.observe(node('n1', NodeState.DRAINING, '', 0.004));
    expect(live.tick().nodes).toEqual([expect.objectContaining({ nodeId: 'n1', state: 'draining' })]);
    live.observe(node('n1', NodeState.DRAINING, '', 0.02));
    expect(live.tick().nodes[0]?.gpus[0]).toMatchObject({ utilization: 0.82, memoryUsedBytes: 40_000 * MIB });
  });

  it('keeps each node as last reported, and says which changed, which left, and when nothing moved', () => {
    live.observe(node('n1', NodeState.READY));
    live.observe(node('n2', NodeState.QUARANTINED, 'failed 9 of its last 10 attempts (monitor)'));
    const first = live.tick();
    expect(first.nodes.map((n) => n.nodeId)).toEqual(['n1', 'n2']);
    expect(first.nodes[1]).toEqual({
      nodeId: 'n2',
      state: 'quarantined',
      stateReason: 'failed 9 of its last 10 attempts (monitor)',
      quarantinedUntilMs: null,
      runningTasks: 1,
      gpus: [
        { index: 0, name: 'NVIDIA H100', utilization: 0.8, memoryUsedBytes: 40_000 * MIB, memoryTotalBytes: 80_000 * MIB },
        { index: 1, name: 'NVIDIA H100', utilization: 0.1, memoryUsedBytes: 2000 * MIB, memoryTotalBytes: 80_000 * MIB },
      ],
      replicas: [{ model: 'glm-4-9b', state: 'loading', gpuIndices: [1], sequences: 3 }],
    });
    expect(first.quiet).toBe(false);
    expect(live.tick()).toMatchObject({ quiet: true, nodes: [], removedNodes: [] });

    live.observe(node('n1', NodeState.LOST));
    expect(live.tick()).toMatchObject({ quiet: false, nodes: [], removedNodes: ['n1'] });
    expect(live.snapshot().nodes.map((n) => n.nodeId)).toEqual(['n2']);
  });

  it('after a resync counts only what the snapshot says, and drops nodes it does not repeat', () => {
    const gone = life('gone', 'acme', PriorityClass.NORMAL);
    live.observe(gone(TaskState.QUEUED));
    live.observe(node('n1', NodeState.READY));
    live.observe(node('n2', NodeState.READY));
    live.tick();
    // The stream broke: 'gone' finished and n2 was lost unseen. The snapshot has 'still' running on n1.
    live.resync();
    const snapshot = Event.fromPartial({
      kind: { $case: 'task', task: { taskId: 'still', sequence: 3, state: TaskState.RUNNING, previousState: TaskState.RUNNING, task: Task.fromPartial({ id: 'still', tenant: 'acme', spec: { model: 'glm-4-9b', priorityClass: PriorityClass.NORMAL } }) } },
    });
    live.observe(snapshot);
    live.observe(node('n1', NodeState.READY));
    now += 1000;
    const delta = live.tick();
    expect(delta.samples[0]).toMatchObject({ submitted: 0, pending: [0, 0, 0], running: [0, 1, 0] });
    expect(delta.removedNodes).toEqual(['n2']);
    expect(live.snapshot().nodes.map((n) => n.nodeId)).toEqual(['n1']);
    // A snapshot is where things are, not a move: the feed of recent tasks does not show it.
    expect(delta.recentTasks.map((r) => r.taskId)).not.toContain('still');
  });

  it('keeps a tenant named __proto__ like any other', () => {
    live.observe(life('p', '__proto__', PriorityClass.NORMAL)(TaskState.QUEUED));
    now += 1000;
    const sample = live.tick().samples[0]!;
    expect(Object.keys(sample.tenants)).toEqual(['__proto__']);
    expect(JSON.parse(JSON.stringify(sample)).tenants).toEqual(JSON.parse('{"__proto__": [1, 0]}'));
  });

  it('counts tenants past the cap as one, and keeps only the latest samples', () => {
    for (const tenant of ['a', 'b', 'c', 'd']) live.observe(life(`t-${tenant}`, tenant, PriorityClass.NORMAL)(TaskState.QUEUED));
    for (let i = 0; i < 5; i += 1) {
      now += 1000;
      live.tick();
    }
    const snapshot = live.snapshot();
    expect(snapshot.byTenant).toEqual([
      { name: OTHER_TENANT, pending: 2, running: 0 },
      { name: 'a', pending: 1, running: 0 },
      { name: 'b', pending: 1, running: 0 },
    ]);
    expect(snapshot.samples.map((s) => s.t)).toEqual([T0 + 3000, T0 + 4000, T0 + 5000]);
  });

  it('ignores a replayed transition', () => {
    const a = life('a', 'acme', PriorityClass.URGENT);
    const queued = a(TaskState.QUEUED);
    live.observe(queued);
    live.observe(queued);
    expect(live.tick().byClass[0]).toEqual({ name: 'urgent', pending: 1, running: 0 });
  });
});

describe('RingBuffer', () => {
  it('keeps the latest items up to its capacity', () => {
    const ring = new RingBuffer<number>(3);
    expect(ring.toArray()).toEqual([]);
    for (let i = 1; i <= 5; i += 1) ring.push(i);
    expect(ring.length).toBe(3);
    expect(ring.toArray()).toEqual([3, 4, 5]);
    expect(ring.newest(2)).toEqual([5, 4]);
    expect(() => new RingBuffer(0)).toThrow(RangeError);
  });
});
