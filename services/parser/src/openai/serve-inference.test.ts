import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { Metadata } from '@grpc/grpc-js';
import pino from 'pino';
import type { InferRequest, InferResponse } from '@autoglm/proto';
import type { BidiHandler, CallContext } from '@autoglm/runtime';
import { chatCall } from './infer-call';
import { serveInference } from './serve-inference';

/**
 * serveInference over a real HTTP server, with an Infer handler standing in
 * for the relay: it streams chunks until its call is cancelled, as an agent
 * generating a long answer does.
 */
describe('serveInference', () => {
  let server: Server | undefined;
  afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  /** Serves one streamed chat request whose Infer handler writes `chunk` until cancelled; resolves with the handler's context once it ends. */
  function serveEndlessStream(stalledClientMs: number): Promise<{ port: number; handlerEnded: Promise<CallContext> }> {
    let ended!: (ctx: CallContext) => void;
    const handlerEnded = new Promise<CallContext>((resolve) => (ended = resolve));
    const infer: BidiHandler<InferRequest, InferResponse> = async (_requests, sink, ctx) => {
      await sink.write({ kind: { $case: 'accepted', accepted: { taskId: 'task-1', queuePosition: 0 } } });
      const text = 'x'.repeat(4096);
      while (!ctx.signal.aborted) await sink.write({ kind: { $case: 'chunk', chunk: { text, tokenCount: 1 } } });
      ended(ctx);
    };
    const call = chatCall({ model: 'glm-4-9b', messages: [{ role: 'user', content: 'Hi' }], stream: true }, {});
    server = createServer((req, res) => {
      const abort = new AbortController();
      res.on('close', () => abort.abort(new Error('the client went away')));
      void serveInference({ call, metadata: new Metadata(), res, signal: abort.signal, peer: '', infer, knownModel: () => true, logger: pino({ level: 'silent' }), stalledClientMs });
      void req;
    });
    return new Promise((resolve) => server!.listen(0, '127.0.0.1', () => resolve({ port: (server!.address() as AddressInfo).port, handlerEnded })));
  }

  it('takes a client that stops reading for its stall limit as gone: the stream is closed and the task cancelled', async () => {
    const { port, handlerEnded } = await serveEndlessStream(300);
    // A client that sends its request, then never reads a byte.
    const socket = connect(port, '127.0.0.1');
    socket.pause();
    socket.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 0\r\n\r\n`);
    const ctx = await handlerEnded;
    expect(ctx.signal.aborted).toBe(true);
    socket.destroy();
  }, 20_000);
});
