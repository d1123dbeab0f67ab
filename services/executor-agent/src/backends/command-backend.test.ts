import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TaskKind, TaskSpec } from '@autoglm/proto';
import { ExecutionError, type ExecutionRequest, OUTPUT_TAIL_BYTES, StopRequest } from './backend';
import { CommandBackend, CommandFailedError } from './command-backend';

function batch(command: string[], env: Record<string, string> = {}): TaskSpec {
  return TaskSpec.fromPartial({ kind: TaskKind.BATCH, payload: { $case: 'batch', batch: { command, env } } });
}

function request(spec: TaskSpec, gpuIndices = [0]) {
  const controller = new AbortController();
  let resolveStarted: () => void = () => undefined;
  const started = new Promise<void>((r) => {
    resolveStarted = r;
  });
  const req: ExecutionRequest = {
    taskId: 't1',
    attempt: 1,
    spec,
    gpuIndices,
    signal: controller.signal,
    onStart: () => resolveStarted(),
    onChunk: () => {
      throw new Error('a batch job sends no chunks');
    },
  };
  return { req, controller, started };
}

const SH = ['/bin/sh'];

/** A process's state letter from /proc (R running, S sleeping, Z zombie), or undefined once it is gone. */
function processState(pid: number): string | undefined {
  try {
    return /\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('CommandBackend', () => {
  it('runs an allowed command and keeps its stdout', async () => {
    const backend = new CommandBackend({ allow: ['/bin/echo'] });
    const { req, started } = request(batch(['/bin/echo', 'hello', 'world']));
    const outcome = await backend.execute(req);
    await started;
    expect(outcome).toMatchObject({ finishReason: 'stop', output: 'hello world\n', exitCode: 0, promptTokens: 0, completionTokens: 0 });
    expect(outcome.runTimeMs).toBeGreaterThanOrEqual(0);
    expect(backend.load().numRequestsRunning).toBe(0);
  });

  it('binds the job to its GPUs and adds its env, without passing the agent secrets', async () => {
    process.env.AUTOGLM_TEST_SECRET = 'do-not-leak';
    try {
      const backend = new CommandBackend({ allow: SH });
      const script = 'echo "$CUDA_VISIBLE_DEVICES|$FOO|${AUTOGLM_TEST_SECRET:-unset}|${PATH:+path}"';
      const { req } = request(batch(['/bin/sh', '-c', script], { FOO: 'bar' }), [2, 5]);
      const outcome = await backend.execute(req);
      expect(outcome.output).toBe('2,5|bar|unset|path\n');
      // The job's own CUDA_VISIBLE_DEVICES would widen its binding: refused.
      const widen = request(batch(['/bin/sh', '-c', script], { CUDA_VISIBLE_DEVICES: '0,1,2,3,4,5,6,7' }), [2, 5]);
      await expect(backend.execute(widen.req)).rejects.toMatchObject({ retryable: false, message: expect.stringContaining('CUDA_VISIBLE_DEVICES') });
    } finally {
      delete process.env.AUTOGLM_TEST_SECRET;
    }
  });

  it('refuses a command outside the allow-list without telling what is allowed', async () => {
    const backend = new CommandBackend({ allow: ['/bin/echo', 'python3'] });
    const error = await backend.execute(request(batch(['/bin/rm', '-rf', '/tmp/x'])).req).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExecutionError);
    expect(error).toMatchObject({ retryable: false, message: 'command /bin/rm is not allowed on this agent (its operator sets AUTOGLM_COMMAND_ALLOW)' });
    expect((error as Error).message).not.toMatch(/echo|python/);
  });

  it('is disabled with an empty allow-list', async () => {
    const backend = new CommandBackend({ allow: [] });
    const error = await backend.execute(request(batch(['/bin/echo', 'hi'])).req).catch((e: unknown) => e);
    expect(error).toMatchObject({
      retryable: false,
      message: 'command /bin/echo is not allowed: the command backend of this agent allows nothing',
    });
  });

  it('rejects a non-zero exit as retryable with the stderr tail', async () => {
    const backend = new CommandBackend({ allow: SH });
    const error = await backend.execute(request(batch(['/bin/sh', '-c', 'echo "CUDA out of memory" >&2; exit 3'])).req).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandFailedError);
    expect(error).toMatchObject({ retryable: true, exitCode: 3, signal: null, stderrTail: 'CUDA out of memory\n' });
    expect((error as Error).message).toBe('command /bin/sh exited with code 3: CUDA out of memory');
  });

  it('keeps only the last 64 KiB of stdout', async () => {
    const backend = new CommandBackend({ allow: SH });
    const script = 'i=0; while [ $i -lt 2000 ]; do printf "%099d\\n" $i; i=$((i+1)); done; echo END';
    const outcome = await backend.execute(request(batch(['/bin/sh', '-c', script])).req);
    expect(Buffer.byteLength(outcome.output)).toBe(OUTPUT_TAIL_BYTES);
    expect(outcome.output.endsWith('0000001999\nEND\n')).toBe(true);
  });

  it('cancels a running job with SIGTERM and reports it cancelled', async () => {
    const backend = new CommandBackend({ allow: ['sleep'] });
    const { req, controller, started } = request(batch(['sleep', '30']));
    const done = backend.execute(req);
    await started;
    expect(backend.load().numRequestsRunning).toBe(1);
    controller.abort();
    const outcome = await done;
    expect(outcome).toMatchObject({ finishReason: 'cancelled', exitCode: 143 }); // 128 + SIGTERM
    expect(backend.load().numRequestsRunning).toBe(0);
  });

  it('kills the whole process group, and escalates to SIGKILL when SIGTERM is ignored', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'autoglm-cmd-'));
    const fifo = join(dir, 'ready');
    execFileSync('mkfifo', [fifo]);
    try {
      const backend = new CommandBackend({ allow: SH, killGraceMs: 100 });
      // The shell ignores SIGTERM (and so does the sleep it starts, which also holds
      // stdout open): only SIGKILL to the whole group ends the job. It says when the
      // trap is set through the FIFO, so the test never signals it too early.
      const script = `trap '' TERM; sleep 30 & echo ready > "$READY"; wait`;
      const { req, controller } = request(batch(['/bin/sh', '-c', script], { READY: fifo }));
      const ready = readFile(fifo, 'utf8');
      const done = backend.execute(req);
      expect(await ready).toBe('ready\n');
      controller.abort();
      const outcome = await done;
      expect(outcome).toMatchObject({ finishReason: 'cancelled', exitCode: 137 }); // 128 + SIGKILL
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives a preempted job the grace period its stop request carries before SIGKILL, time to checkpoint', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'autoglm-cmd-'));
    const fifo = join(dir, 'ready');
    execFileSync('mkfifo', [fifo]);
    try {
      // The agent's own grace is tiny; the preemption's is generous: the checkpoint (0.3 s) completes.
      const backend = new CommandBackend({ allow: SH, killGraceMs: 10 });
      const script = `trap 'sleep 0.3; echo checkpointed; exit 0' TERM; echo ready > "$READY"; while :; do sleep 0.05; done`;
      const { req, controller } = request(batch(['/bin/sh', '-c', script], { READY: fifo }));
      const ready = readFile(fifo, 'utf8');
      const done = backend.execute(req);
      expect(await ready).toBe('ready\n');
      controller.abort(new StopRequest('preempted by t2', 5000, true));
      const outcome = await done;
      expect(outcome).toMatchObject({ finishReason: 'cancelled', exitCode: 0, output: 'checkpointed\n' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('kills what a job leaves behind in its process group when it ends, as when its leader exits on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'autoglm-cmd-'));
    const fifo = join(dir, 'ready');
    execFileSync('mkfifo', [fifo]);
    try {
      const backend = new CommandBackend({ allow: SH, killGraceMs: 60_000 });
      // A child that ignores SIGTERM and lets go of the job's pipes: the leader exits at once on
      // SIGTERM, so only the group's SIGKILL at the job's end can reach the child.
      const script = `(trap '' TERM; exec sleep 30) </dev/null >/dev/null 2>&1 & echo $! > "$READY"; wait`;
      const { req, controller } = request(batch(['/bin/sh', '-c', script], { READY: fifo }));
      const pid = readFile(fifo, 'utf8').then((text) => Number(text.trim()));
      const done = backend.execute(req);
      const child = await pid;
      expect(processState(child)).toMatch(/^[RS]$/);
      controller.abort(new StopRequest('preempted by t2', 60_000, true));
      expect(await done).toMatchObject({ finishReason: 'cancelled' });
      // Killed: gone, or a zombie until its new parent reaps it (not a process that runs).
      await waitFor(() => processState(child) === undefined || processState(child) === 'Z');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a second stop can only shorten the grace: the agent shutting down during a long preemption grace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'autoglm-cmd-'));
    const fifo = join(dir, 'ready');
    execFileSync('mkfifo', [fifo]);
    try {
      const backend = new CommandBackend({ allow: SH, killGraceMs: 50 });
      const script = `trap '' TERM; echo ready > "$READY"; while :; do sleep 0.05; done`;
      const { req, controller } = request(batch(['/bin/sh', '-c', script], { READY: fifo }));
      const ready = readFile(fifo, 'utf8');
      const done = backend.execute(req);
      expect(await ready).toBe('ready\n');
      controller.abort(new StopRequest('preempted by t2', 3_600_000, true));
      // close() stops with the agent's own grace (50 ms), not the hour the preemption gave.
      await backend.close();
      expect(await done).toMatchObject({ finishReason: 'cancelled', exitCode: 137 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('hides every GPU from a job without GPUs', async () => {
    const backend = new CommandBackend({ allow: SH, host: { cpuMillis: 4000, memoryBytes: 2 ** 30 } });
    const { req } = request(batch(['/bin/sh', '-c', 'echo "[${CUDA_VISIBLE_DEVICES-unset}]"']), []);
    expect((await backend.execute(req)).output).toBe('[]\n');
    expect(backend.hostResources()).toEqual({ cpuMillis: 4000, memoryBytes: 2 ** 30 });
  });

  it('does not start a job whose signal is already aborted', async () => {
    const backend = new CommandBackend({ allow: ['/bin/echo'] });
    const { req, controller } = request(batch(['/bin/echo', 'hi']));
    controller.abort();
    await expect(backend.execute(req)).resolves.toMatchObject({ finishReason: 'cancelled', output: '' });
  });

  it('reports a missing program as retryable: another host may have it', async () => {
    const backend = new CommandBackend({ allow: ['/nonexistent/train'] });
    const error = await backend.execute(request(batch(['/nonexistent/train'])).req).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExecutionError);
    expect(error).toMatchObject({ retryable: true, message: 'cannot start /nonexistent/train: it is allowed on this agent but not installed here' });
  });

  it('runs batch jobs only', async () => {
    const backend = new CommandBackend({ allow: ['/bin/echo'] });
    const inference = TaskSpec.fromPartial({ kind: TaskKind.INFERENCE, payload: { $case: 'inference', inference: { prompt: 'hi' } } });
    await expect(backend.execute(request(inference).req)).rejects.toMatchObject({ retryable: false });
  });

  it('close stops every running job and waits for it', async () => {
    const backend = new CommandBackend({ allow: ['sleep'] });
    const a = request(batch(['sleep', '30']));
    const b = request(batch(['sleep', '30']));
    const done = Promise.all([backend.execute(a.req), backend.execute(b.req)]);
    await Promise.all([a.started, b.started]);
    await backend.close();
    expect(backend.load().numRequestsRunning).toBe(0);
    expect((await done).map((o) => o.finishReason)).toEqual(['cancelled', 'cancelled']);
    await expect(backend.execute(request(batch(['sleep', '1'])).req)).rejects.toMatchObject({ retryable: true });
  });
});
