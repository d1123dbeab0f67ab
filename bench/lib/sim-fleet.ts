import { DEFAULT_PLACEMENT_POLICY, Fleet, seededRandom, type ModelShape } from '@autoglm/core';
import type { FleetShape } from './quality-workload';

/**
 * The simulations' fleet: core's Fleet on a fake clock, `shape.nodes` sim
 * nodes of identical GPUs registered, readings never stale and never busier
 * than the claims say (no telemetry outside the simulation).
 */
export function simFleet(shape: FleetShape, clock: () => number, shapeOf: (model: string) => ModelShape | undefined, mode: 'pack' | 'spread' = DEFAULT_PLACEMENT_POLICY.mode): Fleet {
  const fleet = new Fleet({ ...DEFAULT_PLACEMENT_POLICY, maxGpuUtilization: 1, maxGpuMemoryFraction: shape.memoryFraction, staleTelemetryMs: Infinity, mode }, clock, shapeOf, seededRandom(1));
  for (let n = 0; n < shape.nodes; n++) {
    fleet.upsert({
      nodeId: `node-${n}`,
      address: '',
      models: ['*'],
      backends: ['sim'],
      cpuMillis: 0,
      memoryBytes: 0,
      maxSequencesPerReplica: shape.slotsPerGpu,
      gpus: Array.from({ length: shape.gpusPerNode }, (_, i) => ({ index: i, memoryTotalBytes: shape.gpuMemoryBytes })),
    });
  }
  return fleet;
}
