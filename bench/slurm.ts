import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AutoglmClient, startMesh } from '@autoglm/client';
import { flag, printTable, writeResult } from './lib/report';
import { ensureSlurmInstalled, runSlurmJobs, startOneNodeSlurm, type SlurmRunResult } from './lib/slurm';

/** Submissions in flight at once through the SDK (one gRPC channel). */
const SUBMIT_CONCURRENCY = 64;

/**
 * `npm run bench -- slurm [--jobs N] [--stock]`: the same N short real
 * processes (/bin/true), one job each, one core each, on this machine's
 * cores, through a one-node Slurm (Debian's slurm-wlm; installed when
 * missing) and through our mesh with one `command` agent (no simulated
 * hosts), in one run. Slurm gets the throughput tuning a site running many
 * short jobs would use (batch_sched_delay=0 and an Epilog, so a finished job
 * schedules the next at once); --stock also runs its shipped configuration on
 * fewer jobs, which starts queued jobs only every 3 s.
 */
export async function slurm(args: string[]): Promise<void> {
  const n = Number(flag(args, '--jobs') ?? 1000);
  const cores = os.availableParallelism();
  const rows: Array<Record<string, string | number>> = [];
  const result: Record<string, unknown> = { jobs: n, cores };

  const ours = await runOurs(n);
  rows.push(row('autoglm (command agent)', n, ours));
  result.autoglm = ours;

  if (!(await ensureSlurmInstalled((line) => console.log(line)))) {
    console.log('Slurm cannot be installed here: only our side was measured');
  } else {
    const tuned = await runSlurm(n, 'throughput');
    rows.push(row('slurm 22.05 (tuned)', n, tuned));
    result.slurm = tuned;
    result.ratio = { submitted: ours.submittedPerSecond / tuned.submittedPerSecond, completed: ours.completedPerSecond / tuned.completedPerSecond };
    if (args.includes('--stock')) {
      const stockJobs = Math.min(n, 4 * cores * 5);
      const stock = await runSlurm(stockJobs, 'stock');
      rows.push(row('slurm 22.05 (stock)', stockJobs, stock));
      result.slurmStock = { jobs: stockJobs, ...stock };
    }
  }
  printTable(`${n} x /bin/true, one job each on one core, ${cores} cores`, rows);
  const ratio = result.ratio as { submitted: number; completed: number } | undefined;
  if (ratio) console.log(`\nautoglm / slurm: submissions ${ratio.submitted.toFixed(1)}x, completions ${ratio.completed.toFixed(1)}x (target: completions >= 10x)`);
  console.log(`\nwrote ${writeResult('slurm', result)}`);
}

function row(system: string, jobs: number, r: SlurmRunResult): Record<string, string | number> {
  return { system, jobs, 'submit s': r.submitSeconds, 'submitted/s': r.submittedPerSecond, 'all done s': r.completeSeconds, 'completed/s': r.completedPerSecond, failed: r.failed };
}

async function runSlurm(n: number, tuning: 'throughput' | 'stock'): Promise<SlurmRunResult> {
  const cluster = await startOneNodeSlurm({ tuning });
  try {
    return await runSlurmJobs(cluster, n, ['/bin/true'], { timeoutMs: tuning === 'stock' ? 30 * 60_000 : 10 * 60_000 });
  } finally {
    await cluster.stop();
  }
}

/**
 * Our side: a mesh of decision, the parser and one command agent allowed to
 * run /bin/true, on embedded PGlite. N jobs of gpu_count 0 (one core each)
 * submitted through the SDK; done when decision has recorded all N finished.
 */
async function runOurs(n: number): Promise<SlurmRunResult> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'autoglm-bench-slurm-'));
  const mesh = await startMesh({ dataDir, ports: 'ephemeral', agents: 0, commandAllow: ['/bin/true'], logLevel: 'warn' });
  const client = new AutoglmClient({ address: mesh.publicAddress, tenant: 'bench', token: mesh.adminToken, ca: mesh.ca });
  try {
    await waitForCommandAgent(client);
    const before = await client.queueStats();
    const start = performance.now();
    let next = 0;
    const ids: string[] = [];
    await Promise.all(
      Array.from({ length: SUBMIT_CONCURRENCY }, async () => {
        while (next < n) {
          next += 1;
          const { task } = await client.submit({ payload: { $case: 'batch', batch: { command: ['/bin/true'] } }, resources: { gpuCount: 0, cpuCores: 1, memoryBytes: 16 * 2 ** 20 } });
          ids.push(task!.id);
        }
      }),
    );
    const submitSeconds = (performance.now() - start) / 1000;
    let stats = await client.queueStats();
    while (Number(stats.succeeded) + Number(stats.failed) - Number(before.succeeded) - Number(before.failed) < n) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      stats = await client.queueStats();
    }
    const completeSeconds = (performance.now() - start) / 1000;
    const failed = Number(stats.failed) - Number(before.failed);
    return { submitSeconds, completeSeconds, submittedPerSecond: n / submitSeconds, completedPerSecond: n / completeSeconds, failed };
  } finally {
    client.close();
    await mesh.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

async function waitForCommandAgent(client: AutoglmClient): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await client.listNodes()).nodes.some((node) => node.nodeId === 'command-1' && node.cpuMillis > 0)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('the command agent did not register');
}
