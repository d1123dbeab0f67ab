import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TaskKind, TaskSpec } from '@autoglm/proto';
import type { ExecutionRequest } from './backend';
import { CommandBackend } from './command-backend';
import { markedProcesses, resolveAllowList, resolveJobUser } from './containment';

function job(command: string[], env: Record<string, string> = {}, timeLimitMs?: number): TaskSpec {
  const timeLimit = timeLimitMs === undefined ? undefined : { seconds: Math.floor(timeLimitMs / 1000), nanos: (timeLimitMs % 1000) * 1e6 };
  return TaskSpec.fromPartial({ kind: TaskKind.BATCH, payload: { $case: 'batch', batch: { command, env, timeLimit } } });
}

function request(spec: TaskSpec): { req: ExecutionRequest; controller: AbortController } {
  const controller = new AbortController();
  return { controller, req: { taskId: 't-contain', attempt: 1, spec, gpuIndices: [], signal: controller.signal, onStart: () => undefined, onChunk: () => undefined } };
}

/** Whether a process exists (zombies count as gone). */
function alive(pid: number): boolean {
  try {
    return !/\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('command job containment', () => {
  let dir: string;
  let work: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'autoglm-contain-'));
    work = join(dir, 'jobs');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("runs the program the agent resolved for an allowed name, whatever the job's PATH, and refuses PATH and LD_* from the job", async () => {
    // An attacker's "hello" earlier on a PATH the job would like to set.
    const evil = join(dir, 'evil');
    const good = join(dir, 'good');
    for (const [d, says] of [[evil, 'evil'], [good, 'real']] as const) {
      mkdirSync(d);
      writeFileSync(join(d, 'hello'), `#!/bin/sh\necho ${says}\n`);
      chmodSync(join(d, 'hello'), 0o755);
    }
    expect(resolveAllowList(['hello', '/nonexistent/x'], `${good}:/usr/bin`)).toEqual(new Map([['hello', join(good, 'hello')], [join(good, 'hello'), join(good, 'hello')], ['/nonexistent/x', undefined]]));
    const saved = process.env.PATH;
    process.env.PATH = `${good}:${saved}`;
    const backend = new CommandBackend({ allow: ['hello'], workRoot: work });
    process.env.PATH = saved;
    expect((await backend.execute(request(job(['hello'])).req)).output).toBe('real\n');
    for (const name of ['PATH', 'LD_PRELOAD', 'LD_LIBRARY_PATH', 'NODE_OPTIONS']) {
      await expect(backend.execute(request(job(['hello'], { [name]: evil })).req)).rejects.toMatchObject({ retryable: false, message: expect.stringContaining(`batch.env["${name}"]`) });
    }
  });

  it('gives each job a private directory as its cwd, HOME and TMPDIR, and removes it after', async () => {
    const backend = new CommandBackend({ allow: ['/bin/sh'], workRoot: work });
    const out = (await backend.execute(request(job(['/bin/sh', '-c', 'pwd; echo "$HOME|$TMPDIR"; stat -c %a .; ulimit -c'])).req)).output.split('\n');
    expect(out[0]).toMatch(new RegExp(`^${work}/t-contain-`));
    expect(out[1]).toBe(`${out[0]}|${out[0]}`);
    expect(out[2]).toBe('700');
    expect(out[3]).toBe('0');
    await waitFor(() => !existsSync(out[0]!), 'the job directory to be removed');
  });

  it('kills a grandchild that left the process group with setsid, on cancel', async () => {
    const backend = new CommandBackend({ allow: ['/bin/sh'], workRoot: work, killGraceMs: 200 });
    const pidFile = join(dir, 'escaped.pid');
    const script = `setsid sh -c 'echo $$ > ${pidFile}; exec sleep 300' & sleep 300`;
    const { req, controller } = request(job(['/bin/sh', '-c', script]));
    const running = backend.execute(req);
    await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '', 'the escaped process to start');
    const escaped = Number(readFileSync(pidFile, 'utf8'));
    expect(alive(escaped)).toBe(true);
    controller.abort();
    await expect(running).resolves.toMatchObject({ finishReason: 'cancelled' });
    await waitFor(() => !alive(escaped), 'the escaped process to be killed');
  });

  it('kills a job at its time limit, with what it started, and fails it without retry', async () => {
    const backend = new CommandBackend({ allow: ['/bin/sh'], workRoot: work, killGraceMs: 100 });
    const pidFile = join(dir, 'child.pid');
    const started = Date.now();
    const error = await backend.execute(request(job(['/bin/sh', '-c', `setsid sleep 300 & echo $! > ${pidFile}; sleep 300`], {}, 300)).req).catch((e: unknown) => e);
    expect(error).toMatchObject({ retryable: false, message: 'command /bin/sh ran past its time limit of 0.3 s and was killed (set batch.time_limit for a longer one)' });
    expect(Date.now() - started).toBeLessThan(10_000);
    const child = Number(readFileSync(pidFile, 'utf8'));
    await waitFor(() => !alive(child), 'the job child to be killed');
    expect(markedProcesses('no-such-marker')).toEqual([]);
  });

  const asRoot = process.getuid?.() === 0;
  (asRoot ? it : it.skip)('runs jobs as an unprivileged user that cannot read the agent’s environment', async () => {
    process.env.AUTOGLM_TEST_AGENT_SECRET = 'agent-secret';
    try {
      const nobody = resolveJobUser('nobody');
      const backend = new CommandBackend({ allow: ['/bin/sh'], workRoot: work, user: nobody });
      const out = await backend.execute(request(job(['/bin/sh', '-c', `id -u; cat /proc/${process.pid}/environ 2>&1 | head -c 200; echo; touch ./mine && echo wrote`])).req);
      const [uid, environ] = out.output.split('\n');
      expect(Number(uid)).toBe(nobody.uid);
      expect(environ).toMatch(/Permission denied/);
      expect(out.output).not.toContain('agent-secret');
      // Its own directory is its to write.
      expect(out.output.trimEnd().endsWith('wrote')).toBe(true);
    } finally {
      delete process.env.AUTOGLM_TEST_AGENT_SECRET;
    }
  });
  if (!asRoot) process.stderr.write('containment.test.ts: not root, so running jobs as another user is not tested here\n');

  it('puts a job in a cgroup of its own with what it claimed as limits, and kills it through the cgroup', async () => {
    // A stand-in for a delegated cgroup v2 directory (this host may have none): the files the kernel would read.
    const parent = join(dir, 'cgroup');
    mkdirSync(parent);
    const backend = new CommandBackend({ allow: ['/bin/sh'], workRoot: work, killGraceMs: 100, cgroupParent: parent });
    const spec = job(['/bin/sh', '-c', 'sleep 300']);
    spec.memoryBytes = 2 ** 30;
    spec.cpuMillis = 1500;
    const { req, controller } = request(spec);
    const running = backend.execute(req);
    const cgroup = await (async () => {
      let found: string | undefined;
      await waitFor(() => {
        found = readdirSync(parent).find((d) => d.startsWith('job-') && existsSync(join(parent, d, 'cgroup.procs')));
        return found !== undefined;
      }, 'the job to enter its cgroup');
      return join(parent, found!);
    })();
    expect(readFileSync(join(cgroup, 'memory.max'), 'utf8')).toBe(String(2 ** 30));
    expect(readFileSync(join(cgroup, 'cpu.max'), 'utf8')).toBe('150000 100000');
    expect(readFileSync(join(cgroup, 'pids.max'), 'utf8')).toBe('4096');
    const pid = Number(readFileSync(join(cgroup, 'cgroup.procs'), 'utf8'));
    expect(alive(pid)).toBe(true);
    controller.abort();
    await expect(running).resolves.toMatchObject({ finishReason: 'cancelled' });
    await waitFor(() => !alive(pid), 'the job to be killed');
    // SIGKILL went through cgroup.kill too.
    await waitFor(() => existsSync(join(cgroup, 'cgroup.kill')), 'cgroup.kill to be written');
  });

  it('refuses to run jobs as root or as a user that does not exist', () => {
    expect(() => resolveJobUser('root')).toThrow(/may not run as root/);
    expect(() => resolveJobUser('no-such-user-autoglm')).toThrow(/does not exist/);
  });
});
