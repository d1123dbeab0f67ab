import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { DecisionServiceClient } from '@autoglm/proto';
import { loadDashboardAssets, type DashboardAsset } from './dashboard-assets';
import { DashboardEvents } from './dashboard-events';
import type { FeedbackSource } from './dashboard-feedback';
import { DASHBOARD_HTML } from './dashboard-html';
import { lookUpTask, TaskLookupError } from './dashboard-task';
import type { LiveState } from './live-state';
import type { MonitorMetrics } from './metrics';
import type { MonitorSummary } from './summary';

/** Options of {@link startHttpServer}. */
export interface HttpServerOptions {
  /** Interface to bind, e.g. "127.0.0.1" or "0.0.0.0". */
  readonly host: string;
  /** Port to bind; 0 picks a free one (see {@link MonitorHttpServer.address}). */
  readonly port: number;
  /**
   * Host names the dashboard's routes, and /metrics when a browser asks,
   * answer to besides localhost, 127.0.0.1, [::1] and `host` (unless a
   * wildcard); "*" allows any. Other Host headers get 421: a page that rebinds
   * its own name to this address must not read it.
   * @default []
   */
  readonly allowedHosts?: readonly string[];
  readonly metrics: MonitorMetrics;
  readonly summary: MonitorSummary;
  /** What the dashboard streams (`/api/events`); sampled by the server's own tick. */
  readonly live: LiveState;
  /** The feedback loop, for the dashboard's SLOs, alerts, changes and recommendations. */
  readonly feedback?: FeedbackSource;
  /** Decision, for the dashboard's task search (`/api/tasks/<id>`); without it the search answers 503. */
  readonly decision?: DecisionServiceClient;
  readonly logger: Logger;
  /**
   * How often the dashboard's stream is sampled and pushed.
   * @default 1000
   */
  readonly pushEveryMs?: number;
  /**
   * Dashboards streaming at once; more are answered 503.
   * @default 100
   */
  readonly maxDashboards?: number;
  /**
   * Deadline of each call to decision for a task lookup.
   * @default 5000
   */
  readonly taskLookupTimeoutMs?: number;
  /**
   * How long close() lets requests in flight finish before cutting their
   * connections.
   * @default 5000
   */
  readonly closeGraceMs?: number;
}

/** The monitor's HTTP endpoint once listening. */
export interface MonitorHttpServer {
  /** "host:port" actually bound (IPv6 hosts in brackets). */
  readonly address: string;
  /** Stops accepting connections and resolves once every connection is closed. */
  close(): Promise<void>;
}

// The page runs only the scripts and styles we serve and talks only to us.
// uPlot sizes its elements through the CSSOM, which style-src does not govern.
const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const TASK_PATH = '/api/tasks/';

/** Task lookups in flight at once: each costs decision a replay of the task's events from its store. */
const MAX_TASK_LOOKUPS = 8;

interface Routes {
  readonly metrics: MonitorMetrics;
  readonly summary: MonitorSummary;
  readonly events: DashboardEvents;
  readonly assets: ReadonlyMap<string, DashboardAsset>;
  readonly decision: DecisionServiceClient | undefined;
  readonly taskLookupTimeoutMs: number;
  /** Lower-case host names (IPv6 in brackets) the dashboard answers to; undefined: any. */
  readonly dashboardHosts: ReadonlySet<string> | undefined;
  readonly log: Logger;
  taskLookups: number;
}

/**
 * Serves `/metrics` (Prometheus), `/healthz`, `/api/summary` (JSON), the
 * live dashboard at `/` with its files under `/assets/`, its stream
 * `/api/events` (server-sent events) and its task search `/api/tasks/<id>`.
 */
export async function startHttpServer(options: HttpServerOptions): Promise<MonitorHttpServer> {
  const { logger } = options;
  const log = logger.child({ component: 'http' });
  const routes: Routes = {
    metrics: options.metrics,
    summary: options.summary,
    events: new DashboardEvents({ live: options.live, feedback: options.feedback, logger: log, pushEveryMs: options.pushEveryMs, maxClients: options.maxDashboards }),
    assets: loadDashboardAssets(),
    decision: options.decision,
    taskLookupTimeoutMs: options.taskLookupTimeoutMs ?? 5000,
    dashboardHosts: dashboardHosts(options.host, options.allowedHosts ?? []),
    log,
    taskLookups: 0,
  };

  const server = createServer((req, res) => {
    respond(req, res, routes).catch((err: unknown) => {
      // Never leak internals to a scraper; the log has the details.
      log.error({ err, method: req.method, url: req.url }, 'request failed');
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  });

  try {
    await listen(server, options.host, options.port);
  } catch (err) {
    routes.events.close();
    throw err;
  }
  const bound = server.address() as AddressInfo;
  const address = bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
  log.info({ address }, 'monitor HTTP listening');

  return {
    address,
    close: () => {
      // Streams never finish by themselves: end them first, or close() would wait out the grace period.
      routes.events.close();
      return closeServer(server, options.closeGraceMs ?? 5000);
    },
  };
}

async function respond(req: IncomingMessage, res: ServerResponse, routes: Routes): Promise<void> {
  // HEAD is answered like GET (node drops the body): load balancers probe with it.
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    return;
  }
  const path = new URL(req.url ?? '/', 'http://monitor').pathname;
  if (hostGuarded(req, path) && !hostAllowed(req, routes.dashboardHosts)) {
    send(res, 421, 'text/plain; charset=utf-8', 'misdirected request: this host name is not one the monitor answers browsers on; add it to AUTOGLM_MONITOR_ALLOWED_HOSTS\n');
    return;
  }
  switch (path) {
    case '/metrics':
      send(res, 200, routes.metrics.contentType, await routes.metrics.render());
      return;
    case '/healthz':
      send(res, 200, 'text/plain; charset=utf-8', 'ok');
      return;
    case '/api/summary':
      send(res, 200, 'application/json; charset=utf-8', JSON.stringify(routes.summary.snapshot()));
      return;
    case '/api/events':
      if (req.method === 'HEAD') send(res, 200, 'text/event-stream; charset=utf-8', '');
      else routes.events.accept(res);
      return;
    case '/':
      res.setHeader('Content-Security-Policy', DASHBOARD_CSP);
      send(res, 200, 'text/html; charset=utf-8', DASHBOARD_HTML);
      return;
    default:
      break;
  }
  const asset = routes.assets.get(path);
  if (asset !== undefined) {
    sendAsset(req, res, asset);
    return;
  }
  if (path.startsWith(TASK_PATH)) {
    await sendTask(res, routes, decodeURIComponentOrRaw(path.slice(TASK_PATH.length)));
    return;
  }
  send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
}

async function sendTask(res: ServerResponse, routes: Routes, id: string): Promise<void> {
  const json = 'application/json; charset=utf-8';
  if (routes.decision === undefined) {
    send(res, 503, json, JSON.stringify({ error: 'task search needs decision; this monitor has no client for it' }));
    return;
  }
  if (routes.taskLookups >= MAX_TASK_LOOKUPS) {
    res.setHeader('Retry-After', '1');
    send(res, 429, json, JSON.stringify({ error: `at most ${MAX_TASK_LOOKUPS} task lookups run at once; retry shortly` }));
    return;
  }
  routes.taskLookups += 1;
  try {
    const view = await lookUpTask(routes.decision, id, routes.taskLookupTimeoutMs);
    // Either part may have failed on its own; the rest of the answer is still worth having.
    if (view.timelineError !== undefined || view.explanationError !== undefined) routes.log.warn({ taskId: id, timeline: view.timelineError, explanation: view.explanationError }, 'task lookup incomplete');
    send(res, 200, json, JSON.stringify(view));
  } catch (err) {
    if (!(err instanceof TaskLookupError)) throw err;
    if (err.httpStatus >= 500) routes.log.warn({ err: err.cause ?? err, taskId: id }, 'task lookup failed');
    send(res, err.httpStatus, json, JSON.stringify({ error: err.message }));
  } finally {
    routes.taskLookups -= 1;
  }
}

function dashboardHosts(bound: string, allowed: readonly string[]): ReadonlySet<string> | undefined {
  if (allowed.includes('*')) return undefined;
  const hosts = new Set(['localhost', '127.0.0.1', '[::1]', ...allowed.map(hostnameOf)]);
  if (bound !== '0.0.0.0' && bound !== '::' && bound !== '') hosts.add(hostnameOf(bound));
  return hosts;
}

/** A name or address as URL spells a Host header's hostname: lower case, IPv6 in brackets. */
function hostnameOf(name: string): string {
  const bracketed = name.includes(':') && !name.startsWith('[') ? `[${name}]` : name;
  try {
    return new URL(`http://${bracketed}`).hostname;
  } catch {
    return bracketed.toLowerCase();
  }
}

/**
 * Whether the Host guard applies. The dashboard's routes: always. /metrics
 * names every tenant, node and model, but Prometheus scrapes it by service
 * names and addresses the monitor cannot list, and sends no Origin, Referer
 * or Sec-Fetch-Site: only a request carrying one (a browser, maybe a page
 * that rebound its name to us) must come by an allowed Host. /healthz tells
 * nothing and probes use any name.
 */
function hostGuarded(req: IncomingMessage, path: string): boolean {
  if (path === '/' || path.startsWith('/assets/') || path.startsWith('/api/')) return true;
  return path === '/metrics' && fromBrowser(req);
}

function fromBrowser(req: IncomingMessage): boolean {
  const { headers } = req;
  return headers.origin !== undefined || headers['sec-fetch-site'] !== undefined || headers.referer !== undefined;
}

function hostAllowed(req: IncomingMessage, hosts: ReadonlySet<string> | undefined): boolean {
  if (hosts === undefined) return true;
  const header = req.headers.host;
  if (header === undefined) return false;
  let hostname: string;
  try {
    hostname = new URL(`http://${header}`).hostname;
  } catch {
    return false;
  }
  return hosts.has(hostname);
}

function sendAsset(req: IncomingMessage, res: ServerResponse, asset: DashboardAsset): void {
  const headers = {
    'Content-Type': asset.contentType,
    ETag: asset.etag,
    // Revalidated on every load: a monitor upgraded in place serves its new files at once.
    'Cache-Control': 'no-cache',
    'X-Content-Type-Options': 'nosniff',
  };
  if (req.headers['if-none-match'] === asset.etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, 'Content-Length': asset.body.length });
  res.end(asset.body);
}

function decodeURIComponentOrRaw(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, {
    'Content-Type': contentType,
    'Content-Length': Buffer.byteLength(body),
    // Every answer is a live reading; a cached one would be wrong.
    'Cache-Control': 'no-store',
  });
  res.end(body);
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function closeServer(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    // Keep-alive connections (browsers, Prometheus) would hold close() open
    // until they time out; idle ones go now, busy ones after the grace period.
    const force = setTimeout(() => server.closeAllConnections(), graceMs);
    force.unref();
    server.close((err) => {
      clearTimeout(force);
      if (err !== undefined) reject(err);
      else resolve();
    });
    server.closeIdleConnections();
  });
}
