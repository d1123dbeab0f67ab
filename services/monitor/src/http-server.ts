import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { DASHBOARD_HTML } from './dashboard-html';
import type { MonitorMetrics } from './metrics';
import type { MonitorSummary } from './summary';

/** Options of {@link startHttpServer}. */
export interface HttpServerOptions {
  /** Interface to bind, e.g. "127.0.0.1" or "0.0.0.0". */
  readonly host: string;
  /** Port to bind; 0 picks a free one (see {@link MonitorHttpServer.address}). */
  readonly port: number;
  readonly metrics: MonitorMetrics;
  readonly summary: MonitorSummary;
  readonly logger: Logger;
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

// The page runs only its own inline script and style and talks only to us.
const DASHBOARD_CSP =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'";

/**
 * Serves `/metrics` (Prometheus), `/healthz`, `/api/summary` (JSON) and the
 * live dashboard at `/`.
 */
export async function startHttpServer(options: HttpServerOptions): Promise<MonitorHttpServer> {
  const { metrics, summary, logger } = options;
  const log = logger.child({ component: 'http' });

  const server = createServer((req, res) => {
    respond(req, res, metrics, summary).catch((err: unknown) => {
      // Never leak internals to a scraper; the log has the details.
      log.error({ err, method: req.method, url: req.url }, 'request failed');
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  });

  await listen(server, options.host, options.port);
  const bound = server.address() as AddressInfo;
  const address = bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
  log.info({ address }, 'monitor HTTP listening');

  return {
    address,
    close: () => closeServer(server, options.closeGraceMs ?? 5000),
  };
}

async function respond(
  req: IncomingMessage,
  res: ServerResponse,
  metrics: MonitorMetrics,
  summary: MonitorSummary,
): Promise<void> {
  // HEAD is answered like GET (node drops the body): load balancers probe with it.
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    return;
  }
  const path = new URL(req.url ?? '/', 'http://monitor').pathname;
  switch (path) {
    case '/metrics':
      send(res, 200, metrics.contentType, await metrics.render());
      return;
    case '/healthz':
      send(res, 200, 'text/plain; charset=utf-8', 'ok');
      return;
    case '/api/summary':
      send(res, 200, 'application/json; charset=utf-8', JSON.stringify(summary.snapshot()));
      return;
    case '/':
      res.setHeader('Content-Security-Policy', DASHBOARD_CSP);
      send(res, 200, 'text/html; charset=utf-8', DASHBOARD_HTML);
      return;
    default:
      send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
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
