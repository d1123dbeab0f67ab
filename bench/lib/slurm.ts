import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * A throw-away one-node Slurm (munged + slurmctld + slurmd) running as root
 * on this machine, for benchmarks that compare Slurm's job throughput with
 * our own `command` agent. Everything it writes (config, munge key, state,
 * spool, logs, job output) lives under one temporary work dir; nothing under
 * /etc/slurm, /etc/munge, /run or /var is used. Debian 12 ships Slurm 22.05.
 */

export interface SlurmCluster {
  /** Path of the generated slurm.conf. */
  conf: string;
  /** Environment for Slurm CLI calls: SLURM_CONF set, sbin on PATH, plus a marker used to find strays at stop(). */
  env: NodeJS.ProcessEnv;
  /** The temporary work dir holding config, state, spool, logs and job output. */
  workDir: string;
  /** CPUs given to the node (= how many one-CPU jobs run at once). */
  cpus: number;
  /** The one partition (the default). */
  partition: string;
  /** Log files of the daemons, for debugging. */
  logs: { munged: string; slurmctld: string; slurmd: string };
  /** Seconds from the first process spawned to `sinfo` reporting the node idle. */
  startupSeconds: number;
  /** Kills every process it started (and any slurmstepd/job process left), removes the work dir. Idempotent. */
  stop(): Promise<void>;
}

export interface SlurmStartOptions {
  /** CPUs of the one node (default os.availableParallelism()): one-CPU jobs run this many at once. */
  cpus?: number;
  /** Work dir to use (created; removed by stop()). Default: a fresh mkdtemp under os.tmpdir(). */
  workDir?: string;
  /**
   * 'throughput' (default) is what a site tuned for many short jobs would run;
   * 'stock' is the plain config. Slurm 22.05 as shipped starts queued batch jobs
   * only from slurmctld's background loop, at most once per batch_sched_delay
   * (3 s): without an Epilog, slurmd mostly answers the end of a job with
   * "already complete" instead of an EPILOG_COMPLETE message, and that only
   * queues a scheduling pass (seen in debug2 logs). So stock Slurm runs about
   * CPUs jobs per 3 s, however short they are (measured: 0.67/s on 2 CPUs). 'throughput' adds
   * `SchedulerParameters=batch_sched_delay=0` and `Epilog=/bin/true` (slurmd
   * then reports EPILOG_COMPLETE, and slurmctld schedules at once).
   */
  tuning?: 'throughput' | 'stock';
  /** SchedulerParameters= line, replacing the one the tuning implies. */
  schedulerParameters?: string;
  /** debug2 logging in slurmctld and slurmd (slows them down). */
  debug?: boolean;
}

export interface SlurmRunResult {
  /** Wall time from the first sbatch started to the last sbatch returned. */
  submitSeconds: number;
  /** Wall time from the first sbatch started to the last job seen finished (within one squeue poll). */
  completeSeconds: number;
  submittedPerSecond: number;
  completedPerSecond: number;
  /** Jobs whose sbatch failed, that did not end COMPLETED (exit 0), or that left no output file. */
  failed: number;
}

export interface SlurmRunOptions {
  /** sbatch processes in flight at once (default 8). Each job is its own sbatch call: no job arrays. */
  parallel?: number;
  /** Give up waiting for completion after this long (default max(120 s, 60 s + 3 s per job per CPU)); unfinished jobs count as failed. */
  timeoutMs?: number;
  /** squeue poll interval (default 100 ms; each poll is a process and two RPCs, which compete with the jobs on small machines). */
  pollMs?: number;
}

const SLURM_BINARIES = ['slurmctld', 'slurmd', 'sbatch', 'squeue', 'sacct', 'sinfo', 'scontrol', 'scancel', 'munged'];
const SEARCH_DIRS = () => [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), '/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/sbin', '/usr/local/bin'];

/** Absolute path of an executable, looking on PATH and in the sbin dirs (which a non-login PATH may lack). */
function which(name: string): string | undefined {
  for (const dir of SEARCH_DIRS()) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

function bin(name: string): string {
  const p = which(name);
  if (!p) throw new Error(`${name} not found (is slurm-wlm installed? see ensureSlurmInstalled)`);
  return p;
}

interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(file, args, { env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 0, maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) || (err ? err.message : '') });
    });
  });
}

/** Runs a command quietly, keeping its last output lines and logging them if it fails (for apt-get). */
function runLogged(file: string, args: string[], env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const onData = (buf: Buffer) => {
      for (const line of buf.toString().split('\n')) {
        if (!line.trim()) continue;
        tail.push(line);
        if (tail.length > 20) tail.shift();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (e) => {
      log(`${path.basename(file)}: ${e.message}`);
      resolve(127);
    });
    child.on('close', (code) => {
      if (code !== 0) for (const line of tail) log(`  ${line}`);
      resolve(code ?? 1);
    });
  });
}

/**
 * Makes sure Slurm (and munge) are installed: returns true when the daemons
 * and CLI are present, installing `slurm-wlm` with apt-get when they are not
 * and we are root. Returns false, with a logged reason, when it cannot.
 */
export async function ensureSlurmInstalled(log: (line: string) => void): Promise<boolean> {
  const missing = () => SLURM_BINARIES.filter((b) => !which(b));
  let absent = missing();
  if (absent.length === 0) return true;
  log(`slurm: missing ${absent.join(', ')}`);
  if (process.platform !== 'linux') {
    log('slurm: not Linux; cannot install slurm-wlm');
    return false;
  }
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    log('slurm: not root; install slurm-wlm yourself (apt-get install slurm-wlm) to run the Slurm benchmark');
    return false;
  }
  const apt = which('apt-get');
  if (!apt) {
    log('slurm: no apt-get on this machine; install Slurm (slurmctld, slurmd, CLI, munge) yourself');
    return false;
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  log('slurm: apt-get update');
  if ((await runLogged(apt, ['update'], env, log)) !== 0) {
    log('slurm: apt-get update failed');
    return false;
  }
  log('slurm: apt-get install -y slurm-wlm');
  if ((await runLogged(apt, ['install', '-y', 'slurm-wlm'], env, log)) !== 0) {
    log('slurm: apt-get install slurm-wlm failed');
    return false;
  }
  absent = missing();
  if (absent.length > 0) {
    log(`slurm: still missing after install: ${absent.join(', ')}`);
    return false;
  }
  return true;
}

/** A TCP port free on both 127.0.0.1 and the wildcard address (Slurm daemons bind INADDR_ANY). */
async function freePort(avoid: Set<number>): Promise<number> {
  const tryListen = (port: number, host: string) =>
    new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen({ port, host, exclusive: true }, () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const p = await tryListen(0, '127.0.0.1');
    if (avoid.has(p)) continue;
    try {
      await tryListen(p, '0.0.0.0');
    } catch {
      continue;
    }
    avoid.add(p);
    return p;
  }
  throw new Error('no free TCP port');
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Pids of processes whose environment holds `${key}=${value}` (slurmstepd and job processes inherit slurmd's / sbatch's environment). */
function pidsWithEnv(key: string, value: string): number[] {
  const needle = Buffer.from(`${key}=${value}\0`);
  const out: number[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    try {
      const env = fs.readFileSync(`/proc/${pid}/environ`);
      if (env.includes(needle)) out.push(pid);
    } catch {
      /* gone or not ours */
    }
  }
  return out;
}

/**
 * Starts munged, slurmctld and slurmd (all in the foreground, as children of
 * this process) from a config generated under a temp work dir, and waits
 * until `sinfo` reports the one node idle. Cleans up if any step fails.
 */
export async function startOneNodeSlurm(options: SlurmStartOptions = {}): Promise<SlurmCluster> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) throw new Error('startOneNodeSlurm needs root (SlurmUser=root, slurmd runs jobs as the submitting user)');
  const started = Date.now();
  const cpus = options.cpus ?? os.availableParallelism();
  if (!Number.isInteger(cpus) || cpus < 1) throw new Error(`cpus must be a positive integer, got ${cpus}`);
  if (options.workDir && fs.existsSync(options.workDir) && fs.readdirSync(options.workDir).length > 0) {
    throw new Error(`workDir ${options.workDir} is not empty (stop() removes it, so it must be ours)`);
  }
  const tuning = options.tuning ?? 'throughput';
  const schedulerParameters = options.schedulerParameters ?? (tuning === 'throughput' ? 'batch_sched_delay=0' : undefined);
  const workDir = options.workDir ? (fs.mkdirSync(options.workDir, { recursive: true, mode: 0o700 }), fs.realpathSync(options.workDir)) : fs.mkdtempSync(path.join(fs.realpathSync(os.tmpdir()), 'slurm-'));
  fs.chmodSync(workDir, 0o700); // munged refuses dirs writable by others
  const marker = `AUTOGLM_SLURM_BENCH`;
  const markerValue = `${process.pid}-${randomBytes(6).toString('hex')}`;
  const children: Array<{ name: string; child: ChildProcess }> = [];
  let stopped = false;

  const killChildrenSync = () => {
    for (const { child } of children) if (child.pid && child.exitCode === null && child.signalCode === null) try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
    for (const pid of pidsWithEnv(marker, markerValue)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  };
  // Last resort if the host process exits without stop(): no daemons left behind.
  const onExit = () => {
    killChildrenSync();
    try { fs.rmSync(workDir, { recursive: true, force: true }); } catch { /* best effort */ }
  };
  process.on('exit', onExit);

  const p = (...parts: string[]) => path.join(workDir, ...parts);
  const dirs = { state: p('state'), spool: p('spool'), jobs: p('jobs') };
  for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
  const logs = { munged: p('munged.log'), slurmctld: p('slurmctld.log'), slurmd: p('slurmd.log') };
  const conf = p('slurm.conf');
  const mungeSocket = p('munge.socket');
  if (Buffer.byteLength(`${mungeSocket}.lock`) > 107) {
    process.off('exit', onExit);
    fs.rmSync(workDir, { recursive: true, force: true });
    throw new Error(`workDir ${workDir} is too long for a unix socket path`);
  }
  const sbinPath = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].filter((d) => !(process.env.PATH ?? '').split(':').includes(d));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SLURM_CONF: conf,
    PATH: [process.env.PATH, ...sbinPath].filter(Boolean).join(':'),
    [marker]: markerValue,
  };
  // Variables in the caller's environment that would override our config in the CLI.
  for (const k of Object.keys(env)) if (/^(SLURM_|SBATCH_|SQUEUE_|SINFO_|SCONTROL_)/.test(k) && k !== 'SLURM_CONF') delete env[k];

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // Cancel whatever is still queued or running so slurmstepds exit cleanly.
    if (children.some(({ name, child }) => name === 'slurmctld' && child.exitCode === null && child.signalCode === null)) {
      await run(bin('scancel'), ['--partition', 'bench', '--full'], { env, timeoutMs: 5_000 });
    }
    // slurmd first (it owns the steps), then slurmctld, then munged (both use it).
    for (const name of ['slurmd', 'slurmctld', 'munged']) {
      for (const { child } of children.filter((c) => c.name === name)) {
        if (!child.pid || child.exitCode !== null || child.signalCode !== null) continue;
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        try { child.kill('SIGTERM'); } catch { /* gone */ }
        const done = await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]);
        if (!done) {
          try { child.kill('SIGKILL'); } catch { /* gone */ }
          await Promise.race([exited, sleep(2_000)]);
        }
      }
    }
    // slurmstepd and job processes are re-parented away from slurmd; like the daemons, they carry our marker.
    for (let i = 0; i < 20; i++) {
      const strays = pidsWithEnv(marker, markerValue);
      if (strays.length === 0) break;
      for (const pid of strays) try { process.kill(pid, i < 10 ? 'SIGTERM' : 'SIGKILL'); } catch { /* gone */ }
      await sleep(100);
    }
    killChildrenSync();
    process.off('exit', onExit);
    fs.rmSync(workDir, { recursive: true, force: true });
  };

  const spawnDaemon = (name: string, file: string, args: string[]) => {
    const out = fs.openSync(p(`${name}.stdout`), 'a');
    // Not detached: a Ctrl-C to the benchmark's process group reaches the daemons too.
    const child = spawn(file, args, { env, cwd: workDir, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    child.on('error', () => undefined);
    children.push({ name, child });
    return child;
  };
  const failIfDead = (name: string, log: string) => {
    const c = children.find((x) => x.name === name)?.child;
    if (c && (c.exitCode !== null || c.signalCode !== null)) {
      throw new Error(`${name} exited (${c.exitCode ?? c.signalCode}):\n${tail(log)}\n${tail(p(`${name}.stdout`))}`);
    }
  };

  try {
    // --- munge: own key, socket, pid, log and seed files. ---
    const key = p('munge.key');
    fs.writeFileSync(key, randomBytes(1024), { mode: 0o400 });
    spawnDaemon('munged', bin('munged'), ['--foreground', '--force', `--key-file=${key}`, `--socket=${mungeSocket}`, `--pid-file=${p('munged.pid')}`, `--log-file=${logs.munged}`, `--seed-file=${p('munged.seed')}`, '--num-threads=4']);
    for (let i = 0; !fs.existsSync(mungeSocket); i++) {
      failIfDead('munged', logs.munged);
      if (i > 200) throw new Error(`munged did not create ${mungeSocket}:\n${tail(logs.munged)}`);
      await sleep(25);
    }

    // --- slurm.conf ---
    const ports = new Set<number>();
    const ctldPort = await freePort(ports);
    const slurmdPort = await freePort(ports);
    const host = os.hostname().split('.')[0]!;
    fs.writeFileSync(p('plugstack.conf'), '');
    fs.writeFileSync(
      conf,
      [
        '# Generated by bench/lib/slurm.ts: a throw-away one-node cluster.',
        'ClusterName=autoglmbench',
        `SlurmctldHost=${host}(127.0.0.1)`,
        `SlurmctldPort=${ctldPort}`,
        `SlurmdPort=${slurmdPort}`,
        'SlurmUser=root',
        'SlurmdUser=root',
        'AuthType=auth/munge',
        'CredType=cred/munge',
        `AuthInfo=socket=${mungeSocket}`,
        'MpiDefault=none',
        // No cgroups: track processes via /proc, no task containment.
        'ProctrackType=proctrack/linuxproc',
        'TaskPlugin=task/none',
        'JobAcctGatherType=jobacct_gather/none',
        'AccountingStorageType=accounting_storage/none',
        'JobCompType=jobcomp/none',
        'SelectType=select/cons_tres',
        'SelectTypeParameters=CR_CPU',
        'SchedulerType=sched/backfill',
        ...(schedulerParameters ? [`SchedulerParameters=${schedulerParameters}`] : []),
        // See SlurmStartOptions.tuning: with an Epilog, every job end sends EPILOG_COMPLETE, which runs the scheduler at once.
        ...(tuning === 'throughput' ? ['Epilog=/bin/true'] : []),
        'ReturnToService=2',
        // Keep finished jobs visible to squeue (no accounting DB) for the whole run.
        'MinJobAge=3600',
        'MaxJobCount=1000000',
        // Don't drain the node if the detected topology differs from CPUs= below.
        'SlurmdParameters=config_overrides',
        `StateSaveLocation=${dirs.state}`,
        `SlurmdSpoolDir=${dirs.spool}`,
        `SlurmctldPidFile=${p('slurmctld.pid')}`,
        `SlurmdPidFile=${p('slurmd.pid')}`,
        `SlurmctldLogFile=${logs.slurmctld}`,
        `SlurmdLogFile=${logs.slurmd}`,
        `SlurmctldDebug=${options.debug ? 'debug2' : 'info'}`,
        `SlurmdDebug=${options.debug ? 'debug2' : 'info'}`,
        `PlugStackConfig=${p('plugstack.conf')}`,
        `NodeName=benchnode NodeHostname=${host} NodeAddr=127.0.0.1 CPUs=${cpus} State=UNKNOWN`,
        'PartitionName=bench Nodes=benchnode Default=YES MaxTime=INFINITE State=UP',
        '',
      ].join('\n'),
    );

    // --- daemons, in the foreground (-D) so they are our children ---
    spawnDaemon('slurmctld', bin('slurmctld'), ['-D', '-i', '-f', conf]);
    spawnDaemon('slurmd', bin('slurmd'), ['-D', '-N', 'benchnode', '-f', conf]);

    const deadline = Date.now() + 60_000;
    let last = '';
    for (;;) {
      failIfDead('munged', logs.munged);
      failIfDead('slurmctld', logs.slurmctld);
      failIfDead('slurmd', logs.slurmd);
      const r = await run(bin('sinfo'), ['-h', '-N', '-o', '%N %T'], { env, timeoutMs: 5_000 });
      last = (r.stdout + r.stderr).trim();
      if (r.code === 0 && /^benchnode idle$/m.test(last)) break;
      if (Date.now() > deadline) {
        throw new Error(`node not idle after 60 s (sinfo: ${last}):\n--- slurmctld ---\n${tail(logs.slurmctld)}\n--- slurmd ---\n${tail(logs.slurmd)}`);
      }
      await sleep(100);
    }
    return { conf, env, workDir, cpus, partition: 'bench', logs, startupSeconds: (Date.now() - started) / 1000, stop };
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
}

/** Single-quotes a word for /bin/sh. */
const shq = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'OUT_OF_MEMORY', 'BOOT_FAIL', 'DEADLINE', 'PREEMPTED', 'REVOKED', 'SPECIAL_EXIT']);

/**
 * Submits n separate batch jobs running `command` (one `sbatch --wrap` each,
 * at most `parallel` sbatch processes at once; no job arrays), then waits
 * until all have finished, observed by polling `squeue -t all` (finished jobs
 * stay listed for MinJobAge). A job counts as failed when its sbatch failed,
 * it did not end COMPLETED (exit code 0), or its --output file is missing.
 */
export async function runSlurmJobs(cluster: SlurmCluster, n: number, command: string[], options: SlurmRunOptions = {}): Promise<SlurmRunResult> {
  const parallel = Math.max(1, options.parallel ?? 8);
  // Stock Slurm starts ~cpus jobs per 3 s (see SlurmStartOptions.tuning), so leave room for that.
  const timeoutMs = options.timeoutMs ?? Math.max(120_000, 60_000 + (n * 3_000) / cluster.cpus);
  const pollMs = options.pollMs ?? 100;
  const tag = `b${randomBytes(4).toString('hex')}`;
  const outDir = path.join(cluster.workDir, 'jobs', tag);
  fs.mkdirSync(outDir, { recursive: true });
  const sbatch = bin('sbatch');
  const squeue = bin('squeue');
  const wrap = `exec ${command.map(shq).join(' ')}`;
  const args = ['--parsable', '--job-name', tag, '--partition', cluster.partition, '--nodes=1', '--ntasks=1', '--cpus-per-task=1', `--chdir=${outDir}`, `--output=${outDir}/%j.out`, `--wrap=${wrap}`];

  const ids: string[] = [];
  let submitFailures = 0;
  let firstError = '';
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(parallel, n) }, async () => {
      while (next < n) {
        next += 1;
        const r = await run(sbatch, args, { env: cluster.env, timeoutMs: 120_000 });
        const id = r.stdout.trim().split(';')[0];
        if (r.code === 0 && id && /^\d+$/.test(id)) ids.push(id);
        else {
          submitFailures += 1;
          firstError ||= (r.stderr || r.stdout).trim();
        }
      }
    }),
  );
  const tSubmitted = performance.now();
  if (firstError) console.error(`sbatch failed ${submitFailures}x, first: ${firstError}`);

  const pending = new Set(ids);
  const finalState = new Map<string, string>();
  const deadline = Date.now() + timeoutMs;
  let tDone = tSubmitted;
  while (pending.size > 0) {
    const r = await run(squeue, ['-h', '-t', 'all', '--name', tag, '-o', '%i %T'], { env: cluster.env, timeoutMs: 30_000 });
    const now = performance.now();
    if (r.code === 0) {
      for (const line of r.stdout.split('\n')) {
        const [id, state] = line.trim().split(/\s+/);
        if (id && state && pending.has(id) && TERMINAL.has(state)) {
          pending.delete(id);
          finalState.set(id, state);
          tDone = now;
        }
      }
    }
    if (pending.size === 0) break;
    if (Date.now() > deadline) break;
    await sleep(pollMs);
  }
  let failed = submitFailures + pending.size;
  for (const [id, state] of finalState) {
    if (state !== 'COMPLETED' || !fs.existsSync(path.join(outDir, `${id}.out`))) failed += 1;
  }
  const submitSeconds = (tSubmitted - t0) / 1000;
  const completeSeconds = (tDone - t0) / 1000;
  return {
    submitSeconds,
    completeSeconds,
    submittedPerSecond: ids.length / submitSeconds,
    completedPerSecond: (ids.length - pending.size) / completeSeconds,
    failed,
  };
}
