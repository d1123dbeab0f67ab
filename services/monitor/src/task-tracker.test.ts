import { PriorityClass, Task, TaskEvent, TaskResult, TaskState, type Timestamp } from '@autoglm/proto';
import { TaskTracker } from './task-tracker';

const T0 = 1_760_000_000;

function at(offsetMs: number): Timestamp {
  const millis = T0 * 1000 + offsetMs;
  return { seconds: Math.floor(millis / 1000), nanos: (millis % 1000) * 1e6 };
}

function event(
  taskId: string,
  sequence: number,
  previousState: TaskState,
  state: TaskState,
  offsetMs: number,
  result?: Partial<TaskResult>,
): TaskEvent {
  return TaskEvent.fromPartial({
    taskId,
    sequence,
    state,
    previousState,
    time: at(offsetMs),
    task: Task.fromPartial({
      id: taskId,
      tenant: 'acme',
      spec: { model: 'glm-4-9b', priorityClass: PriorityClass.URGENT },
      state,
      createdAt: at(0),
      result: result === undefined ? undefined : TaskResult.fromPartial(result),
    }),
  });
}

describe('TaskTracker', () => {
  it('forgets every task once it finishes, however many pass through', () => {
    const tracker = new TaskTracker();
    const finals = [TaskState.SUCCEEDED, TaskState.CANCELLED, TaskState.DEAD_LETTER, TaskState.FAILED];
    for (let i = 0; i < 10_000; i += 1) {
      const id = `t-${i}`;
      tracker.track(event(id, 1, TaskState.UNSPECIFIED, TaskState.PENDING, 0));
      tracker.track(event(id, 2, TaskState.PENDING, TaskState.QUEUED, 1));
      tracker.track(event(id, 3, TaskState.QUEUED, TaskState.ASSIGNED, 2));
      tracker.track(event(id, 4, TaskState.ASSIGNED, TaskState.RUNNING, 3));
      tracker.track(event(id, 5, TaskState.RUNNING, finals[i % finals.length] ?? TaskState.SUCCEEDED, 4));
    }
    expect(tracker.size).toBe(0);
  });

  it('reports the state it last saw, not the one the event claims', () => {
    const tracker = new TaskTracker();
    tracker.track(event('t', 1, TaskState.UNSPECIFIED, TaskState.QUEUED, 0));
    // ASSIGNED was missed; RUNNING must leave QUEUED, where the task was counted.
    const running = tracker.track(event('t', 3, TaskState.ASSIGNED, TaskState.RUNNING, 20));
    expect(running).toMatchObject({ from: TaskState.QUEUED, to: TaskState.RUNNING, reportedFrom: TaskState.ASSIGNED });
  });

  it('has no previous state for a task first seen mid-life', () => {
    const transition = new TaskTracker().track(event('t', 4, TaskState.ASSIGNED, TaskState.RUNNING, 20));
    expect(transition?.from).toBeUndefined();
    expect(transition?.labels).toEqual({ tenant: 'acme', priorityClass: 'urgent', model: 'glm-4-9b' });
  });

  it('drops a transition it has already applied', () => {
    const tracker = new TaskTracker();
    const queued = event('t', 2, TaskState.PENDING, TaskState.QUEUED, 0);
    expect(tracker.track(queued)).toBeDefined();
    expect(tracker.track(queued)).toBeUndefined();
  });

  it('measures the queue wait from the QUEUED transition, and prefers decision\'s figure', () => {
    const tracker = new TaskTracker();
    tracker.track(event('a', 1, TaskState.UNSPECIFIED, TaskState.WAITING_DEPS, 0));
    tracker.track(event('a', 2, TaskState.WAITING_DEPS, TaskState.QUEUED, 4000));
    expect(tracker.track(event('a', 3, TaskState.QUEUED, TaskState.ASSIGNED, 4125))?.queueWaitSeconds).toBe(0.125);

    const reported = tracker.track(
      event('b', 3, TaskState.QUEUED, TaskState.ASSIGNED, 900, { queueTime: { seconds: 0, nanos: 700_000_000 } }),
    );
    expect(reported?.queueWaitSeconds).toBe(0.7);

    // QUEUED never seen and no figure from decision: measured from creation.
    expect(tracker.track(event('c', 3, TaskState.QUEUED, TaskState.ASSIGNED, 2500))?.queueWaitSeconds).toBe(2.5);
  });

  it('carries the assigned attempt\'s wait to its outcome', () => {
    const tracker = new TaskTracker();
    tracker.track(event('t', 1, TaskState.UNSPECIFIED, TaskState.QUEUED, 100));
    tracker.track(event('t', 2, TaskState.QUEUED, TaskState.ASSIGNED, 350));
    tracker.track(event('t', 3, TaskState.ASSIGNED, TaskState.RUNNING, 400));
    const done = tracker.track(event('t', 4, TaskState.RUNNING, TaskState.SUCCEEDED, 900));
    expect(done).toMatchObject({ to: TaskState.SUCCEEDED, queueWaitSeconds: 0.25 });
  });
});
