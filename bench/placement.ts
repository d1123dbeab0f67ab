import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Metadata, type ClientDuplexStream } from '@grpc/grpc-js';
import { type ConnectRequest, type ConnectResponse, DecisionServiceClient, type GpuStatus } from '@autoglm/proto';
import { DEFAULT_PLACEMENT_POLICY, Fleet, seededRandom, toTimestamp, type Claim, type Demand, type ModelShape } from '@autoglm/core';
import { createClient } from '@autoglm/runtime';
import { flag, percentile, printTable, writeResult } from './lib/report';

const GiB = 2 ** 30;
const GPUS_PER_NODE = 8;

/**
 * `npm run bench -- placement [--agents 1000] [--seconds 10] [--decisions 20000] [--only ingest|placement]`:
 *
 * 1. Ingest: a real decision process and `agents` simulated agents of 8 GPUs
 *    each on one gRPC channel, every agent pushing telemetry every 100 ms
 *    (10,000 messages/s at 1,000 agents): the messages decision ingested per
 *    second, by its own count, and its CPU share over the window (from
 *    /proc). Target: 10,000 messages/s in under half a core.
 * 2. Placement: the claim model alone (libs/core Fleet, what decision's
 *    dispatch calls) on the same 1,000 x 8-GPU fleet kept 60-95 % full by a
 *    mix of 1- to 8-GPU jobs, sequences in replicas of two models and CPU
 *    jobs: placement decisions per second and the latency of each (p50, p99,
 *    max), placements and refusals alike. Target: p99 under 1 ms.
 */
export async function placement(args: string[]): Promise<void> {
  const agents = Number(flag(args, '--agents') ?? 1000);
  const seconds = Number(flag(args, '--seconds') ?? 10);
  const decisions = Number(flag(args, '--decisions') ?? 20_000);
  const only = flag(args, '--only');
  const ingest = only === 'placement' ? undefined : await measureIngest(agents, seconds);
  if (ingest) printTable(`telemetry ingest: ${agents} agents x ${GPUS_PER_NODE} GPUs, one message every 100 ms each, ${seconds} s window`, [
    {
      'offered msgs/s': ingest.offeredPerSecond,
      'ingested msgs/s': ingest.ingestedPerSecond,
      'decision CPU (cores)': ingest.decisionCores,
      'load generator CPU (cores)': ingest.generatorCores,
      'decision RSS MB (PGlite ~890 of it)': ingest.decisionRssMb,
    },
  ]);
  const place = only === 'ingest' ? undefined : measurePlacement(agents, decisions);
  if (place) {
    printTable(
      `placement: ${agents} nodes x ${GPUS_PER_NODE} GPUs (libs/core Fleet.place)`,
      place.map((p) => ({ workload: p.workload, decisions: p.decisions, 'decisions/s': p.perSecond, 'p50 us': p.p50Us, 'p99 us': p.p99Us, 'max us': p.maxUs, placed: p.placed, refused: p.refused, 'GPUs held %': p.meanHeldPercent })),
    );
  }
  if (ingest) console.log(`\ntarget: 10,000 msgs/s ingested in under 0.5 cores: ${ingest.ingestedPerSecond.toFixed(0)} msgs/s with ${ingest.decisionCores.toFixed(2)} cores`);
  if (place) console.log(`target: placement p99 under 1 ms: ${place.map((p) => `${(p.p99Us / 1000).toFixed(3)} ms (${p.workload})`).join(', ')}`);
  console.log(`wrote ${writeResult('placement', { agents, seconds, ingest, placement: place })}`);
}

// ---- ingest --------------------------------------------------------------------------

interface IngestResult {
  offeredPerSecond: number;
  ingestedPerSecond: number;
  decisionCores: number;
  generatorCores: number;
  decisionRssMb: number;
}

async function measureIngest(agents: number, seconds: number): Promise<IngestResult> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'autoglm-bench-placement-'));
  const { child, address } = await startDecisionProcess(dataDir);
  const client = createClient(DecisionServiceClient, address);
  const streams: Array<ClientDuplexStream<ConnectRequest, ConnectResponse>> = [];
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.all(Array.from({ length: agents }, (_, i) => connectAgent(client, `bench-agent-${i}`).then((s) => streams.push(s))));
    // Every 10 ms a tenth of the agents push: each pushes every 100 ms, and the load is smooth.
    let tick = 0;
    let sent = 0;
    const random = seededRandom(3);
    const t0 = performance.now();
    timer = setInterval(() => {
      // Catch up on ticks a late timer missed, so the offered rate is the one asked for.
      for (const due = Math.floor((performance.now() - t0) / 10); tick < due; tick++) {
        for (let i = tick % 10; i < streams.length; i += 10) {
          streams[i]!.write({ kind: { $case: 'telemetry', telemetry: telemetry(random) } });
          sent += 1;
        }
      }
    }, 10);
    await sleep(3000);
    const before = { cpu: cpuSeconds(child.pid!), self: process.cpuUsage(), received: await telemetryReceived(client), sent, at: performance.now() };
    await sleep(seconds * 1000);
    const after = { cpu: cpuSeconds(child.pid!), self: process.cpuUsage(before.self), received: await telemetryReceived(client), sent, at: performance.now() };
    const wall = (after.at - before.at) / 1000;
    return {
      offeredPerSecond: (after.sent - before.sent) / wall,
      ingestedPerSecond: (after.received - before.received) / wall,
      decisionCores: (after.cpu - before.cpu) / wall,
      generatorCores: (after.self.user + after.self.system) / 1e6 / wall,
      decisionRssMb: Math.round(Number(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)?.[1] ?? 0) / 1024),
    };
  } finally {
    clearInterval(timer);
    for (const s of streams) s.cancel();
    client.close();
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** decision as its own process (so its CPU is its own), on embedded PGlite; resolves with its address. */
function startDecisionProcess(dataDir: string): Promise<{ child: ChildProcess; address: string }> {
  const entry = path.resolve(__dirname, '..', 'services', 'decision', 'dist', 'main.js');
  const child = fork(entry, [], {
    env: { ...process.env, AUTOGLM_DECISION_LISTEN: '127.0.0.1:0', AUTOGLM_DATA_DIR: dataDir, AUTOGLM_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('message', (m: { grpcAddress?: string }) => (m.grpcAddress ? resolve({ child, address: m.grpcAddress }) : reject(new Error('decision sent no address'))));
    child.once('exit', (code) => reject(new Error(`decision exited with ${code}`)));
  });
}

/** Registers one simulated 8-GPU agent on its own Connect stream; resolves once decision answers. */
function connectAgent(client: DecisionServiceClient, nodeId: string): Promise<ClientDuplexStream<ConnectRequest, ConnectResponse>> {
  const stream = client.connect(new Metadata());
  return new Promise((resolve, reject) => {
    stream.once('data', () => resolve(stream));
    stream.once('error', reject);
    // Later messages (heartbeats) are read and dropped.
    stream.on('data', () => undefined);
    stream.on('error', () => undefined);
    stream.write({
      kind: {
        $case: 'register',
        register: {
          nodeId,
          address: '127.0.0.1:1',
          gpus: Array.from({ length: GPUS_PER_NODE }, (_, index) => ({ index, name: 'Simulated H100 80GB', memoryTotalBytes: 80 * GiB })),
          models: ['glm-4-9b', 'llama-3.1-8b'],
          backends: ['sim'],
          running: [],
          cpuMillis: 32_000,
          memoryBytes: 256 * GiB,
          gpuLinks: [],
          replicas: [],
          maxSequencesPerReplica: 0,
          servedModels: [],
        },
      },
    });
  });
}

function telemetry(random: () => number) {
  const gpus: GpuStatus[] = Array.from({ length: GPUS_PER_NODE }, (_, index) => {
    const utilization = random();
    return { index, name: '', utilization, memoryUsedBytes: Math.round(utilization * 70 * GiB), memoryTotalBytes: 80 * GiB, temperatureC: 30 + 50 * utilization, powerWatts: 70 + 630 * utilization };
  });
  return {
    time: toTimestamp(Date.now()),
    gpus,
    host: { cpuUtilization: random(), memoryUsedBytes: 64 * GiB, memoryTotalBytes: 256 * GiB, networkRxBytesPerSecond: 1e6, networkTxBytesPerSecond: 1e6 },
    load: { numRequestsRunning: 0, numRequestsWaiting: 0, kvCacheUsagePerc: 0 },
    draining: false,
    replicas: [],
  };
}

async function telemetryReceived(client: DecisionServiceClient): Promise<number> {
  const stats = await new Promise<{ telemetryReceived: number }>((resolve, reject) => client.getQueueStats({}, (err, res) => (err ? reject(err) : resolve(res))));
  return Number(stats.telemetryReceived);
}

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime are fields 14 and 15 of stat; here 11 and 12 after the "pid (comm) " prefix.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / CLOCK_TICKS;
}

/** Clock ticks per second of /proc's counters (sysconf(_SC_CLK_TCK); 100 on Linux). */
const CLOCK_TICKS = 100;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---- placement -----------------------------------------------------------------------

const SHAPES = new Map<string, ModelShape>([
  ['glm-4-9b', { name: 'glm-4-9b', weightBytes: 18_799_902_720, kvBytesPerToken: 40_960, contextLength: 8192 }],
  ['llama-3.1-70b', { name: 'llama-3.1-70b', weightBytes: 141_107_412_992, kvBytesPerToken: 327_680, contextLength: 131_072 }],
]);

interface PlacementResult {
  workload: string;
  decisions: number;
  perSecond: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
  placed: number;
  refused: number;
  meanHeldPercent: number;
}

function measurePlacement(nodes: number, decisions: number): PlacementResult[] {
  let now = 1_700_000_000_000;
  const random = seededRandom(11);
  const fleet = new Fleet({ ...DEFAULT_PLACEMENT_POLICY, staleTelemetryMs: Infinity }, () => now, (m) => SHAPES.get(m));
  for (let n = 0; n < nodes; n++) {
    fleet.upsert({
      nodeId: `node-${n}`,
      address: '',
      models: ['*'],
      backends: ['sim'],
      gpus: Array.from({ length: GPUS_PER_NODE }, (_, index) => ({ index, memoryTotalBytes: 80 * GiB })),
      cpuMillis: 32_000,
      memoryBytes: 256 * GiB,
    });
  }
  const demand = (): Demand => {
    const u = random();
    if (u < 0.5) {
      const gpus = [1, 1, 1, 2, 2, 4, 8][Math.floor(random() * 7)]!;
      return { kind: 'gpus', model: '', gpuCount: gpus, gpuMemoryBytes: 40 * GiB, tokens: 0, cpuMillis: 0, memoryBytes: 0 };
    }
    if (u < 0.9) {
      const model = random() < 0.8 ? 'glm-4-9b' : 'llama-3.1-70b';
      return { kind: 'sequence', model, gpuCount: 1, gpuMemoryBytes: 0, tokens: 512 + Math.floor(random() * 4096), cpuMillis: 0, memoryBytes: 0 };
    }
    return { kind: 'cpu', model: '', gpuCount: 0, gpuMemoryBytes: 0, tokens: 0, cpuMillis: 1000 * (1 + Math.floor(random() * 4)), memoryBytes: 4 * GiB };
  };
  const held: Claim[] = [];
  const totalGpus = nodes * GPUS_PER_NODE;
  const heldShare = () => {
    let free = 0;
    for (const node of fleet.nodes()) free += node.freeGpus + node.idleGpus;
    return 1 - free / totalGpus;
  };
  const releaseRandom = () => {
    if (held.length > 0) fleet.release(held.splice(Math.floor(random() * held.length), 1)[0]!);
  };
  const run = (label: string, count: number, next: () => Demand, keep: (share: number) => void): PlacementResult => {
    const latencies: number[] = [];
    let placed = 0;
    let refused = 0;
    let shareSum = 0;
    let busy = 0;
    for (let i = 0; i < count; i++) {
      now += 1;
      const share = heldShare();
      shareSum += share;
      keep(share);
      const d = next();
      const t0 = process.hrtime.bigint();
      const c = fleet.place(d, `task-${i}`);
      const ns = Number(process.hrtime.bigint() - t0);
      busy += ns;
      latencies.push(ns / 1000);
      if (typeof c === 'string') refused += 1;
      else {
        placed += 1;
        held.push(c);
      }
      fleet.takeCommands();
    }
    latencies.sort((a, b) => a - b);
    return { workload: label, decisions: count, perSecond: count / (busy / 1e9), p50Us: percentile(latencies, 50), p99Us: percentile(latencies, 99), maxUs: latencies[latencies.length - 1]!, placed, refused, meanHeldPercent: (100 * shareSum) / count };
  };
  // Busy: jobs, sequences and CPU jobs come and go with 75-90 % of the GPUs held (by jobs or by replicas serving sequences).
  const busy = run('mixed, 75-90 % of GPUs held', decisions, demand, (share) => {
    if (share > 0.9) for (let k = 0; k < 20; k++) releaseRandom();
    else if (share > 0.75 && random() < 0.6) releaseRandom();
  });
  // Saturated: every GPU held, 8-GPU jobs that fit nowhere (the whole fleet is looked at, and refused).
  while (heldShare() < 0.999) {
    const c = fleet.place({ kind: 'gpus', model: '', gpuCount: 1, gpuMemoryBytes: 0, tokens: 0, cpuMillis: 0, memoryBytes: 0 });
    if (typeof c === 'string') break;
    held.push(c);
  }
  const full = run('full fleet, 8-GPU jobs refused', Math.min(decisions, 5000), () => ({ kind: 'gpus', model: '', gpuCount: 8, gpuMemoryBytes: 0, tokens: 0, cpuMillis: 0, memoryBytes: 0 }), () => undefined);
  return [busy, full];
}
