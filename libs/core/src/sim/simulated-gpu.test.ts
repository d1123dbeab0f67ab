import { decodeStepSeconds, prefillSeconds } from './latency-model';
import { ManualScheduler } from './scheduler';
import { type JobOutcome, type SequenceOutcome, type SimModel, SimOutOfMemoryError, SimulatedGpu } from './simulated-gpu';

const GLM: SimModel = { name: 'glm-4-9b', weightBytes: 10_000, kvBytesPerToken: 10 };
const QWEN: SimModel = { name: 'qwen-7b', weightBytes: 8_000, kvBytesPerToken: 10 };

interface Trace {
  text: string;
  tokenTimes: number[];
  startedAt: number | undefined;
  firstTokenAt: number | undefined;
  outcome: SequenceOutcome | undefined;
}

function setup(options: { memoryBytes?: number; timeScale?: number; maxBatch?: number; maxPrefillTokens?: number } = {}) {
  const scheduler = new ManualScheduler();
  const gpu = new SimulatedGpu({
    index: 0,
    name: 'Simulated H100 80GB',
    memoryBytes: options.memoryBytes ?? 1_000_000,
    scheduler,
    ...(options.timeScale === undefined ? {} : { timeScale: options.timeScale }),
    ...(options.maxBatch === undefined ? {} : { maxBatch: options.maxBatch }),
    ...(options.maxPrefillTokens === undefined ? {} : { maxPrefillTokens: options.maxPrefillTokens }),
  });
  const submit = (id: string, promptTokens: number, maxTokens: number, model: SimModel = GLM): Trace => {
    const trace: Trace = { text: '', tokenTimes: [], startedAt: undefined, firstTokenAt: undefined, outcome: undefined };
    gpu.submit({
      id,
      model,
      promptTokens,
      maxTokens,
      onStart: () => {
        trace.startedAt = scheduler.now();
      },
      onFirstToken: () => {
        trace.firstTokenAt = scheduler.now();
      },
      onTokens: (text, count) => {
        expect(count).toBe(1);
        trace.text += text;
        trace.tokenTimes.push(scheduler.now());
      },
      onDone: (outcome) => {
        expect(trace.outcome).toBeUndefined();
        trace.outcome = outcome;
      },
    });
    return trace;
  };
  return { scheduler, gpu, submit };
}

/** Wall milliseconds of the step sequence one lone sequence goes through. */
function loneSequenceTokenTimes(promptTokens: number, maxTokens: number, timeScale = 1): number[] {
  const times: number[] = [];
  let t = (prefillSeconds(promptTokens) * 1000) / timeScale;
  times.push(t);
  for (let generated = 1; generated < maxTokens; generated++) {
    t += (decodeStepSeconds(1, promptTokens + generated) * 1000) / timeScale;
    times.push(t);
  }
  return times;
}

describe('SimulatedGpu inference', () => {
  it('ends a sequence that "emits EOS" early with finish reason stop, its KV budget reserved all the same, and counts its engine time as busy', () => {
    const scheduler = new ManualScheduler();
    // Room for one sequence's whole budget (100 + 50 tokens) beside the weights, not two.
    const gpu = new SimulatedGpu({ index: 0, name: 'g', memoryBytes: GLM.weightBytes + 150 * GLM.kvBytesPerToken, scheduler });
    const outcomes: SequenceOutcome[] = [];
    const start = (id: string) =>
      gpu.submit({ id, model: GLM, promptTokens: 100, maxTokens: 50, stopAfterTokens: 5, onTokens: () => undefined, onDone: (o) => outcomes.push(o) });
    start('a');
    start('b');
    scheduler.runUntilIdle();
    expect(outcomes.map((o) => [o.finishReason, o.completionTokens])).toEqual([
      ['stop', 5],
      ['stop', 5],
    ]);
    // The second waited for the first's whole budget to free: it started after the first ended.
    expect(outcomes[1]!.queueTimeMs).toBeGreaterThanOrEqual(outcomes[0]!.totalTimeMs);
    const lone = loneSequenceTokenTimes(100, 5);
    expect(gpu.busyMs()).toBeCloseTo(2 * lone[lone.length - 1]!, 6);
  });

  it('times a lone sequence as one prefill then one decode step per further token', () => {
    const { scheduler, submit } = setup();
    const trace = submit('a', 1000, 4);
    scheduler.runUntilIdle();

    const expected = loneSequenceTokenTimes(1000, 4);
    expect(trace.tokenTimes).toHaveLength(4);
    trace.tokenTimes.forEach((t, i) => expect(t).toBeCloseTo(expected[i] as number, 9));
    expect(trace.tokenTimes[0]).toBeCloseTo(87.39, 9); // 0.01969 + 6.77e-5 * 1000 seconds
    expect(trace.startedAt).toBe(0);
    expect(trace.outcome).toEqual({
      finishReason: 'length',
      promptTokens: 1000,
      completionTokens: 4,
      queueTimeMs: 0,
      timeToFirstTokenMs: expected[0],
      totalTimeMs: expected[3],
    });
  });

  it('catches up when timers fire late, so steps keep their ideal times', () => {
    // Real timers fire late (setTimeout has a floor of about 1 ms); this one is always 30 ms late.
    const inner = new ManualScheduler();
    const late = { now: () => inner.now(), setTimer: (ms: number, fn: () => void) => inner.setTimer(ms + 30, fn) };
    const gpu = new SimulatedGpu({ index: 0, name: 'gpu', memoryBytes: 1_000_000, scheduler: late });
    let outcome: SequenceOutcome | undefined;
    let doneAt = NaN;
    gpu.submit({
      id: 'a',
      model: GLM,
      promptTokens: 10,
      maxTokens: 200,
      onTokens: () => undefined,
      onDone: (o) => {
        outcome = o;
        doneAt = inner.now();
      },
    });
    inner.runUntilIdle();

    const ideal = loneSequenceTokenTimes(10, 200).at(-1) ?? NaN;
    expect(outcome?.completionTokens).toBe(200);
    expect(outcome?.totalTimeMs).toBeCloseTo(ideal + 30, 6); // only the kick's lateness remains
    expect(doneAt - ideal).toBeLessThan(5 * 30); // not 200 × 30 ms of accumulated lag
  });

  it('divides wall time by the time scale', () => {
    const slow = setup();
    const fast = setup({ timeScale: 10 });
    const a = slow.submit('same', 500, 20);
    const b = fast.submit('same', 500, 20);
    slow.scheduler.runUntilIdle();
    fast.scheduler.runUntilIdle();

    expect(b.tokenTimes).toHaveLength(20);
    b.tokenTimes.forEach((t, i) => expect(t).toBeCloseTo((a.tokenTimes[i] as number) / 10, 9));
    expect(b.outcome?.totalTimeMs).toBeCloseTo((a.outcome?.totalTimeMs ?? NaN) / 10, 9);
    expect(b.text).toBe(a.text);
  });

  it('produces exactly maxTokens tokens of reproducible text', () => {
    const { scheduler, submit } = setup();
    const a = submit('req-1', 10, 50);
    const b = submit('req-2', 10, 50);
    scheduler.runUntilIdle();
    const again = setup();
    const a2 = again.submit('req-1', 10, 50);
    again.scheduler.runUntilIdle();

    expect(a.outcome?.completionTokens).toBe(50);
    expect(a.tokenTimes).toHaveLength(50);
    expect(a.text.split(' ')).toHaveLength(50);
    expect(a2.text).toBe(a.text);
    expect(b.text).not.toBe(a.text);
  });

  it('finishes a zero-token request on the next tick without touching the GPU', () => {
    const { scheduler, gpu, submit } = setup();
    const trace = submit('empty', 100, 0);
    expect(trace.outcome).toBeUndefined();
    scheduler.advance(0);
    expect(trace.outcome).toEqual({
      finishReason: 'length',
      promptTokens: 100,
      completionTokens: 0,
      queueTimeMs: 0,
      timeToFirstTokenMs: 0,
      totalTimeMs: 0,
    });
    expect(trace.startedAt).toBeUndefined();
    expect(gpu.residentModels()).toEqual([]);
    expect(scheduler.pendingTimers).toBe(0);
  });

  it('holds weights plus KV for held tokens while running, and returns to weights only after', () => {
    const { scheduler, gpu, submit } = setup();
    expect(gpu.status().memoryUsedBytes).toBe(0);
    const trace = submit('a', 100, 10);
    scheduler.advance(0); // the engine starts on the next tick
    expect(gpu.status().memoryUsedBytes).toBe(GLM.weightBytes + 100 * GLM.kvBytesPerToken);
    scheduler.advanceTo(scheduler.nextTimerAt() ?? NaN); // prefill
    scheduler.advanceTo(scheduler.nextTimerAt() ?? NaN); // first decode step
    expect(trace.tokenTimes).toHaveLength(2);
    expect(gpu.status().memoryUsedBytes).toBe(GLM.weightBytes + 102 * GLM.kvBytesPerToken);
    expect(gpu.memory().kvReservedBytes).toBe(110 * GLM.kvBytesPerToken);
    expect(gpu.status().utilization).toBeGreaterThan(0);

    scheduler.runUntilIdle();
    expect(trace.outcome?.finishReason).toBe('length');
    expect(gpu.status().memoryUsedBytes).toBe(GLM.weightBytes);
    expect(gpu.status().utilization).toBe(0);
    expect(gpu.load()).toEqual({ numRequestsRunning: 0, numRequestsWaiting: 0, kvCacheUsagePerc: 0 });
    expect(gpu.residentModels()).toEqual(['glm-4-9b']);
  });

  it('frees memory at once on cancel and sends no further tokens', () => {
    const { scheduler, gpu, submit } = setup();
    const trace = submit('a', 100, 1000);
    scheduler.advance(200);
    const tokensBefore = trace.tokenTimes.length;
    expect(tokensBefore).toBeGreaterThan(1);

    expect(gpu.cancel('a')).toBe(true);
    expect(trace.outcome).toMatchObject({ finishReason: 'cancelled', completionTokens: tokensBefore, totalTimeMs: 200 });
    expect(gpu.status().memoryUsedBytes).toBe(GLM.weightBytes);
    expect(gpu.load().numRequestsRunning).toBe(0);
    expect(gpu.cancel('a')).toBe(false);

    scheduler.runUntilIdle();
    expect(trace.tokenTimes).toHaveLength(tokensBefore);
  });

  it('cancels a waiting sequence before it is ever admitted', () => {
    const { scheduler, gpu, submit } = setup();
    const trace = submit('a', 10, 10);
    gpu.cancel('a');
    scheduler.runUntilIdle();
    expect(trace.outcome).toMatchObject({ finishReason: 'cancelled', completionTokens: 0, timeToFirstTokenMs: 0 });
    expect(trace.startedAt).toBeUndefined();
  });

  it('batches concurrent sequences: one prefill for all newcomers, then each decode step serves all', () => {
    const { scheduler, gpu, submit } = setup();
    const traces = Array.from({ length: 100 }, (_, i) => submit(`s${i}`, 10, 5));
    scheduler.advance(0);
    expect(gpu.load().numRequestsRunning).toBe(100);

    scheduler.runUntilIdle();
    let t = prefillSeconds(100 * 10) * 1000;
    const expected = [t];
    for (let generated = 1; generated < 5; generated++) {
      t += decodeStepSeconds(100, 100 * (10 + generated)) * 1000;
      expected.push(t);
    }
    for (const trace of traces) {
      expect(trace.outcome?.completionTokens).toBe(5);
      trace.tokenTimes.forEach((time, i) => expect(time).toBeCloseTo(expected[i] as number, 9));
    }
    // 100 sequences in 5 steps take far less than 100 lone sequences would.
    expect(t).toBeLessThan(2 * (loneSequenceTokenTimes(10, 5).at(-1) ?? NaN));
  });

  it('prefills a newcomer at the next step boundary, pausing decode for that step', () => {
    const { scheduler, submit } = setup();
    const first = submit('first', 10, 10);
    scheduler.advance(50); // inside the first decode step (40 ms prefill, ~14 ms per decode)
    const second = submit('second', 2000, 3);
    scheduler.runUntilIdle();

    const boundary = first.tokenTimes[1] as number;
    expect(second.startedAt).toBeCloseTo(boundary, 9);
    expect(second.firstTokenAt).toBeCloseTo(boundary + prefillSeconds(2000) * 1000, 9);
    // The first sequence's next token comes only after the newcomer's prefill and one joint decode step.
    expect(first.tokenTimes[2]).toBeCloseTo(
      boundary + prefillSeconds(2000) * 1000 + decodeStepSeconds(2, 10 + 2 + 2000 + 1) * 1000,
      9,
    );
    expect(first.outcome?.completionTokens).toBe(10);
    expect(second.outcome?.completionTokens).toBe(3);
  });

  it('keeps a sequence waiting while the KV cache is full and admits it when memory frees', () => {
    // Weights plus room for exactly two sequences of 100 + 100 tokens.
    const { scheduler, gpu, submit } = setup({ memoryBytes: GLM.weightBytes + 2 * 200 * GLM.kvBytesPerToken });
    const a = submit('a', 100, 100);
    const b = submit('b', 100, 100);
    const c = submit('c', 100, 100);
    scheduler.advance(0);
    expect(gpu.load()).toEqual({ numRequestsRunning: 2, numRequestsWaiting: 1, kvCacheUsagePerc: 1 });
    expect(c.startedAt).toBeUndefined();

    scheduler.runUntilIdle();
    const freedAt = a.outcome?.totalTimeMs ?? NaN;
    expect(b.outcome?.totalTimeMs).toBe(freedAt);
    expect(c.startedAt).toBeCloseTo(freedAt, 9);
    expect(c.outcome).toMatchObject({ finishReason: 'length', completionTokens: 100 });
    expect(c.outcome?.queueTimeMs).toBeCloseTo(freedAt, 9);
    expect(gpu.status().memoryUsedBytes).toBe(GLM.weightBytes);
  });

  it('spreads a burst of long prompts over several prefill steps', () => {
    const { scheduler, submit } = setup({ maxPrefillTokens: 8192 });
    const traces = [submit('a', 5000, 2), submit('b', 5000, 2), submit('c', 20_000, 2)];
    scheduler.runUntilIdle();
    const [a, b, c] = traces.map((t) => t.firstTokenAt ?? NaN) as [number, number, number];
    expect(a).toBeCloseTo(prefillSeconds(5000) * 1000, 9); // alone: b would pass the budget
    expect(b).toBeCloseTo(a + prefillSeconds(5000) * 1000, 9);
    expect(c).toBeCloseTo(b + prefillSeconds(20_000) * 1000, 9); // over the budget, but alone it must go
  });

  it('caps the running batch at maxBatch', () => {
    const { scheduler, gpu, submit } = setup({ maxBatch: 4 });
    for (let i = 0; i < 10; i++) submit(`s${i}`, 10, 3);
    scheduler.advance(0);
    expect(gpu.load()).toMatchObject({ numRequestsRunning: 4, numRequestsWaiting: 6 });
    scheduler.runUntilIdle();
    expect(gpu.load()).toMatchObject({ numRequestsRunning: 0, numRequestsWaiting: 0 });
  });

  it('refuses a request that could never fit on the GPU', () => {
    const { submit } = setup({ memoryBytes: GLM.weightBytes + 100 * GLM.kvBytesPerToken });
    let error: unknown;
    try {
      submit('big', 90, 20);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SimOutOfMemoryError);
    expect((error as SimOutOfMemoryError).couldFitLater).toBe(false);
  });

  it('switches models by evicting the idle one when both do not fit', () => {
    const { scheduler, gpu, submit } = setup({ memoryBytes: 12_000 });
    const a = submit('a', 10, 5, GLM);
    const b = submit('b', 10, 5, QWEN);
    scheduler.advance(0);
    expect(gpu.residentModels()).toEqual(['glm-4-9b']);
    expect(gpu.load().numRequestsWaiting).toBe(1);

    scheduler.runUntilIdle();
    expect(b.startedAt).toBeCloseTo(a.outcome?.totalTimeMs ?? NaN, 9);
    expect(gpu.residentModels()).toEqual(['qwen-7b']);
    expect(gpu.status().memoryUsedBytes).toBe(QWEN.weightBytes);
  });

  it('keeps several models resident when they fit', () => {
    const { scheduler, gpu, submit } = setup();
    submit('a', 10, 2, GLM);
    submit('b', 10, 2, QWEN);
    scheduler.runUntilIdle();
    expect(gpu.residentModels().sort()).toEqual(['glm-4-9b', 'qwen-7b']);
    expect(gpu.status().memoryUsedBytes).toBe(GLM.weightBytes + QWEN.weightBytes);
  });

  it('reports utilisation, temperature and power rising with the batch', () => {
    const one = setup();
    one.submit('a', 10, 100);
    one.scheduler.advance(0);
    const many = setup();
    for (let i = 0; i < 64; i++) many.submit(`s${i}`, 10, 100);
    many.scheduler.advance(0);

    const idle = setup().gpu.status();
    const low = one.gpu.status();
    const high = many.gpu.status();
    expect(idle).toMatchObject({ utilization: 0, temperatureC: 30, powerWatts: 70 });
    expect(low.utilization).toBeGreaterThan(0);
    expect(high.utilization).toBeGreaterThan(low.utilization);
    expect(high.utilization).toBeLessThan(1);
    expect(high.temperatureC).toBeGreaterThan(low.temperatureC);
    expect(high.powerWatts).toBeGreaterThan(low.powerWatts);
  });
});

describe('SimulatedGpu batch jobs', () => {
  function job(gpu: SimulatedGpu, id: string, memoryBytes: number, durationMs: number) {
    const done: JobOutcome[] = [];
    gpu.runJob({ id, memoryBytes, durationMs, onDone: (o) => done.push(o) });
    return done;
  }

  it('holds the GPU at full utilisation for duration / timeScale', () => {
    const { scheduler, gpu } = setup({ timeScale: 10 });
    const done = job(gpu, 'train', 50_000, 1000);
    expect(gpu.status()).toMatchObject({ utilization: 1, memoryUsedBytes: 50_000 });
    scheduler.advance(99);
    expect(done).toEqual([]);
    scheduler.advance(1);
    expect(done).toEqual([{ status: 'completed', runTimeMs: 100 }]);
    expect(gpu.status()).toMatchObject({ utilization: 0, memoryUsedBytes: 0 });
  });

  it('finishes a zero-length job on the next tick', () => {
    const { scheduler, gpu } = setup();
    const done = job(gpu, 'noop', 0, 0);
    expect(done).toEqual([]);
    scheduler.advance(0);
    expect(done).toEqual([{ status: 'completed', runTimeMs: 0 }]);
  });

  it('cancels a job and frees its memory', () => {
    const { scheduler, gpu } = setup();
    const done = job(gpu, 'train', 50_000, 10_000);
    scheduler.advance(30);
    expect(gpu.cancel('train')).toBe(true);
    expect(done).toEqual([{ status: 'cancelled', runTimeMs: 30 }]);
    expect(gpu.status().memoryUsedBytes).toBe(0);
    expect(scheduler.pendingTimers).toBe(0);
  });

  it('evicts idle weights to fit a job and refuses one that does not fit beside running work', () => {
    const { scheduler, gpu, submit } = setup({ memoryBytes: 20_000 });
    submit('a', 10, 100);
    scheduler.advance(0);
    expect(() => job(gpu, 'big', 12_000, 10)).toThrow(SimOutOfMemoryError);
    gpu.cancel('a');
    expect(gpu.residentModels()).toEqual(['glm-4-9b']);
    job(gpu, 'big', 12_000, 10);
    expect(gpu.residentModels()).toEqual([]);
    expect(gpu.status().memoryUsedBytes).toBe(12_000);
  });

  it('shutdown cancels everything and leaves no timer', () => {
    const { scheduler, gpu, submit } = setup();
    const seq = submit('a', 10, 1000);
    const done = job(gpu, 'train', 1000, 10_000);
    scheduler.advance(100);
    gpu.shutdown();
    expect(seq.outcome?.finishReason).toBe('cancelled');
    expect(done[0]?.status).toBe('cancelled');
    expect(scheduler.pendingTimers).toBe(0);
  });
});
