import { readFileSync } from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { AutoglmClient } from '@autoglm/client';
import { AgentConfigSchema, startAgent } from '@autoglm/executor-agent';
import { DecisionConfigSchema, startDecision, type RunningDecision } from '@autoglm/decision';
import { ParserConfigSchema, startParser } from '@autoglm/parser';
import type { RunningService } from '@autoglm/runtime';
import { ReplicaState, TaskState } from '@autoglm/proto';
import { tempDir } from '../support/temp-dir';
import { until } from '../support/until';

/**
 * An OpenAI-compatible server (vLLM's shape: /v1/models with max_model_len,
 * /metrics, streamed /v1/completions) serving a model the catalog does not
 * know: its agent reports the model and the server's replica, the parser
 * accepts it, decision places it there, and the tokens stream back.
 */
describe('a model an OpenAI-compatible server lists', () => {
  const data = tempDir('served-models');
  const quiet = pino({ level: 'silent' });
  let server: Server;
  let decision: RunningDecision;
  let agent: RunningService;
  let parser: RunningService;
  let client: AutoglmClient;
  const prompts: string[] = [];
  /** What the server lists: a model may be added while everything runs. */
  const listed = [{ id: 'acme/support-7b', object: 'model', max_model_len: 4096 }];

  beforeAll(async () => {
    server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        if (req.method === 'GET' && req.url === '/v1/models') {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: listed }));
        } else if (req.method === 'GET' && req.url === '/metrics') {
          res.writeHead(200, { 'content-type': 'text/plain' }).end('vllm:num_requests_running{model_name="acme/support-7b"} 0\nvllm:num_requests_waiting{model_name="acme/support-7b"} 0\nvllm:gpu_cache_usage_perc{model_name="acme/support-7b"} 0.25\n');
        } else if (req.method === 'POST' && req.url === '/v1/completions') {
          const body = JSON.parse(Buffer.concat(parts).toString('utf8')) as { prompt: string; max_tokens: number };
          prompts.push(body.prompt);
          res.writeHead(200, { 'content-type': 'text/event-stream', connection: 'close' });
          for (const word of ['Hello', ' from', ' the', ' fine-tune']) res.write(`data: ${JSON.stringify({ choices: [{ index: 0, text: word, finish_reason: null }] })}\n\n`);
          res.write(`data: ${JSON.stringify({ choices: [{ index: 0, text: '', finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 4 } })}\n\n`);
          res.end('data: [DONE]\n\n');
        } else res.writeHead(404).end();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const tokenFile = path.join(data.dir, 'admin-token');
    decision = await startDecision(DecisionConfigSchema.parse({ listen: '127.0.0.1:0', dataDir: data.dir, bootstrapTokenFile: tokenFile }), quiet);
    agent = await startAgent(
      AgentConfigSchema.parse({ listen: '127.0.0.1:0', decisionAddress: decision.grpcAddress, nodeId: 'vllm-1', backend: 'openai', openaiBaseUrl: baseUrl, openaiRefreshMs: 200 }),
      quiet,
    );
    parser = await startParser(ParserConfigSchema.parse({ listen: '127.0.0.1:0', openaiListen: '127.0.0.1:0', decisionAddress: decision.grpcAddress }), quiet);
    client = new AutoglmClient({ address: parser.grpcAddress, tenant: 'served', token: readFileSync(tokenFile, 'utf8').trim() });
    await until(async () => ((await client.listNodes()).nodes.some((n) => n.replicas.length > 0) ? true : undefined), 10_000, "the agent and its server's replica");
  }, 30_000);

  afterAll(async () => {
    client?.close();
    await parser?.stop();
    await agent?.stop();
    await decision?.stop();
    server?.close();
    data.remove();
  });

  it('lists the model with its context window and the server’s replica, its engine load from the metrics', async () => {
    const node = (await client.listNodes()).nodes.find((n) => n.nodeId === 'vllm-1')!;
    expect(node.servedModels).toEqual([{ name: 'acme/support-7b', contextLength: 4096 }]);
    expect(node.replicas).toEqual([
      expect.objectContaining({ replicaId: 'openai:acme/support-7b', model: 'acme/support-7b', external: true, state: ReplicaState.READY, kvCacheUsagePerc: 0.25, contextLength: 4096 }),
    ]);
  });

  it('serves it through Infer and SubmitTask, and holds requests to its context window', async () => {
    let text = '';
    let done;
    for await (const m of client.infer({ model: 'acme/support-7b', input: { prompt: 'Hi there', params: { maxTokens: 32 } } })) {
      if (m.kind?.$case === 'chunk') text += m.kind.chunk.text;
      if (m.kind?.$case === 'done') done = m.kind.done;
    }
    expect(text).toBe('Hello from the fine-tune');
    expect(done).toMatchObject({ finishReason: 'stop', nodeId: 'vllm-1' });
    const { task } = await client.submit({ model: 'acme/support-7b', payload: { $case: 'inference', inference: { prompt: 'Queued one' } } });
    await until(async () => ((await client.get(task!.id)).state === TaskState.SUCCEEDED ? true : undefined), 10_000, 'the submitted request to succeed');
    expect(prompts).toEqual(['Hi there', 'Queued one']);
    const tooLong = await client
      .submit({ model: 'acme/support-7b', payload: { $case: 'inference', inference: { prompt: 'x', params: { maxTokens: 5000, temperature: 0, topP: 0, stop: [] } } } })
      .catch((e: unknown) => e as Error);
    expect((tooLong as Error).message).toMatch(/over the 4096-token context of "acme\/support-7b"/);
  });

  it('learns a model the server loads later, with its context window, without the agent reconnecting', async () => {
    listed.push({ id: 'acme/late-3b', object: 'model', max_model_len: 2048 });
    await until(
      async () => ((await client.listNodes()).nodes.find((n) => n.nodeId === 'vllm-1')?.servedModels.some((m) => m.name === 'acme/late-3b' && m.contextLength === 2048) ? true : undefined),
      10_000,
      'the late model to be listed',
    );
    // The parser reads the served models again at most once a second on a miss (and every 5 s).
    const refusal = () =>
      client
        .submit({ model: 'acme/late-3b', payload: { $case: 'inference', inference: { prompt: 'x', params: { maxTokens: 3000, temperature: 0, topP: 0, stop: [] } } } })
        .then(() => 'accepted', (e: unknown) => (e as Error).message);
    await until(async () => ((await refusal()).includes('not in the catalog') ? undefined : true), 10_000, 'the parser to learn the late model');
    expect(await refusal()).toMatch(/over the 2048-token context of "acme\/late-3b"/);
    const { task } = await client.submit({ model: 'acme/late-3b', payload: { $case: 'inference', inference: { prompt: 'Late one', params: { maxTokens: 16, temperature: 0, topP: 0, stop: [] } } } });
    await until(async () => ((await client.get(task!.id)).state === TaskState.SUCCEEDED ? true : undefined), 10_000, 'the late model to serve');
  });
});
