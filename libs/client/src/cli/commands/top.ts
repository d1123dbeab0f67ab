import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import type { AutoglmClient } from '../../sdk/client';
import { AutoglmError } from '../../sdk/errors';
import { commandContext, interruptible } from '../context';
import { examples } from '../help';
import { type CliIo, type OutputStream, println } from '../io';
import { parseDurationMs } from '../parse';
import { renderTopFrame, type TopSnapshot } from '../top-frame';

/** Columns assumed when the output says nothing about its size (a pipe, a file). */
const DEFAULT_WIDTH = 120;
/** Redrawing faster than this only loads the mesh. */
const MIN_INTERVAL_MS = 200;
/** Every call of a frame gets at least this long, however short the interval. */
const MIN_CALL_TIMEOUT_MS = 5000;

// Alternate screen keeps the user's scrollback intact; the cursor is hidden while frames redraw.
const ENTER_SCREEN = '\x1b[?1049h\x1b[?25l';
const LEAVE_SCREEN = '\x1b[?25h\x1b[?1049l';
const CLEAR_AND_HOME = '\x1b[H\x1b[2J';

/** `autoglm top`. */
export function registerTop(program: Command, io: CliIo): void {
  program
    .command('top')
    .description('The dashboard at a glance: nodes and their GPUs, queues, alerts, SLOs, feedback and scaling, redrawn every interval.')
    .option('--interval <duration>', 'time between redraws', parseDurationMs, 2000)
    .option('--once', 'draw one frame and exit (what happens anyway when stdout is not a terminal)')
    .addHelpText('after', examples('autoglm top', 'autoglm top --interval 5s', 'autoglm top --once | less -S'))
    .action(async (options: { interval: number; once?: boolean }, command: Command) => {
      const ctx = commandContext(io, command);
      if (ctx.globals.json) throw new AutoglmError('INVALID_ARGUMENT', 'top draws for people; for JSON use autoglm nodes, stats, alerts, slos, scale or feedback with --json');
      if (options.interval < MIN_INTERVAL_MS) throw new AutoglmError('INVALID_ARGUMENT', `--interval: at least ${MIN_INTERVAL_MS}ms`);
      const tty = io.stdout.isTTY === true;
      const timeoutMs = Math.max(MIN_CALL_TIMEOUT_MS, options.interval);
      await ctx.withClient(async (client) => {
        if (options.once || !tty) {
          const snapshot = await takeSnapshot(client, timeoutMs);
          println(io.stdout, renderTopFrame(snapshot, { width: size(io.stdout).columns ?? DEFAULT_WIDTH, color: tty }));
          return;
        }
        await interruptible(io, undefined, async (signal) => {
          io.stdout.write(ENTER_SCREEN);
          try {
            while (!signal.aborted) {
              const snapshot = await takeSnapshot(client, timeoutMs, signal);
              const { columns, rows } = size(io.stdout);
              io.stdout.write(CLEAR_AND_HOME + renderTopFrame(snapshot, { width: columns ?? DEFAULT_WIDTH, height: rows, color: true }));
              await sleep(options.interval, undefined, { signal });
            }
          } catch (error) {
            // Ctrl-C cuts a call or the wait short: that is the way out, not a failure.
            if (!signal.aborted) throw error;
          } finally {
            io.stdout.write(LEAVE_SCREEN);
          }
        });
      });
    });
}

/**
 * The six views, fetched together. A failed node list or queue snapshot fails
 * the command (the parser or decision is not answering); a failed monitor view
 * becomes a note, so the rest still draws.
 */
async function takeSnapshot(client: AutoglmClient, timeoutMs: number, signal?: AbortSignal): Promise<TopSnapshot> {
  const call = { timeoutMs, signal };
  const [nodes, stats, alerts, slos, scale, feedback] = await Promise.allSettled([
    client.listNodes(call),
    client.queueStats(call),
    client.listAlerts(false, call),
    client.sloStatus(call),
    client.scaleRecommendations(call),
    client.feedbackActions(call),
  ]);
  if (nodes.status === 'rejected') throw AutoglmError.from(nodes.reason);
  if (stats.status === 'rejected') throw AutoglmError.from(stats.reason);
  const failed = [alerts, slos, scale, feedback].find((r) => r.status === 'rejected');
  const monitorError = failed === undefined ? undefined : describe(AutoglmError.from(failed.reason));
  return {
    time: Date.now(),
    nodes: nodes.value.nodes,
    stats: stats.value,
    alerts: alerts.status === 'fulfilled' ? alerts.value.alerts : undefined,
    slos: slos.status === 'fulfilled' ? slos.value.slos : undefined,
    scale: scale.status === 'fulfilled' ? scale.value.recommendations : undefined,
    feedback: feedback.status === 'fulfilled' ? feedback.value.actions : undefined,
    feedbackEnabled: feedback.status === 'fulfilled' ? feedback.value.enabled : undefined,
    monitorError,
  };
}

function describe(error: AutoglmError): string {
  return error.code === 'UNAVAILABLE' ? error.details : `${error.code}: ${error.details}`;
}

/** The terminal's size when the stream is one (process.stdout has columns and rows; a test's stream has neither). */
function size(stream: OutputStream): { columns?: number; rows?: number } {
  const { columns, rows } = stream as { columns?: unknown; rows?: unknown };
  return {
    columns: typeof columns === 'number' && columns > 0 ? columns : undefined,
    rows: typeof rows === 'number' && rows > 0 ? rows : undefined,
  };
}
