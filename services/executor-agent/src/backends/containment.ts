import { accessSync, constants as fsConstants, mkdirSync, readdirSync, readFileSync, realpathSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

/**
 * How the command backend keeps a job to itself: which program an allowed
 * name is (resolved once, by the agent), which user it runs as, what limits
 * its shell sets before it starts, and how every process it made is found
 * again to be killed (a marker in their environment, which survives setsid
 * and re-parenting).
 */

/**
 * Allowed names and the program each runs, resolved once from the agent's own
 * PATH (a job's environment never chooses the program). A name that does not
 * resolve here maps to undefined: allowed, but not installed on this host.
 * An allowed absolute path is its own name; the program it resolves to
 * (symlinks followed) may be named too.
 */
export function resolveAllowList(allow: readonly string[], agentPath = process.env.PATH ?? ''): Map<string, string | undefined> {
  const resolved = new Map<string, string | undefined>();
  for (const name of allow) {
    const program = isAbsolute(name) ? executable(name) : agentPath.split(delimiter).filter((dir) => isAbsolute(dir)).map((dir) => executable(join(dir, name))).find((p) => p !== undefined);
    resolved.set(name, program);
    if (program !== undefined && !resolved.has(program)) resolved.set(program, program);
  }
  return resolved;
}

function executable(path: string): string | undefined {
  try {
    const real = realpathSync(path);
    if (!statSync(real).isFile()) return undefined;
    accessSync(real, fsConstants.X_OK);
    return real;
  } catch {
    return undefined;
  }
}

/** A user jobs run as: the agent must be root to switch to it. */
export interface JobUser {
  name: string;
  uid: number;
  gid: number;
}

/**
 * The user named (a name in /etc/passwd, or "uid:gid"). Throws when it does
 * not exist, or when this process cannot switch to it (not root).
 */
export function resolveJobUser(spec: string, passwd = '/etc/passwd'): JobUser {
  const numeric = /^(\d+):(\d+)$/.exec(spec);
  let user: JobUser | undefined;
  if (numeric) user = { name: spec, uid: Number(numeric[1]), gid: Number(numeric[2]) };
  else {
    for (const line of readFileSync(passwd, 'utf8').split('\n')) {
      const [name, , uid, gid] = line.split(':');
      if (name === spec && uid !== undefined && gid !== undefined) user = { name, uid: Number(uid), gid: Number(gid) };
    }
  }
  if (!user) throw new Error(`command user "${spec}" does not exist (give a name from /etc/passwd, or uid:gid)`);
  if (user.uid === 0) throw new Error('command user: jobs may not run as root; give an unprivileged user such as nobody');
  if (process.getuid?.() !== 0) throw new Error(`command user "${spec}": the agent must run as root to start jobs as another user`);
  return user;
}

/** Limits a job's shell sets before it execs the job (RLIMIT_*; see ulimit in sh(1)). */
export interface JobLimits {
  /** Open files. @default 65536 */
  openFiles: number;
  /** Processes of the job's user (RLIMIT_NPROC; not enforced for root). @default 4096 */
  processes: number;
  /** Address space, bytes, for jobs without GPUs (CUDA maps far more than it uses, so GPU jobs get none). */
  addressSpaceBytes?: number;
}

export const DEFAULT_JOB_LIMITS: JobLimits = { openFiles: 65_536, processes: 4_096 };

/**
 * The argv that runs `program args` under the limits: /bin/sh sets them
 * (no core dumps, open files, processes, address space), then execs the
 * program, so the job is the shell's pid and nothing else stays behind.
 */
export function limitedArgv(program: string, args: readonly string[], limits: JobLimits, cgroup?: JobCgroup): { file: string; args: string[] } {
  // Raising a limit past the host's hard limit fails: the lower limit in force then stays (still a
  // bound); an unlimited one that cannot be set stops the job.
  const atMost = (flag: string, value: number) => `{ ulimit ${flag} ${value} 2>/dev/null || [ "$(ulimit ${flag})" != unlimited ]; }`;
  // Processes: -u in bash and busybox, -p in dash.
  const steps = [...(cgroup ? [cgroup.enterLine()] : []), 'ulimit -c 0', 'P=-u', '{ ulimit -u >/dev/null 2>&1 || P=-p; }', atMost('-n', limits.openFiles), atMost('$P', limits.processes)];
  if (limits.addressSpaceBytes !== undefined) steps.push(`ulimit -v ${Math.ceil(limits.addressSpaceBytes / 1024)}`);
  const script = `${steps.join(' && ')} && exec "$@"`;
  return { file: '/bin/sh', args: ['-c', script, 'autoglm-job', program, ...args] };
}

/** The variable every process of one job carries (and its children inherit). */
export const JOB_MARKER = 'AUTOGLM_JOB';

/**
 * The processes whose environment carries `JOB_MARKER=marker`: the job and
 * whatever it started, including those that left its process group
 * (setsid) or lost their parent. Processes that cleared their environment
 * are not found; running jobs as their own user (AUTOGLM_COMMAND_USER) and a
 * cgroup make that impossible to exploit.
 */
export function markedProcesses(marker: string, proc = '/proc'): number[] {
  const needle = Buffer.from(`${JOB_MARKER}=${marker}\0`);
  const found: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync(proc);
  } catch {
    return found;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = readFileSync(join(proc, entry, 'environ'));
      // Every entry ends with NUL; the first one has none before it.
      if (environ.indexOf(needle) === 0 || environ.indexOf(Buffer.concat([Buffer.from([0]), needle])) >= 0) found.push(Number(entry));
    } catch {
      // Gone, or not ours to read.
    }
  }
  return found;
}

/** Sends `signal` to every process carrying the job's marker; returns how many there were. */
export function signalMarked(marker: string, signal: NodeJS.Signals): number {
  const pids = markedProcesses(marker);
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
  return pids.length;
}

/**
 * A job's own cgroup (v2) under a delegated parent the operator prepared
 * (`AUTOGLM_COMMAND_CGROUP`, e.g. a systemd unit's with Delegate=yes and the
 * memory, pids and cpu controllers enabled for its children): what the job
 * claimed is enforced (memory.max, cpu.max), its processes are capped
 * (pids.max), and killing it reaches every process it made, whatever they
 * did to their environment or process group (cgroup.kill).
 */
export class JobCgroup {
  private constructor(readonly path: string) {}

  /** Makes the job's cgroup and writes its limits (those the parent's controllers allow). */
  static create(parent: string, name: string, limits: { memoryBytes: number; cpuMillis: number; processes: number }): JobCgroup {
    const path = join(parent, name);
    mkdirSync(path, { mode: 0o755 });
    const set = (file: string, value: string) => {
      try {
        writeFileSync(join(path, file), value);
      } catch {
        // The controller is not enabled for this parent: that limit is not enforced.
      }
    };
    if (limits.memoryBytes > 0) {
      set('memory.max', String(limits.memoryBytes));
      set('memory.swap.max', '0');
    }
    if (limits.cpuMillis > 0) set('cpu.max', `${Math.ceil(limits.cpuMillis * 100)} 100000`);
    set('pids.max', String(limits.processes));
    return new JobCgroup(path);
  }

  /** The shell line that moves the job's shell (and so everything it starts) into the cgroup before the job runs. */
  enterLine(): string {
    return `echo $$ > '${join(this.path, 'cgroup.procs').replace(/'/g, "'\\''")}'`;
  }

  /** The processes in it now. */
  pids(): number[] {
    try {
      return readFileSync(join(this.path, 'cgroup.procs'), 'utf8')
        .split('\n')
        .filter((l) => /^\d+$/.test(l.trim()))
        .map(Number);
    } catch {
      return [];
    }
  }

  /** Signals every process in it; SIGKILL through cgroup.kill where the kernel has it (5.14+). */
  signal(signal: NodeJS.Signals): void {
    if (signal === 'SIGKILL') {
      try {
        writeFileSync(join(this.path, 'cgroup.kill'), '1');
      } catch {
        // An older kernel (or a plain directory): signal them one by one.
      }
    }
    for (const pid of this.pids()) {
      try {
        process.kill(pid, signal);
      } catch {
        // Already gone.
      }
    }
  }

  /** Removes the cgroup once it is empty (rmdir; the kernel refuses while processes remain). */
  remove(): void {
    try {
      rmdirSync(this.path);
    } catch {
      // Still draining, or already gone: the next job start does not depend on it.
    }
  }
}
