import {
  Event,
  NodeState,
  PriorityClass,
  Task,
  TaskEvent,
  TaskResult,
  TaskState,
  type Duration,
  type GetSummaryResponse,
  type Timestamp,
} from '@autoglm/proto';
import pino from 'pino';
import { startHttpServer, type MonitorHttpServer } from './http-server';
import { MonitorMetrics } from './metrics';
import { MonitorSummary } from './summary';

const T0 = 1_760_000_000;
const GIB = 1024 ** 3;

function at(offsetMs: number): Timestamp {
  const millis = T0 * 1000 + offsetMs;
  return { seconds: Math.floor(millis / 1000), nanos: (millis % 1000) * 1e6 };
}

function ms(millis: number): Duration {
  return { seconds: Math.floor(millis / 1000), nanos: (millis % 1000) * 1e6 };
}

interface TaskFixture {
  readonly id: string;
  readonly tenant: string;
  readonly priorityClass: PriorityClass;
  readonly model: string;
}

/** Replays a task's life as decision would publish it, one transition per call. */
class TaskLife {
  private sequence = 0;
  private state = TaskState.UNSPECIFIED;

  constructor(private readonly fixture: TaskFixture) {}

  to(state: TaskState, offsetMs: number, result?: Partial<TaskResult>): Event {
    this.sequence += 1;
    const previousState = this.state;
    this.state = state;
    const { id, tenant, priorityClass, model } = this.fixture;
    const task = Task.fromPartial({
      id,
      tenant,
      spec: { model, priorityClass },
      state,
      sequence: this.sequence,
      createdAt: at(0),
      updatedAt: at(offsetMs),
      result: result === undefined ? undefined : TaskResult.fromPartial(result),
    });
    return Event.fromPartial({
      kind: {
        $case: 'task',
        task: TaskEvent.fromPartial({ taskId: id, sequence: this.sequence, state, previousState, time: at(offsetMs), task }),
      },
    });
  }
}

function nodeEvent(nodeId: string, state: NodeState, utilizations: number[], runningTasks: number): Event {
  return Event.fromPartial({
    kind: {
      $case: 'node',
      node: {
        nodeId,
        state,
        runningTasks,
        gpus: utilizations.map((utilization, index) => ({
          index,
          name: 'NVIDIA H100 80GB HBM3',
          utilization,
          memoryUsedBytes: 40 * GIB,
          memoryTotalBytes: 80 * GIB,
        })),
        load: { numRequestsRunning: 12, numRequestsWaiting: 3, kvCacheUsagePerc: 0.42 },
      },
    },
  });
}

/** The value of one series in Prometheus text, or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('monitor HTTP server', () => {
  let metrics: MonitorMetrics;
  let summary: MonitorSummary;
  let server: MonitorHttpServer;
  let base: string;

  const feed = (...events: Event[]): void => {
    for (const event of events) {
      metrics.observe(event);
      summary.observe(event);
    }
  };
  const scrape = async (): Promise<string> => {
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    return res.text();
  };

  beforeEach(async () => {
    metrics = new MonitorMetrics();
    summary = new MonitorSummary({ now: () => T0 * 1000 });
    server = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      metrics,
      summary,
      logger: pino({ level: 'silent' }),
    });
    base = `http://${server.address}`;
  });

  afterEach(async () => {
    await server.close();
  });

  it('binds a free port when asked for port 0', () => {
    expect(server.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(server.address).not.toBe('127.0.0.1:0');
  });

  it('tracks a task through its life and serves the series over /metrics', async () => {
    const chat = new TaskLife({ id: 't-chat', tenant: 'acme', priorityClass: PriorityClass.URGENT, model: 'glm-4-9b' });
    const series = '{tenant="acme",class="urgent"}';

    feed(chat.to(TaskState.PENDING, 0), chat.to(TaskState.QUEUED, 5));
    let text = await scrape();
    expect(sample(text, `autoglm_tasks_pending${series}`)).toBe(1);

    // No queue_time in the result yet: the wait is measured from the QUEUED transition.
    feed(chat.to(TaskState.ASSIGNED, 255));
    text = await scrape();
    expect(sample(text, `autoglm_tasks_pending${series}`)).toBe(0);
    expect(sample(text, `autoglm_tasks_running${series}`)).toBe(1);
    expect(sample(text, 'autoglm_task_queue_wait_seconds_sum{class="urgent"}')).toBeCloseTo(0.25, 9);

    feed(
      chat.to(TaskState.RUNNING, 300),
      chat.to(TaskState.SUCCEEDED, 1800, {
        finishReason: 'stop',
        completionTokens: 128,
        queueTime: ms(250),
        runTime: ms(1500),
        timeToFirstToken: ms(80),
      }),
    );
    text = await scrape();
    expect(sample(text, `autoglm_tasks_pending${series}`)).toBe(0);
    expect(sample(text, `autoglm_tasks_running${series}`)).toBe(0);
    expect(sample(text, 'autoglm_task_outcomes_total{tenant="acme",class="urgent",state="succeeded"}')).toBe(1);
    expect(sample(text, 'autoglm_task_queue_wait_seconds_count{class="urgent"}')).toBe(1);
    expect(sample(text, 'autoglm_task_queue_wait_seconds_bucket{le="0.1",class="urgent"}')).toBe(0);
    expect(sample(text, 'autoglm_task_queue_wait_seconds_bucket{le="0.25",class="urgent"}')).toBe(1);
    const model = '{class="urgent",model="glm-4-9b"}';
    expect(sample(text, `autoglm_task_run_seconds_sum${model}`)).toBe(1.5);
    expect(sample(text, 'autoglm_task_run_seconds_bucket{le="1",class="urgent",model="glm-4-9b"}')).toBe(0);
    expect(sample(text, 'autoglm_task_run_seconds_bucket{le="2.5",class="urgent",model="glm-4-9b"}')).toBe(1);
    expect(sample(text, `autoglm_task_time_to_first_token_seconds_sum${model}`)).toBeCloseTo(0.08, 9);
    expect(sample(text, 'autoglm_task_time_to_first_token_seconds_bucket{le="0.1",class="urgent",model="glm-4-9b"}')).toBe(1);
    expect(sample(text, 'autoglm_events_received_total{kind="task"}')).toBe(5);
  });

  it('counts a cancellation and gives back the pending slot', async () => {
    const batch = new TaskLife({ id: 't-batch', tenant: 'beta', priorityClass: PriorityClass.BACKGROUND, model: '' });
    feed(batch.to(TaskState.PENDING, 0), batch.to(TaskState.QUEUED, 2), batch.to(TaskState.CANCELLED, 9000));

    const text = await scrape();
    expect(sample(text, 'autoglm_tasks_pending{tenant="beta",class="background"}')).toBe(0);
    expect(sample(text, 'autoglm_task_outcomes_total{tenant="beta",class="background",state="cancelled"}')).toBe(1);
    expect(sample(text, 'autoglm_task_outcomes_total{tenant="beta",class="background",state="succeeded"}')).toBeUndefined();
    // Never assigned: no queue-wait sample.
    expect(sample(text, 'autoglm_task_queue_wait_seconds_count{class="background"}')).toBeUndefined();
  });

  it('counts a failed attempt, its retry and the final success without drifting the gauges', async () => {
    const job = new TaskLife({ id: 't-retry', tenant: 'acme', priorityClass: PriorityClass.NORMAL, model: 'glm-4-9b' });
    feed(
      job.to(TaskState.QUEUED, 0),
      job.to(TaskState.ASSIGNED, 100),
      job.to(TaskState.RUNNING, 150),
      job.to(TaskState.FAILED, 400),
      job.to(TaskState.QUEUED, 401),
      job.to(TaskState.ASSIGNED, 601),
      job.to(TaskState.RUNNING, 650),
      job.to(TaskState.SUCCEEDED, 900, { runTime: ms(250) }),
    );
    const text = await scrape();
    const series = '{tenant="acme",class="normal"}';
    expect(sample(text, `autoglm_tasks_pending${series}`)).toBe(0);
    expect(sample(text, `autoglm_tasks_running${series}`)).toBe(0);
    expect(sample(text, 'autoglm_task_outcomes_total{tenant="acme",class="normal",state="failed"}')).toBe(1);
    expect(sample(text, 'autoglm_task_outcomes_total{tenant="acme",class="normal",state="succeeded"}')).toBe(1);
    expect(sample(text, 'autoglm_task_queue_wait_seconds_count{class="normal"}')).toBe(2);
    expect(sample(text, 'autoglm_task_queue_wait_seconds_sum{class="normal"}')).toBeCloseTo(0.3, 9);
  });

  it('never drives a gauge negative for a task first seen mid-life', async () => {
    // The monitor started after this task was assigned.
    const late = new TaskLife({ id: 't-late', tenant: 'acme', priorityClass: PriorityClass.URGENT, model: 'glm-4-9b' });
    late.to(TaskState.QUEUED, 0);
    late.to(TaskState.ASSIGNED, 10);
    feed(late.to(TaskState.RUNNING, 20), late.to(TaskState.SUCCEEDED, 500));

    const text = await scrape();
    expect(sample(text, 'autoglm_tasks_running{tenant="acme",class="urgent"}')).toBe(0);
    expect(sample(text, 'autoglm_tasks_pending{tenant="acme",class="urgent"}')).toBeUndefined();
    expect(sample(text, 'autoglm_task_outcomes_total{tenant="acme",class="urgent",state="succeeded"}')).toBe(1);
  });

  it('ignores a replayed transition', async () => {
    const chat = new TaskLife({ id: 't-dup', tenant: 'acme', priorityClass: PriorityClass.URGENT, model: 'glm-4-9b' });
    const queued = chat.to(TaskState.QUEUED, 0);
    feed(queued, queued);
    expect(sample(await scrape(), 'autoglm_tasks_pending{tenant="acme",class="urgent"}')).toBe(1);
  });

  it('exports node telemetry per GPU and drops a lost node\'s readings', async () => {
    feed(nodeEvent('node-1', NodeState.READY, [0.9, 0.3], 4), nodeEvent('node-2', NodeState.DRAINING, [0.1], 1));
    let text = await scrape();
    expect(sample(text, 'autoglm_gpu_utilization_ratio{node="node-1",gpu="0"}')).toBe(0.9);
    expect(sample(text, 'autoglm_gpu_utilization_ratio{node="node-1",gpu="1"}')).toBe(0.3);
    expect(sample(text, 'autoglm_gpu_memory_used_bytes{node="node-1",gpu="1"}')).toBe(40 * GIB);
    expect(sample(text, 'autoglm_gpu_memory_total_bytes{node="node-1",gpu="1"}')).toBe(80 * GIB);
    expect(sample(text, 'autoglm_node_running_tasks{node="node-1"}')).toBe(4);
    expect(sample(text, 'autoglm_node_num_requests_running{node="node-1"}')).toBe(12);
    expect(sample(text, 'autoglm_node_num_requests_waiting{node="node-1"}')).toBe(3);
    expect(sample(text, 'autoglm_node_kv_cache_usage_perc{node="node-1"}')).toBe(0.42);
    expect(sample(text, 'autoglm_node_ready{node="node-1"}')).toBe(1);
    expect(sample(text, 'autoglm_node_ready{node="node-2"}')).toBe(0);
    expect(sample(text, 'autoglm_events_received_total{kind="node"}')).toBe(2);

    // One GPU fewer, then the node is lost: no stale series remain.
    feed(nodeEvent('node-1', NodeState.READY, [0.5], 2));
    text = await scrape();
    expect(sample(text, 'autoglm_gpu_utilization_ratio{node="node-1",gpu="0"}')).toBe(0.5);
    expect(sample(text, 'autoglm_gpu_utilization_ratio{node="node-1",gpu="1"}')).toBeUndefined();

    feed(nodeEvent('node-1', NodeState.LOST, [0.5], 0));
    text = await scrape();
    expect(sample(text, 'autoglm_gpu_utilization_ratio{node="node-1",gpu="0"}')).toBeUndefined();
    expect(sample(text, 'autoglm_node_running_tasks{node="node-1"}')).toBeUndefined();
    expect(sample(text, 'autoglm_node_ready{node="node-1"}')).toBeUndefined();
  });

  it('exports the policy version', async () => {
    feed(
      Event.fromPartial({
        kind: {
          $case: 'policy',
          policy: { version: 7, update: { source: 'monitor', reason: 'acme missed its wait SLO', tenantBoosts: { acme: 1.5 } } },
        },
      }),
    );
    const text = await scrape();
    expect(sample(text, 'autoglm_policy_version')).toBe(7);
    expect(sample(text, 'autoglm_events_received_total{kind="policy"}')).toBe(1);
  });

  it('serves the Prometheus content type and help text', async () => {
    const res = await fetch(`${base}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain('# TYPE autoglm_task_queue_wait_seconds histogram');
    expect(text).toContain('# TYPE autoglm_tasks_pending gauge');
    expect(sample(text, 'autoglm_events_received_total{kind="task"}')).toBe(0);
  });

  it('serves the summary as JSON', async () => {
    const chat = new TaskLife({ id: 't-1', tenant: 'acme', priorityClass: PriorityClass.URGENT, model: 'glm-4-9b' });
    feed(
      chat.to(TaskState.QUEUED, 0),
      chat.to(TaskState.ASSIGNED, 500),
      chat.to(TaskState.RUNNING, 520),
      chat.to(TaskState.SUCCEEDED, 900, { queueTime: ms(500) }),
      nodeEvent('node-1', NodeState.READY, [0.8, 0.4], 1),
    );
    const res = await fetch(`${base}/api/summary`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const body = (await res.json()) as GetSummaryResponse;
    expect(body).toEqual({
      since: { seconds: T0, nanos: 0 },
      eventsReceived: 4,
      outcomes: [{ tenant: 'acme', priorityClass: 'urgent', succeeded: 1, failed: 0, meanQueueSeconds: 0.5 }],
      nodes: [{ nodeId: 'node-1', gpuUtilization: expect.closeTo(0.6, 9), gpuMemoryUsedBytes: 80 * GIB, gpuMemoryTotalBytes: 160 * GIB }],
    });
  });

  it('serves the dashboard as one self-contained page', async () => {
    const res = await fetch(`${base}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await res.text();
    expect(html).toContain('api/summary');
    expect(html).not.toMatch(/<(script|link)[^>]+(src|href)=/);
  });

  it('answers /healthz', async () => {
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok');
  });

  it('answers 404 for an unknown path and 405 for another method', async () => {
    const missing = await fetch(`${base}/nope`);
    expect(missing.status).toBe(404);
    await missing.text();

    const posted = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
    expect(posted.status).toBe(405);
    expect(posted.headers.get('allow')).toBe('GET, HEAD');
    await posted.text();
  });

  it('rejects a port already taken', async () => {
    const port = Number(server.address.split(':')[1]);
    await expect(
      startHttpServer({ host: '127.0.0.1', port, metrics, summary, logger: pino({ level: 'silent' }) }),
    ).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });
});
