import type { Demand } from './demand';

/** The resources fair share and quotas count. */
export interface Resources {
  gpus: number;
  gpuMemoryBytes: number;
  /** Host cores (jobs without GPUs, or GPU jobs that ask for cores). */
  cpus: number;
}

export const NO_RESOURCES: Readonly<Resources> = Object.freeze({ gpus: 0, gpuMemoryBytes: 0, cpus: 0 });

/**
 * A placement, counted against the fleet from the moment it is made until it
 * is released (on the attempt's final state, or when its node is lost):
 * - a batch job's claim owns `gpuIndices` outright;
 * - a sequence's claim takes `demand.tokens` in replica `replicaId`, whose GPUs are `gpuIndices`;
 * - a job without GPUs takes `demand.cpuMillis` and `demand.memoryBytes` of the host.
 */
export interface Claim {
  /** Unique per placement: a stopping attempt's claim and its task's next one never mix. */
  readonly key: number;
  /** Whose it is: the task placed (decision passes the task id), when known. */
  readonly owner: string | undefined;
  readonly nodeId: string;
  readonly address: string;
  readonly demand: Demand;
  readonly gpuIndices: readonly number[];
  readonly replicaId: string | undefined;
  /** What it counts for fair share and quotas: whole GPUs for a job, a sequence's fraction of its replica. */
  readonly resources: Resources;
  /** When it is predicted to end (reservations start then); undefined when unknown (restored after a restart). */
  readonly endMs?: number;
}
