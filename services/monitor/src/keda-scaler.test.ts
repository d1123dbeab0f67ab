import { readFileSync } from 'node:fs';
import path from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { DEFAULT_BACKLOG_RULES, DEFAULT_FEEDBACK_CONFIG, InvalidArgumentError } from '@autoglm/core';
import { Event, ExternalScalerClient, ExternalScalerService, Node, NodeState, ReplicaState, ScaledObjectRef, Task, TaskState, type DecisionServiceClient, type IsActiveResponse } from '@autoglm/proto';
import { callUnary, createClient, GrpcServer } from '@autoglm/runtime';
import pino from 'pino';
import { Registry } from 'prom-client';
import { parseAllDocuments } from 'yaml';
import { until } from '../../../test/support/until';
import { FeedbackDriver } from './feedback-driver';
import { FeedbackMetrics } from './feedback-metrics';
import { kedaScalerHandlers, modelMetricName, type ScaleRecommendation, type ScaleSource } from './keda-scaler';
import { adviceScaleSource, closeMatches } from './keda-source';

/** A scale advisor whose answers the test sets, counting how often each reference is asked. */
class FakeAdvisor implements ScaleSource {
  readonly desired = new Map<string, number>();
  readonly asked = new Map<string, number>();
  broken: Error | undefined;

  metricName(metadata: Readonly<Record<string, string>>): string {
    return this.key(metadata).replace(':', '-');
  }

  recommend(metadata: Readonly<Record<string, string>>): ScaleRecommendation {
    const key = this.key(metadata);
    const desired = this.desired.get(key)!;
    this.asked.set(key, (this.asked.get(key) ?? 0) + 1);
    return { desired, active: desired > 0 };
  }

  private key(metadata: Readonly<Record<string, string>>): string {
    if (this.broken) throw this.broken;
    const key = metadata.model !== undefined ? `model:${metadata.model}` : metadata.pool !== undefined ? `pool:${metadata.pool}` : undefined;
    if (key === undefined) throw new InvalidArgumentError('scalerMetadata', 'names neither model nor pool; set the trigger metadata to model: <served model> or pool: <agent pool>');
    if (!this.desired.has(key)) throw new InvalidArgumentError('scalerMetadata', `${key.replace(':', ' "')}" is unknown; set metadata ${key.split(':')[0]} to one the fleet has`);
    return key;
  }
}

function ref(scalerMetadata: Record<string, string>): ScaledObjectRef {
  return ScaledObjectRef.fromPartial({ name: 'inference', namespace: 'autoglm', scalerMetadata });
}

const LLAMA = ref({ model: 'llama-3-8b' });
const POOL = ref({ pool: 'default' });

/** An open StreamIsActive call and what it has delivered so far. */
function watchActive(client: ExternalScalerClient, objectRef: ScaledObjectRef) {
  const call = client.streamIsActive(objectRef);
  const results: boolean[] = [];
  let error: ServiceError | undefined;
  call.on('data', (r: IsActiveResponse) => results.push(r.result));
  call.on('error', (err: ServiceError) => (error = err));
  return {
    call,
    results,
    get error() {
      return error;
    },
  };
}

const seen = (what: string, check: () => boolean) => until(async () => (check() ? true : undefined), 5_000, what);

describe('KEDA external scaler', () => {
  const advisor = new FakeAdvisor();
  const server = new GrpcServer({ logger: pino({ level: 'silent' }) });
  let client: ExternalScalerClient;

  beforeAll(async () => {
    server.addService(ExternalScalerService, kedaScalerHandlers(advisor, { pollMs: 20 }));
    client = createClient(ExternalScalerClient, await server.listen('127.0.0.1:0'));
  });

  beforeEach(() => {
    advisor.desired.clear();
    advisor.desired.set('model:llama-3-8b', 3);
    advisor.desired.set('pool:default', 0);
    advisor.broken = undefined;
  });

  afterEach(() => seen(`no StreamIsActive left open (${server.openStreams} open)`, () => server.openStreams === 0));

  afterAll(async () => {
    client.close();
    await server.shutdown();
  });

  const opts = { deadlineMs: 5_000 };

  it('GetMetricSpec names the metric with a per-replica target of 1', async () => {
    const spec = await callUnary(client.getMetricSpec.bind(client), LLAMA, opts);
    expect(spec.metricSpecs).toEqual([{ metricName: 'model-llama-3-8b', targetSize: 1, targetSizeFloat: 1 }]);
  });

  it('GetMetrics gives the desired replicas and follows a change', async () => {
    const ask = () => callUnary(client.getMetrics.bind(client), { scaledObjectRef: LLAMA, metricName: 'model-llama-3-8b' }, opts);
    expect((await ask()).metricValues).toEqual([{ metricName: 'model-llama-3-8b', metricValue: 3, metricValueFloat: 3 }]);
    advisor.desired.set('model:llama-3-8b', 7);
    expect((await ask()).metricValues).toEqual([{ metricName: 'model-llama-3-8b', metricValue: 7, metricValueFloat: 7 }]);
  });

  it('IsActive says whether any replica is wanted', async () => {
    expect(await callUnary(client.isActive.bind(client), LLAMA, opts)).toEqual({ result: true });
    expect(await callUnary(client.isActive.bind(client), POOL, opts)).toEqual({ result: false });
  });

  it('StreamIsActive sends the value at once, then each change', async () => {
    const stream = watchActive(client, POOL);
    await seen('the first value', () => stream.results.length === 1);
    expect(stream.results).toEqual([false]);
    advisor.desired.set('pool:default', 2);
    await seen('the change to active', () => stream.results.length === 2);
    advisor.desired.set('pool:default', 0);
    await seen('the change back', () => stream.results.length === 3);
    expect(stream.results).toEqual([false, true, false]);
    stream.call.cancel();
  });

  it('StreamIsActive stops asking the advisor once the client cancels', async () => {
    const cancelled = watchActive(client, LLAMA);
    const kept = watchActive(client, POOL);
    await seen('both first values', () => cancelled.results.length === 1 && kept.results.length === 1);
    cancelled.call.cancel();
    await seen('the server to drop the cancelled stream', () => server.openStreams === 1);
    const askedAtCancel = advisor.asked.get('model:llama-3-8b');
    // The stream still open polls on the same period: three of its polls are
    // time enough for the cancelled one to have polled, had it gone on.
    const keptAsked = advisor.asked.get('pool:default') ?? 0;
    await seen('three more polls of the open stream', () => (advisor.asked.get('pool:default') ?? 0) >= keptAsked + 3);
    expect(advisor.asked.get('model:llama-3-8b')).toBe(askedAtCancel);
    expect(cancelled.error?.code).toBe(status.CANCELLED);
    kept.call.cancel();
  });

  it('a reference to no known model or pool is INVALID_ARGUMENT naming the key and the fix', async () => {
    await expect(callUnary(client.getMetricSpec.bind(client), ref({ model: 'nope' }), opts)).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: 'scalerMetadata: model "nope" is unknown; set metadata model to one the fleet has (ScaledObject autoglm/inference)',
    });
    await expect(callUnary(client.getMetrics.bind(client), { scaledObjectRef: ref({}), metricName: 'x' }, opts)).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: expect.stringContaining('set the trigger metadata to model: <served model> or pool: <agent pool>'),
    });
    const stream = watchActive(client, ref({ pool: 'gpu-spot' }));
    await seen('the stream to fail', () => stream.error !== undefined);
    expect(stream.error).toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringContaining('pool "gpu-spot" is unknown') });
  });

  it('a GetMetrics without its ScaledObjectRef is INVALID_ARGUMENT', async () => {
    await expect(callUnary(client.getMetrics.bind(client), { scaledObjectRef: undefined, metricName: 'x' }, opts)).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: 'scaledObjectRef: is required',
    });
  });

  it('a fault in the advisor, a plain Error included, is INTERNAL and leaks nothing of it', async () => {
    for (const fault of [new TypeError('Cannot read properties of undefined (reading "replicas")'), new Error('connect ECONNREFUSED 10.0.0.7:5432 (replicas)')]) {
      advisor.broken = fault;
      const err = (await callUnary(client.isActive.bind(client), LLAMA, opts).catch((e: unknown) => e)) as ServiceError;
      expect({ fault: fault.message, code: err.code }).toEqual({ fault: fault.message, code: status.INTERNAL });
      expect(err.details).not.toContain('replicas');
    }
  });
});

/** Decision as the driver needs it: every change it applies succeeds. */
const accept = (...args: unknown[]) => {
  (args[args.length - 1] as (err: null, res: object) => void)(null, {});
  return { cancel: () => undefined };
};
const ACCEPTING_DECISION = { applyPolicy: accept, setNodeQuarantine: accept, reportAlerts: accept } as unknown as DecisionServiceClient;

function inferenceArrival(id: string, model: string): Event {
  const task = Task.fromPartial({ id, tenant: 'acme', state: TaskState.QUEUED, spec: { model, interactive: true, inputTokens: 100, maxOutputTokens: 50 } });
  return { kind: { $case: 'task', task: { taskId: id, sequence: 1, state: TaskState.QUEUED, previousState: TaskState.UNSPECIFIED, time: undefined, reason: '', task, final: false } } };
}

/** One 8-GPU node serving a replica of `model`. */
function nodeServing(model: string): Event {
  const node = Node.fromPartial({
    nodeId: 'n1',
    state: NodeState.READY,
    gpus: Array.from({ length: 8 }, (_, index) => ({ index, memoryTotalBytes: 80 * 2 ** 30 })),
    replicas: [{ replicaId: 'r1', model, state: ReplicaState.READY, gpuIndices: [0] }],
  });
  return { kind: { $case: 'node', node } };
}

describe('KEDA external scaler over the monitor\'s scale advisor', () => {
  let now = 1_000_000;
  let driver: FeedbackDriver;
  const server = new GrpcServer({ logger: pino({ level: 'silent' }) });
  let client: ExternalScalerClient;
  const opts = { deadlineMs: 5_000 };
  const model = (name: string) => ref({ model: name });
  const metricValue = async (objectRef: ScaledObjectRef) => (await callUnary(client.getMetrics.bind(client), { scaledObjectRef: objectRef, metricName: 'x' }, opts)).metricValues[0]!.metricValue;
  const isActive = async (objectRef: ScaledObjectRef) => (await callUnary(client.isActive.bind(client), objectRef, opts)).result;
  const refusal = (objectRef: ScaledObjectRef) => callUnary(client.isActive.bind(client), objectRef, opts).then(() => undefined, (err: ServiceError) => ({ code: err.code, details: err.details }));

  beforeAll(async () => {
    driver = new FeedbackDriver({
      decision: ACCEPTING_DECISION,
      config: DEFAULT_FEEDBACK_CONFIG,
      slos: [],
      backlogRules: DEFAULT_BACKLOG_RULES,
      evaluateEveryMs: 10_000,
      forecastIntervalMs: 10_000,
      sequencesPerReplica: 4,
      metrics: new FeedbackMetrics(new Registry(), []),
      logger: pino({ level: 'silent' }),
      clock: () => now,
    });
    // The adapter start.ts gives the scaler, over a real driver that the test evaluates on demand.
    server.addService(ExternalScalerService, kedaScalerHandlers(adviceScaleSource(driver), { pollMs: 20 }));
    client = createClient(ExternalScalerClient, await server.listen('127.0.0.1:0'));
  });

  afterAll(async () => {
    client.close();
    await server.shutdown();
  });

  // One sequence: the advisor's state only moves forward, as after a monitor's start.
  it('answers UNAVAILABLE before the first evaluation, then what the advisor recommends', async () => {
    const notYet = { code: status.UNAVAILABLE, details: expect.stringContaining('no recommendation computed yet; retry') };
    expect(await refusal(POOL)).toEqual(notYet);
    expect(await refusal(model('glm-4-9b'))).toEqual(notYet);
    await expect(callUnary(client.getMetrics.bind(client), { scaledObjectRef: POOL, metricName: 'x' }, opts)).rejects.toMatchObject(notYet);
    const stream = watchActive(client, POOL);
    await seen('the stream to fail', () => stream.error !== undefined);
    expect(stream.error).toMatchObject(notYet);
    expect(stream.results).toEqual([]);
    // KEDA can still build its HPA: the metric's name needs no recommendation.
    expect((await callUnary(client.getMetricSpec.bind(client), POOL, opts)).metricSpecs[0]?.metricName).toBe('autoglm-pool-default');
    // A name outside the catalog may yet turn out served: not refused as unknown before anything is computed.
    await expect(callUnary(client.getMetricSpec.bind(client), model('my-finetune'), opts)).rejects.toMatchObject(notYet);
    // A bad pool is bad whenever it is asked.
    expect(await refusal(ref({ pool: 'gpu-a' }))).toEqual({ code: status.INVALID_ARGUMENT, details: expect.stringContaining('scalerMetadata.pool: pool "gpu-a" is not known') });

    driver.observe(nodeServing('my-finetune'));
    for (let i = 0; i < 30; i++) driver.observe(inferenceArrival(`t${i}`, 'glm-4-9b'));
    now += 10_000;
    await driver.evaluate();
    const desired = (name: string) => driver.recommendations().recommendations.find((r) => r.name === name)?.desired;
    expect(desired('glm-4-9b')).toBeGreaterThan(0);
    expect(await metricValue(model('glm-4-9b'))).toBe(desired('glm-4-9b'));
    expect(await isActive(model('glm-4-9b'))).toBe(true);
    expect(await metricValue(POOL)).toBe(desired('default'));
    // In the catalog, but no demand: 0 and inactive.
    expect(await metricValue(model('llama-3.1-8b'))).toBe(0);
    expect(await isActive(model('llama-3.1-8b'))).toBe(false);
    // Not in the catalog, but a replica of it runs: known.
    expect(await metricValue(model('my-finetune'))).toBe(desired('my-finetune'));
  });

  it('refuses a model it does not know with INVALID_ARGUMENT naming the field and the close names', async () => {
    expect(driver.recommendations().computedAt).toBeDefined();
    expect(await refusal(model('GLM-4-9B'))).toEqual({
      code: status.INVALID_ARGUMENT,
      details:
        'scalerMetadata.model: model "GLM-4-9B" is not one the monitor knows (not in its catalog, and no demand for it or replica of it seen); did you mean "glm-4-9b"? Names are compared exactly, case included (ScaledObject autoglm/inference)',
    });
    expect(await refusal(model('llama-3-8b'))).toEqual({ code: status.INVALID_ARGUMENT, details: expect.stringContaining('did you mean "llama-3.1-8b"?') });
    expect(await refusal(model('My-Finetune'))).toEqual({ code: status.INVALID_ARGUMENT, details: expect.stringContaining('did you mean "my-finetune"?') });
    // Nothing close: the names it knows, those the fleet runs first.
    expect(await refusal(model('gpt-4o'))).toEqual({ code: status.INVALID_ARGUMENT, details: expect.stringContaining('; known: glm-4-9b, my-finetune, glm-4-9b-chat, ') });
    await expect(callUnary(client.getMetricSpec.bind(client), model('GLM-4-9B'), opts)).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
  });

  it('accepts every trigger of the example ScaledObjects in deploy/keda', () => {
    const file = path.join(__dirname, '../../../deploy/keda/scaledobject.yaml');
    const triggers = parseAllDocuments(readFileSync(file, 'utf8'))
      .map((d) => d.toJS() as { spec: { triggers: Array<{ metadata: Record<string, string> }> } })
      .flatMap((o) => o.spec.triggers);
    expect(triggers.length).toBeGreaterThan(0);
    // Before any demand: every example must name a catalogued model or the pool.
    const fresh = adviceScaleSource({ recommendations: () => ({ recommendations: [], computedAt: now }) });
    for (const { metadata } of triggers) expect({ metadata, active: fresh.recommend(metadata).active }).toEqual({ metadata, active: false });
  });
});

describe('closeMatches', () => {
  it('prefers a match but for case, else names a couple of edits away, and nothing for short names', () => {
    expect(closeMatches('Qwen2.5-7B', ['qwen2.5-7b', 'qwen2.5-72b'])).toEqual(['qwen2.5-7b']);
    expect(closeMatches('glm4-9b', ['glm-4-9b', 'glm-4-32b'])).toEqual(['glm-4-9b']);
    expect(closeMatches('abc', ['abd', 'xbc'])).toEqual([]);
  });
});

describe('modelMetricName', () => {
  it('names the metric in lower-case letters, digits and dashes only', () => {
    expect(modelMetricName('llama-3-8b')).toBe('autoglm-model-llama-3-8b');
    expect(modelMetricName('Qwen/Qwen2.5-7B_Instruct')).toBe('autoglm-model-qwen-qwen2-5-7b-instruct');
  });
});
