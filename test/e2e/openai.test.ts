import OpenAI, { APIError, AuthenticationError, BadRequestError, NotFoundError, RateLimitError } from 'openai';
import pino from 'pino';
import { ParserConfigSchema, startParser } from '@autoglm/parser';
import { PriorityClass, Role, TaskState } from '@autoglm/proto';
import { startInProcessMesh, type InProcessMesh } from '../support/in-process-mesh';
import { fetchTrusting } from '../support/fetch-trusting';
import { until } from '../support/until';

/**
 * The OpenAI-compatible API of the parser, driven by OpenAI's own SDK over
 * HTTPS with the mesh's CA, as a user's code would: every request is a task
 * of the mesh, visible over gRPC.
 */
describe('the OpenAI-compatible API', () => {
  let mesh: InProcessMesh;
  let fetchMesh: typeof fetch;
  let openai: OpenAI;

  beforeAll(async () => {
    mesh = await startInProcessMesh({ tls: true, timeScale: 5, parser: { tenantRateLimits: 'slow=0.01/1' } });
    fetchMesh = fetchTrusting(mesh.ca!);
    openai = new OpenAI({ baseURL: mesh.openaiUrl, apiKey: mesh.adminToken, fetch: fetchMesh, maxRetries: 0 });
  }, 60_000);
  afterEach(() => mesh.expectNoLeakedStreams());
  afterAll(async () => {
    await mesh?.stop();
  }, 30_000);

  it('serves HTTPS at the URL the fixture gives', () => {
    expect(mesh.openaiUrl).toMatch(/^https:\/\/127\.0\.0\.1:[1-9]\d*\/v1$/);
  });

  it('streams a chat completion: a role chunk, text chunks, the finish, usage, and the task behind it', async () => {
    const stream = await openai.chat.completions.create({
      model: 'glm-4-9b',
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hello.' }],
      max_tokens: 8,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text.length).toBeGreaterThan(0);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    expect(new Set(chunks.map((c) => c.object))).toEqual(new Set(['chat.completion.chunk']));
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks[0]!.id).toMatch(/^chatcmpl-[0-9a-f-]{36}$/);
    expect(chunks[0]!.created).toBeGreaterThan(1_700_000_000);
    expect(chunks[0]!.created).toBeLessThan(Date.now() / 1000 + 1);
    expect(chunks.filter((c) => c.choices[0]?.finish_reason).map((c) => c.choices[0]!.finish_reason)).toEqual(['length']);
    const last = chunks[chunks.length - 1]!;
    expect(last.choices).toEqual([]);
    expect(last.usage?.completion_tokens).toBe(8);
    expect(last.usage!.prompt_tokens).toBeGreaterThan(0);
    expect(last.usage!.total_tokens).toBe(last.usage!.prompt_tokens + 8);

    const task = await until(async () => {
      const t = await mesh.client.get(chunks[0]!.id.slice('chatcmpl-'.length));
      return t.state === TaskState.SUCCEEDED ? t : undefined;
    }, 10_000, 'the task to succeed');
    expect(task.spec?.interactive).toBe(true);
    expect(task.spec?.priorityClass).toBe(PriorityClass.URGENT);
    expect(task.spec?.labels).toEqual({ api: 'openai' });
    expect(task.result?.output).toBe(text);
  });

  it('answers a completion in one body, naming its task in x-autoglm-task-id; the task is listed', async () => {
    const { data, response } = await openai.completions.create({ model: 'glm-4-9b', prompt: 'Once upon a time', max_tokens: 5 }).withResponse();
    expect(data.object).toBe('text_completion');
    expect(data.id).toMatch(/^cmpl-/);
    expect(data.choices).toHaveLength(1);
    expect(data.choices[0]!.text.length).toBeGreaterThan(0);
    expect(data.choices[0]!.finish_reason).toBe('length');
    expect(data.usage).toMatchObject({ completion_tokens: 5 });
    const taskId = response.headers.get('x-autoglm-task-id');
    expect(data.id).toBe(`cmpl-${taskId}`);
    const listed = await mesh.client.list();
    expect(listed.tasks.map((t) => t.id)).toContain(taskId);
  });

  it('answers a chat completion in one body', async () => {
    const completion = await openai.chat.completions.create({ model: 'glm-4-9b', messages: [{ role: 'user', content: 'Hi' }], max_completion_tokens: 4 });
    expect(completion.object).toBe('chat.completion');
    expect(completion.choices[0]!.message).toMatchObject({ role: 'assistant' });
    expect(completion.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(completion.usage?.completion_tokens).toBe(4);
  });

  it('schedules by the x-autoglm-* headers', async () => {
    const { response } = await openai.completions
      .create({ model: 'glm-4-9b', prompt: 'Hello', max_tokens: 2 }, { headers: { 'x-autoglm-priority-class': 'background', 'x-autoglm-priority': '7', 'x-autoglm-tenant': 'openai-headers' } })
      .withResponse();
    const task = await mesh.client.get(response.headers.get('x-autoglm-task-id')!);
    expect(task.tenant).toBe('openai-headers');
    expect(task.spec).toMatchObject({ priorityClass: PriorityClass.BACKGROUND, priority: 7 });
  });

  it("keeps to OpenAI's wire format: SSE events, then data: [DONE]", async () => {
    const res = await fetchMesh(`${mesh.openaiUrl}/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${mesh.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'glm-4-9b', prompt: 'Hello', max_tokens: 3, stream: true, stream_options: { include_usage: true } }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const raw = await res.text();
    expect(raw).toMatch(/^(data: \{.*\}\n\n)+data: \[DONE\]\n\n$/);
    const events = raw.split('\n\n').filter((e) => e !== '' && e !== 'data: [DONE]').map((e) => JSON.parse(e.slice('data: '.length)) as Record<string, unknown>);
    expect(events.every((e) => e.object === 'text_completion' && e.id === `cmpl-${res.headers.get('x-autoglm-task-id')}` && e.model === 'glm-4-9b')).toBe(true);
    expect(events.slice(0, -1).every((e) => e.usage === null)).toBe(true);
    expect(events[events.length - 2]).toMatchObject({ choices: [{ text: '', index: 0, logprobs: null, finish_reason: 'length' }] });
    expect(events[events.length - 1]).toMatchObject({ choices: [], usage: { completion_tokens: 3 } });
  });

  it('answers what is not an OpenAI request in OpenAI shape', async () => {
    const post = (path: string, body: string, contentType = 'application/json') =>
      fetchMesh(`${mesh.openaiUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${mesh.adminToken}`, 'content-type': contentType }, body });
    const tooLarge = await post('/completions', JSON.stringify({ model: 'glm-4-9b', prompt: 'x'.repeat(5 * 1024 * 1024) }));
    expect(tooLarge.status).toBe(413);
    expect(await tooLarge.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'request_too_large' } });
    const notJson = await post('/completions', 'prompt=hi', 'text/plain');
    expect(notJson.status).toBe(415);
    expect(await notJson.json()).toMatchObject({ error: { type: 'invalid_request_error', param: null } });
    const nowhere = await post('/embeddings', '{}');
    expect(nowhere.status).toBe(404);
    expect(await nowhere.json()).toEqual({ error: { message: 'Invalid URL (POST /v1/embeddings)', type: 'invalid_request_error', param: null, code: null } });
  });

  it('lists the catalog in OpenAI shape', async () => {
    const models = [];
    for await (const model of openai.models.list()) models.push(model);
    expect(models.map((m) => m.id)).toContain('glm-4-9b');
    expect(models.every((m) => m.object === 'model' && Number.isInteger(m.created))).toBe(true);
    expect((await openai.models.retrieve('glm-4-9b')).id).toBe('glm-4-9b');
  });

  it('answers an unknown model with 404 model_not_found', async () => {
    const refusal = await openai.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'Hi' }] }).catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(NotFoundError);
    expect(refusal).toMatchObject({ status: 404, code: 'model_not_found', param: 'model', type: 'invalid_request_error' });
    await expect(openai.models.retrieve('no-such-model')).rejects.toMatchObject({ status: 404, code: 'model_not_found' });
  });

  it('answers a missing or unknown token with 401', async () => {
    const res = await fetchMesh(`${mesh.openaiUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'glm-4-9b', messages: [{ role: 'user', content: 'Hi' }] }),
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: { message: expect.stringMatching(/^no credential/), type: 'authentication_error', param: null, code: 'invalid_api_key' } });
    const stranger = new OpenAI({ baseURL: mesh.openaiUrl, apiKey: `agl_${'A'.repeat(43)}`, fetch: fetchMesh, maxRetries: 0 });
    await expect(stranger.models.list()).rejects.toBeInstanceOf(AuthenticationError);
  });

  it('refuses what it cannot honour with 400 naming the field', async () => {
    const refusal = (body: Record<string, unknown>) =>
      openai.chat.completions.create({ model: 'glm-4-9b', messages: [{ role: 'user', content: 'Hi' }], ...body } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming).catch((e: unknown) => e);
    expect(await refusal({ n: 2 })).toMatchObject({ status: 400, param: 'n', type: 'invalid_request_error' });
    expect(await refusal({ temperature: 3 })).toMatchObject({ status: 400, param: 'temperature' });
    expect(await refusal({ messages: [] })).toMatchObject({ status: 400, param: 'messages' });
    expect(await refusal({ messages: [{ role: 'robot', content: 'x' }] })).toMatchObject({ status: 400, param: 'messages[0].role' });
    expect(await refusal({ max_tokens: 10_000_000 })).toMatchObject({ status: 400, param: 'max_tokens' });
    const bad = await fetchMesh(`${mesh.openaiUrl}/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${mesh.adminToken}`, 'content-type': 'application/json' }, body: '{"model":' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    await expect(openai.completions.create({ model: 'glm-4-9b', prompt: 'x', max_tokens: 1 }, { headers: { 'x-autoglm-deadline': 'soon' } })).rejects.toBeInstanceOf(BadRequestError);
  });

  it('refuses header values gRPC cannot carry by name, and a submitter acting for another tenant with 403', async () => {
    const post = (headers: Record<string, string>) =>
      fetchMesh(`${mesh.openaiUrl}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ model: 'glm-4-9b', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 1 }),
      });
    const tenant = await post({ authorization: `Bearer ${mesh.adminToken}`, 'x-autoglm-tenant': Buffer.from('équipe', 'utf8').toString('latin1') });
    expect(tenant.status).toBe(400);
    expect(((await tenant.json()) as { error: { param: string } }).error.param).toBe('x-autoglm-tenant');
    const token = await post({ authorization: `Bearer ${mesh.adminToken}\u00e9` });
    expect(token.status).toBe(401);
    const { secret } = await mesh.client.createToken({ tenant: 'alpha', role: Role.SUBMITTER, name: 'alpha pipeline' });
    const stranger = await post({ authorization: `Bearer ${secret}`, 'x-autoglm-tenant': 'beta' });
    expect(stranger.status).toBe(403);
    expect(((await stranger.json()) as { error: { type: string } }).error.type).toBe('permission_error');
    expect((await post({ authorization: `Bearer ${secret}` })).status).toBe(200);
  });

  it("answers a tenant over its rate limit with 429 and Retry-After", async () => {
    const headers = { 'x-autoglm-tenant': 'slow' };
    await openai.completions.create({ model: 'glm-4-9b', prompt: 'one', max_tokens: 1 }, { headers });
    const refusal = await openai.completions.create({ model: 'glm-4-9b', prompt: 'two', max_tokens: 1 }, { headers }).catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(RateLimitError);
    const { status, code, headers: answered } = refusal as RateLimitError;
    expect({ status, code }).toEqual({ status: 429, code: 'rate_limit_exceeded' });
    expect(Number(answered?.get('retry-after'))).toBeGreaterThan(0);
  });

  it('cancels the task of a stream whose client goes away, and frees its capacity', async () => {
    const abort = new AbortController();
    const { data: stream, response } = await openai.chat.completions
      .create({ model: 'glm-4-9b', messages: [{ role: 'user', content: 'Tell me a long story.' }], max_tokens: 4000, stream: true }, { signal: abort.signal })
      .withResponse();
    const taskId = response.headers.get('x-autoglm-task-id')!;
    let received = 0;
    // The SDK ends the iteration quietly on its own abort.
    for await (const chunk of stream) if (chunk.choices[0]?.delta.content && ++received === 3) abort.abort();
    expect(received).toBe(3);
    await until(async () => ((await mesh.client.get(taskId)).state === TaskState.CANCELLED ? true : undefined), 10_000, 'the task to be cancelled');
    await until(async () => ((await mesh.client.queueStats()).running === 0 ? true : undefined), 10_000, 'its capacity to be released');
  });

  it('cancels the task of a request whose client goes away before the answer', async () => {
    const abort = new AbortController();
    const pending = openai.completions
      .create({ model: 'glm-4-9b', prompt: 'A long story:', max_tokens: 4000 }, { signal: abort.signal, headers: { 'x-autoglm-tenant': 'openai-gone' } })
      .catch((e: unknown) => e);
    const running = await until(async () => (await mesh.client.list({ tenant: 'openai-gone', states: [TaskState.RUNNING] })).tasks[0], 10_000, 'the task to run');
    abort.abort();
    expect(await pending).toBeInstanceOf(Error);
    await until(async () => ((await mesh.client.get(running.id)).state === TaskState.CANCELLED ? true : undefined), 10_000, 'the task to be cancelled');
  });

  it('ends an open stream with an error event when its parser stops, and cancels the task', async () => {
    const files = mesh.tlsFiles.get('parser')!;
    const parser = await startParser(
      ParserConfigSchema.parse({ listen: '127.0.0.1:0', openaiListen: '127.0.0.1:0', decisionAddress: mesh.decision.grpcAddress, tlsCa: files.ca, tlsCert: files.cert, tlsKey: files.key }),
      pino({ level: 'silent' }),
    );
    const client = new OpenAI({ baseURL: `https://${parser.httpAddress}/v1`, apiKey: mesh.adminToken, fetch: fetchMesh, maxRetries: 0 });
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'glm-4-9b', messages: [{ role: 'user', content: 'A long story, please.' }], max_tokens: 4000, stream: true })
      .withResponse();
    let stopping: Promise<void> | undefined;
    const ended = await (async () => {
      for await (const chunk of stream) if (chunk.choices[0]?.delta.content) stopping ??= parser.stop();
    })().catch((e: unknown) => e);
    await stopping;
    expect(ended).toBeInstanceOf(APIError);
    expect((ended as APIError).message).toMatch(/shutting down/);
    const taskId = response.headers.get('x-autoglm-task-id')!;
    await until(async () => ((await mesh.client.get(taskId)).state === TaskState.CANCELLED ? true : undefined), 10_000, 'the task to be cancelled');
  });
});
