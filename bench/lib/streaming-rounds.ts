import { meshCpu, type WarmMesh } from './streaming-mesh';
import { runLanes, type LaneOptions, type RoundSummary, type StreamTiming } from './streaming-measures';

/** How a stream reaches the backend: in-process (no mesh), or through one of the mesh's two public doors. */
export type StreamPath = 'direct' | 'grpc' | 'openai';

type CpuGroups = ReturnType<typeof meshCpu>;

/** One round of one path: its latency figures and the CPU each process spent in its window. */
export interface RoundRecord extends RoundSummary {
  path: StreamPath;
  round: number;
  /** CPU seconds in the window, per process group (`bench` is this process: the clients, and the direct path's simulator), and of the whole machine. */
  cpuSeconds: CpuGroups;
}

/** Runs one round of one path and records it, failing it when it has not ended `timeoutMs` after its window. */
export async function recordRound(warm: WarmMesh, path: StreamPath, round: number, lanes: LaneOptions, stream: () => Promise<StreamTiming>, timeoutMs: number): Promise<RoundRecord> {
  let before: CpuGroups | undefined;
  let after: CpuGroups | undefined;
  const onWindow = (edge: 'open' | 'close'): void => {
    if (edge === 'open') before = meshCpu(warm.mesh);
    else after = meshCpu(warm.mesh);
  };
  let timer: NodeJS.Timeout | undefined;
  const limit = lanes.rampMs + lanes.measureMs + timeoutMs;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${path} round of ${lanes.lanes} streams did not end within ${limit} ms`)), limit);
  });
  try {
    const summary = await Promise.race([runLanes(lanes, stream, onWindow), timeout]);
    const cpuSeconds: CpuGroups = { parser: 0, decision: 0, agents: 0, monitor: 0, bench: 0, machine: 0 };
    for (const k of Object.keys(cpuSeconds) as Array<keyof CpuGroups>) cpuSeconds[k] = (after?.[k] ?? NaN) - (before?.[k] ?? NaN);
    return { path, round, ...summary, cpuSeconds };
  } finally {
    clearTimeout(timer);
  }
}
