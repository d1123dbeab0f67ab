import { AgentConfigSchema, startAgent } from '@autoglm/executor-agent';
import {
  AlertState,
  DecisionServiceClient,
  ExternalScalerClient,
  NodeState,
  PriorityClass,
  ReplicaState,
  type Event,
  type GetMetricsResponse,
  type SubmitTaskRequest,
} from '@autoglm/proto';
import { runCli, type MessageInit } from '@autoglm/client';
import { callUnary, createClient, loadTls, type RunningService } from '@autoglm/runtime';
import { Metadata } from '@grpc/grpc-js';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { captureIo } from '../support/cli-io';
import { startInProcessMesh, type InProcessMesh } from '../support/in-process-mesh';
import { until } from '../support/until';

/** A simulated 1-GPU job of `seconds` (simulated; the fixture runs 20× real time). */
const job = (seconds: number, priorityClass = PriorityClass.URGENT, tenant?: string): MessageInit<SubmitTaskRequest> => ({
  payload: { $case: 'batch', batch: { expectedDuration: { seconds, nanos: 0 } } },
  priorityClass,
  resources: { gpuCount: 1, gpuMemoryBytes: 2 ** 30 },
  ...(tenant ? { tenant } : {}),
});

describe('the monitor closes the feedback loop', () => {
  let mesh: InProcessMesh | undefined;
  let extra: RunningService | undefined;

  let extraClose: (() => Promise<void>) | undefined;

  afterEach(async () => {
    await extra?.stop();
    extra = undefined;
    await extraClose?.();
    extraClose = undefined;
    await mesh?.stop();
    mesh = undefined;
  });

  it('an induced overload makes an alert go pending, firing, then resolved: in the event stream, the API, `autoglm alerts` and the webhook', async () => {
    // The webhook: a local receiver that keeps what is POSTed.
    const posted: Array<{ alerts: Array<{ status: string; labels: Record<string, string>; annotations: { summary: string } }> }> = [];
    const hook = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        posted.push(JSON.parse(body) as (typeof posted)[number]);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    extraClose = () => new Promise<void>((resolve) => hook.close(() => resolve()));
    mesh = await startInProcessMesh({
      tls: true,
      monitor: {
        alertWebhook: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/alerts`,
        evaluateEveryMs: 100,
        slos: [{ name: 'urgent-queue', indicator: 'queue_time', priorityClass: 'urgent', thresholdSeconds: 0.2, objective: 0.9, windowMs: 10_000, minEvents: 3, alertForMs: 1000 }],
      },
    });
    const m = mesh;
    // The event stream as the monitor's own identity reads it.
    const decision = createClient(DecisionServiceClient, m.decision.grpcAddress, { tls: loadTls(tlsConfig(m, 'monitor')) });
    const seen: string[] = [];
    const stream = decision.subscribe({ taskEvents: false, nodeEvents: true, taskId: '', afterSequence: 0, states: [], batched: false, snapshot: false }, new Metadata());
    stream.on('data', (e: Event) => {
      if (e.kind?.$case === 'alert') seen.push(`${e.kind.alert.name}:${AlertState[e.kind.alert.state]}`);
    });
    stream.on('error', () => undefined);
    try {
      // Eight one-second jobs on two GPUs: most wait far past the 0.2 s the SLO allows.
      const ids = await Promise.all(Array.from({ length: 8 }, () => m.client.submit(job(20)).then((r) => r.task!.id)));
      const pending = await until(async () => (await m.client.listAlerts()).alerts.find((a) => a.name === 'SloMissed'), 20_000, 'the SLO alert');
      expect(pending.labels).toMatchObject({ slo: 'urgent-queue', tenant: 'contract', class: 'urgent' });
      await until(async () => ((await m.client.listAlerts()).alerts.some((a) => a.state === AlertState.FIRING) ? true : undefined), 20_000, 'the alert to fire');
      const io = captureIo();
      expect(await runCli(['node', 'autoglm', '--address', m.parser.grpcAddress, '--token', m.adminToken, '--ca', m.tlsFiles.get('parser')!.ca, 'alerts'], io)).toBe(0);
      expect(io.out).toMatch(/firing\s+page\s+SloMissed\s+slo=urgent-queue tenant=contract class=urgent/);
      for (const id of ids) await until(async () => ((await m.client.get(id)).finishedAt ? true : undefined), 30_000, `job ${id}`);
      // Once the window has slid past the slow jobs, nothing is judged: the alert resolves.
      const resolved = await until(
        async () => (await m.client.listAlerts(true)).alerts.find((a) => a.state === AlertState.RESOLVED),
        30_000,
        'the alert to resolve',
      );
      expect(resolved.resolvedAt).toBeDefined();
      expect((await m.client.listAlerts()).alerts).toEqual([]);
      await until(async () => (seen.includes('SloMissed:RESOLVED') ? true : undefined), 5000, 'the resolution in the event stream');
      expect(seen.slice(0, 3)).toEqual(['SloMissed:PENDING', 'SloMissed:FIRING', 'SloMissed:RESOLVED']);
      await until(async () => (posted.length >= 3 ? true : undefined), 5000, 'three webhook calls');
      expect(posted.map((p) => p.alerts[0]!.status)).toEqual(['pending', 'firing', 'resolved']);
      expect(posted[1]!.alerts[0]).toMatchObject({ labels: { alertname: 'SloMissed', severity: 'page', slo: 'urgent-queue', tenant: 'contract' }, annotations: { summary: expect.stringContaining('misses SLO urgent-queue') } });
    } finally {
      stream.cancel();
      decision.close();
    }
  }, 90_000);

  it('quarantines an agent that fails its work before it fails 20 attempts, and readmits it after probation', async () => {
    mesh = await startInProcessMesh({
      tls: true,
      monitor: { evaluateEveryMs: 100, quarantine: { minAttempts: 4, maxQuarantinedFraction: 0.5, probationMs: 3000 } },
    });
    const m = mesh;
    // A second agent whose GPUs fail every attempt.
    extra = await startAgent(
      AgentConfigSchema.parse({ listen: '127.0.0.1:0', decisionAddress: m.decision.grpcAddress, nodeId: 'other-node', simGpus: 2, simTimeScale: 20, simFailFraction: 1, ...tlsConfig(m, 'other-node') }),
      pino({ level: 'silent' }),
    );
    await until(async () => ((await m.client.listNodes()).nodes.length === 2 ? true : undefined), 10_000, 'both agents');
    const ids: string[] = [];
    const quarantined = await until(
      async () => {
        const node = (await m.client.listNodes()).nodes.find((n) => n.nodeId === 'other-node');
        if (node?.state === NodeState.QUARANTINED) return node;
        if (ids.length < 60) ids.push(...(await Promise.all([1, 2].map(() => m.client.submit(job(2, PriorityClass.NORMAL)).then((r) => r.task!.id)))));
        return undefined;
      },
      30_000,
      'the failing agent to be quarantined',
    );
    expect(quarantined.stateReason).toMatch(/failed \d+ of its last \d+ attempts .*\(monitor\)/);
    const failures = (await Promise.all(ids.map((id) => m.client.get(id)))).reduce((n, t) => n + t.failures, 0);
    expect(failures).toBeLessThan(20);
    const actions = (await m.client.feedbackActions()).actions;
    expect(actions.find((a) => a.kind === 'quarantine')).toMatchObject({ target: 'other-node', applied: true });
    // Everything still finishes, on the healthy agent.
    for (const id of ids) await until(async () => ((await m.client.get(id)).finishedAt ? true : undefined), 30_000, `task ${id}`);
    // Probation over: readmitted.
    await until(async () => ((await m.client.listNodes()).nodes.find((n) => n.nodeId === 'other-node')?.state === NodeState.READY ? true : undefined), 15_000, 'readmission');
    // Decision lifts the quarantine itself when it runs out; the monitor's
    // readmit verdict (its record of the same) follows on its next pass.
    const readmit = await until(async () => (await m.client.feedbackActions()).actions.find((a) => a.kind === 'readmit'), 5000, 'the readmit action');
    expect(readmit).toMatchObject({ target: 'other-node', applied: true });
  }, 90_000);

  it('pre-warms a model ahead of forecast demand, keeps its replica while demand lasts, and lets it go after', async () => {
    mesh = await startInProcessMesh({
      tls: true,
      monitor: { evaluateEveryMs: 100, forecastIntervalMs: 200, warm: { minIntervalMs: 0, holdMs: 2000, horizonMs: 10_000 } },
    });
    const m = mesh;
    const model = 'glm-4-9b';
    // A steady stream of requests: the forecast turns it into a warm floor.
    const warmed = await until(
      async () => {
        for await (const chunk of m.client.infer({ model, input: { prompt: 'hello', params: { maxTokens: 4 } } })) void chunk;
        const actions = (await m.client.feedbackActions()).actions;
        return actions.find((a) => a.kind === 'warm-replicas' && a.target === model && a.to > 0 && a.applied);
      },
      30_000,
      'a warm floor for the model',
    );
    expect(warmed.reason).toMatch(/forecast .* requests\/s/);
    const node = (await m.client.listNodes()).nodes[0]!;
    expect(node.replicas.filter((r) => r.model === model && r.state === ReplicaState.READY).length).toBeGreaterThanOrEqual(1);
    // Demand stops: after the hold, the floor goes back to 0.
    await until(
      async () => ((await m.client.feedbackActions()).actions.some((a) => a.kind === 'warm-replicas' && a.target === model && a.to === 0) ? true : undefined),
      30_000,
      'the floor to be lowered once demand is gone',
    );
  }, 90_000);

  it("answers KEDA's external scaler protocol with the recommendation", async () => {
    mesh = await startInProcessMesh({ tls: true, monitor: { evaluateEveryMs: 100 } });
    const m = mesh;
    const keda = createClient(ExternalScalerClient, m.monitor!.kedaAddress!, { tls: loadTls(tlsConfig(m, 'admin')) });
    try {
      const ref = { name: 'agents', namespace: 'gpu', scalerMetadata: { pool: 'default' } };
      const spec = await callUnary(keda.getMetricSpec.bind(keda), ref, { deadlineMs: 5000 });
      expect(spec.metricSpecs).toEqual([expect.objectContaining({ metricName: 'autoglm-pool-default', targetSize: 1 })]);
      const metrics = await until(
        async () => {
          const r: GetMetricsResponse = await callUnary(keda.getMetrics.bind(keda), { scaledObjectRef: ref, metricName: 'autoglm-pool-default' }, { deadlineMs: 5000 });
          return r.metricValues[0]!.metricValue >= 1 ? r : undefined;
        },
        10_000,
        'a recommendation',
      );
      const recommended = (await m.client.scaleRecommendations()).recommendations.find((r) => r.kind === 'pool');
      expect(metrics.metricValues[0]!.metricValue).toBe(recommended!.desired);
      await expect(callUnary(keda.isActive.bind(keda), { name: 'x', namespace: 'y', scalerMetadata: { pool: 'gpu-a' } }, { deadlineMs: 5000 })).rejects.toMatchObject({
        code: 3,
        details: expect.stringContaining('pool "gpu-a" is not known'),
      });
    } finally {
      keda.close();
    }
  }, 60_000);
});

function tlsConfig(m: InProcessMesh, name: string): { tlsCa: string; tlsCert: string; tlsKey: string } {
  const f = m.tlsFiles.get(name)!;
  return { tlsCa: f.ca, tlsCert: f.cert, tlsKey: f.key };
}
