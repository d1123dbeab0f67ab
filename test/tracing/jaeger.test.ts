import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import path from 'node:path';
import { AutoglmClient, startMesh, type Mesh } from '@autoglm/client';
import { TaskState } from '@autoglm/proto';
import { fetchTrusting } from '../support/fetch-trusting';
import { tempDir } from '../support/temp-dir';
import { until } from '../support/until';

// A real Jaeger (v2, built from the Go module proxy by scripts/build-jaeger.sh,
// which .ci/run calls) receiving the mesh's OTLP export; the traces are read
// back through Jaeger's own query API, as a person would find them in its UI.
const REPO_ROOT = path.resolve(__dirname, '..', '..');
const VERSION = /github\.com\/jaegertracing\/jaeger (v\S+)/.exec(readFileSync(path.join(REPO_ROOT, 'tools/jaeger/go.mod'), 'utf8'))?.[1];
const JAEGER = process.env.AUTOGLM_JAEGER ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(homedir(), '.cache'), 'autoglm', `jaeger-${VERSION}`, 'jaeger');
const found = existsSync(JAEGER);
const inCi = process.env.CI === 'true';
const missing = `no Jaeger at ${JAEGER}; build it with: bash scripts/build-jaeger.sh (Go and the Go module proxy, a few minutes once)`;
if (!found && !inCi) process.stderr.write(`test/tracing/jaeger.test.ts skipped: ${missing}\n`);

interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  processID: string;
  references: Array<{ refType: string; spanID: string }>;
  tags: Array<{ key: string; value: unknown }>;
}
interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string }>;
}

(found || inCi ? describe : describe.skip)('traces in a real Jaeger', () => {
  const data = tempDir('jaeger');
  let jaeger: ChildProcess | undefined;
  let jaegerLog = '';
  let queryUrl = '';
  let mesh: Mesh | undefined;
  let client: AutoglmClient;

  beforeAll(async () => {
    if (!found) throw new Error(`CI=true and ${missing}`);
    const [otlp, query, queryGrpc] = await freePorts(3);
    const config = path.join(data.dir, 'jaeger.yaml');
    writeFileSync(config, jaegerConfig(otlp!, query!, queryGrpc!));
    jaeger = spawn(JAEGER, ['--config', `file:${config}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk: Buffer) => (jaegerLog = (jaegerLog + chunk.toString()).slice(-20_000));
    jaeger.stdout!.on('data', keep);
    jaeger.stderr!.on('data', keep);
    queryUrl = `http://127.0.0.1:${query}`;
    await until(async () => ((await fetch(`${queryUrl}/api/services`)).ok ? true : undefined), 30_000, `Jaeger to answer (its log: ${jaegerLog.slice(-2000)})`);
    mesh = await startMesh({
      dataDir: path.join(data.dir, 'mesh'),
      ports: 'ephemeral',
      agents: 1,
      timeScale: 50,
      logLevel: 'warn',
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${otlp}`, OTEL_BSP_SCHEDULE_DELAY: '200' },
    });
    client = new AutoglmClient({ address: mesh.publicAddress, tenant: 'trace', token: mesh.adminToken, ca: mesh.ca });
    await until(async () => ((await client.listNodes()).nodes.length === 1 ? true : undefined), 20_000, 'the agent');
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await mesh?.stop();
    if (jaeger && jaeger.exitCode === null) {
      const exited = new Promise((resolve) => jaeger!.once('exit', resolve));
      jaeger.kill('SIGTERM');
      // Its graceful shutdown may take a while; a test's Jaeger keeps nothing worth waiting for.
      const kill = setTimeout(() => jaeger?.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(kill);
    }
    data.remove();
  }, 60_000);

  /** The trace in Jaeger holding the agent's span of the task (tagged with its id), once it has spans of all three services. */
  async function traceOf(taskId: string): Promise<JaegerTrace> {
    let seen = 'no trace with the agent span';
    return until(
      async () => {
        const res = await fetch(`${queryUrl}/api/traces?service=autoglm-executor-agent&limit=50&lookback=1h&tags=${encodeURIComponent(JSON.stringify({ 'autoglm.task_id': taskId }))}`);
        const body = (await res.json()) as { data: JaegerTrace[] | null };
        for (const trace of body.data ?? []) {
          const full = (await (await fetch(`${queryUrl}/api/traces/${trace.traceID}`)).json()) as { data: JaegerTrace[] };
          const t = full.data[0]!;
          const services = new Set(t.spans.map((s) => t.processes[s.processID]!.serviceName));
          if (services.has('autoglm-decision') && services.has('autoglm-parser')) return t;
          seen = `a trace with ${[...services].join(', ')}: ${t.spans.map((x) => x.operationName).join(', ')}`;
        }
        return undefined;
      },
      30_000,
      `a trace of task ${taskId} in Jaeger with parser, decision and agent spans (seen: ${seen})`,
    );
  }

  function describeTrace(t: JaegerTrace): { services: string[]; names: string[]; orphans: string[] } {
    const ids = new Set(t.spans.map((s) => s.spanID));
    return {
      services: [...new Set(t.spans.map((s) => t.processes[s.processID]!.serviceName))].sort(),
      names: t.spans.map((s) => s.operationName),
      orphans: t.spans.filter((s) => s.references.some((r) => r.refType === 'CHILD_OF' && !ids.has(r.spanID))).map((s) => s.operationName),
    };
  }

  it('shows a batch job as one trace across parser, decision and the agent', async () => {
    const { task } = await client.submit({ payload: { $case: 'batch', batch: { expectedDuration: { seconds: 1, nanos: 0 } } }, resources: { gpuCount: 1 } });
    for await (const e of client.watch(task!.id)) if (e.state === TaskState.SUCCEEDED) break;
    const t = describeTrace(await traceOf(task!.id));
    expect(t.services).toEqual(['autoglm-decision', 'autoglm-executor-agent', 'autoglm-parser']);
    expect(t.names).toEqual(expect.arrayContaining(['/autoglm.v1.TaskService/SubmitTask', 'decision.enqueue', 'agent.execute']));
    expect(t.orphans).toEqual([]);
  }, 60_000);

  it('shows an Infer stream as one trace across parser, decision and the agent', async () => {
    let taskId = '';
    for await (const m of client.infer({ model: 'glm-4-9b', input: { prompt: 'trace me', params: { maxTokens: 4 } } })) {
      if (m.kind?.$case === 'accepted') taskId = m.kind.accepted.taskId;
    }
    expect(taskId).not.toBe('');
    const t = describeTrace(await traceOf(taskId));
    expect(t.services).toEqual(['autoglm-decision', 'autoglm-executor-agent', 'autoglm-parser']);
    expect(t.names).toEqual(expect.arrayContaining(['/autoglm.v1.TaskService/Infer']));
    expect(t.orphans).toEqual([]);
  }, 60_000);

  it('shows an OpenAI chat completion as one trace across parser, decision and the agent', async () => {
    const res = await fetchTrusting(mesh!.ca!)(`${mesh!.openaiUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${mesh!.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'glm-4-9b', messages: [{ role: 'user', content: 'trace me' }], max_tokens: 4 }),
    });
    expect(res.status).toBe(200);
    const taskId = res.headers.get('x-autoglm-task-id')!;
    await res.json();
    const t = describeTrace(await traceOf(taskId));
    expect(t.services).toEqual(['autoglm-decision', 'autoglm-executor-agent', 'autoglm-parser']);
    expect(t.names).toEqual(expect.arrayContaining(['POST /v1/chat/completions']));
    expect(t.orphans).toEqual([]);
  }, 60_000);
});

/** Ports free now (bound to 0 and released): Jaeger's config names its ports. */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/** Jaeger v2 all in one, in memory, on loopback only, without its own telemetry port. */
function jaegerConfig(otlp: number, query: number, queryGrpc: number): string {
  return `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:${query}
    grpc:
      endpoint: 127.0.0.1:${queryGrpc}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${otlp}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`;
}
