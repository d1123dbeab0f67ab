import { AutoglmClient, AutoglmError, type MessageInit } from '@autoglm/client';
import { PriorityClass, TaskState, type SubmitTaskRequest } from '@autoglm/proto';
import { startInProcessMesh, type InProcessMesh } from '../support/in-process-mesh';

/**
 * Admission limits through the public API: load shedding of sheddable work
 * (negative priority) when a class's queue is full, and per-tenant rate
 * limits at the parser. Both refuse with RESOURCE_EXHAUSTED and a retry hint.
 */

/** A long simulated background job (nothing finishes during the test). */
const job = (priority: number, requestId?: string): MessageInit<SubmitTaskRequest> => ({
  payload: { $case: 'batch', batch: { expectedDuration: { seconds: 3600, nanos: 0 } } },
  priorityClass: PriorityClass.BACKGROUND,
  priority,
  requestId,
  // More GPUs than the host has: the jobs stay queued.
  resources: { gpuCount: 4, gpuMemoryBytes: 0 },
});

async function refusal(p: Promise<unknown>): Promise<AutoglmError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AutoglmError);
    return err as AutoglmError;
  }
  throw new Error('it was accepted');
}

describe('admission: load shedding and rate limits', () => {
  let mesh: InProcessMesh;
  /** The SDK retries RESOURCE_EXHAUSTED after the hint by itself: these clients do not, to see the refusal. */
  const once = (tenant: string) => new AutoglmClient({ address: mesh.parser.grpcAddress, tenant, token: mesh.adminToken, retry: { maxAttempts: 1 } });

  beforeAll(async () => {
    mesh = await startInProcessMesh({ decision: { shedQueueLimit: 3 }, parser: { tenantRateLimits: 'limited=0.5/2,cron-heavy=0.01/1' } });
  });

  afterAll(async () => {
    await mesh?.stop();
  });

  it('refuses sheddable work once its class queue is full, with a retry hint, and keeps taking the rest', async () => {
    const early = await mesh.client.submit(job(-5, 'shed-early'));
    for (let i = 0; i < 2; i++) await mesh.client.submit(job(0));
    expect((await mesh.client.queueStats()).queued).toBeGreaterThanOrEqual(3);

    const client = once('contract');
    const err = await refusal(client.submit(job(-5)).finally(() => client.close()));
    expect(err.code).toBe('RESOURCE_EXHAUSTED');
    expect(err.details).toMatch(/spec\.priority: -5 is sheddable and the background queue is full: \d+ tasks of this class are queued \(limit 3\); retry after \d+ s, or submit with priority 0 or more/);
    expect(err.retryAfterMs).toBeGreaterThanOrEqual(1000);

    // Work that is not sheddable is still accepted; a retry of accepted sheddable work gets its task.
    const kept = await mesh.client.submit(job(0));
    expect(kept.task!.state).toBe(TaskState.QUEUED);
    const again = await mesh.client.submit(job(-5, 'shed-early'));
    expect(again.task!.id).toBe(early.task!.id);
  });

  it('rate-limits a tenant at the parser with a retry-after hint, leaving other tenants alone', async () => {
    const limited = once('limited');
    try {
      await limited.submit(job(0));
      await limited.submit(job(0));
      const err = await refusal(limited.submit(job(0)));
      expect(err.code).toBe('RESOURCE_EXHAUSTED');
      expect(err.details).toMatch(/tenant limited is over its submission rate limit; retry after \d+ ms/);
      expect(err.retryAfterMs).toBeGreaterThan(0);
      expect(err.retryAfterMs).toBeLessThanOrEqual(2000);
      await mesh.client.submit(job(0));
    } finally {
      limited.close();
    }
  });

  it('rate-limits CreateSchedule as it does a submission', async () => {
    const client = once('cron-heavy');
    const create = () => client.createSchedule({ cron: '@daily', paused: true, template: { payload: { $case: 'batch', batch: {} } } });
    try {
      await create();
      const err = await refusal(create());
      expect(err.code).toBe('RESOURCE_EXHAUSTED');
      expect(err.details).toMatch(/^tenant cron-heavy is over its submission rate limit; retry after \d+ ms$/);
      expect(err.retryAfterMs).toBeGreaterThan(0);
      expect((await mesh.client.listSchedules({ tenant: 'cron-heavy' })).schedules).toHaveLength(1);
    } finally {
      client.close();
    }
  });
});
