import { DeadlinePolicy, PriorityClass, Task, TaskKind, TaskState, type TaskSpec } from '@autoglm/proto';
import { Live } from './live';

const demand = { kind: 'gpus' as const, model: 'llama-3-8b', gpuCount: 2, gpuMemoryBytes: 10e9, tokens: 0, cpuMillis: 0, memoryBytes: 0 };

function payloadOf(kind: 'inference' | 'batch'): TaskSpec['payload'] {
  if (kind === 'batch') {
    return { $case: 'batch', batch: { command: ['python', 'train.py', '--lr', '3e-4'], env: { SEED: '1', NAME: 'ø' }, expectedDuration: { seconds: 90, nanos: 5 }, timeLimit: { seconds: 600, nanos: 0 } } };
  }
  return {
    $case: 'inference',
    inference: {
      prompt: 'Résumé: 東京 🚀 \u0000 end',
      messages: [{ role: 'user', content: 'Ünïcödé 💡' }],
      // float fields: values a float32 holds exactly, as the wire (and so every client) sees them anyway.
      params: { maxTokens: 256, temperature: 0.75, topP: 0.875, stop: ['\n\n', '###'] },
    },
  };
}

/** A task with every field set, as far from the defaults as the schema allows. */
function fullTask(payload: 'inference' | 'batch'): Task {
  return Task.fromPartial({
    id: '6f1c2b1e-9a7d-4c3e-8b2a-1d2e3f4a5b6c',
    requestId: 'req-ü-42',
    tenant: 'team-α',
    spec: {
      kind: payload === 'inference' ? TaskKind.INFERENCE : TaskKind.BATCH,
      model: 'llama-3-8b',
      inputTokens: 123_456,
      maxOutputTokens: 4096,
      gpuCount: 2,
      gpuMemoryBytes: 80 * 2 ** 30 + 7,
      priorityClass: PriorityClass.URGENT,
      priority: -1000,
      deadline: { seconds: 1_764_000_000, nanos: 123_456_789 },
      dependsOn: ['a1b2c3d4-0000-4000-8000-000000000001', 'a1b2c3d4-0000-4000-8000-000000000002'],
      preemptible: true,
      maxRetries: 7,
      labels: { team: 'search', 'autoglm.requeued_from': 'x' },
      interactive: payload === 'inference',
      payload: payloadOf(payload),
      deadlinePolicy: DeadlinePolicy.REFUSE_UNMEETABLE,
      policyVariant: 'exp/b',
      cpuMillis: 2500,
      memoryBytes: 3 * 2 ** 30 + 1,
    },
    state: TaskState.QUEUED,
    attempt: 3,
    sequence: 17,
    createdAt: { seconds: 1_763_999_000, nanos: 1 },
    updatedAt: { seconds: 1_763_999_500, nanos: 999_999_999 },
    startedAt: { seconds: 1_763_999_100, nanos: 0 },
    nodeId: 'gpu-node-7',
    result: { output: 'partial ✓', finishReason: 'length', promptTokens: 10, completionTokens: 20, exitCode: -9, queueTime: { seconds: 1, nanos: 2 } },
    reason: 'attempt 3 after: node gpu-node-7 lost',
    failures: 2,
    leaseEpoch: 41 * 2 ** 32 + 12_345,
    gpuIndices: [0, 3],
    requeuedAs: '',
  });
}

describe('Live', () => {
  it.each(['inference', 'batch'] as const)('a %s task at rest reads back exactly as it was (unicode, 64-bit sizes, maps, oneofs)', (payload) => {
    const task = fullTask(payload);
    const live = new Live(task, demand, 1000, task.tenant);
    live.rest();
    expect(live.atRest).toBe(true);
    expect(live.task).toEqual(fullTask(payload));
    expect(live.atRest).toBe(false);
    // Read again: the decoded task is kept, not decoded anew.
    expect(live.task).toBe(live.task);
  });

  it('keeps what every scan reads without decoding the task', () => {
    const task = fullTask('batch');
    const live = new Live(task, demand, 1000, task.tenant, {});
    live.rest();
    expect([live.id, live.tenant, live.priorityClass, live.state, live.demand]).toEqual([task.id, 'team-α', PriorityClass.URGENT, TaskState.QUEUED, demand]);
    expect(live.atRest).toBe(true);
    // An empty trace context is not kept.
    expect(live.traceContext).toBeUndefined();
  });

  it('a new task replaces the one at rest, and its state is mirrored', () => {
    const task = fullTask('batch');
    const live = new Live(task, demand, 1000, task.tenant);
    live.rest();
    live.task = { ...task, state: TaskState.ASSIGNED, sequence: 18 };
    expect(live.atRest).toBe(false);
    expect(live.state).toBe(TaskState.ASSIGNED);
    live.rest();
    expect(live.task.sequence).toBe(18);
    expect(live.task.state).toBe(TaskState.ASSIGNED);
  });
});
