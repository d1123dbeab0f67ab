import { AutoglmClient, startMesh, type Mesh } from '@autoglm/client';
import { TaskState } from '@autoglm/proto';
import { startOtlpReceiver } from '../support/otlp-receiver';
import { tempDir } from '../support/temp-dir';
import { until } from '../support/until';

/** One task, one trace: the spans of parser, decision and the agent share a trace id. */
describe('tracing across the mesh', () => {
  const data = tempDir('trace');
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let mesh: Mesh;
  let client: AutoglmClient;

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
    client = new AutoglmClient({ address: mesh.publicAddress, tenant: 'trace', token: mesh.adminToken, ca: mesh.ca });
    await until(async () => ((await client.listNodes()).nodes.length === 1 ? true : undefined), 20_000, 'the agent');
  }, 90_000);

  afterAll(async () => {
    client?.close();
    await mesh?.stop();
    await receiver?.close();
    data.remove();
  }, 60_000);

  it('exports one trace whose spans cover parser, decision and agent', async () => {
    const { task } = await client.submit({ model: 'glm-4-9b', payload: { $case: 'inference', inference: { prompt: 'trace me', params: { maxTokens: 3 } } } });
    for await (const e of client.watch(task!.id)) if (e.state === TaskState.SUCCEEDED) break;
    const submit = await until(
      async () => receiver.spans.find((s) => s.service === 'autoglm-parser' && s.name === '/autoglm.v1.TaskService/SubmitTask'),
      15_000,
      "the parser's SubmitTask span",
    );
    const services = await until(
      async () => {
        const inTrace = new Set(receiver.spans.filter((s) => s.traceId === submit.traceId).map((s) => s.service));
        return inTrace.has('autoglm-decision') && inTrace.has('autoglm-executor-agent') ? inTrace : undefined;
      },
      15_000,
      'decision and agent spans in the same trace',
    );
    expect([...services].sort()).toEqual(['autoglm-decision', 'autoglm-executor-agent', 'autoglm-parser']);
    const traceSpans = receiver.spans.filter((s) => s.traceId === submit.traceId);
    expect(traceSpans.map((s) => s.name)).toEqual(expect.arrayContaining(['/autoglm.v1.DecisionService/EnqueueBatch', 'decision.enqueue', 'agent.execute']));
    // Every span but the root has its parent in the trace: one connected tree.
    const ids = new Set(traceSpans.map((s) => s.spanId));
    expect(traceSpans.filter((s) => s.parentSpanId && !ids.has(s.parentSpanId))).toEqual([]);
  }, 60_000);
});
