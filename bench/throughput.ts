import { Metadata } from '@grpc/grpc-js';
import { AutoglmClient, startMesh } from '@autoglm/client';
import { DecisionServiceClient, TaskState, type Event } from '@autoglm/proto';
import { createClient, loadTls } from '@autoglm/runtime';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { percentile, printTable, writeResult, flag } from './lib/report';

/** secure: TLS everywhere (mutual between services) and API tokens, as `autoglm up` runs; plain: neither. */
type Mode = 'secure' | 'plain';

interface Options {
  total: number;
  clients: number;
  window: number;
  warmup: number;
}

/**
 * Throughput of the whole mesh: tasks that do no work (batch jobs of zero
 * duration on the sim backend), submitted through the public API by
 * concurrent clients against the services running as separate processes.
 * Completion is observed on decision's event stream (the internal Subscribe),
 * which is what the monitor sees too. Run secure (TLS, mutual between the
 * services, and API tokens: what `autoglm up` runs) and plain (neither), one
 * after the other in the same run, so the cost of security is a ratio of
 * figures from the same machine.
 * Flags: --tasks N (20000), --clients N (8), --window N (32 in flight per
 * client), --modes MODES (runs in this order; default secure,plain,plain,secure).
 */
export async function throughput(args: string[]): Promise<void> {
  const total = Number(flag(args, '--tasks') ?? 20_000);
  const options: Options = { total, clients: Number(flag(args, '--clients') ?? 8), window: Number(flag(args, '--window') ?? 32), warmup: Math.min(2_000, Math.floor(total / 10)) };
  const modes = (flag(args, '--modes') ?? 'secure,plain,plain,secure').split(',') as Mode[];
  for (const m of modes) if (m !== 'secure' && m !== 'plain') throw new Error(`--modes: ${m} is not secure or plain`);
  const results: Array<{ mode: Mode } & Awaited<ReturnType<typeof measure>>> = [];
  for (const mode of modes) results.push({ mode, ...(await measure(mode, options)) });
  printTable(
    `throughput: no-work tasks through the public API (4 sim agents, services as processes, ${options.clients} clients x ${options.window} in flight)`,
    results.map((r) => ({
      mode: r.mode === 'secure' ? 'TLS + tokens' : 'plaintext',
      tasks: r.tasks,
      'completed/s': r.completedPerSecond,
      'ack p50 ms': r.submitAckMs.p50,
      'ack p99 ms': r.submitAckMs.p99,
      'e2e p50 ms': r.submitToCompleteMs.p50,
      'e2e p99 ms': r.submitToCompleteMs.p99,
      'x Slurm (500/s)': r.versusSlurm500PerSecond,
    })),
  );
  // Means per mode: ABBA order (the default) cancels a drift over the run (a machine warming up).
  const meanOf = (mode: Mode, pick: (r: (typeof results)[number]) => number) => {
    const rs = results.filter((r) => r.mode === mode);
    return rs.length === 0 ? NaN : rs.reduce((sum, r) => sum + pick(r), 0) / rs.length;
  };
  const ratio = (pick: (r: (typeof results)[number]) => number) => meanOf('secure', pick) / meanOf('plain', pick);
  const securityCost = { throughputRatio: ratio((r) => r.completedPerSecond), ackP50Ratio: ratio((r) => r.submitAckMs.p50), ackP99Ratio: ratio((r) => r.submitAckMs.p99) };
  if (Number.isFinite(securityCost.throughputRatio)) {
    console.log(`\nsecure / plaintext, means of the runs above: throughput ${securityCost.throughputRatio.toFixed(2)}x, ack p50 ${securityCost.ackP50Ratio.toFixed(2)}x, ack p99 ${securityCost.ackP99Ratio.toFixed(2)}x`);
  }
  console.log(`\nwrote ${writeResult('throughput', { runs: results, securityCost })}`);
}

async function measure(mode: Mode, o: Options) {
  const { total, clients, window, warmup } = o;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'autoglm-bench-'));
  const mesh = await startMesh({ dataDir, ports: 'ephemeral', agents: 4, logLevel: 'warn', tls: mode === 'secure', env: { AUTOGLM_AUTH: mode === 'secure' ? 'tokens' : 'none' } });
  const sdk = Array.from({ length: clients }, () => new AutoglmClient({ address: mesh.publicAddress, tenant: 'bench', token: mesh.adminToken, ca: mesh.ca, timeoutMs: 60_000 }));
  // decision's Subscribe takes a monitor's (or a parser's) certificate.
  const tlsDir = path.join(dataDir, 'tls');
  const decision = createClient(DecisionServiceClient, mesh.decisionAddress, {
    tls: mesh.ca ? loadTls({ tlsCa: path.join(tlsDir, 'ca.pem'), tlsCert: path.join(tlsDir, 'monitor.pem'), tlsKey: path.join(tlsDir, 'monitor-key.pem') }) : undefined,
  });
  const submittedAt = new Map<string, number>();
  const finishedAt = new Map<string, number>();
  let settled: () => void = () => {};
  const allDone = new Promise<void>((resolve) => (settled = resolve));
  const events = decision.subscribe({ taskEvents: true, nodeEvents: false, taskId: '', afterSequence: 0, states: [TaskState.SUCCEEDED], batched: true, snapshot: false }, new Metadata());
  const onEvent = (e: Event) => {
    if (e.kind?.$case !== 'task' || e.kind.task.state !== TaskState.SUCCEEDED) return;
    finishedAt.set(e.kind.task.taskId, Date.now());
    if (finishedAt.size === total + warmup) settled();
  };
  events.on('data', (e: Event) => (e.kind?.$case === 'batch' ? e.kind.batch.events.forEach(onEvent) : onEvent(e)));
  events.on('error', () => undefined);
  try {
    const ackMs: number[] = [];
    let next = 0;
    const run = async (client: AutoglmClient, limit: number, record: boolean) => {
      while (next < limit) {
        next += 1;
        const t0 = Date.now();
        const { task } = await client.submit({ payload: { $case: 'batch', batch: { expectedDuration: { seconds: 0, nanos: 0 } } } });
        if (record) {
          ackMs.push(Date.now() - t0);
          submittedAt.set(task!.id, t0);
        }
      }
    };
    const lanes = (limit: number, record: boolean) => Promise.all(sdk.flatMap((c) => Array.from({ length: window }, () => run(c, limit, record))));
    await lanes(warmup, false);
    const start = Date.now();
    await lanes(warmup + total, true);
    await Promise.race([allDone, new Promise((_, reject) => setTimeout(() => reject(new Error(`only ${finishedAt.size - warmup} of ${total} finished in 120 s`)), 120_000))]);
    const measured = [...submittedAt.entries()].map(([id, t0]) => ({ t0, t1: finishedAt.get(id)! })).filter((x) => x.t1 !== undefined);
    const end = Math.max(...measured.map((x) => x.t1));
    const seconds = (end - start) / 1000;
    const e2e = measured.map((x) => x.t1 - x.t0).sort((a, b) => a - b);
    ackMs.sort((a, b) => a - b);
    const result = {
      tasks: total,
      clients,
      inFlightPerClient: window,
      seconds,
      completedPerSecond: measured.length / seconds,
      submitAckMs: { p50: percentile(ackMs, 50), p99: percentile(ackMs, 99) },
      submitToCompleteMs: { p50: percentile(e2e, 50), p99: percentile(e2e, 99) },
      versusSlurm500PerSecond: measured.length / seconds / 500,
    };
    return result;
  } finally {
    events.cancel();
    decision.close();
    for (const c of sdk) c.close();
    await mesh.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
