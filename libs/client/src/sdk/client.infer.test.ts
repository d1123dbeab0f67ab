import type { ServerDuplexStream } from '@grpc/grpc-js';
import { type InferRequest, InferResponse } from '@autoglm/proto';
import { AutoglmClient } from './client';
import { startTestServer, type TestServer } from './test-server';

type InferCall = ServerDuplexStream<InferRequest, InferResponse>;

const accepted = (taskId: string): InferResponse =>
  InferResponse.fromPartial({ kind: { $case: 'accepted', accepted: { taskId, queuePosition: 1 } } });
const chunk = (text: string): InferResponse =>
  InferResponse.fromPartial({ kind: { $case: 'chunk', chunk: { text, tokenCount: 1 } } });
const done = (finishReason: string): InferResponse =>
  InferResponse.fromPartial({
    kind: { $case: 'done', done: { finishReason, nodeId: 'agent-1', usage: { promptTokens: 3, completionTokens: 2 } } },
  });

describe('AutoglmClient.infer (bidi stream)', () => {
  let server: TestServer | undefined;
  let client: AutoglmClient | undefined;

  afterEach(async () => {
    client?.close();
    await server?.shutdown();
    server = undefined;
    client = undefined;
  });

  it('sends start first, then yields accepted, chunks and done until the server ends', async () => {
    const received: InferRequest[] = [];
    server = await startTestServer({
      infer: (call: InferCall) => {
        call.on('data', (message: InferRequest) => {
          received.push(message);
          call.write(accepted('t-1'));
          call.write(chunk('Hello'));
          call.write(chunk(' world'));
          call.write(done('stop'));
          call.end();
        });
      },
    });
    client = new AutoglmClient({ address: server.address, tenant: 'acme' });
    const kinds: string[] = [];
    let text = '';
    for await (const response of client.infer({ model: 'glm-4-9b', input: { prompt: 'Hi' } })) {
      kinds.push(response.kind?.$case ?? 'none');
      if (response.kind?.$case === 'chunk') text += response.kind.chunk.text;
    }
    expect(kinds).toEqual(['accepted', 'chunk', 'chunk', 'done']);
    expect(text).toBe('Hello world');
    expect(received).toHaveLength(1);
    expect(received[0]?.kind).toEqual({
      $case: 'start',
      start: expect.objectContaining({ model: 'glm-4-9b', tenant: 'acme', input: expect.objectContaining({ prompt: 'Hi' }) }),
    });
  });

  it('on abort sends cancel and half-closes; the server’s done ends the iteration', async () => {
    const received: InferRequest[] = [];
    let serverSawHalfClose = false;
    server = await startTestServer({
      infer: (call: InferCall) => {
        call.on('data', (message: InferRequest) => {
          received.push(message);
          if (message.kind?.$case === 'start') {
            call.write(accepted('t-1'));
            call.write(chunk('tok'));
          }
        });
        call.on('end', () => {
          serverSawHalfClose = true;
          call.write(done('cancelled'));
          call.end();
        });
      },
    });
    client = new AutoglmClient({ address: server.address });
    const controller = new AbortController();
    const kinds: string[] = [];
    const stream = client.infer(
      { model: 'glm-4-9b', input: { prompt: 'Tell me a long story' } },
      { signal: controller.signal, cancelReason: 'user pressed Ctrl-C' },
    );
    for await (const response of stream) {
      kinds.push(response.kind?.$case ?? 'none');
      if (response.kind?.$case === 'chunk') controller.abort();
    }
    expect(kinds).toEqual(['accepted', 'chunk', 'done']);
    expect(received.map((m) => m.kind?.$case)).toEqual(['start', 'cancel']);
    expect(received[1]?.kind).toEqual({ $case: 'cancel', cancel: { reason: 'user pressed Ctrl-C' } });
    expect(serverSawHalfClose).toBe(true);
  });

  it('cuts the call when the server ignores the cancel past the grace period', async () => {
    let serverSawCancel: Promise<void> | undefined;
    server = await startTestServer({
      infer: (call: InferCall) => {
        serverSawCancel = new Promise((resolve) => call.on('cancelled', () => resolve()));
        call.on('data', (message: InferRequest) => {
          if (message.kind?.$case === 'start') call.write(accepted('t-1'));
        });
        // Never ends the stream.
      },
    });
    client = new AutoglmClient({ address: server.address });
    const controller = new AbortController();
    const kinds: string[] = [];
    for await (const response of client.infer({ model: 'm' }, { signal: controller.signal, cancelGraceMs: 50 })) {
      kinds.push(response.kind?.$case ?? 'none');
      controller.abort();
    }
    expect(kinds).toEqual(['accepted']);
    await serverSawCancel;
  });
});
