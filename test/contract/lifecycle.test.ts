import pino from 'pino';
import { AutoglmError, runCli as cli, type MessageInit } from '@autoglm/client';
import { AgentConfigSchema, startAgent } from '@autoglm/executor-agent';
import { TaskState, type SubmitTaskRequest, type TaskEvent } from '@autoglm/proto';
import { startInProcessMesh, type InProcessMesh } from '../support/in-process-mesh';
import { until } from '../support/until';
import { captureIo } from '../support/cli-io';

/**
 * Retries, dead letters and hand-backs through the public API and the CLI,
 * against real servers (decision with a short retry backoff, sim agents).
 */

const RETRY_BASE_MS = 40;

/** A simulated batch job of `simSeconds` (time scale 20) that fails at its end when `fail` is set. */
const job = (simSeconds: number, fail?: 'retryable' | 'permanent', maxRetries = 3): MessageInit<SubmitTaskRequest> => ({
  payload: { $case: 'batch', batch: { expectedDuration: { seconds: simSeconds, nanos: 0 }, env: fail ? { AUTOGLM_SIM_FAIL: fail } : {} } },
  maxRetries,
});

describe('task lifecycle: retries, dead letters, hand-backs', () => {
  let mesh: InProcessMesh;

  beforeAll(async () => {
    mesh = await startInProcessMesh({ decision: { retryBaseMs: RETRY_BASE_MS, retryMaxMs: 1000 } });
  }, 30_000);

  afterAll(async () => {
    await mesh?.stop();
  }, 30_000);

  const history = async (id: string): Promise<TaskEvent[]> => {
    const events: TaskEvent[] = [];
    for await (const e of mesh.client.watch(id)) events.push(e);
    return events;
  };
  const autoglm = async (...args: string[]) => {
    const io = captureIo();
    const code = await cli(['node', 'autoglm', '--address', mesh.parser.grpcAddress, '--token', mesh.adminToken, '--tenant', 'contract', ...args], io);
    return { code, out: io.out, err: io.err };
  };
  const atMs = (e: TaskEvent) => e.time!.seconds * 1000 + e.time!.nanos / 1e6;

  it('retries a retryable failure with growing backoff, then dead-letters it with every attempt recorded', async () => {
    const { task } = await mesh.client.submit(job(1, 'retryable', 2));
    const events = await history(task!.id);
    const S = TaskState;
    const attempts = [1, 2, 3].flatMap((n) => ['ASSIGNED', 'RUNNING', 'FAILED', n < 3 ? 'QUEUED' : 'DEAD_LETTER']);
    expect(events.map((e) => TaskState[e.state])).toEqual(['QUEUED', ...attempts]);
    expect(events[events.length - 1]).toMatchObject({ final: true, reason: expect.stringContaining('no retries left after 3 failed attempts') });
    // The n-th retry waits at least half of base * 2^(n-1).
    const failed = events.filter((e) => e.state === S.FAILED);
    const requeued = events.filter((e) => e.state === S.QUEUED).slice(1);
    requeued.forEach((q, n) => expect(atMs(q) - atMs(failed[n]!)).toBeGreaterThanOrEqual((RETRY_BASE_MS * 2 ** n) / 2 - 1));
    expect(await mesh.client.get(task!.id)).toMatchObject({ state: S.DEAD_LETTER, attempt: 3, failures: 3 });
  }, 30_000);

  it('ends a failure that retrying cannot fix at once, in one final FAILED event', async () => {
    const { task } = await mesh.client.submit(job(1, 'permanent', 5));
    const events = await history(task!.id);
    expect(events.map((e) => TaskState[e.state])).toEqual(['QUEUED', 'ASSIGNED', 'RUNNING', 'FAILED']);
    expect(events[3]).toMatchObject({ final: true });
    expect(await mesh.client.get(task!.id)).toMatchObject({ attempt: 1, failures: 1, reason: expect.stringContaining('permanent') });
  }, 30_000);

  it('lists dead letters, requeues one as a new task (the same one on a retry), and purges them, from the CLI', async () => {
    const dead = await Promise.all([1, 2].map(async () => (await mesh.client.submit(job(1, 'retryable', 0))).task!.id));
    await Promise.all(dead.map(history));

    const listed = await autoglm('dead-letters', 'list');
    expect(listed.code).toBe(0);
    for (const id of dead) expect(listed.out).toContain(id);
    expect(listed.out).toContain('AUTOGLM_SIM_FAIL=retryable');

    const requeued = await autoglm('dead-letters', 'requeue', dead[0]!);
    expect(requeued.code).toBe(0);
    const newId = requeued.out.trim().split(' -> ')[1]!;
    expect(newId).toMatch(/^[0-9a-f-]{36}$/);
    const fresh = await mesh.client.get(newId);
    expect(fresh).toMatchObject({ attempt: 1, failures: 0, spec: { labels: { 'autoglm.requeued_from': dead[0] } } });
    expect((await mesh.client.get(dead[0]!)).requeuedAs).toBe(newId);
    // A retried requeue names the same new task; the list no longer shows the requeued one.
    expect((await autoglm('dead-letters', 'requeue', dead[0]!)).out.trim()).toBe(`${dead[0]} -> ${newId}`);
    expect((await autoglm('dead-letters', 'list')).out).not.toContain(dead[0]);
    await history(newId);

    const notDead = (await mesh.client.submit(job(1))).task!.id;
    const refused = await autoglm('dead-letters', 'purge', notDead);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('FAILED_PRECONDITION');
    expect((await autoglm('dead-letters', 'purge')).err).toContain('--all');

    const purged = await autoglm('dead-letters', 'purge', '--all');
    expect(purged.out.trim()).toMatch(/^purged [1-9]\d* dead letters?$/);
    await expect(mesh.client.get(dead[1]!)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await mesh.client.queueStats()).deadLetters).toBe(0);
  }, 30_000);

  it('refuses a malformed dead-letter request with INVALID_ARGUMENT naming the field', async () => {
    const error = (await mesh.client.requeueDeadLetters({ taskIds: ['not-a-uuid'] }).catch((e: unknown) => e)) as AutoglmError;
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('select.task_ids[0]') });
    await expect(mesh.client.purgeDeadLetters({})).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('select') });
  });

  it('requeues work a draining agent hands back without using up a retry', async () => {
    // A second agent that drains at once: its running work is handed back, not failed.
    const drainer = await startAgent(
      AgentConfigSchema.parse({ listen: '127.0.0.1:0', decisionAddress: mesh.decision.grpcAddress, nodeId: 'drainer', simGpus: 4, simTimeScale: 20, drainGraceMs: 50 }),
      pino({ level: 'silent' }),
    );
    let onDrainer: string | undefined;
    try {
      await until(async () => ((await mesh.client.listNodes()).nodes.some((n) => n.nodeId === 'drainer') ? true : undefined), 10_000, 'the drainer to register');
      const ids = await Promise.all(Array.from({ length: 8 }, async () => (await mesh.client.submit(job(600, undefined, 0))).task!.id));
      onDrainer = await until(
        async () => {
          for (const id of ids) {
            const t = await mesh.client.get(id);
            if (t.state === TaskState.RUNNING && t.nodeId === 'drainer') return id;
          }
          return undefined;
        },
        10_000,
        'a task running on the drainer',
      );
      await drainer.stop();
      // max_retries 0: a counted failure would have dead-lettered it.
      const requeued = await until(async () => {
        const t = await mesh.client.get(onDrainer!);
        return t.attempt === 2 ? t : undefined;
      }, 10_000, 'the handed-back task to be requeued');
      expect(requeued).toMatchObject({ failures: 0 });
      expect(requeued.state).not.toBe(TaskState.DEAD_LETTER);
      await Promise.all(ids.map((id) => mesh.client.cancel(id, 'test over')));
      const full = await history(onDrainer);
      expect(full.map((e) => TaskState[e.state]).slice(0, 5)).toEqual(['QUEUED', 'ASSIGNED', 'RUNNING', 'PREEMPTED', 'QUEUED']);
      expect(full[3]!.reason).toContain('handed back');
    } finally {
      await drainer.stop().catch(() => undefined);
    }
  }, 30_000);
});
