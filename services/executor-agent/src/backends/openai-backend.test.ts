import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { TaskKind, TaskSpec } from '@autoglm/proto';
import { ExecutionError, type ExecutionRequest } from './backend';
import { OpenAIBackend } from './openai-backend';

/** What the fake server does with one request; `body` is the parsed JSON the backend sent. */
type Handler = (req: IncomingMessage, body: Record<string, unknown>, res: ServerResponse) => void;

let server: Server;
let baseUrl: string;
let handler: Handler;
/** Connections that carried a request and are still open. */
const sockets = new Set<Socket>();

beforeAll(async () => {
  server = createServer((req, res) => {
    if (!req.socket.destroyed && !sockets.has(req.socket)) {
      sockets.add(req.socket);
      req.socket.once('close', () => sockets.delete(req.socket));
    }
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const text = Buffer.concat(parts).toString('utf8');
      handler(req, text === '' ? {} : (JSON.parse(text) as Record<string, unknown>), res);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

// A stream the backend leaves open is a leak: every test must end with no connection
// that carried a request still open. Connections that never carried one are not
// counted: after an abort, Node's fetch (undici) opens a spare connection it never
// uses (nodejs/undici#5845), which is the HTTP client's doing, not a leaked stream.
afterEach(async () => {
  const open = [...sockets].map((s) => once(s, 'close'));
  let timer: NodeJS.Timeout | undefined;
  const leaked = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${sockets.size} connection(s) left open`)), 2000);
  });
  try {
    await Promise.race([Promise.all(open), leaked]);
  } finally {
    clearTimeout(timer);
  }
});

afterAll(async () => {
  server.close();
  server.closeAllConnections(); // undici's unused spare connections (see above)
  await once(server, 'close');
});

/** Starts an SSE response; `connection: close` so a finished response leaves no pooled connection behind. */
function startSse(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'close' });
}

function event(res: ServerResponse, data: unknown): void {
  res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
}

function chatChunk(content: string | undefined, finishReason: string | null = null) {
  return { id: 'c1', object: 'chat.completion.chunk', choices: [{ index: 0, delta: content === undefined ? {} : { content }, finish_reason: finishReason }] };
}

function spec(fields: { messages?: Array<{ role: string; content: string }>; prompt?: string; maxOutputTokens?: number }): TaskSpec {
  return TaskSpec.fromPartial({
    kind: TaskKind.INFERENCE,
    model: 'glm-4-9b',
    inputTokens: 7,
    maxOutputTokens: fields.maxOutputTokens ?? 16,
    payload: {
      $case: 'inference',
      inference: { prompt: fields.prompt ?? '', messages: fields.messages ?? [], params: { temperature: 0.7, topP: 0.9, maxTokens: 0, stop: ['\n\n'] } },
    },
  });
}

function request(taskSpec: TaskSpec, onChunk?: (text: string, count: number, controller: AbortController) => void) {
  const chunks: Array<[string, number]> = [];
  const controller = new AbortController();
  let started = 0;
  const req: ExecutionRequest = {
    taskId: 't1',
    attempt: 1,
    spec: taskSpec,
    gpuIndices: [0],
    signal: controller.signal,
    onStart: () => {
      started++;
    },
    onChunk: (text, count) => {
      chunks.push([text, count]);
      onChunk?.(text, count, controller);
    },
  };
  return { req, chunks, controller, started: () => started };
}

const CHAT = [{ role: 'user', content: 'Say hello' }];

describe('OpenAIBackend', () => {
  it('streams a chat completion and takes usage from the final chunk', async () => {
    let seen: { url: string | undefined; auth: string | undefined; body: Record<string, unknown> } | undefined;
    handler = (req, body, res) => {
      seen = { url: req.url, auth: req.headers.authorization, body };
      startSse(res);
      event(res, { choices: [{ index: 0, delta: { role: 'assistant' }, finish_reason: null }] });
      // One event split across two writes, with CRLF line ends, as a proxy may deliver it.
      res.write('data: {"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}\r');
      res.write('\n\r\n');
      event(res, chatChunk('lo'));
      event(res, chatChunk(' world'));
      event(res, chatChunk(undefined, 'stop'));
      event(res, { choices: [], usage: { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 } });
      event(res, '[DONE]');
      res.end();
    };
    const backend = new OpenAIBackend({ baseUrl: `${baseUrl}/`, models: ['glm-4-9b'], apiKey: 'sk-test', servedModelName: (m) => `THUDM/${m}` });
    const { req, chunks, started } = request(spec({ messages: CHAT }));
    const outcome = await backend.execute(req);

    expect(chunks).toEqual([['Hel', 1], ['lo', 1], [' world', 1]]);
    expect(outcome).toMatchObject({ finishReason: 'stop', output: 'Hello world', promptTokens: 9, completionTokens: 3, exitCode: 0 });
    expect(outcome.timeToFirstTokenMs).toBeGreaterThan(0);
    expect(outcome.runTimeMs).toBeGreaterThanOrEqual(outcome.timeToFirstTokenMs);
    expect(started()).toBe(1);
    expect(seen?.url).toBe('/v1/chat/completions');
    expect(seen?.auth).toBe('Bearer sk-test');
    expect(seen?.body).toEqual({
      model: 'THUDM/glm-4-9b',
      messages: CHAT,
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 16,
      temperature: expect.closeTo(0.7, 5) as unknown,
      top_p: expect.closeTo(0.9, 5) as unknown,
      stop: ['\n\n'],
    });
    expect(backend.load().numRequestsRunning).toBe(0);
  });

  it('uses /v1/completions for a prompt and counts chunks when the server sends no usage', async () => {
    let seen: Record<string, unknown> = {};
    handler = (req, body, res) => {
      seen = { url: req.url, prompt: body.prompt, messages: body.messages };
      startSse(res);
      for (const text of ['Once', ' upon', ' a']) event(res, { choices: [{ index: 0, text, finish_reason: null }] });
      event(res, { choices: [{ index: 0, text: ' time', finish_reason: 'length' }] });
      event(res, '[DONE]');
      res.end();
    };
    const backend = new OpenAIBackend({ baseUrl, models: ['glm-4-9b'] });
    const { req, chunks } = request(spec({ prompt: 'Tell me a story', maxOutputTokens: 4 }));
    const outcome = await backend.execute(req);

    expect(seen).toEqual({ url: '/v1/completions', prompt: 'Tell me a story', messages: undefined });
    expect(chunks.map(([t]) => t)).toEqual(['Once', ' upon', ' a', ' time']);
    expect(outcome).toMatchObject({ finishReason: 'length', output: 'Once upon a time', promptTokens: 7, completionTokens: 4 });
  });

  it('aborts the HTTP request on cancel, so the server sees the client go', async () => {
    let serverSawClose: Promise<unknown> = Promise.resolve();
    let ended = false;
    handler = (_req, _body, res) => {
      serverSawClose = once(res, 'close').then(() => {
        ended = res.writableFinished;
      });
      startSse(res);
      event(res, chatChunk('first'));
      // ...and then nothing more: a long generation still in progress.
    };
    const backend = new OpenAIBackend({ baseUrl, models: ['glm-4-9b'] });
    const { req, chunks } = request(spec({ messages: CHAT }), (_t, _n, controller) => controller.abort());
    const outcome = await backend.execute(req);

    expect(outcome).toMatchObject({ finishReason: 'cancelled', output: 'first', completionTokens: 1 });
    expect(chunks).toEqual([['first', 1]]);
    await serverSawClose;
    expect(ended).toBe(false); // the server never finished: the client went away
    expect(backend.load().numRequestsRunning).toBe(0);
  });

  it('resolves cancelled without a request when the signal is already aborted', async () => {
    handler = () => {
      throw new Error('no request expected');
    };
    const backend = new OpenAIBackend({ baseUrl, models: ['glm-4-9b'] });
    const { req, controller } = request(spec({ messages: CHAT }));
    controller.abort();
    await expect(backend.execute(req)).resolves.toMatchObject({ finishReason: 'cancelled', output: '' });
  });

  it('maps a 400 to a non-retryable error carrying the server message', async () => {
    handler = (_req, _body, res) => {
      res.writeHead(400, { 'content-type': 'application/json', connection: 'close' });
      res.end(JSON.stringify({ object: 'error', message: "This model's maximum context length is 8192 tokens", type: 'BadRequestError', code: 400 }));
    };
    const backend = new OpenAIBackend({ baseUrl, models: ['glm-4-9b'] });
    const error = await backend.execute(request(spec({ messages: CHAT })).req).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExecutionError);
    expect(error).toMatchObject({ retryable: false });
    expect((error as Error).message).toBe(`${baseUrl}/v1/chat/completions answered 400: This model's maximum context length is 8192 tokens`);
  });

  it.each([500, 503, 429])('maps a %i to a retryable error', async (status) => {
    handler = (_req, _body, res) => {
      res.writeHead(status, { 'content-type': 'application/json', connection: 'close' });
      res.end(JSON.stringify({ error: { message: 'busy', type: 'server_error' } }));
    };
    const backend = new OpenAIBackend({ baseUrl, models: ['glm-4-9b'] });
    const error = await backend.execute(request(spec({ messages: CHAT })).req).catch((e: unknown) => e);
    expect(error).toMatchObject({ retryable: true, message: `${baseUrl}/v1/chat/completions answered ${status}: busy` });
  });

  it('maps a refused connection to a retryable error', async () => {
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    closed.close();
    await once(closed, 'close');

    const backend = new OpenAIBackend({ baseUrl: `http://127.0.0.1:${port}`, models: ['glm-4-9b'] });
    const error = await backend.execute(request(spec({ messages: CHAT })).req).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExecutionError);
    expect(error).toMatchObject({ retryable: true });
    expect((error as Error).message).toMatch(/cannot reach .*ECONNREFUSED/);
  });

  it('maps a stream cut short to a retryable error', async () => {
    handler = (_req, _body, res) => {
      startSse(res);
      event(res, chatChunk('partial'));
      res.end(); // no finish_reason, no [DONE]
    };
    const backend = new OpenAIBackend({ baseUrl, models: ['glm-4-9b'] });
    const error = await backend.execute(request(spec({ messages: CHAT })).req).catch((e: unknown) => e);
    expect(error).toMatchObject({ retryable: true, message: `${baseUrl}/v1/chat/completions: the stream ended before the generation finished` });
  });

  it('maps an error event mid-stream to a retryable error', async () => {
    handler = (_req, _body, res) => {
      startSse(res);
      event(res, chatChunk('partial'));
      event(res, { error: { message: 'engine died', type: 'InternalServerError', code: 500 } });
      res.end();
    };
    const backend = new OpenAIBackend({ baseUrl, models: ['glm-4-9b'] });
    const error = await backend.execute(request(spec({ messages: CHAT })).req).catch((e: unknown) => e);
    expect(error).toMatchObject({ retryable: true });
    expect((error as Error).message).toContain('engine died');
  });

  it('gives up on a server that sends no response headers in time', async () => {
    handler = () => undefined; // accepts the request and never answers
    const backend = new OpenAIBackend({ baseUrl, models: ['glm-4-9b'], responseTimeoutMs: 50 });
    const error = await backend.execute(request(spec({ messages: CHAT })).req).catch((e: unknown) => e);
    expect(error).toMatchObject({ retryable: true, message: `${baseUrl}/v1/chat/completions: no response within 50 ms` });
  });

  it('close aborts requests in flight', async () => {
    let streaming: () => void = () => undefined;
    const streamingStarted = new Promise<void>((r) => {
      streaming = r;
    });
    handler = (_req, _body, res) => {
      startSse(res);
      event(res, chatChunk('first'));
    };
    const backend = new OpenAIBackend({ baseUrl, models: ['glm-4-9b'] });
    const { req } = request(spec({ messages: CHAT }), () => streaming());
    const done = backend.execute(req).catch((e: unknown) => e);
    await streamingStarted;
    await backend.close();
    expect(await done).toMatchObject({ retryable: true });
    await expect(backend.execute(request(spec({ messages: CHAT })).req)).rejects.toMatchObject({ retryable: true });
  });

  it('finishes a zero-token request without calling the server', async () => {
    handler = () => {
      throw new Error('no request expected');
    };
    const backend = new OpenAIBackend({ baseUrl, models: ['glm-4-9b'] });
    await expect(backend.execute(request(spec({ messages: CHAT, maxOutputTokens: 0 })).req)).resolves.toMatchObject({
      finishReason: 'length',
      completionTokens: 0,
    });
  });
});
