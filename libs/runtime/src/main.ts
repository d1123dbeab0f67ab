import { ConfigError } from './config';
import type { Logger } from 'pino';

/** What a service reports to its supervisor (over IPC) once it is listening. */
export interface ReadyMessage {
  type: 'ready';
  service: string;
  grpcAddress: string;
  httpAddress?: string;
}

/** A started service: where it listens and how to stop it. */
export interface RunningService {
  grpcAddress: string;
  httpAddress?: string;
  logger: Logger;
  /** Streams open on its gRPC server (leak checks in tests). */
  openStreams?(): number;
  /** Graceful stop; resolves when everything is closed. */
  stop(): Promise<void>;
}

/**
 * The body of every service's main.js: start, tell the supervisor (if any) we
 * are ready, and stop gracefully on SIGTERM/SIGINT (a second signal forces).
 * A bad config exits 2 with the message naming the value; any other start-up
 * failure exits 1.
 */
export function runMain(service: string, start: () => Promise<RunningService>): void {
  // A supervisor that dies (Ctrl-C while starting, SIGKILL) closes the IPC channel:
  // a service still starting then exits at once rather than live on as an orphan.
  const orphanedWhileStarting = () => process.exit(1);
  process.once('disconnect', orphanedWhileStarting);
  start().then(
    (running) => {
      process.off('disconnect', orphanedWhileStarting);
      const ready: ReadyMessage = { type: 'ready', service, grpcAddress: running.grpcAddress, httpAddress: running.httpAddress };
      running.logger.info({ grpcAddress: running.grpcAddress, httpAddress: running.httpAddress }, `${service} listening`);
      process.send?.(ready);
      let stopping = false;
      const onSignal = (signal: NodeJS.Signals) => {
        if (stopping) {
          running.logger.warn({ signal }, 'second signal: exiting now');
          process.exit(1);
        }
        stopping = true;
        running.logger.info({ signal }, `${service} shutting down`);
        running.stop().then(
          () => process.exit(0),
          (err: unknown) => {
            running.logger.error({ err }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      // The supervisor went away: do not outlive it as an orphan.
      process.on('disconnect', () => onSignal('SIGTERM'));
    },
    (err: unknown) => {
      if (err instanceof ConfigError) {
        process.stderr.write(`${service}: ${err.message}\n`);
        process.exit(2);
      }
      process.stderr.write(`${service}: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
