/** Builders shared by the placement, dispatcher and preemption tests. */
import type { Demand, ModelShape } from './demand';
import { DEFAULT_PLACEMENT_POLICY, Fleet, type PlacementPolicy } from './fleet';
import type { FleetNode } from './node';

export const GiB = 2 ** 30;
export const GPU_BYTES = 80 * GiB;

/** glm-4-9b's shape: 18.8 GB of weights, 40 KiB of KV cache a token, 8k context. */
export const GLM: ModelShape = { name: 'glm-4-9b', weightBytes: 18_799_902_720, kvBytesPerToken: 40_960, contextLength: 8192 };
/** llama-3.1-70b's shape: 141 GB of weights, 320 KiB a token, 128k context (4 GPUs of 80 GB). */
export const LLAMA_70B: ModelShape = { name: 'llama-3.1-70b', weightBytes: 141_107_412_992, kvBytesPerToken: 327_680, contextLength: 131_072 };

export const SHAPES = new Map<string, ModelShape>([GLM, LLAMA_70B].map((m) => [m.name, m]));

export function gpuJob(gpuCount: number, gpuMemoryBytes = 0, model = ''): Demand {
  return { kind: 'gpus', model, gpuCount, gpuMemoryBytes, tokens: 0, cpuMillis: 0, memoryBytes: 0 };
}

export function sequence(model = GLM.name, tokens = 1024, gpuCount = 1): Demand {
  return { kind: 'sequence', model, gpuCount, gpuMemoryBytes: 0, tokens, cpuMillis: 0, memoryBytes: 0 };
}

/** A job without GPUs; `program` when it runs a real process (an agent with the command backend). */
export function cpuJob(cores: number, memoryBytes = 0, program = false): Demand {
  return { kind: 'cpu', model: '', gpuCount: 0, gpuMemoryBytes: 0, tokens: 0, cpuMillis: cores * 1000, memoryBytes, program };
}

/** A fleet on a hand-driven clock that knows the shapes above. */
export function testFleet(policy: Partial<PlacementPolicy> = {}, start = 1_700_000_000_000) {
  let now = start;
  const fleet = new Fleet({ ...DEFAULT_PLACEMENT_POLICY, ...policy }, () => now, (m) => SHAPES.get(m), () => 0.5);
  return {
    fleet,
    advance(ms: number): void {
      now += ms;
    },
    now: () => now,
  };
}

export interface TestNodeOptions {
  gpus?: number;
  gpuBytes?: number;
  backends?: string[];
  models?: string[];
  cores?: number;
  memoryBytes?: number;
  links?: string[][];
  maxSequences?: number;
}

export function addNode(fleet: Fleet, nodeId: string, o: TestNodeOptions = {}): FleetNode {
  return fleet.upsert({
    nodeId,
    address: `${nodeId}.local:50060`,
    models: o.models ?? ['*'],
    backends: o.backends ?? ['sim'],
    gpus: Array.from({ length: o.gpus ?? 8 }, (_, index) => ({ index, memoryTotalBytes: o.gpuBytes ?? GPU_BYTES })),
    cpuMillis: (o.cores ?? 32) * 1000,
    memoryBytes: o.memoryBytes ?? 512 * GiB,
    topology: o.links ? { links: o.links } : undefined,
    maxSequencesPerReplica: o.maxSequences ?? 0,
  });
}
