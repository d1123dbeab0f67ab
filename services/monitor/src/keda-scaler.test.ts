import { status, type ServiceError } from '@grpc/grpc-js';
import { InvalidArgumentError } from '@autoglm/core';
import { ExternalScalerClient, ExternalScalerService, ScaledObjectRef, type IsActiveResponse } from '@autoglm/proto';
import { callUnary, createClient, GrpcServer } from '@autoglm/runtime';
import pino from 'pino';
import { until } from '../../../test/support/until';
import { kedaScalerHandlers, modelMetricName, type ScaleRecommendation, type ScaleSource } from './keda-scaler';

/** A scale advisor whose answers the test sets, counting how often each reference is asked. */
class FakeAdvisor implements ScaleSource {
  readonly desired = new Map<string, number>();
  readonly asked = new Map<string, number>();
  broken: Error | undefined;

  recommend(metadata: Readonly<Record<string, string>>): ScaleRecommendation {
    if (this.broken) throw this.broken;
    const key = metadata.model !== undefined ? `model:${metadata.model}` : metadata.pool !== undefined ? `pool:${metadata.pool}` : undefined;
    if (key === undefined) throw new InvalidArgumentError('scalerMetadata', 'names neither model nor pool; set the trigger metadata to model: <served model> or pool: <agent pool>');
    const desired = this.desired.get(key);
    if (desired === undefined) throw new InvalidArgumentError('scalerMetadata', `${key.replace(':', ' "')}" is unknown; set metadata ${key.split(':')[0]} to one the fleet has`);
    this.asked.set(key, (this.asked.get(key) ?? 0) + 1);
    return { metricName: key.replace(':', '-'), desired, active: desired > 0 };
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

describe('modelMetricName', () => {
  it('names the metric in lower-case letters, digits and dashes only', () => {
    expect(modelMetricName('llama-3-8b')).toBe('autoglm-model-llama-3-8b');
    expect(modelMetricName('Qwen/Qwen2.5-7B_Instruct')).toBe('autoglm-model-qwen-qwen2-5-7b-instruct');
  });
});
