import { type ChildProcess, fork } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { LogSink } from './log-sink';
import { MeshStartError } from './mesh-start-error';
import { boundAddress, isReadyMessage } from './ready-message';

/** Addresses a service is told to listen on. */
export interface ListenAddresses {
  grpc: string;
  http?: string;
}

/** How restarts are spaced. */
export interface RestartBackoff {
  /** Delay before the first restart. */
  initialMs: number;
  /** Ceiling of the doubling delay. */
  maxMs: number;
  /** A process that stayed up this long counts as healthy again: the next delay is `initialMs`. */
  resetAfterMs: number;
}

/** Options of a SupervisedProcess. */
export interface SupervisedProcessOptions {
  /** Unique name in the mesh ("decision", "agent-1"). */
  name: string;
  /** Script to fork. */
  entry: string;
  /** Environment of an incarnation that must listen on `listen`. */
  env: (listen: ListenAddresses) => NodeJS.ProcessEnv;
  /** Addresses for the first incarnation (port 0 lets the service pick). */
  listen: ListenAddresses;
  /** Where its output goes. */
  log: LogSink;
  /** Where the supervisor's own lines about it go. */
  supervisorLog: (line: string) => void;
  /** Restart after an unexpected exit. */
  restart: boolean;
  readyTimeoutMs: number;
  stopTimeoutMs: number;
  backoff: RestartBackoff;
}


type State = 'idle' | 'starting' | 'ready' | 'backoff' | 'stopping' | 'stopped';

interface RestartWaiter {
  previousPid: number;
  resolve: (pid: number) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * One service process: forked, awaited until it says it is ready, restarted on
 * the addresses it first bound when it exits unexpectedly, and stopped with
 * SIGTERM, then SIGKILL. Each child leads its own process group so a terminal's
 * Ctrl-C reaches only the supervisor, which then stops the mesh in order; the
 * group also lets a SIGKILL take any grandchildren with it.
 */
export class SupervisedProcess {
  /** Cleared by kill(..., { restart: false }). */
  private restartAfterExit = true;
  readonly name: string;
  private state: State = 'idle';
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private closed: Promise<void> = Promise.resolve();
  private listen: ListenAddresses;
  private failures = 0;
  private spawnedAt = 0;
  private restartCount = 0;
  private readyTimer: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private firstStart: { resolve: () => void; reject: (error: Error) => void } | undefined;
  private waiters: RestartWaiter[] = [];
  private stoppedBecause = 'it was stopped';

  constructor(private readonly options: SupervisedProcessOptions) {
    this.name = options.name;
    this.listen = { ...options.listen };
  }

  /** pid of the live incarnation; undefined between incarnations. */
  get pid(): number | undefined {
    return this.child !== undefined && isAlive(this.child) ? this.child.pid : undefined;
  }

  /** gRPC address: the bound one once the process has been ready. */
  get address(): string {
    return this.listen.grpc;
  }

  /** HTTP address, for services that have one. */
  get httpAddress(): string | undefined {
    return this.listen.http;
  }

  /** Restarts so far. */
  get restarts(): number {
    return this.restartCount;
  }

  /** Forks the first incarnation; resolves when it is ready, rejects with a MeshStartError. */
  start(): Promise<void> {
    if (this.state !== 'idle') return Promise.reject(new Error(`${this.name} was started already`));
    return new Promise<void>((resolve, reject) => {
      this.firstStart = { resolve, reject };
      this.spawn();
    });
  }

  /**
   * Sends a signal to the live incarnation (chaos tests); false when none is
   * alive. With `restart: false` the supervisor lets it stay dead.
   */
  kill(signal: NodeJS.Signals = 'SIGTERM', options: { restart?: boolean } = {}): boolean {
    const child = this.child;
    if (child === undefined || !isAlive(child)) return false;
    if (options.restart === false) this.restartAfterExit = false;
    return child.kill(signal);
  }

  /** Resolves with the new pid once an incarnation other than `previousPid` is ready. */
  waitForRestart(previousPid: number, timeoutMs = this.options.readyTimeoutMs + this.options.backoff.maxMs): Promise<number> {
    const pid = this.pid;
    if (this.state === 'ready' && pid !== undefined && pid !== previousPid) return Promise.resolve(pid);
    if (this.state === 'stopping' || this.state === 'stopped') {
      return Promise.reject(new Error(`${this.name} will not be ready again: ${this.stoppedBecause}`));
    }
    return new Promise<number>((resolve, reject) => {
      const waiter: RestartWaiter = {
        previousPid,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          reject(new Error(`${this.name} was not ready again within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  /** SIGTERM, then SIGKILL after stopTimeoutMs; resolves once the process and its output are gone. */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') {
      await this.closed;
      return;
    }
    this.state = 'stopping';
    this.stoppedBecause = 'it was stopped';
    clearTimeout(this.readyTimer);
    clearTimeout(this.restartTimer);
    this.rejectWaiters(new Error(`${this.name} will not be ready again: ${this.stoppedBecause}`));
    this.firstStart?.reject(new Error(`${this.name} was stopped before it was ready`));
    this.firstStart = undefined;
    const child = this.child;
    if (child !== undefined) {
      if (isAlive(child)) {
        child.kill('SIGTERM');
        const escalation = setTimeout(() => {
          this.options.supervisorLog(`${this.name} did not exit within ${this.options.stopTimeoutMs} ms of SIGTERM; sending SIGKILL`);
          killGroup(child, 'SIGKILL');
        }, this.options.stopTimeoutMs);
        await this.exited;
        clearTimeout(escalation);
      }
      // Whatever it started and left behind goes with it.
      killGroup(child, 'SIGKILL');
      await this.closed;
    }
    this.state = 'stopped';
  }

  /** Synchronous last resort when the supervisor itself exits. */
  killNow(): void {
    if (this.child !== undefined) killGroup(this.child, 'SIGKILL');
  }

  private spawn(): void {
    this.state = 'starting';
    this.spawnedAt = Date.now();
    const child = fork(this.options.entry, [], {
      env: this.options.env(this.listen),
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      detached: true,
      // The supervisor's own flags (inspector, loaders, test runners) are not the services'.
      execArgv: [],
    });
    this.child = child;
    // Not events.once: it would reject on an 'error' event (a failed kill or IPC send).
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    this.closed = new Promise((resolve) => child.once('close', () => resolve()));
    for (const stream of [child.stdout, child.stderr]) {
      if (stream !== null) createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => this.options.log.write(line));
    }
    child.on('message', (message: unknown) => this.onMessage(child, message));
    child.on('error', (error) => this.options.supervisorLog(`${this.name}: ${error.message}`));
    child.on('exit', (code, signal) => this.onExit(child, code, signal));
    this.readyTimer = setTimeout(() => this.onReadyTimeout(child), this.options.readyTimeoutMs);
  }

  private onMessage(child: ChildProcess, message: unknown): void {
    if (child !== this.child || this.state !== 'starting' || !isReadyMessage(message)) return;
    clearTimeout(this.readyTimer);
    this.listen = {
      grpc: boundAddress(this.listen.grpc, message.grpcAddress),
      ...(this.listen.http === undefined ? {} : { http: boundAddress(this.listen.http, message.httpAddress) }),
    };
    this.state = 'ready';
    const http = this.listen.http === undefined ? '' : `, http ${this.listen.http}`;
    this.options.supervisorLog(`${this.name} (pid ${child.pid}) ready on ${this.listen.grpc}${http}`);
    if (this.firstStart !== undefined) {
      this.firstStart.resolve();
      this.firstStart = undefined;
    }
    const pid = child.pid;
    if (pid === undefined) return;
    const [done, waiting] = partition(this.waiters, (w) => w.previousPid !== pid);
    this.waiters = waiting;
    for (const waiter of done) {
      clearTimeout(waiter.timer);
      waiter.resolve(pid);
    }
  }

  private onReadyTimeout(child: ChildProcess): void {
    if (child !== this.child || this.state !== 'starting') return;
    const reason = `${this.name} did not become ready within ${this.options.readyTimeoutMs} ms`;
    this.options.supervisorLog(`${reason}; killing it`);
    if (this.firstStart !== undefined) this.failFirstStart(reason);
    killGroup(child, 'SIGKILL');
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child !== this.child) return;
    clearTimeout(this.readyTimer);
    // Anything the service started goes with it before a new incarnation binds its ports.
    killGroup(child, 'SIGKILL');
    if (this.state === 'stopping' || this.state === 'stopped') return;
    const how = signal === null ? `code ${code}` : `signal ${signal}`;
    if (this.firstStart !== undefined) {
      this.failFirstStart(`${this.name} exited with ${how} before it was ready`);
      return;
    }
    if (this.state === 'idle') return;
    const upMs = Date.now() - this.spawnedAt;
    if (!this.options.restart || !this.restartAfterExit) {
      this.options.supervisorLog(`${this.name} (pid ${child.pid}) exited with ${how} after ${upMs} ms; restarts are off`);
      this.state = 'stopped';
      this.stoppedBecause = 'it exited and restarts are off';
      this.rejectWaiters(new Error(`${this.name} will not be ready again: ${this.stoppedBecause}`));
      return;
    }
    if (upMs >= this.options.backoff.resetAfterMs) this.failures = 0;
    const delay = Math.min(this.options.backoff.initialMs * 2 ** this.failures, this.options.backoff.maxMs);
    this.failures++;
    this.options.supervisorLog(
      `${this.name} (pid ${child.pid}) exited with ${how} after ${upMs} ms; restarting in ${delay} ms on ${this.listen.grpc}`,
    );
    this.state = 'backoff';
    this.restartTimer = setTimeout(() => {
      this.restartCount++;
      this.spawn();
    }, delay);
  }

  /** Rejects start() once the process's output is drained, so the error carries its last words. */
  private failFirstStart(reason: string): void {
    const firstStart = this.firstStart;
    this.firstStart = undefined;
    this.state = 'stopped';
    this.stoppedBecause = 'it never became ready';
    void this.closed.then(() =>
      firstStart?.reject(
        new MeshStartError(reason, { processName: this.name, logPath: this.options.log.path, logTail: this.options.log.lastLines() }),
      ),
    );
  }

  private rejectWaiters(error: Error): void {
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
    this.waiters = [];
  }
}

function isAlive(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/** Signals the child's whole process group; a group that is already gone is fine. */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: nothing left in the group.
  }
}

function partition<T>(items: T[], predicate: (item: T) => boolean): [T[], T[]] {
  const yes: T[] = [];
  const no: T[] = [];
  for (const item of items) (predicate(item) ? yes : no).push(item);
  return [yes, no];
}
