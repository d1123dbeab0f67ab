import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { availableParallelism, constants, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import type { GpuInfo, GpuStatus, ModelServerLoad, ReplicaStatus } from '@autoglm/proto';
import { forbiddenJobEnv, jobTimeLimitMs } from '@autoglm/core';
import { type Backend, ExecutionError, type ExecutionOutcome, type ExecutionRequest, type HostResources, OUTPUT_TAIL_BYTES, StopRequest } from './backend';
import { DEFAULT_JOB_LIMITS, JOB_MARKER, JobCgroup, type JobLimits, type JobUser, limitedArgv, resolveAllowList, signalMarked } from './containment';
import { TailBuffer } from './tail-buffer';

/**
 * Variables of the agent's own environment a job inherits. Everything else is
 * withheld, so the agent's credentials (decision tokens, API keys) never reach
 * a job; a job that needs more names it in its `env`. HOME and TMPDIR are the
 * job's own directory.
 */
export const DEFAULT_PASS_ENV: readonly string[] = Object.freeze([
  'PATH',
  'USER',
  'LOGNAME',
  'SHELL',
  'LANG',
  'LC_ALL',
  'TZ',
  'LD_LIBRARY_PATH',
  'CUDA_HOME',
]);

export interface CommandBackendOptions {
  /**
   * Programs a job may run: names (resolved once, from the agent's PATH) or
   * absolute paths. A job's argv[0] must be one of them, or the program one
   * resolved to; the resolved program is what runs, whatever the job's
   * environment says. Empty disables the backend.
   */
  readonly allow: readonly string[];
  /** How long a cancelled job has between SIGTERM and SIGKILL. @default 5000 */
  readonly killGraceMs?: number;
  /** Agent environment variables passed through to jobs. @default DEFAULT_PASS_ENV */
  readonly passEnv?: readonly string[];
  /** Where each job gets its own directory (mode 0700, its HOME and TMPDIR, removed after it). @default <tmpdir>/autoglm-jobs */
  readonly workRoot?: string;
  /** The user jobs run as (the agent must be root); unset: the agent's own. */
  readonly user?: JobUser;
  /** Limits each job's shell sets before it starts the job. @default DEFAULT_JOB_LIMITS */
  readonly limits?: JobLimits;
  /**
   * A delegated cgroup v2 directory: each job gets a cgroup of its own under
   * it, with its claimed memory and cores as limits, and is killed through
   * it. Unset: no cgroups (rlimits and the environment marker only).
   */
  readonly cgroupParent?: string;
  /** Cores and memory offered to jobs. @default this machine's (os.availableParallelism(), os.totalmem()) */
  readonly host?: Partial<HostResources>;
}

/** Most of stderr's tail quoted in a failure message; the full tail (64 KiB) is on the error. */
const STDERR_IN_MESSAGE = 4096;

/** A job exited non-zero or was killed by someone other than the agent. Retryable: the next attempt may land on a healthier host. */
export class CommandFailedError extends ExecutionError {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly stderrTail: string,
  ) {
    super(message, true);
    this.name = 'CommandFailedError';
  }
}

/**
 * The `command` backend: runs a batch job's argv (no shell of the job's) bound
 * to its GPUs, off unless allow-listed. Each job runs the program the agent
 * resolved for its argv[0], in a directory of its own, as the configured
 * user, under limits, with an environment the job cannot use to change what
 * runs; it is killed, with every process it started, on cancel, preemption,
 * at its time limit and when it ends.
 */
export class CommandBackend implements Backend {
  readonly name = 'command' as const;
  /** Batch jobs need no model; '*' lets one with a model land here too. */
  readonly models: readonly string[] = Object.freeze(['*']);
  private readonly allow: ReadonlyMap<string, string | undefined>;
  private readonly killGraceMs: number;
  private readonly passEnv: readonly string[];
  private readonly workRoot: string;
  private readonly user: JobUser | undefined;
  private readonly limits: JobLimits;
  private readonly cgroupParent: string | undefined;
  private readonly host: HostResources;
  /** Each running job's way to stop it, resolving once its process is gone. */
  private readonly running = new Map<ChildProcess, () => Promise<void>>();
  private closed = false;

  constructor(options: CommandBackendOptions) {
    this.allow = resolveAllowList(options.allow);
    this.killGraceMs = options.killGraceMs ?? 5000;
    this.passEnv = options.passEnv ?? DEFAULT_PASS_ENV;
    this.workRoot = options.workRoot ?? join(tmpdir(), 'autoglm-jobs');
    this.user = options.user;
    this.limits = options.limits ?? DEFAULT_JOB_LIMITS;
    this.cgroupParent = options.cgroupParent;
    this.host = {
      cpuMillis: options.host?.cpuMillis ?? availableParallelism() * 1000,
      memoryBytes: options.host?.memoryBytes ?? totalmem(),
    };
  }

  execute(req: ExecutionRequest): Promise<ExecutionOutcome> {
    if (this.closed) return Promise.reject(new ExecutionError('the command backend is closed', true));
    const payload = req.spec.payload;
    if (payload?.$case !== 'batch') {
      return Promise.reject(new ExecutionError(`task ${req.taskId}: the command backend runs batch jobs only`, false));
    }
    const argv = payload.batch.command;
    const file = argv[0];
    if (file === undefined || file === '') {
      return Promise.reject(new ExecutionError(`task ${req.taskId}: the batch job has no command`, false));
    }
    if (this.allow.size === 0) return Promise.reject(new ExecutionError(`command ${file} is not allowed: the command backend of this agent allows nothing`, false));
    // The list itself is not told: it says what is installed where.
    if (!this.allow.has(file)) return Promise.reject(new ExecutionError(`command ${file} is not allowed on this agent (its operator sets AUTOGLM_COMMAND_ALLOW)`, false));
    const program = this.allow.get(file);
    // Retryable: another host may have the program installed.
    if (program === undefined) return Promise.reject(new ExecutionError(`cannot start ${file}: it is allowed on this agent but not installed here`, true));
    for (const name of Object.keys(payload.batch.env)) {
      const why = forbiddenJobEnv(name);
      if (why) return Promise.reject(new ExecutionError(`batch.env["${name}"] ${why}`, false));
    }
    if (req.signal.aborted) return Promise.resolve(outcome('cancelled', '', 0, 0));
    return this.run(req, file, program, argv.slice(1), payload.batch.env, jobTimeLimitMs(payload.batch));
  }

  gpus(): GpuInfo[] {
    return [];
  }

  gpuStatus(): GpuStatus[] {
    return [];
  }

  load(): ModelServerLoad {
    return { numRequestsRunning: this.running.size, numRequestsWaiting: 0, kvCacheUsagePerc: 0 };
  }

  hostResources(): HostResources {
    return { ...this.host };
  }

  /** It runs processes, not model servers. */
  replicas(): ReplicaStatus[] {
    return [];
  }

  /** Stops every job (SIGTERM, then SIGKILL after the grace period) and waits until all are gone. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.running.values()].map((stop) => stop()));
  }

  /** A directory of the job's own: 0700, owned by the job's user. */
  private jobDir(taskId: string): string {
    mkdirSync(this.workRoot, { recursive: true, mode: 0o711 });
    const dir = mkdtempSync(join(this.workRoot, `${taskId.replace(/[^A-Za-z0-9-]/g, '_').slice(0, 64)}-`));
    chmodSync(dir, 0o700);
    if (this.user) chownSync(dir, this.user.uid, this.user.gid);
    return dir;
  }

  private run(req: ExecutionRequest, file: string, program: string, args: string[], jobEnv: Record<string, string>, timeLimitMs: number | undefined): Promise<ExecutionOutcome> {
    let dir: string;
    try {
      dir = this.jobDir(req.taskId);
    } catch (e) {
      return Promise.reject(new ExecutionError(`cannot make a working directory for ${file} under ${this.workRoot}: ${e instanceof Error ? e.message : String(e)}`, true, { cause: e }));
    }
    const marker = randomUUID();
    const env: Record<string, string> = {};
    for (const name of this.passEnv) {
      const value = process.env[name];
      if (value !== undefined) env[name] = value;
    }
    Object.assign(env, jobEnv);
    env.HOME = dir;
    env.TMPDIR = dir;
    // Every process the job starts inherits it: how they are all found again to be killed.
    env[JOB_MARKER] = marker;
    // Last, so a job cannot widen its own GPU binding: the claim is the binding, and a job
    // without GPUs sees none (an empty list hides every device from CUDA).
    env.CUDA_VISIBLE_DEVICES = req.gpuIndices.join(',');
    let cgroup: JobCgroup | undefined;
    if (this.cgroupParent !== undefined) {
      try {
        cgroup = JobCgroup.create(this.cgroupParent, `job-${marker}`, { memoryBytes: req.spec.memoryBytes, cpuMillis: req.spec.cpuMillis, processes: this.limits.processes });
      } catch (e) {
        void rm(dir, { recursive: true, force: true });
        return Promise.reject(new ExecutionError(`cannot make a cgroup for ${file} under ${this.cgroupParent}: ${e instanceof Error ? e.message : String(e)}`, true, { cause: e }));
      }
    }
    const limited = limitedArgv(program, args, this.limits, cgroup);

    return new Promise<ExecutionOutcome>((resolve, reject) => {
      let child: ChildProcess;
      try {
        // detached: the job leads its own process group, so a cancel reaches the
        // processes it forked too (sh -c, torchrun workers), not just argv[0].
        child = spawn(limited.file, limited.args, { env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], detached: true, uid: this.user?.uid, gid: this.user?.gid });
      } catch (e) {
        void rm(dir, { recursive: true, force: true });
        cgroup?.remove();
        // spawn throws only for arguments it cannot pass to the OS (a NUL byte): retrying cannot help.
        reject(new ExecutionError(`cannot start ${file}: ${e instanceof Error ? e.message : String(e)}`, false, { cause: e }));
        return;
      }
      const stdout = new TailBuffer(OUTPUT_TAIL_BYTES);
      const stderr = new TailBuffer(OUTPUT_TAIL_BYTES);
      child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
      child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));

      let startedAt = performance.now();
      let stopping = false;
      let timedOut = false;
      let killTimer: NodeJS.Timeout | undefined;
      let killAtMs = Infinity;
      let resolveGone: () => void = () => undefined;
      /** Signals every process of the job: its group, those carrying its marker, its cgroup. `leader`: the job's own process too, if its group is gone. */
      const signalJob = (signal: NodeJS.Signals, leader = true): void => {
        signalGroup(child, signal, leader);
        signalMarked(marker, signal);
        cgroup?.signal(signal);
      };
      const gone = new Promise<void>((r) => {
        resolveGone = r;
      });
      const stop = (graceMs = this.killGraceMs): Promise<void> => {
        if (child.exitCode !== null || child.signalCode !== null) return gone;
        if (!stopping) {
          stopping = true;
          // SIGTERM first: a job may checkpoint (preemption gives it decision's grace period).
          signalJob('SIGTERM');
        }
        // A second stop may only shorten the grace (the agent shutting down during a long preemption grace).
        if (performance.now() + graceMs < killAtMs) {
          killAtMs = performance.now() + graceMs;
          clearTimeout(killTimer);
          killTimer = setTimeout(() => signalJob('SIGKILL'), graceMs);
        }
        return gone;
      };
      const onAbort = (): void => {
        const reason: unknown = req.signal.reason;
        void stop(reason instanceof StopRequest && reason.graceMs !== undefined ? reason.graceMs : this.killGraceMs);
      };
      const limitTimer =
        timeLimitMs === undefined
          ? undefined
          : setTimeout(() => {
              timedOut = true;
              void stop();
            }, timeLimitMs);
      const finish = (): void => {
        clearTimeout(killTimer);
        clearTimeout(limitTimer);
        // The job is over: what it left behind (a child that ignored SIGTERM, a daemon it
        // forked, one that left the group with setsid) goes with it, or it would hold the
        // claim's GPUs unseen.
        signalJob('SIGKILL', false);
        // Empty once the killed processes are reaped: removed a moment later.
        if (cgroup) setTimeout(() => cgroup.remove(), 1000).unref();
        req.signal.removeEventListener('abort', onAbort);
        this.running.delete(child);
        void rm(dir, { recursive: true, force: true });
        resolveGone();
      };

      if (child.pid !== undefined) {
        this.running.set(child, stop);
        req.signal.addEventListener('abort', onAbort, { once: true });
      }
      child.once('spawn', () => {
        startedAt = performance.now();
        req.onStart?.();
      });
      child.once('error', (e) => {
        // Only a failure to start settles here; errors of a started process (a failed kill) end in 'close'.
        if (child.pid !== undefined) return;
        finish();
        // Retryable: another host may have the program installed.
        reject(new ExecutionError(`cannot start ${file}: ${e.message}`, true, { cause: e }));
      });
      // 'close', not 'exit': the output is complete only once the pipes are closed.
      child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        finish();
        const runTimeMs = performance.now() - startedAt;
        const exitCode = code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0));
        if (timedOut) {
          reject(new ExecutionError(`command ${file} ran past its time limit of ${seconds(timeLimitMs!)} and was killed (set batch.time_limit for a longer one)`, false));
        } else if (stopping || req.signal.aborted) {
          resolve(outcome('cancelled', stdout.text(), exitCode, runTimeMs));
        } else if (code === 0) {
          resolve(outcome('stop', stdout.text(), 0, runTimeMs));
        } else {
          const tail = stderr.text();
          const how = code === null ? `was killed by ${signal ?? 'a signal'}` : `exited with code ${code}`;
          const quoted = tail.length > STDERR_IN_MESSAGE ? `...${tail.slice(-STDERR_IN_MESSAGE)}` : tail;
          const message = `command ${file} ${how}${quoted.trim() === '' ? '' : `: ${quoted.trimEnd()}`}`;
          reject(new CommandFailedError(message, code, signal, tail));
        }
      });
    });
  }
}

/** Signals the job's whole process group; a group already gone is not an error. `leader`: the job's own process too, if the group is gone. */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals, leader = true): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    if (!leader) return;
    try {
      child.kill(signal);
    } catch {
      // Already exited.
    }
  }
}

function outcome(finishReason: ExecutionOutcome['finishReason'], output: string, exitCode: number, runTimeMs: number): ExecutionOutcome {
  return { finishReason, output, promptTokens: 0, completionTokens: 0, exitCode, timeToFirstTokenMs: 0, runTimeMs };
}

/** "0.3 s", "90 s": a duration as a person reads it in a message. */
function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
}
