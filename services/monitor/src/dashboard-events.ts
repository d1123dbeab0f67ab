import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { feedbackView, type FeedbackSource, type FeedbackView } from './dashboard-feedback';
import type { LiveSample, LiveState } from './live-state';

/** Options of {@link DashboardEvents}. */
export interface DashboardEventsOptions {
  readonly live: LiveState;
  /** The feedback loop, when the monitor runs one. */
  readonly feedback?: FeedbackSource;
  readonly logger: Logger;
  /**
   * How often the live state is sampled and a delta pushed.
   * @default 1000
   */
  readonly pushEveryMs?: number;
  /**
   * A comment line is sent after this long without a message, so proxies keep
   * an idle stream open.
   * @default 15000
   */
  readonly heartbeatMs?: number;
  /**
   * Streams served at once; more are answered 503.
   * @default 100
   */
  readonly maxClients?: number;
  /**
   * A client whose unsent output passes this is cut: it is not reading, and
   * its backlog would grow in our memory.
   * @default 4 MiB
   */
  readonly maxBacklogBytes?: number;
}

interface Client {
  readonly res: ServerResponse;
  lastWriteMs: number;
}

const MAX_UNSENT_SAMPLES = 900;

/** How long the browser waits before reconnecting a dropped stream. */
const RETRY_MS = 2000;

/**
 * Server-sent events for the dashboard (`GET /api/events`): a `snapshot` on
 * connect, then a `delta` on every tick where something moved (a comment line
 * after `heartbeatMs` of quiet). The live state is sampled on the same tick,
 * whether or not anyone watches, so a dashboard opened later has history.
 * Each message is serialised once and written to every client; a page drops
 * samples it already has (by time), so a snapshot followed by a delta that
 * repeats some is harmless.
 */
export class DashboardEvents {
  private readonly clients = new Set<Client>();
  private readonly maxClients: number;
  private readonly heartbeatMs: number;
  private readonly maxBacklogBytes: number;
  private readonly timer: NodeJS.Timeout;
  /** The snapshot message as of the last tick, made on first demand. */
  private snapshotMessage: string | undefined;
  private lastFeedback = '';
  /** Samples taken on quiet ticks, sent with the next delta. */
  private unsent: LiveSample[] = [];
  private closed = false;

  constructor(private readonly o: DashboardEventsOptions) {
    this.maxClients = o.maxClients ?? 100;
    this.heartbeatMs = o.heartbeatMs ?? 15_000;
    this.maxBacklogBytes = o.maxBacklogBytes ?? 4 * 1024 * 1024;
    this.timer = setInterval(() => this.tick(), o.pushEveryMs ?? 1000);
    this.timer.unref();
  }

  /** Streams being served. */
  get size(): number {
    return this.clients.size;
  }

  /** Serves one `GET /api/events`: 503 past the cap or once closing. */
  accept(res: ServerResponse): void {
    if (this.closed || this.clients.size >= this.maxClients) {
      const body = this.closed ? 'shutting down\n' : `at most ${this.maxClients} dashboards may stream at once; retry later\n`;
      res.writeHead(503, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), 'Retry-After': '5', 'Cache-Control': 'no-store', Connection: 'close' });
      res.end(body);
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      // nginx buffers responses unless told not to; a buffered stream is not live.
      'X-Accel-Buffering': 'no',
      // A stream's connection is never reused: once the stream ends (close()), the socket goes too.
      Connection: 'close',
    });
    const client: Client = { res, lastWriteMs: Date.now() };
    this.clients.add(client);
    res.on('close', () => this.clients.delete(client));
    if (this.snapshotMessage === undefined) {
      const feedback = this.feedback();
      // lastFeedback is what the streams were last sent: stale after nobody watched, or changed
      // since the tick. When the snapshot says otherwise, the next delta carries the feedback again.
      if (JSON.stringify(feedback) !== this.lastFeedback) this.lastFeedback = '';
      this.snapshotMessage = message('snapshot', { ...this.o.live.snapshot(), feedback });
    }
    this.write(client, `retry: ${RETRY_MS}\n\n${this.snapshotMessage}`);
  }

  /** Stops the ticks and ends every stream, so the HTTP server can close. */
  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    for (const client of this.clients) client.res.end();
    this.clients.clear();
  }

  private tick(): void {
    try {
      const { quiet, ...delta } = this.o.live.tick();
      this.snapshotMessage = undefined;
      if (this.clients.size === 0) {
        this.unsent = [];
        return;
      }
      // Bounded like the history: a page that has them all needs no more.
      this.unsent.push(...delta.samples);
      if (this.unsent.length > MAX_UNSENT_SAMPLES) this.unsent.splice(0, this.unsent.length - MAX_UNSENT_SAMPLES);
      const feedback = this.feedback();
      const serialised = JSON.stringify(feedback);
      const feedbackChanged = serialised !== this.lastFeedback;
      this.lastFeedback = serialised;
      const now = Date.now();
      if (quiet && !feedbackChanged) {
        // Nothing to draw: the samples wait for the next delta, and a comment keeps proxies from closing an idle stream.
        for (const client of this.clients) if (now - client.lastWriteMs >= this.heartbeatMs) this.write(client, ': heartbeat\n\n');
        return;
      }
      // Unchanged feedback is left out: the page keeps what it has.
      const text = message('delta', { ...delta, samples: this.unsent, ...(feedbackChanged ? { feedback } : {}) });
      this.unsent = [];
      for (const client of this.clients) this.write(client, text);
    } catch (err) {
      this.o.logger.error({ err }, 'dashboard tick failed');
    }
  }

  private write(client: Client, text: string): void {
    if (client.res.writableLength > this.maxBacklogBytes) {
      this.o.logger.warn({ backlogBytes: client.res.writableLength }, 'dashboard stream cut: the client is not reading');
      this.clients.delete(client);
      client.res.destroy();
      return;
    }
    client.res.write(text);
    client.lastWriteMs = Date.now();
  }

  private feedback(): FeedbackView | null {
    return this.o.feedback === undefined ? null : feedbackView(this.o.feedback);
  }
}

function message(event: string, data: unknown): string {
  // JSON has no raw newlines, so the data fits one `data:` line.
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
