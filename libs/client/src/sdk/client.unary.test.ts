import { Metadata, type ServerUnaryCall, type sendUnaryData, status } from '@grpc/grpc-js';
import { type SubmitTaskRequest, SubmitTaskResponse, Task, TaskState, type GetTaskRequest, QueueStats, PriorityClass, PriorityExplanation } from '@autoglm/proto';
import { AutoglmClient } from './client';
import { AutoglmError } from './errors';
import { startTestServer, type TestServer } from './test-server';

const fastRetry = { maxAttempts: 4, initialBackoffMs: 5, maxBackoffMs: 20 };

describe('AutoglmClient unary calls', () => {
  let server: TestServer | undefined;
  let client: AutoglmClient | undefined;

  afterEach(async () => {
    client?.close();
    await server?.shutdown();
    server = undefined;
    client = undefined;
  });

  it('sends the bearer token and tenant as metadata and fills the tenant into the request', async () => {
    let seen: { authorization: unknown; tenant: unknown; request: SubmitTaskRequest } | undefined;
    server = await startTestServer({
      submitTask: (call: ServerUnaryCall<SubmitTaskRequest, SubmitTaskResponse>, callback: sendUnaryData<SubmitTaskResponse>) => {
        seen = {
          authorization: call.metadata.get('authorization')[0],
          tenant: call.metadata.get('x-autoglm-tenant')[0],
          request: call.request,
        };
        callback(null, SubmitTaskResponse.fromPartial({ task: { id: 't-1', tenant: call.request.tenant }, created: true }));
      },
    });
    client = new AutoglmClient({ address: server.address, tenant: 'acme', token: 's3cret' });
    const response = await client.submit({
      model: 'glm-4-9b',
      priorityClass: PriorityClass.URGENT,
      payload: { $case: 'inference', inference: { prompt: 'hi' } },
    });
    expect(response.task?.id).toBe('t-1');
    expect(seen?.authorization).toBe('Bearer s3cret');
    expect(seen?.tenant).toBe('acme');
    expect(seen?.request.tenant).toBe('acme');
    expect(seen?.request.payload).toEqual({ $case: 'inference', inference: expect.objectContaining({ prompt: 'hi' }) });
  });

  it('retries UNAVAILABLE under one generated request id', async () => {
    const requestIds: string[] = [];
    server = await startTestServer({
      submitTask: (call: ServerUnaryCall<SubmitTaskRequest, SubmitTaskResponse>, callback: sendUnaryData<SubmitTaskResponse>) => {
        requestIds.push(call.request.requestId);
        if (requestIds.length < 3) callback({ code: status.UNAVAILABLE, details: 'decision restarting' });
        else callback(null, SubmitTaskResponse.fromPartial({ task: { id: 't-1', requestId: call.request.requestId } }));
      },
    });
    client = new AutoglmClient({ address: server.address, retry: fastRetry });
    const response = await client.submit({ model: 'glm-4-9b' });
    expect(requestIds).toHaveLength(3);
    expect(requestIds[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Set(requestIds).size).toBe(1);
    expect(response.task?.requestId).toBe(requestIds[0]);
  });

  it('keeps the caller’s request id across retries', async () => {
    const requestIds: string[] = [];
    server = await startTestServer({
      submitTask: (call: ServerUnaryCall<SubmitTaskRequest, SubmitTaskResponse>, callback: sendUnaryData<SubmitTaskResponse>) => {
        requestIds.push(call.request.requestId);
        if (requestIds.length < 2) callback({ code: status.UNAVAILABLE, details: 'try again' });
        else callback(null, SubmitTaskResponse.fromPartial({ task: { id: 't-1' } }));
      },
    });
    client = new AutoglmClient({ address: server.address, retry: fastRetry });
    await client.submit({ requestId: 'job-42' });
    expect(requestIds).toEqual(['job-42', 'job-42']);
  });

  it('gives up after maxAttempts with the last error', async () => {
    let attempts = 0;
    server = await startTestServer({
      submitTask: (_call: ServerUnaryCall<SubmitTaskRequest, SubmitTaskResponse>, callback: sendUnaryData<SubmitTaskResponse>) => {
        attempts++;
        callback({ code: status.UNAVAILABLE, details: `down ${attempts}` });
      },
    });
    client = new AutoglmClient({ address: server.address, retry: fastRetry });
    await expect(client.submit({})).rejects.toMatchObject({ code: 'UNAVAILABLE', details: 'down 4' });
    expect(attempts).toBe(4);
  });

  it('retries RESOURCE_EXHAUSTED only when the server sent retry-after-ms', async () => {
    let attempts = 0;
    let withTrailer = false;
    server = await startTestServer({
      submitTask: (_call: ServerUnaryCall<SubmitTaskRequest, SubmitTaskResponse>, callback: sendUnaryData<SubmitTaskResponse>) => {
        attempts++;
        if (attempts === 1 || !withTrailer) {
          const metadata = new Metadata();
          if (withTrailer) metadata.set('retry-after-ms', '10');
          callback({ code: status.RESOURCE_EXHAUSTED, details: 'rate limited', metadata });
        } else {
          callback(null, SubmitTaskResponse.fromPartial({ task: { id: 't-1' } }));
        }
      },
    });
    client = new AutoglmClient({ address: server.address, retry: fastRetry });

    const error = await client.submit({}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AutoglmError);
    expect(error).toMatchObject({ code: 'RESOURCE_EXHAUSTED', retryAfterMs: undefined });
    expect(attempts).toBe(1);

    attempts = 0;
    withTrailer = true;
    await expect(client.submit({})).resolves.toMatchObject({ task: { id: 't-1' } });
    expect(attempts).toBe(2);
  });

  it('does not retry INTERNAL', async () => {
    let attempts = 0;
    server = await startTestServer({
      submitTask: (_call: ServerUnaryCall<SubmitTaskRequest, SubmitTaskResponse>, callback: sendUnaryData<SubmitTaskResponse>) => {
        attempts++;
        callback({ code: status.INTERNAL, details: 'internal error' });
      },
    });
    client = new AutoglmClient({ address: server.address, retry: fastRetry });
    await expect(client.submit({})).rejects.toMatchObject({ code: 'INTERNAL', message: 'internal error' });
    expect(attempts).toBe(1);
  });

  it('wraps a ServiceError into AutoglmError with code name, details and cause', async () => {
    server = await startTestServer({
      getTask: (call: ServerUnaryCall<GetTaskRequest, Task>, callback: sendUnaryData<Task>) =>
        callback({ code: status.NOT_FOUND, details: `task ${call.request.taskId} not found` }),
    });
    client = new AutoglmClient({ address: server.address });
    const error = await client.get('nope').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AutoglmError);
    const autoglmError = error as AutoglmError;
    expect(autoglmError.code).toBe('NOT_FOUND');
    expect(autoglmError.grpcCode).toBe(status.NOT_FOUND);
    expect(autoglmError.details).toBe('task nope not found');
    expect(autoglmError.cause).toBeInstanceOf(Error);
  });

  it('puts a deadline on every unary call', async () => {
    let answer: (() => void) | undefined;
    server = await startTestServer({
      // Never answers until the test is done: only the client's deadline ends the call.
      getTask: (_call: ServerUnaryCall<GetTaskRequest, Task>, callback: sendUnaryData<Task>) => {
        answer = () => callback(null, Task.fromPartial({}));
      },
    });
    client = new AutoglmClient({ address: server.address, timeoutMs: 100 });
    await expect(client.get('slow')).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED' });
    answer?.();
  });

  it('cancels a unary call when its signal aborts', async () => {
    const controller = new AbortController();
    let serverSawCancel: Promise<void> | undefined;
    server = await startTestServer({
      getTask: (call: ServerUnaryCall<GetTaskRequest, Task>) => {
        serverSawCancel = new Promise((resolve) => call.on('cancelled', () => resolve()));
        controller.abort();
      },
    });
    client = new AutoglmClient({ address: server.address });
    await expect(client.get('x', { signal: controller.signal })).rejects.toMatchObject({ code: 'CANCELLED' });
    await serverSawCancel;
  });

  it('reads unary answers of every method', async () => {
    server = await startTestServer(
      {
        getTask: (call: ServerUnaryCall<GetTaskRequest, Task>, callback: sendUnaryData<Task>) =>
          callback(null, Task.fromPartial({ id: call.request.taskId, state: TaskState.RUNNING })),
        listTasks: (_call, callback) => callback(null, { tasks: [Task.fromPartial({ id: 'a' })], nextPageToken: '' }),
        cancelTask: (call, callback) =>
          callback(null, Task.fromPartial({ id: call.request.taskId, state: TaskState.CANCELLED, reason: call.request.reason })),
        explainTask: (call, callback) =>
          callback(null, PriorityExplanation.fromPartial({ taskId: call.request.taskId, state: TaskState.QUEUED, priority: 0.5, queuePosition: 3 })),
      },
      {
        listNodes: (_call, callback) => callback(null, { nodes: [] }),
        getQueueStats: (_call, callback) => callback(null, QueueStats.fromPartial({ queued: 7 })),
      },
    );
    client = new AutoglmClient({ address: server.address });
    await expect(client.get('t-9')).resolves.toMatchObject({ id: 't-9', state: TaskState.RUNNING });
    await expect(client.list({ pageSize: 10 })).resolves.toMatchObject({ tasks: [{ id: 'a' }] });
    await expect(client.cancel('t-9', 'no longer needed')).resolves.toMatchObject({
      state: TaskState.CANCELLED,
      reason: 'no longer needed',
    });
    await expect(client.explain('t-9')).resolves.toMatchObject({ queuePosition: 3 });
    await expect(client.listNodes()).resolves.toEqual({ nodes: [] });
    await expect(client.queueStats()).resolves.toMatchObject({ queued: 7 });
  });
});
