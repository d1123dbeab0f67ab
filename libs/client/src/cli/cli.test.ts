import { Readable } from 'node:stream';
import { type ServerDuplexStream, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData, status } from '@grpc/grpc-js';
import {
  type GetTaskRequest,
  type InferRequest,
  InferResponse,
  NodeState,
  ReplicaState,
  PriorityExplanation,
  WaitingCause,
  type ListTasksRequest,
  type SubmitTaskRequest,
  SubmitTaskResponse,
  Task,
  TaskEvent,
  TaskKind,
  TaskState,
  type WatchTaskRequest,
  PriorityClass,
} from '@autoglm/proto';
import { startTestServer, type TestServer } from '../sdk/test-server';
import type { CliIo } from './io';
import { run } from './main';

interface CapturedIo extends CliIo {
  out: string;
  err: string;
  interrupt(): void;
}

function captureIo(stdin = '', onStdout?: (text: string, io: CapturedIo) => void): CapturedIo {
  const handlers = new Set<() => void>();
  const io: CapturedIo = {
    out: '',
    err: '',
    stdout: {
      write: (text: string) => {
        io.out += text;
        onStdout?.(text, io);
        return true;
      },
    },
    stderr: {
      write: (text: string) => {
        io.err += text;
        return true;
      },
    },
    stdin: Readable.from([stdin]),
    onInterrupt(handler) {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
    exit: (code) => {
      throw new Error(`exit ${code}`);
    },
    setExitCode: () => undefined,
    interrupt: () => {
      for (const handler of [...handlers]) handler();
    },
  };
  return io;
}

const finalTask = (id: string, state: TaskState, output = ''): Task =>
  Task.fromPartial({
    id,
    tenant: 'default',
    state,
    attempt: 1,
    sequence: 3,
    nodeId: 'agent-2',
    spec: { kind: TaskKind.INFERENCE, model: 'glm-4-9b', priorityClass: PriorityClass.URGENT, gpuCount: 1 },
    result: { output, finishReason: 'stop', promptTokens: 4, completionTokens: 2, runTime: { seconds: 1, nanos: 0 } },
    reason: state === TaskState.DEAD_LETTER ? 'failed 3 times' : '',
  });

describe('autoglm CLI', () => {
  let server: TestServer;
  const submitted: { request: SubmitTaskRequest; tenant: unknown }[] = [];
  const finalStates = new Map<string, TaskState>();
  const inferRequests: InferRequest[] = [];
  let next = 0;

  beforeAll(async () => {
    server = await startTestServer(
      {
        submitTask: (call: ServerUnaryCall<SubmitTaskRequest, SubmitTaskResponse>, callback: sendUnaryData<SubmitTaskResponse>) => {
          submitted.push({ request: call.request, tenant: call.metadata.get('x-autoglm-tenant')[0] });
          const id = `task-${++next}`;
          callback(null, SubmitTaskResponse.fromPartial({ task: { id, requestId: call.request.requestId, state: TaskState.QUEUED }, created: true }));
        },
        getTask: (call: ServerUnaryCall<GetTaskRequest, Task>, callback: sendUnaryData<Task>) => {
          if (call.request.taskId === 'missing') {
            callback({ code: status.NOT_FOUND, details: 'task missing not found' });
            return;
          }
          const state = finalStates.get(call.request.taskId) ?? TaskState.SUCCEEDED;
          callback(null, finalTask(call.request.taskId, state, `output of ${call.request.taskId}`));
        },
        listTasks: (call: ServerUnaryCall<ListTasksRequest, unknown>, callback: sendUnaryData<{ tasks: Task[]; nextPageToken: string }>) =>
          callback(null, {
            tasks: [finalTask('task-a', call.request.states[0] ?? TaskState.SUCCEEDED), finalTask('task-b', TaskState.RUNNING)],
            nextPageToken: '',
          }),
        watchTask: (call: ServerWritableStream<WatchTaskRequest, TaskEvent>) => {
          const taskId = call.request.taskId;
          const last = finalStates.get(taskId) ?? TaskState.SUCCEEDED;
          const states = [TaskState.QUEUED, TaskState.RUNNING, last];
          states.forEach((state, i) => {
            if (i + 1 > call.request.afterSequence) call.write(TaskEvent.fromPartial({ taskId, sequence: i + 1, state, reason: state === TaskState.DEAD_LETTER ? 'failed 3 times' : '' }));
          });
          call.end();
        },
        cancelTask: (call, callback) => callback(null, Task.fromPartial({ id: call.request.taskId, state: TaskState.CANCELLED, reason: call.request.reason })),
        explainTask: (call, callback) =>
          callback(
            null,
            PriorityExplanation.fromPartial({
              taskId: call.request.taskId,
              state: TaskState.QUEUED,
              priority: 5825,
              queuePosition: 4,
              tasksAhead: 3,
              waitingReason: 'no node has 1 free GPU(s) for it now',
              waitingCause: WaitingCause.CAPACITY,
              tenantUsageOverShare: 1.25,
              factors: [
                { name: 'class', value: 1, weight: 5000, contribution: 5000 },
                { name: 'age', value: 0.55, weight: 1500, contribution: 825 },
              ],
            }),
          ),
        infer: (call: ServerDuplexStream<InferRequest, InferResponse>) => {
          call.on('data', (message: InferRequest) => {
            inferRequests.push(message);
            if (message.kind?.$case !== 'start') return;
            call.write(InferResponse.fromPartial({ kind: { $case: 'accepted', accepted: { taskId: 'inf-1', queuePosition: 1 } } }));
            call.write(InferResponse.fromPartial({ kind: { $case: 'chunk', chunk: { text: 'Hello', tokenCount: 1 } } }));
            if (message.kind.start.input?.prompt === 'forever') return;
            call.write(InferResponse.fromPartial({ kind: { $case: 'chunk', chunk: { text: ' there', tokenCount: 1 } } }));
            call.write(doneResponse('stop'));
            call.end();
          });
          call.on('end', () => {
            if (call.writable) {
              call.write(doneResponse('cancelled'));
              call.end();
            }
          });
        },
      },
      {
        listNodes: (_call, callback) =>
          callback(null, {
            nodes: [
              {
                nodeId: 'agent-1',
                address: '127.0.0.1:50060',
                state: NodeState.READY,
                gpus: [
                  { index: 0, name: 'sim', utilization: 0.5, memoryUsedBytes: 40 * 1024 ** 3, memoryTotalBytes: 80 * 1024 ** 3, temperatureC: 0, powerWatts: 0 },
                  { index: 1, name: 'sim', utilization: 0.1, memoryUsedBytes: 0, memoryTotalBytes: 80 * 1024 ** 3, temperatureC: 0, powerWatts: 0 },
                ],
                models: ['glm-4-9b'],
                backends: ['sim'],
                host: undefined,
                load: undefined,
                lastSeen: undefined,
                runningTasks: 3,
                replicas: [
                  {
                    replicaId: 'r-1',
                    model: 'glm-4-9b',
                    gpuIndices: [1],
                    state: ReplicaState.READY,
                    external: false,
                    contextLength: 0,
                    capacityTokens: 1_000_000,
                    numRequestsRunning: 2,
                    numRequestsWaiting: 0,
                    kvCacheUsagePerc: 0.01,
                    sequences: 2,
                    claimedTokens: 4096,
                  },
                ],
                gpuClaims: [
                  { gpuIndex: 0, taskId: 'task-1', replicaId: '', heldFor: '' },
                  { gpuIndex: 1, taskId: '', replicaId: 'r-1', heldFor: 'task-3' },
                ],
                cpuMillis: 32_000,
                cpuClaimedMillis: 2500,
                memoryBytes: 256 * 1024 ** 3,
                memoryClaimedBytes: 0,
                servedModels: [],
                stateReason: '',
                quarantinedUntil: undefined,
              },
            ],
          }),
      },
    );
  });

  afterAll(async () => {
    await server.shutdown();
  });

  beforeEach(() => {
    submitted.length = 0;
    finalStates.clear();
    inferRequests.length = 0;
    next = 0;
  });

  const autoglm = (io: CliIo, ...args: string[]): Promise<number> => run(['node', 'autoglm', '--address', server.address, ...args], io);

  it('submits an inference task with every option and prints its id', async () => {
    const io = captureIo();
    const before = Date.now();
    const code = await autoglm(
      io,
      '--tenant', 'acme', 'submit', 'Explain KV caching',
      '--model', 'glm-4-9b', '--class', 'urgent', '--priority', '-5', '--max-tokens', '64',
      '--deadline', '+30s', '--depends-on', 'a,b', '--depends-on', 'c', '--gpus', '2',
      '--label', 'team=search', '--label', 'env=dev', '--request-id', 'req-1', '--preemptible',
    );
    expect(code).toBe(0);
    expect(io.out).toBe('task-1\n');
    const [{ request, tenant }] = submitted as [(typeof submitted)[number]];
    expect(tenant).toBe('acme');
    expect(request).toMatchObject({
      requestId: 'req-1',
      tenant: 'acme',
      model: 'glm-4-9b',
      priorityClass: PriorityClass.URGENT,
      priority: -5,
      dependsOn: ['a', 'b', 'c'],
      resources: { gpuCount: 2 },
      preemptible: true,
      labels: { team: 'search', env: 'dev' },
      payload: { $case: 'inference', inference: { prompt: 'Explain KV caching', params: expect.objectContaining({ maxTokens: 64 }) } },
    });
    const deadlineMs = (request.deadline?.seconds ?? 0) * 1000;
    expect(deadlineMs).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 29_000);
    expect(deadlineMs).toBeLessThanOrEqual(Date.now() + 31_000);
  });

  it('submits N batch copies concurrently with suffixed request ids', async () => {
    const io = captureIo();
    const code = await autoglm(io, '--tenant', 'acme', 'submit', '--command', 'python train.py  --epochs 3', '--env', 'SEED=7', '--duration', '2.5s', '--count', '3', '--request-id', 'job');
    expect(code).toBe(0);
    expect(io.out.trim().split('\n').sort()).toEqual(['task-1', 'task-2', 'task-3']);
    expect(io.err).toMatch(/submitted 3 tasks/);
    expect(submitted.map((s) => s.request.requestId).sort()).toEqual(['job-1', 'job-2', 'job-3']);
    expect(submitted[0]?.tenant).toBe('acme');
    expect(submitted[0]?.request.payload).toEqual({
      $case: 'batch',
      batch: { command: ['python', 'train.py', '--epochs', '3'], env: { SEED: '7' }, expectedDuration: { seconds: 2, nanos: 500_000_000 } },
    });
  });

  it('submit --wait prints the output, and exits 1 when the task did not succeed', async () => {
    const io = captureIo();
    await expect(autoglm(io, 'submit', 'hi', '--wait')).resolves.toBe(0);
    expect(io.out).toBe('output of task-1\n');
    expect(io.err).toMatch(/task task-1 SUCCEEDED on agent-2/);

    finalStates.set('task-2', TaskState.DEAD_LETTER);
    const failing = captureIo();
    await expect(autoglm(failing, 'submit', 'hi', '--wait')).resolves.toBe(1);
    expect(failing.err).toMatch(/task task-2 DEAD_LETTER .*failed 3 times/);
  });

  it('rejects a submission that is neither inference nor batch, and one that is both', async () => {
    const io = captureIo();
    await expect(autoglm(io, 'submit')).resolves.toBe(1);
    expect(io.err).toMatch(/^error: INVALID_ARGUMENT: give a prompt/);
    const both = captureIo();
    await expect(autoglm(both, 'submit', 'hi', '--duration', '2s')).resolves.toBe(1);
    expect(both.err).toMatch(/not both/);
    const badDuration = captureIo();
    await expect(autoglm(badDuration, 'submit', '--duration', 'soon')).resolves.toBe(1);
    expect(badDuration.err).toMatch(/"soon" is not a duration/);
  });

  it('get prints the task, or JSON with --json', async () => {
    const io = captureIo();
    await expect(autoglm(io, 'get', 'task-9')).resolves.toBe(0);
    expect(io.out).toMatch(/^id +task-9$/m);
    expect(io.out).toMatch(/^state +SUCCEEDED/m);
    expect(io.out).toMatch(/output:\noutput of task-9\n$/);

    const json = captureIo();
    await expect(autoglm(json, 'get', 'task-9', '--json')).resolves.toBe(0);
    expect(JSON.parse(json.out)).toMatchObject({ id: 'task-9', state: 'SUCCEEDED', kind: 'INFERENCE', priorityClass: 'URGENT', result: { runTimeMs: 1000 } });
  });

  it('prints server errors as "error: <code>: <message>" and exits 1', async () => {
    const io = captureIo();
    await expect(autoglm(io, 'get', 'missing')).resolves.toBe(1);
    expect(io.err).toBe('error: NOT_FOUND: task missing not found\n');
  });

  it('list prints a table filtered by state', async () => {
    const io = captureIo();
    await expect(autoglm(io, 'list', '--state', 'dead-letter')).resolves.toBe(0);
    const [header, first, second] = io.out.trim().split('\n');
    expect(header).toMatch(/^ID +STATE +KIND +MODEL +CLASS +PRIO +NODE +AGE$/);
    expect(first).toMatch(/^task-a +DEAD_LETTER +INFERENCE +glm-4-9b +URGENT/);
    expect(second).toMatch(/^task-b +RUNNING/);
  });

  it('watch follows ids from stdin to the end and exits 1 when one did not succeed', async () => {
    finalStates.set('t2', TaskState.DEAD_LETTER);
    const io = captureIo('t1\n{"id":"t2","state":"QUEUED"}\nt3 t1\n');
    await expect(autoglm(io, 'watch', '-')).resolves.toBe(1);
    expect(io.err).toMatch(/\] 3\/3 +SUCCEEDED 2 · DEAD_LETTER 1/);
    expect(io.err).toMatch(/3 tasks finished/);
    expect(io.err).toMatch(/ {2}t2 {2}DEAD_LETTER {2}failed 3 times/);

    const json = captureIo();
    await expect(autoglm(json, 'watch', 't1', '--json')).resolves.toBe(0);
    expect(json.out.trim().split('\n').map((line) => (JSON.parse(line) as { state: string }).state)).toEqual(['QUEUED', 'RUNNING', 'SUCCEEDED']);
  });

  it('infer streams the text to stdout and the usage to stderr', async () => {
    const io = captureIo();
    await expect(autoglm(io, 'infer', 'Say hello', '--model', 'glm-4-9b')).resolves.toBe(0);
    expect(io.out).toBe('Hello there\n');
    expect(io.err).toMatch(/glm-4-9b on agent-1 · stop · prompt 3 tokens, completion 2 tokens · queue 5ms · TTFT 40ms · total 90ms · task inf-1/);
  });

  it('infer sends cancel on Ctrl-C', async () => {
    const io = captureIo('', (text, self) => {
      if (text === 'Hello') self.interrupt();
    });
    await expect(autoglm(io, 'infer', 'forever', '--model', 'glm-4-9b')).resolves.toBe(130);
    expect(inferRequests.map((r) => r.kind?.$case)).toEqual(['start', 'cancel']);
    expect(io.err).toMatch(/cancelled/);
  });

  it('nodes prints the GPUs held, mean utilisation, memory, cores held and replicas', async () => {
    const io = captureIo();
    await expect(autoglm(io, 'nodes')).resolves.toBe(0);
    expect(io.out).toMatch(/^NODE +STATE +GPUS HELD +UTIL +MEMORY +CORES HELD +REPLICAS \(SEQUENCES\) +RUNNING$/m);
    expect(io.out).toMatch(/^agent-1 +READY +2\/2 +30% +40\.0\/160\.0 GiB +2\.5\/32 +glm-4-9b: 2 +3$/m);
  });

  it('nodes --gpus prints what holds each GPU', async () => {
    const io = captureIo();
    await expect(autoglm(io, 'nodes', '--gpus')).resolves.toBe(0);
    expect(io.out).toMatch(/^agent-1 +0 +job task-1 +50% +40\.0\/80\.0 GiB$/m);
    expect(io.out).toMatch(/^agent-1 +1 +replica r-1 of glm-4-9b \(ready, 2 sequences\) +for task-3 +10% +0\.0\/80\.0 GiB$/m);
  });

  it('explain prints the factors', async () => {
    const io = captureIo();
    await expect(autoglm(io, 'explain', 'task-3')).resolves.toBe(0);
    expect(io.out).toMatch(/task task-3 {2}QUEUED {2}priority 5825\.0\nposition 4 \(3 ahead\)\n/);
    expect(io.out).toMatch(/waiting \(capacity\): no node has 1 free GPU\(s\) for it now/);
    expect(io.out).toMatch(/tenant usage: 1\.25 of its fair share/);
    expect(io.out).toMatch(/^age +0\.550 +1500 +825\.0$/m);
  });

  it('cancel prints the new state', async () => {
    const io = captureIo();
    await expect(autoglm(io, 'cancel', 'task-4', '--reason', 'superseded')).resolves.toBe(0);
    expect(io.out).toBe('task-4  CANCELLED  superseded\n');
  });

  it('shows help with examples for each command', async () => {
    for (const command of ['up', 'submit', 'get', 'list', 'watch', 'cancel', 'infer', 'nodes', 'explain']) {
      const io = captureIo();
      await expect(autoglm(io, command, '--help')).resolves.toBe(0);
      expect(io.out).toMatch(new RegExp(`^Usage: autoglm ${command}`));
      expect(io.out).toMatch(/Examples:\n {2}\$ autoglm /);
    }
  });
});

function doneResponse(finishReason: string): InferResponse {
  return InferResponse.fromPartial({
    kind: {
      $case: 'done',
      done: {
        finishReason,
        nodeId: 'agent-1',
        usage: {
          promptTokens: 3,
          completionTokens: 2,
          queueTime: { seconds: 0, nanos: 5_000_000 },
          timeToFirstToken: { seconds: 0, nanos: 40_000_000 },
          totalTime: { seconds: 0, nanos: 90_000_000 },
        },
      },
    },
  });
}
