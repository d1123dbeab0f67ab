import OpenAI from 'openai';
import { startMesh, type Mesh } from '@autoglm/client';
import { startOtlpReceiver } from '../support/otlp-receiver';
import { tempDir } from '../support/temp-dir';
import { fetchTrusting } from '../support/fetch-trusting';
import { until } from '../support/until';

/**
 * The local mesh as `autoglm up` runs it (separate processes, TLS) serves the
 * OpenAI-compatible API on its own port, and one request is one trace across
 * parser, decision and agent.
 */
describe('the OpenAI-compatible API of a local mesh', () => {
  const data = tempDir('openai-mesh');
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let mesh: Mesh;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    mesh = await startMesh({
      dataDir: data.dir,
      ports: 'ephemeral',
      agents: 1,
      timeScale: 50,
      logLevel: 'warn',
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: '200' },
    });
  }, 90_000);

  afterAll(async () => {
    await mesh?.stop();
    await receiver?.close();
    data.remove();
  }, 60_000);

  it('streams a chat completion over HTTPS, in one trace from the HTTP span to the agent', async () => {
    expect(mesh.openaiUrl).toMatch(/^https:\/\/127\.0\.0\.1:[1-9]\d*\/v1$/);
    const openai = new OpenAI({ baseURL: mesh.openaiUrl, apiKey: mesh.adminToken, fetch: fetchTrusting(mesh.ca!), maxRetries: 0 });
    await until(async () => ((await openai.models.list()).data.length > 0 ? true : undefined), 20_000, 'the parser');
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const stream = await openai.chat.completions.create(
      { model: 'glm-4-9b', messages: [{ role: 'user', content: 'trace me' }], max_tokens: 3, stream: true },
      { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } },
    );
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text.length).toBeGreaterThan(0);
    const spans = await until(
      async () => {
        const inTrace = receiver.spans.filter((span) => span.traceId === traceId);
        return new Set(inTrace.map((span) => span.service)).size === 3 && inTrace.some((span) => span.name === 'POST /v1/chat/completions') ? inTrace : undefined;
      },
      15_000,
      "the request's spans",
    );
    expect(new Set(spans.map((span) => span.service))).toEqual(new Set(['autoglm-parser', 'autoglm-decision', 'autoglm-executor-agent']));
    // As a gRPC Infer's: the client's call, Admit at decision, Execute at the agent (which runs the work under it).
    expect(spans.map((span) => `${span.service} ${span.name}`)).toEqual(
      expect.arrayContaining([
        'autoglm-parser POST /v1/chat/completions',
        'autoglm-decision /autoglm.v1.DecisionService/Admit',
        'autoglm-executor-agent /autoglm.v1.ExecutorService/Execute',
      ]),
    );
    // One connected tree under the caller's span.
    const ids = new Set(spans.map((span) => span.spanId));
    expect(spans.filter((span) => span.parentSpanId !== '00f067aa0ba902b7' && !ids.has(span.parentSpanId))).toEqual([]);
  }, 60_000);
});
