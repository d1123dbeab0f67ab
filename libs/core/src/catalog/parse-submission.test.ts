import { DeadlinePolicy, InferStart, PriorityClass, SubmitTaskRequest, TaskKind } from '@autoglm/proto';
import { InvalidArgumentError } from '../errors';
import { jobTimeLimitMs } from './job-rules';
import { estimateGpuMemory } from './memory';
import { DEFAULT_MODEL_CATALOG, ModelCatalog, defineModel } from './models';
import type { CatalogModel } from './models';
import { DEFAULT_GPU_MEMORY_BYTES, parseInferStart, parseSubmission } from './parse-submission';
import type { ParseContext } from './parse-submission';
import { countTokens } from './tokenizer';

const NOW = new Date('2026-03-01T12:00:00.000Z');
const NOW_SECONDS = NOW.getTime() / 1000;
const CTX: ParseContext = { catalog: DEFAULT_MODEL_CATALOG, now: NOW, defaultMaxRetries: 3 };
const UUID_A = '123e4567-e89b-12d3-a456-426614174000';
const GIB = 2 ** 30;

function model(name: string): CatalogModel {
  const found = DEFAULT_MODEL_CATALOG.get(name);
  if (found === undefined) throw new Error(`no ${name} in the default catalog`);
  return found;
}

function rejection(fn: () => unknown): InvalidArgumentError {
  try {
    fn();
  } catch (error: unknown) {
    if (error instanceof InvalidArgumentError) return error;
    throw error;
  }
  throw new Error('expected an InvalidArgumentError, nothing was thrown');
}

const inferenceRequest = SubmitTaskRequest.fromPartial({
  requestId: 'req-1',
  tenant: 'team-a',
  model: 'glm-4-9b',
  payload: { $case: 'inference', inference: { prompt: 'Explain KV caches in one paragraph.' } },
});

const batchRequest = SubmitTaskRequest.fromPartial({
  tenant: 'team-a',
  payload: { $case: 'batch', batch: { command: ['python', 'train.py'], env: { SEED: '1' }, expectedDuration: { seconds: 3600, nanos: 0 } } },
});

function withRequest(overrides: Partial<SubmitTaskRequest>): SubmitTaskRequest {
  return { ...inferenceRequest, ...overrides };
}

describe('parseSubmission: inference', () => {
  it('fills every field of the spec from the request, the catalog and the defaults', () => {
    const prompt = 'Explain KV caches in one paragraph.';
    const { requestId, tenant, spec } = parseSubmission(inferenceRequest, CTX);
    expect(requestId).toBe('req-1');
    expect(tenant).toBe('team-a');
    const inputTokens = countTokens(prompt);
    expect(spec).toEqual({
      kind: TaskKind.INFERENCE,
      model: 'glm-4-9b',
      inputTokens,
      maxOutputTokens: 1024,
      gpuCount: 1,
      gpuMemoryBytes: estimateGpuMemory(model('glm-4-9b'), inputTokens + 1024, 1),
      cpuMillis: 0,
      memoryBytes: 0,
      priorityClass: PriorityClass.NORMAL,
      priority: 0,
      deadline: undefined,
      deadlinePolicy: DeadlinePolicy.BEST_EFFORT,
      policyVariant: '',
      dependsOn: [],
      preemptible: false,
      maxRetries: 3,
      labels: {},
      interactive: false,
      payload: { $case: 'inference', inference: { prompt, messages: [], params: { maxTokens: 1024, temperature: 0, topP: 1, stop: [] } } },
    });
    // About 18.8 GB of weights, a little KV cache, 2 GiB of runtime.
    expect(spec.gpuMemoryBytes / 1e9).toBeGreaterThan(20.9);
    expect(spec.gpuMemoryBytes / 1e9).toBeLessThan(21.2);
  });

  it('keeps what the caller asked for', () => {
    const deadline = { seconds: NOW_SECONDS + 600, nanos: 0 };
    const { spec } = parseSubmission(
      withRequest({
        priorityClass: PriorityClass.BACKGROUND,
        priority: -5,
        deadline,
        dependsOn: [UUID_A],
        preemptible: true,
        maxRetries: 0,
        labels: { experiment: 'e1' },
        resources: { gpuCount: 2, gpuMemoryBytes: 30 * GIB, cpuCores: 0, memoryBytes: 0 },
      }),
      CTX,
    );
    expect(spec).toMatchObject({
      priorityClass: PriorityClass.BACKGROUND,
      priority: -5,
      deadline,
      dependsOn: [UUID_A],
      preemptible: true,
      maxRetries: 0,
      labels: { experiment: 'e1' },
      gpuCount: 2,
      gpuMemoryBytes: 30 * GIB,
    });
  });

  it('does not share arrays or maps with the request', () => {
    const request = withRequest({ dependsOn: [UUID_A], labels: { a: 'b' } });
    const { spec } = parseSubmission(request, CTX);
    expect(spec.dependsOn).not.toBe(request.dependsOn);
    expect(spec.labels).not.toBe(request.labels);
  });

  it('rejects an unknown model, listing the known ones', () => {
    const error = rejection(() => parseSubmission(withRequest({ model: 'glm-9' }), CTX));
    expect(error.field).toBe('model');
    expect(error.message).toMatch(/^model: "glm-9" is not in the catalog and no connected agent serves it; known: glm-4-9b, glm-4-9b-chat, .*llama-3\.1-8b.* \(add it to the catalog file, AUTOGLM_MODEL_CATALOG\)$/);
    expect(rejection(() => parseSubmission(withRequest({ model: 'GLM-4-9B' }), CTX)).field).toBe('model');
  });

  it('requires a model for inference', () => {
    expect(rejection(() => parseSubmission(withRequest({ model: '' }), CTX)).message).toMatch(/^model: required for inference; known: glm-4-9b/);
  });

  it('names nested inference fields by their proto path', () => {
    const request = withRequest({
      payload: { $case: 'inference', inference: { prompt: 'hi', messages: [], params: { maxTokens: 0, temperature: 3, topP: 0, stop: [] } } },
    });
    expect(rejection(() => parseSubmission(request, CTX)).message).toBe('inference.params.temperature: 3 is outside [0, 2]');
  });

  it('rejects a prompt too long for the model context, saying its length and the limit', () => {
    const prompt = 'token '.repeat(8000);
    const request = withRequest({
      payload: { $case: 'inference', inference: { prompt, messages: [], params: { maxTokens: 1000, temperature: 0, topP: 0, stop: [] } } },
    });
    const error = rejection(() => parseSubmission(request, CTX));
    expect(error.field).toBe('inference.prompt');
    expect(error.message).toContain(`is ${countTokens(prompt)} tokens`);
    expect(error.message).toContain('8192-token context');
  });

  it('places a large model on the fewest GPUs it fits with headroom', () => {
    expect(parseSubmission(withRequest({ model: 'llama-3.1-70b' }), CTX).spec.gpuCount).toBe(2);
    const air = parseSubmission(withRequest({ model: 'glm-4.5-air' }), CTX).spec;
    expect(air.gpuCount).toBe(4);
    expect(air.gpuMemoryBytes).toBeLessThan(0.9 * DEFAULT_GPU_MEMORY_BYTES);
  });

  it('rejects a model that does not fit on the most GPUs a task may use', () => {
    const error = rejection(() => parseSubmission(withRequest({ model: 'glm-4.5' }), CTX));
    expect(error.field).toBe('model');
    expect(error.message).toMatch(/^model: "glm-4\.5" needs about [\d.]+ GiB per GPU .* even on 8 GPUs, more than the 80 GiB of the largest GPU/);
    // On a fleet of 141 GiB GPUs it fits on eight.
    expect(parseSubmission(withRequest({ model: 'glm-4.5' }), { ...CTX, gpuMemoryBytes: 141 * GIB }).spec.gpuCount).toBe(8);
    // With at most four GPUs a task, glm-4.5-air still fits; llama-3.1-70b with two a task does too.
    expect(parseSubmission(withRequest({ model: 'glm-4.5-air' }), { ...CTX, maxGpusPerTask: 4 }).spec.gpuCount).toBe(4);
    expect(rejection(() => parseSubmission(withRequest({ model: 'glm-4.5-air' }), { ...CTX, maxGpusPerTask: 2 })).field).toBe('model');
  });

  it('rejects too few GPUs asked for a large model, saying how many it needs', () => {
    const error = rejection(() => parseSubmission(withRequest({ model: 'llama-3.1-70b', resources: { gpuCount: 1, gpuMemoryBytes: 0, cpuCores: 0, memoryBytes: 0 } }), CTX));
    expect(error.field).toBe('resources.gpu_count');
    expect(error.message).toMatch(/1 GPU is too few for "llama-3\.1-70b".*ask for at least 2$/);
  });

  it('rejects resource requests beyond the fleet', () => {
    const tooMany = rejection(() => parseSubmission(withRequest({ resources: { gpuCount: 9, gpuMemoryBytes: 0, cpuCores: 0, memoryBytes: 0 } }), CTX));
    expect(tooMany.message).toBe('resources.gpu_count: 9 is outside 0..8 (GPUs on one host; unset derives it from the model, 0 asks for none)');
    const absurd = rejection(() => parseSubmission(withRequest({ resources: { gpuCount: 1, gpuMemoryBytes: 640 * GIB, cpuCores: 0, memoryBytes: 0 } }), CTX));
    expect(absurd.field).toBe('resources.gpu_memory_bytes');
    expect(absurd.message).toContain('640 GiB per GPU is more than the largest GPU in the fleet has (80 GiB)');
  });
});

describe('parseSubmission: batch', () => {
  it('makes a batch spec without a model: one GPU, memory as asked or none', () => {
    const { spec } = parseSubmission(batchRequest, CTX);
    expect(spec).toEqual({
      kind: TaskKind.BATCH,
      model: '',
      inputTokens: 0,
      maxOutputTokens: 0,
      gpuCount: 1,
      gpuMemoryBytes: 0,
      cpuMillis: 0,
      memoryBytes: 0,
      priorityClass: PriorityClass.NORMAL,
      priority: 0,
      deadline: undefined,
      deadlinePolicy: DeadlinePolicy.BEST_EFFORT,
      policyVariant: '',
      dependsOn: [],
      preemptible: false,
      maxRetries: 3,
      labels: {},
      interactive: false,
      payload: { $case: 'batch', batch: { command: ['python', 'train.py'], env: { SEED: '1' }, expectedDuration: { seconds: 3600, nanos: 0 } } },
    });
    const asked = parseSubmission({ ...batchRequest, resources: { gpuCount: 4, gpuMemoryBytes: 40 * GIB, cpuCores: 0, memoryBytes: 0 } }, CTX).spec;
    expect(asked).toMatchObject({ gpuCount: 4, gpuMemoryBytes: 40 * GIB });
  });

  it('estimates memory for a batch job that names a model, for one full context window', () => {
    const { spec } = parseSubmission({ ...batchRequest, model: 'glm-4-9b' }, CTX);
    expect(spec.model).toBe('glm-4-9b');
    expect(spec.gpuCount).toBe(1);
    expect(spec.gpuMemoryBytes).toBe(estimateGpuMemory(model('glm-4-9b'), 8192, 1));
    expect(parseSubmission({ ...batchRequest, model: 'glm-4.5-air' }, CTX).spec.gpuCount).toBe(4);
  });

  it('makes a job without GPUs of gpu_count 0: a core and 1 GiB unless it asks for more', () => {
    const none = { gpuCount: 0, gpuMemoryBytes: 0, cpuCores: 0, memoryBytes: 0 };
    expect(parseSubmission({ ...batchRequest, resources: none }, CTX).spec).toMatchObject({ gpuCount: 0, gpuMemoryBytes: 0, cpuMillis: 1000, memoryBytes: GIB });
    const asked = parseSubmission({ ...batchRequest, resources: { ...none, cpuCores: 2.5, memoryBytes: 3 * GIB } }, CTX).spec;
    expect(asked).toMatchObject({ gpuCount: 0, cpuMillis: 2500, memoryBytes: 3 * GIB });
    // A GPU job may ask for host cores too; it gets none by default.
    expect(parseSubmission({ ...batchRequest, resources: { ...none, gpuCount: 2, cpuCores: 8 } }, CTX).spec).toMatchObject({ gpuCount: 2, cpuMillis: 8000, memoryBytes: 0 });
  });

  it('bounds the command and environment a job carries, naming the field', () => {
    const withBatch = (batch: { command?: string[]; env?: Record<string, string> }) =>
      parseSubmission({ ...batchRequest, payload: { $case: 'batch', batch: { command: ['run'], env: {}, expectedDuration: undefined, timeLimit: undefined, ...batch } } }, CTX);
    expect(rejection(() => withBatch({ command: Array.from({ length: 4097 }, () => 'x') })).message).toBe('batch.command: has 4097 arguments; at most 4096');
    expect(rejection(() => withBatch({ command: ['x'.repeat(300_000)] })).message).toMatch(/^batch\.command: is 300001 bytes; at most 262144/);
    expect(rejection(() => withBatch({ command: ['a\0b'] })).message).toBe('batch.command[0]: contains a NUL character');
    expect(rejection(() => withBatch({ env: Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`V${i}`, '1'])) })).message).toBe('batch.env: has 257 variables; at most 256');
    expect(rejection(() => withBatch({ env: { BIG: 'x'.repeat(70_000) } })).message).toMatch(/^batch\.env: is 70005 bytes; at most 65536/);
    expect(rejection(() => withBatch({ env: { 'NOT A NAME': '1' } })).field).toBe('batch.env["NOT A NAME"]');
    expect(withBatch({ command: ['python', 'train.py'], env: { SEED: '1', _X2: 'y' } }).spec.payload).toMatchObject({ batch: { env: { SEED: '1', _X2: 'y' } } });
    // What would change which program runs, or what it loads, is refused; the agent's own variables too.
    for (const name of ['PATH', 'LD_PRELOAD', 'LD_AUDIT', 'NODE_OPTIONS', 'BASH_ENV', 'DYLD_INSERT_LIBRARIES', 'PYTHONSTARTUP']) {
      expect(rejection(() => withBatch({ env: { [name]: '/tmp/evil' } })).message).toBe(`batch.env["${name}"]: may not be set by a job: it changes which program runs or what it loads`);
    }
    expect(rejection(() => withBatch({ env: { CUDA_VISIBLE_DEVICES: '0,1' } })).message).toMatch(/is set by the agent/);
    expect(rejection(() => withBatch({ env: { AUTOGLM_TOKEN: 'x' } })).message).toMatch(/is set by the agent/);
    // The simulator's test knob stays open.
    expect(withBatch({ env: { AUTOGLM_SIM_FAIL: 'retryable' } }).spec.payload).toMatchObject({ batch: { env: { AUTOGLM_SIM_FAIL: 'retryable' } } });
  });

  it('takes a time limit, and derives one from the expected duration when there is none', () => {
    const limitOf = (batch: { expectedDuration?: { seconds: number; nanos: number }; timeLimit?: { seconds: number; nanos: number } }) => {
      const { spec } = parseSubmission({ ...batchRequest, payload: { $case: 'batch', batch: { command: ['run'], env: {}, expectedDuration: undefined, timeLimit: undefined, ...batch } } }, CTX);
      return jobTimeLimitMs(spec.payload?.$case === 'batch' ? spec.payload.batch : (undefined as never));
    };
    expect(limitOf({ timeLimit: { seconds: 90, nanos: 0 } })).toBe(90_000);
    expect(limitOf({ expectedDuration: { seconds: 600, nanos: 0 } })).toBe(1_260_000);
    expect(limitOf({})).toBeUndefined();
    expect(rejection(() => limitOf({ timeLimit: { seconds: -1, nanos: 0 } })).field).toBe('batch.time_limit');
    expect(rejection(() => limitOf({ timeLimit: { seconds: 40 * 86400, nanos: 0 } })).message).toMatch(/over the limit of 30 days/);
  });

  it('refuses resource requests that make no sense, naming the field', () => {
    const none = { gpuCount: 0, gpuMemoryBytes: 0, cpuCores: 0, memoryBytes: 0 };
    expect(rejection(() => parseSubmission({ ...batchRequest, resources: { ...none, gpuMemoryBytes: GIB } }, CTX)).message).toBe(
      'resources.gpu_memory_bytes: is set for a job with gpu_count 0 (no GPUs); leave it 0, or ask for GPUs',
    );
    expect(rejection(() => parseSubmission({ ...batchRequest, resources: { ...none, cpuCores: -1 } }, CTX)).field).toBe('resources.cpu_cores');
    expect(rejection(() => parseSubmission({ ...batchRequest, resources: { ...none, cpuCores: 0.0001 } }, CTX)).message).toMatch(/less than a thousandth of a core/);
    expect(rejection(() => parseSubmission(withRequest({ resources: none }), CTX)).message).toMatch(/^resources\.gpu_count: is 0, but inference runs in a model replica on GPUs/);
    expect(rejection(() => parseSubmission(withRequest({ resources: { ...none, gpuCount: 1, cpuCores: 2 } }), CTX)).field).toBe('resources.cpu_cores');
  });

  it("accepts a model an agent's server lists, with its context window and no memory estimate", () => {
    const ctx = { ...CTX, served: (name: string) => (name === 'my-finetune' ? { contextLength: 4096 } : undefined) };
    const { spec } = parseSubmission({ ...inferenceRequest, model: 'my-finetune' }, ctx);
    expect(spec).toMatchObject({ model: 'my-finetune', gpuCount: 1, gpuMemoryBytes: 0, maxOutputTokens: 1024 });
    const long = withRequest({ model: 'my-finetune', payload: { $case: 'inference', inference: { prompt: 'Hi', messages: [], params: { maxTokens: 5000, temperature: 0, topP: 0, stop: [] } } } });
    expect(rejection(() => parseSubmission(long, ctx)).message).toMatch(/over the 4096-token context of "my-finetune"/);
  });

  it('rejects an unknown model on a batch job too', () => {
    expect(rejection(() => parseSubmission({ ...batchRequest, model: 'gpt-5' }, CTX)).message).toMatch(/^model: "gpt-5" is not in the catalog and no connected agent serves it; known: /);
  });

  it('rejects a bad expected duration, naming it', () => {
    const request = (seconds: number, nanos: number): SubmitTaskRequest => ({
      ...batchRequest,
      payload: { $case: 'batch', batch: { command: [], env: {}, expectedDuration: { seconds, nanos }, timeLimit: undefined } },
    });
    expect(rejection(() => parseSubmission(request(-1, 0), CTX)).field).toBe('batch.expected_duration');
    expect(rejection(() => parseSubmission(request(8 * 86_400, 0), CTX)).message).toMatch(/over the limit of 7 days/);
    expect(rejection(() => parseSubmission(request(5, -3), CTX)).message).toMatch(/malformed/);
  });
});

describe('parseSubmission: common fields', () => {
  it('rejects a missing or malformed tenant and an over-long request id', () => {
    expect(rejection(() => parseSubmission(withRequest({ tenant: '' }), CTX)).field).toBe('tenant');
    expect(rejection(() => parseSubmission(withRequest({ tenant: 'a/b' }), CTX)).field).toBe('tenant');
    expect(rejection(() => parseSubmission(withRequest({ requestId: 'x'.repeat(129) }), CTX)).field).toBe('request_id');
    expect(rejection(() => parseSubmission(withRequest({ requestId: 'schedule:x:1' }), CTX)).message).toMatch(/^request_id: must not start with "schedule:"/);
  });

  it('rejects a request without a payload', () => {
    expect(rejection(() => parseSubmission(withRequest({ payload: undefined }), CTX)).message).toMatch(/^payload: required/);
  });

  it('rejects an unknown priority class, listing the known ones', () => {
    const error = rejection(() => parseSubmission(withRequest({ priorityClass: 9 as PriorityClass }), CTX));
    expect(error.message).toMatch(/^priority_class: 9 is not a known value; known: .*PRIORITY_CLASS_URGENT \(1\)/);
  });

  it('refuses an unmeetable deadline up front only when asked to, and only with a deadline', () => {
    const deadline = { seconds: NOW_SECONDS + 60, nanos: 0 };
    expect(parseSubmission(withRequest({ deadline, deadlinePolicy: DeadlinePolicy.REFUSE_UNMEETABLE }), CTX).spec.deadlinePolicy).toBe(DeadlinePolicy.REFUSE_UNMEETABLE);
    const missing = rejection(() => parseSubmission(withRequest({ deadlinePolicy: DeadlinePolicy.REFUSE_UNMEETABLE }), CTX));
    expect(missing.field).toBe('deadline_policy');
    expect(missing.message).toMatch(/needs a deadline/);
    expect(rejection(() => parseSubmission(withRequest({ deadline, deadlinePolicy: 7 as DeadlinePolicy }), CTX)).message).toMatch(/deadline_policy: 7 is not a known value/);
  });

  it('checks priority, deadline, dependencies, retries and labels', () => {
    expect(rejection(() => parseSubmission(withRequest({ priority: 5000 }), CTX)).field).toBe('priority');
    expect(rejection(() => parseSubmission(withRequest({ deadline: { seconds: NOW_SECONDS - 10, nanos: 0 } }), CTX)).message).toMatch(/not in the future/);
    expect(rejection(() => parseSubmission(withRequest({ deadline: { seconds: NOW_SECONDS + 10, nanos: 2e9 } }), CTX)).field).toBe('deadline');
    expect(rejection(() => parseSubmission(withRequest({ dependsOn: [UUID_A, UUID_A, 'x'] }), CTX)).field).toBe('depends_on[1]');
    expect(rejection(() => parseSubmission(withRequest({ dependsOn: [UUID_A, 'not-a-uuid'] }), CTX)).field).toBe('depends_on[1]');
    expect(rejection(() => parseSubmission(withRequest({ maxRetries: 21 }), CTX)).field).toBe('max_retries');
    expect(rejection(() => parseSubmission(withRequest({ labels: { 'no spaces': 'x' } }), CTX)).field).toBe('labels["no spaces"]');
  });

  it('uses the default retries when max_retries is unset, and 3 when the context has none', () => {
    expect(parseSubmission(inferenceRequest, { ...CTX, defaultMaxRetries: 5 }).spec.maxRetries).toBe(5);
    expect(parseSubmission(inferenceRequest, { catalog: DEFAULT_MODEL_CATALOG, now: NOW }).spec.maxRetries).toBe(3);
  });

  it('uses the catalog it is given', () => {
    const tiny = defineModel({
      name: 'tiny-chat',
      family: 'test',
      parameterCount: 1_000_000,
      dtypeBytes: 2,
      layers: 2,
      kvHeads: 1,
      headDim: 8,
      contextLength: 512,
      defaultMaxOutputTokens: 64,
    });
    const ctx = { ...CTX, catalog: new ModelCatalog([tiny]) };
    expect(parseSubmission(withRequest({ model: 'tiny-chat' }), ctx).spec.maxOutputTokens).toBe(64);
    expect(rejection(() => parseSubmission(inferenceRequest, ctx)).message).toBe(
      'model: "glm-4-9b" is not in the catalog and no connected agent serves it; known: tiny-chat (add it to the catalog file, AUTOGLM_MODEL_CATALOG)',
    );
  });
});

describe('parseInferStart', () => {
  const start = InferStart.fromPartial({
    requestId: 'chat-1',
    tenant: 'team-a',
    model: 'glm-4-9b-chat',
    input: { messages: [{ role: 'user', content: 'hi' }], params: { maxTokens: 128 } },
  });

  it('refuses a request id in the schedule: namespace', () => {
    expect(rejection(() => parseInferStart({ ...start, requestId: 'schedule:x:1' }, CTX)).field).toBe('request_id');
  });

  it('makes an interactive, urgent inference spec', () => {
    const { requestId, tenant, spec } = parseInferStart(start, CTX);
    expect(requestId).toBe('chat-1');
    expect(tenant).toBe('team-a');
    expect(spec).toMatchObject({
      kind: TaskKind.INFERENCE,
      model: 'glm-4-9b-chat',
      maxOutputTokens: 128,
      gpuCount: 1,
      priorityClass: PriorityClass.URGENT,
      dependsOn: [],
      preemptible: false,
      maxRetries: 0,
      interactive: true,
    });
    expect(spec.inputTokens).toBeGreaterThan(0);
    expect(spec.payload).toEqual({
      $case: 'inference',
      inference: { prompt: '', messages: [{ role: 'user', content: 'hi' }], params: { maxTokens: 128, temperature: 0, topP: 1, stop: [] } },
    });
  });

  it('keeps a class the client chose', () => {
    expect(parseInferStart({ ...start, priorityClass: PriorityClass.BACKGROUND }, CTX).spec.priorityClass).toBe(PriorityClass.BACKGROUND);
  });

  it('names fields under input', () => {
    expect(rejection(() => parseInferStart({ ...start, input: undefined }, CTX)).field).toBe('input');
    const badRole = { ...start, input: { prompt: '', messages: [{ role: 'bot', content: 'x' }], params: undefined } };
    expect(rejection(() => parseInferStart(badRole, CTX)).field).toBe('input.messages[0].role');
    expect(rejection(() => parseInferStart({ ...start, model: 'glm-9' }, CTX)).message).toMatch(/^model: "glm-9" is not in the catalog/);
    expect(rejection(() => parseInferStart({ ...start, deadline: { seconds: NOW_SECONDS, nanos: 0 } }, CTX)).field).toBe('deadline');
  });
});
