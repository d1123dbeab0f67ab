import { get as httpGet, type IncomingHttpHeaders } from 'node:http';
import { DomainError, NotFoundError } from '@autoglm/core';
import {
  AlertState,
  DecisionServiceClient,
  DecisionServiceService,
  Event,
  NodeState,
  PriorityExplanation,
  PriorityClass,
  Task,
  TaskEvent,
  TaskResult,
  TaskState,
  type Duration,
  type GetSummaryResponse,
  type Timestamp,
} from '@autoglm/proto';
import { createClient, GrpcServer, type ServiceHandlers } from '@autoglm/runtime';
import pino from 'pino';
import type { FeedbackSource } from './dashboard-feedback';
import { startHttpServer, type HttpServerOptions, type MonitorHttpServer } from './http-server';
import { LiveState, type LiveDelta, type LiveSnapshot } from './live-state';
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

/** A GET with the Host header a browser would send for `host` (fetch cannot set it), and any other headers given. */
function getAs(url: string, host: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { headers: { ...headers, host }, agent: false }, (res) => {
      // A stream never ends by itself: its head is enough.
      if (res.headers['content-type']?.startsWith('text/event-stream')) {
        resolve({ status: res.statusCode!, headers: res.headers, body: '' });
        res.destroy();
        return;
      }
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
  });
}

/** A server-sent event. */
interface Sse {
  readonly event: string;
  readonly data: string;
}

/** Reads `GET /api/events` message by message, as EventSource would. */
class EventStream {
  private buffer = '';
  private readonly decoder = new TextDecoder();

  private constructor(
    readonly response: Response,
    private readonly reader: ReadableStreamDefaultReader<Uint8Array>,
    private readonly abort: AbortController,
  ) {}

  static async open(url: string): Promise<EventStream> {
    const abort = new AbortController();
    const response = await fetch(url, { signal: abort.signal });
    return new EventStream(response, response.body!.getReader(), abort);
  }

  /** The next message that has an event name (comments and retry hints are skipped); undefined once the stream ends. */
  async next(): Promise<Sse | undefined> {
    for (;;) {
      const end = this.buffer.indexOf('\n\n');
      if (end >= 0) {
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        const fields = new Map(block.split('\n').filter((l) => !l.startsWith(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trimStart()]));
        if (fields.has('event')) return { event: fields.get('event')!, data: fields.get('data') ?? '' };
        continue;
      }
      const { done, value } = await this.reader.read();
      if (done) return undefined;
      this.buffer += this.decoder.decode(value, { stream: true });
    }
  }

  /** The next delta that satisfies `check`. */
  async until(check: (delta: LiveDelta & { feedback?: unknown }) => boolean): Promise<LiveDelta & { feedback?: unknown }> {
    for (;;) {
      const message = await this.next();
      if (message === undefined) throw new Error('the stream ended');
      if (message.event !== 'delta') continue;
      const delta = JSON.parse(message.data) as LiveDelta;
      if (check(delta)) return delta;
    }
  }

  close(): void {
    this.abort.abort();
  }
}

const FEEDBACK: FeedbackSource = {
  enabled: true,
  sloStatus: () => [
    { slo: 'urgent-queue', indicator: 'queue_time', tenant: 'acme', priorityClass: 'urgent', good: 3, total: 8, attainment: 0.375, objective: 0.9, status: 'missed', burnRate: 6.25 },
  ],
  alerts: () => [
    {
      name: 'SloMissed',
      labels: { slo: 'urgent-queue', tenant: 'acme' },
      state: AlertState.FIRING,
      severity: 'page',
      summary: 'acme misses urgent-queue',
      value: 0.375,
      activeSince: at(0),
      firedAt: at(1000),
      resolvedAt: undefined,
    },
  ],
  recentActions: () => [{ time: at(2000), kind: 'tenant-boost', target: 'acme', from: 1, to: 1.5, reason: 'acme misses urgent-queue', applied: true }],
  recommendations: () => ({ recommendations: [{ kind: 'pool', name: 'default', current: 1, desired: 2, reason: 'urgent-queue missed' }], computedAt: T0 * 1000 }),
};

describe('monitor HTTP server', () => {
  let metrics: MonitorMetrics;
  let summary: MonitorSummary;
  let live: LiveState;
  let server: MonitorHttpServer;
  let base: string;
  const streams: EventStream[] = [];

  const feed = (...events: Event[]): void => {
    for (const event of events) {
      metrics.observe(event);
      summary.observe(event);
      live.observe(event);
    }
  };
  const openStream = async (url = `${base}/api/events`): Promise<EventStream> => {
    const stream = await EventStream.open(url);
    streams.push(stream);
    return stream;
  };
  const start = (options: Partial<HttpServerOptions> = {}): Promise<MonitorHttpServer> =>
    startHttpServer({ host: '127.0.0.1', port: 0, metrics, summary, live, feedback: FEEDBACK, logger: pino({ level: 'silent' }), pushEveryMs: 50, ...options });
  const scrape = async (): Promise<string> => {
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    return res.text();
  };

  beforeEach(async () => {
    metrics = new MonitorMetrics();
    summary = new MonitorSummary({ now: () => T0 * 1000 });
    live = new LiveState();
    server = await start();
    base = `http://${server.address}`;
  });

  afterEach(async () => {
    for (const stream of streams.splice(0)) stream.close();
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

  it('serves the dashboard page under a CSP that runs only our own files, by relative paths', async () => {
    const res = await fetch(`${base}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self';");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toContain('unsafe');
    const html = await res.text();
    expect(html).not.toMatch(/<script>|<style>| style=/);
    const urls = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(urls).toEqual(['data:,', 'assets/uplot.min.css', 'assets/dashboard.css', 'assets/uplot.min.js', 'assets/dashboard.js']);
  });

  it('serves uPlot and the page\'s own script and style, revalidated by ETag', async () => {
    for (const [path, type] of [
      ['/assets/uplot.min.js', 'text/javascript; charset=utf-8'],
      ['/assets/dashboard.js', 'text/javascript; charset=utf-8'],
      ['/assets/uplot.min.css', 'text/css; charset=utf-8'],
      ['/assets/dashboard.css', 'text/css; charset=utf-8'],
    ] as const) {
      const res = await fetch(`${base}${path}`);
      expect({ path, status: res.status, type: res.headers.get('content-type'), nosniff: res.headers.get('x-content-type-options') }).toEqual({ path, status: 200, type, nosniff: 'nosniff' });
      const body = await res.text();
      expect(body.length).toBeGreaterThan(1000);
      if (path.endsWith('.js')) expect(() => new Function(body)).not.toThrow();
      const again = await fetch(`${base}${path}`, { headers: { 'if-none-match': res.headers.get('etag')! } });
      expect(again.status).toBe(304);
    }
    expect(await (await fetch(`${base}/assets/uplot.min.js`)).text()).toContain('uPlot');
  });

  it('streams a snapshot on connect, then deltas with what changed', async () => {
    feed(nodeEvent('node-1', NodeState.READY, [0.9, 0.3], 1));
    const stream = await openStream();
    expect(stream.response.status).toBe(200);
    expect(stream.response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const first = await stream.next();
    expect(first?.event).toBe('snapshot');
    const snapshot = JSON.parse(first!.data) as LiveSnapshot & { feedback: { alerts: Array<{ state: string }>; slos: unknown[]; enabled: boolean } };
    expect(snapshot.nodes).toEqual([expect.objectContaining({ nodeId: 'node-1', state: 'ready', gpus: [expect.objectContaining({ utilization: 0.9 }), expect.objectContaining({ utilization: 0.3 })] })]);
    expect(snapshot.feedback).toMatchObject({ enabled: true, alerts: [{ name: 'SloMissed', state: 'firing', activeSinceMs: T0 * 1000 }], slos: [{ slo: 'urgent-queue', status: 'missed' }] });

    const chat = new TaskLife({ id: 't-live', tenant: 'acme', priorityClass: PriorityClass.URGENT, model: 'glm-4-9b' });
    feed(chat.to(TaskState.QUEUED, 0), nodeEvent('node-2', NodeState.QUARANTINED, [0.1], 0));
    const delta = await stream.until((d) => d.byClass.some((c) => c.name === 'urgent' && c.pending === 1));
    expect(delta.byTenant).toEqual([{ name: 'acme', pending: 1, running: 0 }]);
    expect(delta.recentTasks).toEqual([expect.objectContaining({ taskId: 't-live', state: 'queued' })]);
    expect(delta.nodes.map((n) => `${n.nodeId}:${n.state}`)).toContain('node-2:quarantined');
    expect(delta.samples[delta.samples.length - 1]!.pending).toEqual([1, 0, 0]);

    feed(nodeEvent('node-1', NodeState.LOST, [], 0));
    const gone = await stream.until((d) => d.removedNodes.length > 0);
    expect(gone.removedNodes).toEqual(['node-1']);
  });

  it('answers 503 past the cap on dashboard streams, and takes a new one once one leaves', async () => {
    await server.close();
    // fetch may open a spare connection that never carries a request; close() would wait the grace period for it.
    server = await start({ maxDashboards: 2, closeGraceMs: 100 });
    base = `http://${server.address}`;
    const [a] = [await openStream(), await openStream()];
    const refused = await fetch(`${base}/api/events`);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(await refused.text()).toContain('at most 2 dashboards');
    a!.close();
    // The server notices the departure on its own time.
    const deadline = Date.now() + 5000;
    let status = 0;
    while (Date.now() < deadline) {
      const again = await openStream();
      status = again.response.status;
      if (status === 200) break;
      again.close();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(status).toBe(200);
  });

  it('ends open streams when it closes, without waiting out the grace period', async () => {
    const stream = await openStream();
    expect((await stream.next())?.event).toBe('snapshot');
    const started = Date.now();
    await server.close();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await stream.next()).toBeUndefined();
    // afterEach closes it again: harmless.
    server = await start();
  });

  it('answers 421 on the dashboard\'s routes to a Host it does not know (DNS rebinding), and a scrape of /metrics and /healthz to any', async () => {
    const port = server.address.split(':')[1]!;
    for (const path of ['/', '/assets/dashboard.js', '/api/summary', '/api/events', `/api/tasks/${KNOWN}`]) {
      const res = await getAs(`${base}${path}`, `rebind.attacker.example:${port}`);
      expect({ path, status: res.status }).toEqual({ path, status: 421 });
      expect(res.body).toContain('AUTOGLM_MONITOR_ALLOWED_HOSTS');
    }
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'LOCALHOST']) expect((await getAs(`${base}/`, host)).status).toBe(200);
    // Userinfo does not make another host local.
    expect((await getAs(`${base}/`, `127.0.0.1@rebind.attacker.example:${port}`)).status).toBe(421);
    expect((await getAs(`${base}/metrics`, 'monitor:8080')).status).toBe(200);
    expect((await getAs(`${base}/healthz`, 'monitor:8080')).status).toBe(200);
  });

  it('refuses /metrics to a browser that came by a Host it does not know, and serves a scraper by any Host', async () => {
    const port = server.address.split(':')[1]!;
    const foreign = `rebind.attacker.example:${port}`;
    const browsers: Array<Record<string, string>> = [{ origin: `http://${foreign}` }, { 'sec-fetch-site': 'same-origin' }, { referer: `http://${foreign}/` }];
    for (const headers of browsers) {
      const res = await getAs(`${base}/metrics`, foreign, headers);
      expect({ headers, status: res.status }).toEqual({ headers, status: 421 });
      expect(res.body).not.toContain('autoglm_');
    }
    // A browser on a local name is served, and so is a scrape (no such headers) by a name the monitor was never told.
    expect((await getAs(`${base}/metrics`, `localhost:${port}`, { 'sec-fetch-site': 'same-origin' })).status).toBe(200);
    const scrape = await getAs(`${base}/metrics`, foreign, { accept: 'text/plain;version=0.0.4', 'user-agent': 'Prometheus/3.0.0' });
    expect(scrape.status).toBe(200);
    expect(scrape.body).toContain('# HELP autoglm_');
  });

  it('answers the dashboard to the host names configured, or to any with "*"', async () => {
    await server.close();
    server = await start({ allowedHosts: ['dashboard.example.com'] });
    base = `http://${server.address}`;
    expect((await getAs(`${base}/api/summary`, 'dashboard.example.com')).status).toBe(200);
    expect((await getAs(`${base}/api/summary`, 'Dashboard.Example.com:8080')).status).toBe(200);
    expect((await getAs(`${base}/api/summary`, 'other.example.com')).status).toBe(421);

    await server.close();
    server = await start({ allowedHosts: ['*'] });
    base = `http://${server.address}`;
    expect((await getAs(`${base}/api/summary`, 'other.example.com')).status).toBe(200);
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
    await expect(start({ port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });

  it('answers 503 to a task search without a client for decision', async () => {
    const res = await fetch(`${base}/api/tasks/${KNOWN}`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ error: expect.stringContaining('needs decision') });
  });

  describe('task search against decision', () => {
    const decisionServer = new GrpcServer({ logger: pino({ level: 'silent' }) });
    let decision: ReturnType<typeof fakeDecisionClient>;

    beforeAll(async () => {
      decisionServer.addService(DecisionServiceService, fakeDecision());
      decision = fakeDecisionClient(await decisionServer.listen('127.0.0.1:0'));
    });

    afterAll(async () => {
      decision.close();
      await decisionServer.shutdown();
    });

    beforeEach(async () => {
      await server.close();
      server = await start({ decision });
      base = `http://${server.address}`;
    });

    it('shows the task, its timeline up to now (then lets go of the stream) and its explanation', async () => {
      const res = await fetch(`${base}/api/tasks/${KNOWN.toUpperCase()}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
      const view = (await res.json()) as { task: object; timeline: Array<{ state: string }>; explanation: object };
      expect(view.task).toMatchObject({ id: KNOWN, tenant: 'acme', state: 'running', priorityClass: 'urgent', model: 'glm-4-9b', nodeId: 'node-1', gpuIndices: [1] });
      expect(view.timeline.map((e) => e.state)).toEqual(['queued', 'assigned', 'running']);
      expect(view.explanation).toEqual(expect.objectContaining({ priority: 4200, waitingCause: 'unspecified', factors: [{ name: 'class', value: 1, weight: 4000, contribution: 4000 }] }));
      // The timeline's Subscribe, live after the replay, was cancelled.
      const deadline = Date.now() + 5000;
      while (decisionServer.openStreams > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(decisionServer.openStreams).toBe(0);
    });

    it('shows the latest events of a task with more than the timeline holds', async () => {
      const res = await fetch(`${base}/api/tasks/${LONG}`);
      expect(res.status).toBe(200);
      const view = (await res.json()) as { timeline: Array<{ sequence: number }> };
      expect(view.timeline).toHaveLength(500);
      expect(view.timeline[0]!.sequence).toBe(LONG_EVENTS - 499);
      expect(view.timeline[499]!.sequence).toBe(LONG_EVENTS);
    });

    it("answers 502 when decision fails and 504 when it is too slow, without decision's own words", async () => {
      const failed = await fetch(`${base}/api/tasks/${BROKEN}`);
      expect(failed.status).toBe(502);
      expect(await failed.json()).toEqual({ error: 'decision could not be asked; see the monitor log' });

      await server.close();
      server = await start({ decision, taskLookupTimeoutMs: 100 });
      base = `http://${server.address}`;
      const slow = await fetch(`${base}/api/tasks/${SLOW}`);
      expect(slow.status).toBe(504);
      expect(await slow.json()).toEqual({ error: 'decision did not answer in time' });
    });

    it('answers 429 past 8 task lookups in flight, and takes more once they finish', async () => {
      const askedBefore = slowLookups.asked;
      const inFlight = Array.from({ length: 8 }, () => fetch(`${base}/api/tasks/${SLOW}`));
      const deadline = Date.now() + 5000;
      while (slowLookups.asked < askedBefore + 8 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      const refused = await fetch(`${base}/api/tasks/${KNOWN}`);
      expect(refused.status).toBe(429);
      expect(refused.headers.get('retry-after')).toBe('1');
      await refused.text();
      for (const release of slowLookups.waiting.splice(0)) release();
      expect((await Promise.all(inFlight)).map((r) => r.status)).toEqual(Array(8).fill(404));
      expect((await fetch(`${base}/api/tasks/${KNOWN}`)).status).toBe(200);
    });

    it("answers 404 when decision says NOT_FOUND, and 400 for an id that is not a UUID without asking", async () => {
      const missing = await fetch(`${base}/api/tasks/${UNKNOWN}`);
      expect(missing.status).toBe(404);
      expect(await missing.json()).toEqual({ error: `task ${UNKNOWN} does not exist` });
      const malformed = await fetch(`${base}/api/tasks/${encodeURIComponent('<b>nope</b>')}`);
      expect(malformed.status).toBe(400);
      expect(await malformed.json()).toEqual({ error: '"<b>nope</b>" is not a task id (a UUID)' });
    });
  });
});

const KNOWN = '6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab';
const UNKNOWN = '00000000-0000-4000-8000-000000000000';
/** A task retried many times: more events than the timeline shows. */
const LONG = '11111111-1111-4111-8111-111111111111';
const LONG_EVENTS = 600;
/** A lookup decision fails with words of its own (an internal address). */
const BROKEN = '22222222-2222-4222-8222-222222222222';
/** A lookup decision answers (NOT_FOUND) only when released. */
const SLOW = '33333333-3333-4333-8333-333333333333';
const slowLookups = { asked: 0, waiting: [] as Array<() => void> };

/**
 * Decision as the task search sees it: one running task with three events, one with 600, one
 * whose lookup fails, one whose lookup waits; the rest unknown.
 */
function fakeDecision(): ServiceHandlers<typeof DecisionServiceService> {
  const unused = async (): Promise<never> => {
    throw new Error('not used by the dashboard');
  };
  const life = new TaskLife({ id: KNOWN, tenant: 'acme', priorityClass: PriorityClass.URGENT, model: 'glm-4-9b' });
  const events = [life.to(TaskState.QUEUED, 0), life.to(TaskState.ASSIGNED, 100), life.to(TaskState.RUNNING, 150)];
  const task = Task.fromPartial({ ...(events[2]!.kind as { task: TaskEvent }).task.task, nodeId: 'node-1', gpuIndices: [1] });
  const long = new TaskLife({ id: LONG, tenant: 'acme', priorityClass: PriorityClass.NORMAL, model: 'glm-4-9b' });
  const retries = [TaskState.QUEUED, TaskState.ASSIGNED, TaskState.RUNNING, TaskState.FAILED];
  const longEvents = Array.from({ length: LONG_EVENTS }, (_, i) => long.to(retries[i % retries.length]!, i * 10));
  const taskEvent = (event: Event): TaskEvent => (event.kind as { task: TaskEvent }).task;
  return {
    enqueue: unused,
    enqueueBatch: unused,
    enqueueWorkflow: unused,
    admit: unused,
    connect: unused,
    applyPolicy: unused,
    setNodeQuarantine: unused,
    reportAlerts: unused,
    listTasks: unused,
    cancelTask: unused,
    listNodes: unused,
    getQueueStats: unused,
    requeueDeadLetters: unused,
    purgeDeadLetters: unused,
    getTask: async (req, ctx) => {
      switch (req.taskId) {
        case KNOWN:
          return task;
        case LONG:
          return taskEvent(longEvents[LONG_EVENTS - 1]!).task!;
        case BROKEN:
          throw new DomainError('UNAVAILABLE', 'the store at 10.0.0.7:5432 refused the connection');
        case SLOW:
          slowLookups.asked += 1;
          await new Promise<void>((resolve) => {
            slowLookups.waiting.push(resolve);
            ctx.signal.addEventListener('abort', () => resolve(), { once: true });
          });
          throw new NotFoundError(`task ${req.taskId} not found`);
        default:
          throw new NotFoundError(`task ${req.taskId} not found`);
      }
    },
    explainTask: async () =>
      PriorityExplanation.fromPartial({ taskId: KNOWN, state: TaskState.RUNNING, priority: 4200, factors: [{ name: 'class', value: 1, weight: 4000, contribution: 4000 }] }),
    // Replays the stored events, then stays open as for a live task, until cancelled.
    subscribe: async (req, sink, ctx) => {
      for (const event of req.taskId === LONG ? longEvents : events) if (taskEvent(event).sequence > req.afterSequence) await sink.write(event);
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
    },
  };
}

function fakeDecisionClient(address: string) {
  return createClient(DecisionServiceClient, address, {});
}
