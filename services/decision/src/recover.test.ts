import pino from 'pino';
import { EnqueueRequest, PriorityClass, TaskKind, TaskState, WaitingCause, type Task } from '@autoglm/proto';
import { tempDir } from '../../../test/support/temp-dir';
import { DecisionConfigSchema } from './config';
import { startDecision } from './start';

/**
 * A restart on a backlog: decision reads the unfinished tasks a page at a
 * time and keeps queued and waiting ones at rest (encoded), so these checks
 * are about what a client sees of such tasks afterwards.
 */
describe('decision restarted on a backlog of queued and waiting tasks', () => {
  const data = tempDir('recover');
  afterAll(() => data.remove());

  const start = () => startDecision(DecisionConfigSchema.parse({ listen: '127.0.0.1:0', dataDir: data.dir }), pino({ level: 'silent' }));
  const batch = (priorityClass: PriorityClass, shard: number, dependsOn: string[] = []) =>
    EnqueueRequest.fromPartial({
      tenant: `tenant-${shard % 3}`,
      requestId: `job-${shard}`,
      spec: {
        kind: TaskKind.BATCH,
        gpuCount: 1,
        gpuMemoryBytes: 2 ** 30,
        priorityClass,
        dependsOn,
        labels: { shard: String(shard) },
        payload: { $case: 'batch', batch: { command: ['python', 'train.py', '--shard', String(shard)], env: { SHARD: String(shard) } } },
      },
    });

  it('gives back every task as it was submitted, queued in the same order, the waiting ones still waiting', async () => {
    const first = await start();
    // No agents: nothing is placed, so everything stays queued or waiting.
    const queued: Task[] = [];
    for (let i = 0; i < 30; i++) queued.push((await first.scheduler.enqueue(batch([PriorityClass.BACKGROUND, PriorityClass.NORMAL, PriorityClass.URGENT][i % 3]!, i))).task);
    const waiting = (await first.scheduler.enqueue(batch(PriorityClass.URGENT, 99, [queued[0]!.id]))).task;
    const before = await Promise.all([...queued, waiting].map((t) => first.scheduler.get(t.id)));
    const order = (await Promise.all(queued.map((t) => first.scheduler.explain(t.id, before.find((b) => b.id === t.id)!)))).map((e) => [e.taskId, e.queuePosition]);
    await first.stop();

    const second = await start();
    try {
      const after = await Promise.all([...queued, waiting].map((t) => second.scheduler.get(t.id)));
      expect(after).toEqual(before);
      const stats = second.scheduler.queueStats();
      expect([stats.queued, stats.waitingDeps]).toEqual([30, 1]);
      expect(stats.tenants.map((t) => [t.tenant, t.queued])).toEqual([['tenant-0', 10], ['tenant-1', 10], ['tenant-2', 10]]);
      const reordered = (await Promise.all(queued.map(async (t) => second.scheduler.explain(t.id, await second.scheduler.get(t.id))))).map((e) => [e.taskId, e.queuePosition]);
      expect(reordered).toEqual(order);
      const gated = second.scheduler.explain(waiting.id, await second.scheduler.get(waiting.id));
      expect([gated.state, gated.waitingCause]).toEqual([TaskState.WAITING_DEPS, WaitingCause.DEPENDENCY]);
      // The dependency's lent urgency (priority inheritance) is rebuilt too: it heads the queue.
      expect(reordered.find(([id]) => id === queued[0]!.id)![1]).toBe(1);
    } finally {
      await second.stop();
    }
  }, 60_000);
});
