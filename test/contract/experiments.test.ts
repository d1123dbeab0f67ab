import { runCli, type MessageInit } from '@autoglm/client';
import { PriorityClass, type SubmitTaskRequest } from '@autoglm/proto';
import { parseExperiment, variantOf } from '@autoglm/core';
import { startInProcessMesh, type InProcessMesh } from '../support/in-process-mesh';
import { until } from '../support/until';
import { captureIo } from '../support/cli-io';

const EXPERIMENT = JSON.stringify({
  name: 'classless',
  splitBy: 'tenant',
  variants: [
    { name: 'control', percent: 50 },
    { name: 'no-class', percent: 50, weights: { class: 0 } },
  ],
});

const job: MessageInit<SubmitTaskRequest> = { payload: { $case: 'batch', batch: { expectedDuration: { seconds: 1, nanos: 0 } } }, priorityClass: PriorityClass.URGENT };

describe('policy experiments through the public API', () => {
  let mesh: InProcessMesh;

  beforeAll(async () => {
    mesh = await startInProcessMesh({ decision: { policyExperiment: EXPERIMENT } });
  }, 30_000);

  afterAll(async () => {
    await mesh?.stop();
  }, 30_000);

  it('puts each tenant in a variant by CRC32, records it on the task and reports per variant', async () => {
    const experiment = parseExperiment(EXPERIMENT)!;
    // One tenant in each variant, found the way decision finds them.
    const tenants = ['t-0', 't-1', 't-2', 't-3', 't-4', 't-5', 't-6', 't-7'];
    const control = tenants.find((t) => variantOf(experiment, t, '', '') === 0)!;
    const treated = tenants.find((t) => variantOf(experiment, t, '', '') === 1)!;
    const submittedAt = Date.now();
    const submitted = [];
    for (const tenant of [control, treated, control]) submitted.push((await mesh.client.submit({ ...job, tenant })).task!);
    expect(submitted.map((t) => t.spec!.policyVariant)).toEqual(['classless/control', 'classless/no-class', 'classless/control']);
    expect((await mesh.client.get(submitted[1]!.id)).spec!.policyVariant).toBe('classless/no-class');

    const stats = await until(async () => {
      const s = await mesh.client.queueStats();
      return s.variants.reduce((n, v) => n + v.placed, 0) === 3 ? s : undefined;
    }, 10_000, 'all three tasks to be placed');
    expect(stats.variants.map((v) => [v.experiment, v.variant, v.percent, v.submitted, v.placed])).toEqual([
      ['classless', 'control', 50, 2, 2],
      ['classless', 'no-class', 50, 1, 1],
    ]);
    // Each variant's tasks were queued and placed since submittedAt: a mean wait, in seconds, no longer than that.
    const elapsedSeconds = (Date.now() - submittedAt) / 1000;
    for (const v of stats.variants) {
      expect(v.meanQueueSeconds).toBeGreaterThanOrEqual(0);
      expect(v.meanQueueSeconds).toBeLessThanOrEqual(elapsedSeconds);
    }

    const cli = async (...args: string[]) => {
      const io = captureIo();
      expect(await runCli(['node', 'autoglm', '--address', mesh.parser.grpcAddress, '--token', mesh.adminToken, ...args], io)).toBe(0);
      return io.out;
    };
    expect(await cli('stats')).toMatch(/EXPERIMENT\s+VARIANT\s+PERCENT\s+SUBMITTED\s+PLACED[^\n]*\n\s*classless\s+control\s+50%\s+2\s+2/);
    expect(await cli('get', submitted[1]!.id)).toMatch(/policy variant\s+classless\/no-class/);
  });
});
