import * as os from 'node:os';
import { flag, printTable, writeResult } from './lib/report';
import { DirectFleet } from './lib/streaming-direct';
import type { LaneOptions } from './lib/streaming-measures';
import { readyReplicas, startWarmMesh, type MeshShape } from './lib/streaming-mesh';
import { connect, openaiDoor, streamOpenai } from './lib/streaming-openai';
import { streamGrpc } from './lib/streaming-grpc';
import { streamRequest } from './lib/streaming-request';
import { recordRound, type RoundRecord, type StreamPath } from './lib/streaming-rounds';
import { fmt, otherCores, summarizeDoor, TARGETS, targetsMet, whereTheTimeGoes } from './lib/streaming-summary';

/** Cores busy outside the mesh and this process above which the run says the machine was not its own. */
const OTHERS_NOTE_CORES = 0.2;
/** How long a round may run past its window while its last streams end. */
const ROUND_TIMEOUT_MS = 120_000;
/** Lanes start over this long: about one stream's length, so starts (and ends) are spread evenly once the window opens. */
const RAMP_MS = 1500;

/**
 * The cost of the mesh on streaming inference: the same simulated backend
 * reached directly (in this process, no mesh in the path) and through the
 * mesh's two public doors (gRPC Infer through the SDK, and the OpenAI
 * API's chat completions as server-sent events), at each concurrency, in the
 * same run. The mesh runs as `autoglm up` runs it (services as processes,
 * TLS, tokens) with its replicas kept warm; the direct baseline loads the
 * same replicas on the same GPUs of hosts shaped like the agents, so both
 * paths do the same simulated work. A round keeps N streams open (each lane
 * starts its next stream when its last ends; lanes start spread over a
 * ramp) and measures the streams that start in its window: TTFT from the
 * request to the first token, and the gaps between a stream's tokens.
 * Rounds alternate the order of the paths (direct, grpc, openai; then the
 * reverse) so a drift over the run falls on all; figures are medians over
 * rounds of each round's percentiles, and an "extra" is the mesh's figure
 * minus the direct one of the same round. Parser CPU comes from /proc over
 * the window, per token delivered in it.
 * Flags: --streams LIST (100,1000), --rounds N (3), --seconds N (window, 3),
 * --tokens N (output tokens per stream, 32), --time-scale X (sim speed-up, 1),
 * --agents N (4), --gpus N (per agent, 8), --replicas N (kept warm, 8),
 * --model NAME (glm-4-9b).
 */
export async function streaming(args: string[]): Promise<void> {
  const counts = (flag(args, '--streams') ?? '100,1000').split(',').map(Number);
  for (const c of counts) if (!Number.isInteger(c) || c < 1) throw new Error(`--streams: ${c} is not a positive whole number`);
  const rounds = Number(flag(args, '--rounds') ?? 3);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds: ${rounds} is not a positive whole number`);
  const measureMs = Number(flag(args, '--seconds') ?? 3) * 1000;
  const shape: MeshShape = {
    agents: Number(flag(args, '--agents') ?? 4),
    gpusPerAgent: Number(flag(args, '--gpus') ?? 8),
    timeScale: Number(flag(args, '--time-scale') ?? 1),
    model: flag(args, '--model') ?? 'glm-4-9b',
    replicas: Number(flag(args, '--replicas') ?? 8),
  };
  const request = streamRequest(shape.model, Number(flag(args, '--tokens') ?? 32));

  const warm = await startWarmMesh(shape);
  const direct = await DirectFleet.start(shape, warm.replicas, request);
  const door = openaiDoor(warm.mesh.openaiUrl!, warm.mesh.adminToken, warm.mesh.ca);
  const records: RoundRecord[] = [];
  let replicasAtEnd = warm.replicas.length;
  try {
    const run = async (path: StreamPath, round: number, lanes: LaneOptions): Promise<RoundRecord> => {
      if (path === 'openai') await connect(door, lanes.lanes);
      const stream = path === 'direct' ? () => direct.stream() : path === 'grpc' ? () => streamGrpc(warm.client, request) : () => streamOpenai(door, request);
      return recordRound(warm, path, round, lanes, stream, ROUND_TIMEOUT_MS);
    };
    // Warm-up, not recorded: JIT, the SDK's channel, the agents' Execute channels, the parser's caches.
    for (const path of ['direct', 'grpc', 'openai'] as const) await run(path, -1, { lanes: Math.min(...counts), rampMs: RAMP_MS, measureMs: 1000 });
    for (const streams of counts) {
      for (let round = 0; round < rounds; round++) {
        const order: StreamPath[] = round % 2 === 0 ? ['direct', 'grpc', 'openai'] : ['openai', 'grpc', 'direct'];
        for (const path of order) records.push(await run(path, round, { lanes: streams, rampMs: RAMP_MS, measureMs }));
      }
    }
    // Decision may have started more replicas under load: then the direct baseline (which has the first ones only) was not the same fleet.
    replicasAtEnd = (await readyReplicas(warm.client, shape.model)).length;
  } finally {
    door.agent.destroy();
    direct.close();
    await warm.stop();
  }

  const summary = counts.flatMap((streams) => (['grpc', 'openai'] as const).map((door) => summarizeDoor(records, streams, door)));
  printTable(
    `streaming: the mesh's cost over calling the backend directly (${shape.agents} sim agents x ${shape.gpusPerAgent} GPUs, ${shape.replicas} warm ${shape.model} replicas, time scale ${shape.timeScale}, ${request.maxTokens} tokens a stream, medians of ${rounds} rounds)`,
    summary.map((s) => ({
      streams: s.streams,
      door: s.door,
      'direct ttft p50/p99': `${fmt(s.direct.ttftP50)}/${fmt(s.direct.ttftP99)}`,
      'mesh ttft p50/p99': `${fmt(s.mesh.ttftP50)}/${fmt(s.mesh.ttftP99)}`,
      '+ttft p50': s.extra.ttftP50,
      '+ttft p99': s.extra.ttftP99,
      'direct gap p50/p99': `${fmt(s.direct.gapP50)}/${fmt(s.direct.gapP99)}`,
      'mesh gap p50/p99': `${fmt(s.mesh.gapP50)}/${fmt(s.mesh.gapP99)}`,
      '+gap p50': s.extra.gapP50,
      '+gap p99': s.extra.gapP99,
      'tok/s direct/mesh': `${Math.round(s.direct.tokensPerSecond)}/${Math.round(s.mesh.tokensPerSecond)}`,
      'parser cores per 1k tok/s': s.parserCoresPer1kTokensPerSecond,
      failed: s.failed,
    })),
  );
  console.log('(milliseconds; +: through the mesh minus direct, paired by round)');
  printTable(
    `where the time goes: request to accepted (durable, queued), and cores busy in the window (this machine has ${os.cpus().length})`,
    counts.flatMap((streams) => (['direct', 'grpc', 'openai'] as const).map((path) => whereTheTimeGoes(records, streams, path))),
  );
  const shared = Math.max(...records.map(otherCores));
  if (shared > OTHERS_NOTE_CORES) console.log(`\nnote: other processes kept up to ${shared.toFixed(2)} cores busy during a round: the machine was shared, and the figures suffer from it`);
  if (replicasAtEnd !== warm.replicas.length) console.log(`\nnote: decision scaled ${shape.model} from ${warm.replicas.length} to ${replicasAtEnd} replicas during the run; the direct baseline kept ${warm.replicas.length}`);
  const targets = targetsMet(summary);
  printTable(`targets at ${TARGETS.streams} streams`, targets.map((t) => ({ door: t.door, measure: t.measure, measured: t.measured, target: `< ${t.targetMs}`, met: t.met ? 'yes' : 'no' })));
  console.log(`\nwrote ${writeResult('streaming', { shape, request, replicas: warm.replicas, replicasAtEnd, rounds: records, summary, targets })}`);
}
