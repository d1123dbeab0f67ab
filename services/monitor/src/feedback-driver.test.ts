import { DEFAULT_BACKLOG_RULES, DEFAULT_FEEDBACK_CONFIG, type SloSpec } from '@autoglm/core';
import { Node, NodeState, PriorityClass, Task, TaskState, type DecisionServiceClient, type Event } from '@autoglm/proto';
import pino from 'pino';
import { Registry } from 'prom-client';
import { FeedbackDriver } from './feedback-driver';
import { FeedbackMetrics } from './feedback-metrics';

const SLO: SloSpec = { name: 'normal-queue', indicator: 'queue_time', tenant: '*', priorityClass: 'normal', thresholdSeconds: 1, objective: 0.9, windowMs: 60_000, minEvents: 1, alertForMs: 0 };

/** Decision as a recorder: every call succeeds and is kept. */
function recordingDecision(calls: Array<{ method: string; request: unknown }>): DecisionServiceClient {
  const method = (name: string) => (request: unknown, ...rest: unknown[]) => {
    calls.push({ method: name, request });
    (rest[rest.length - 1] as (err: null, res: object) => void)(null, {});
    return { cancel: () => undefined };
  };
  return { applyPolicy: method('applyPolicy'), setNodeQuarantine: method('setNodeQuarantine'), reportAlerts: method('reportAlerts') } as unknown as DecisionServiceClient;
}

function taskEvent(sequence: number, state: TaskState, previousState: TaskState, queueSeconds?: number, id = 't1'): Event {
  const task = Task.fromPartial({
    id,
    tenant: 'acme',
    state,
    nodeId: 'n1',
    spec: { model: 'chat', interactive: true, priorityClass: PriorityClass.NORMAL, inputTokens: 100, maxOutputTokens: 50 },
    result: queueSeconds === undefined ? undefined : { queueTime: { seconds: queueSeconds, nanos: 0 } },
  });
  return { kind: { $case: 'task', task: { taskId: id, sequence, state, previousState, time: undefined, reason: '', task, final: state === TaskState.SUCCEEDED } } };
}

const NODE: Event = { kind: { $case: 'node', node: Node.fromPartial({ nodeId: 'n1', state: NodeState.READY, gpus: Array.from({ length: 8 }, (_, index) => ({ index, memoryTotalBytes: 80 * 2 ** 30 })) }) } };

describe('FeedbackDriver', () => {
  let now = 1_000_000;
  const options = (calls: Array<{ method: string; request: unknown }>, enabled = true) => ({
    decision: recordingDecision(calls),
    config: { ...DEFAULT_FEEDBACK_CONFIG, enabled },
    slos: [SLO],
    backlogRules: DEFAULT_BACKLOG_RULES,
    evaluateEveryMs: 10_000,
    forecastIntervalMs: 10_000,
    sequencesPerReplica: 256,
    metrics: new FeedbackMetrics(new Registry(), [SLO]),
    logger: pino({ level: 'silent' }),
    clock: () => now,
  });
  const make = (enabled: boolean, calls: Array<{ method: string; request: unknown }>) => new FeedbackDriver(options(calls, enabled));

  it('counts a task as one arrival however often it is retried, and judges each wait, placed or still queued', async () => {
    const calls: Array<{ method: string; request: unknown }> = [];
    const driver = make(true, calls);
    driver.observe(taskEvent(1, TaskState.QUEUED, TaskState.UNSPECIFIED));
    driver.observe(taskEvent(2, TaskState.ASSIGNED, TaskState.QUEUED));
    driver.observe(taskEvent(3, TaskState.FAILED, TaskState.ASSIGNED));
    driver.observe(taskEvent(4, TaskState.QUEUED, TaskState.FAILED));
    now += 3000;
    driver.observe(taskEvent(5, TaskState.ASSIGNED, TaskState.QUEUED));
    driver.observe(taskEvent(6, TaskState.SUCCEEDED, TaskState.ASSIGNED, 3));
    // Another task that is never placed.
    driver.observe(taskEvent(1, TaskState.QUEUED, TaskState.UNSPECIFIED, undefined, 't2'));
    now += 10_000;
    const result = await driver.evaluate();
    // Two arrivals (t1 once, however often retried) in the closed 10 s interval: 0.2 a second.
    expect(driver.loop.tenantForecaster.forecast('acme', now, 10_000)?.observedRatePerSecond).toBeCloseTo(0.2);
    // The success SLO is not configured; the queue-time one judged t1's two waits (0 s, 3 s against 1 s) and t2's, still open after 10 s.
    expect(result.slos).toEqual([expect.objectContaining({ slo: 'normal-queue', tenant: 'acme', good: 1, total: 3, met: false })]);
    // The alert went to decision's event stream.
    expect(calls.filter((c) => c.method === 'reportAlerts')).toHaveLength(1);
  });

  it('after a resync, holds only what the snapshot says: waits of tasks gone meanwhile are dropped, and a snapshot is no arrival', async () => {
    const driver = make(true, []);
    driver.observe(taskEvent(1, TaskState.QUEUED, TaskState.UNSPECIFIED, undefined, 'gone'));
    // The stream broke; 'gone' was placed and finished unseen. The new subscription's snapshot has only 'still'.
    driver.resync();
    driver.observe(taskEvent(2, TaskState.QUEUED, TaskState.QUEUED, undefined, 'still'));
    now += 10_000;
    const result = await driver.evaluate();
    expect(result.slos).toEqual([expect.objectContaining({ slo: 'normal-queue', tenant: 'acme', good: 0, total: 1 })]);
    expect(driver.loop.tenantForecaster.forecast('acme', now, 10_000)?.observedRatePerSecond).toBeCloseTo(0.1);
  });

  it('judges a deadline when the task ends, as decision does: a task that fails for good or is cancelled after its deadline missed it', async () => {
    const DEADLINES: SloSpec = { name: 'deadlines', indicator: 'deadline', tenant: '*', priorityClass: '*', thresholdSeconds: 0, objective: 0.95, windowMs: 60_000, minEvents: 1, alertForMs: 0 };
    const driver = new FeedbackDriver({ ...options([]), slos: [DEADLINES], metrics: new FeedbackMetrics(new Registry(), [DEADLINES]) });
    const deadline = { seconds: Math.floor(now / 1000) - 60, nanos: 0 };
    const ending = (id: string, sequence: number, state: TaskState, previousState: TaskState, final: boolean): Event => {
      const task = Task.fromPartial({ id, tenant: 'acme', state, nodeId: 'n1', finishedAt: final ? { seconds: Math.floor(now / 1000), nanos: 0 } : undefined, spec: { model: 'chat', priorityClass: PriorityClass.NORMAL, deadline } });
      return { kind: { $case: 'task', task: { taskId: id, sequence, state, previousState, time: undefined, reason: '', task, final } } };
    };
    // Out of retries: its last attempt FAILED, then it is dead-lettered, after its deadline.
    driver.observe(ending('dead', 1, TaskState.QUEUED, TaskState.UNSPECIFIED, false));
    driver.observe(ending('dead', 2, TaskState.ASSIGNED, TaskState.QUEUED, false));
    driver.observe(ending('dead', 3, TaskState.FAILED, TaskState.ASSIGNED, false));
    driver.observe(ending('dead', 4, TaskState.DEAD_LETTER, TaskState.FAILED, true));
    // Cancelled while queued, after its deadline.
    driver.observe(ending('late', 1, TaskState.QUEUED, TaskState.UNSPECIFIED, false));
    driver.observe(ending('late', 2, TaskState.CANCELLED, TaskState.QUEUED, true));
    now += 10_000;
    const result = await driver.evaluate();
    expect(result.slos).toEqual([expect.objectContaining({ slo: 'deadlines', tenant: 'acme', good: 0, total: 2 })]);
  });

  it("sends the loop's whole state again after a send that failed, and not again while nothing changed and it holds none", async () => {
    const calls: Array<{ method: string; request: unknown }> = [];
    let failNext = true;
    const decision = {
      applyPolicy: (request: unknown, ...rest: unknown[]) => {
        calls.push({ method: 'applyPolicy', request });
        const done = rest[rest.length - 1] as (err: Error | null, res?: object) => void;
        if (failNext) {
          failNext = false;
          done(Object.assign(new Error('decision restarting'), { code: 14 }));
        } else done(null, {});
        return { cancel: () => undefined };
      },
      setNodeQuarantine: recordingDecision(calls).setNodeQuarantine,
      reportAlerts: recordingDecision(calls).reportAlerts,
    } as unknown as DecisionServiceClient;
    const driver = new FeedbackDriver({ ...options(calls), decision });
    const sends = () => calls.filter((c) => c.method === 'applyPolicy').length;
    await driver.evaluate();
    expect(sends()).toBe(1);
    now += 10_000;
    await driver.evaluate();
    expect(sends()).toBe(2);
    expect(calls.at(-1)?.request).toMatchObject({ update: { source: 'monitor', tenantBoosts: {}, warmReplicas: {} } });
    now += 10_000;
    await driver.evaluate();
    expect(sends()).toBe(2);
  });

  it('switched off, records what it would do and sends no change to decision (alerts still go out)', async () => {
    const calls: Array<{ method: string; request: unknown }> = [];
    const driver = make(false, calls);
    // A fleet of one 8-GPU node, and thirty requests for a model in ten seconds: the loop would keep a replica warm.
    driver.observe(NODE);
    for (let i = 0; i < 30; i++) driver.observe(taskEvent(1, TaskState.QUEUED, TaskState.UNSPECIFIED, undefined, `t${i}`));
    now += 10_000;
    await driver.evaluate();
    expect(driver.recentActions()).toEqual([expect.objectContaining({ kind: 'warm-replicas', target: 'chat', from: 0, to: 1, applied: false })]);
    expect(calls.filter((c) => c.method !== 'reportAlerts')).toEqual([]);
    // On, the same change is sent as one ApplyPolicy from "monitor" with its reason.
    const sent: Array<{ method: string; request: unknown }> = [];
    const on = make(true, sent);
    on.observe(NODE);
    for (let i = 0; i < 30; i++) on.observe(taskEvent(1, TaskState.QUEUED, TaskState.UNSPECIFIED, undefined, `t${i}`));
    now += 10_000;
    await on.evaluate();
    expect(sent.find((c) => c.method === 'applyPolicy')?.request).toMatchObject({ update: { warmReplicas: { chat: 1 }, source: 'monitor', reason: expect.stringContaining('chat warm replicas 0 → 1') } });
  });
});
