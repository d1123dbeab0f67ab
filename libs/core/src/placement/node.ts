import type { Claim } from './claim';
import type { ReplicaShape } from './demand';
import type { Replica } from './replica';
import type { GpuTopology } from './topology';

export type NodeHealth = 'ready' | 'draining' | 'lost';

/** One GPU as the claim model books it, with the agent's last reading of it. */
export interface GpuState {
  readonly index: number;
  readonly memoryTotalBytes: number;
  /** The batch job holding it alone, if any. */
  job: Claim | undefined;
  /** The replica loaded on it, if any. */
  replica: Replica | undefined;
  /** A task it is held for (it waits to fit): nobody else may take it. */
  heldFor: string | undefined;
  /** Last telemetry; utilisation in [0, 1]. */
  utilization: number;
  memoryUsedBytes: number;
  /** When that reading arrived. */
  observedAtMs: number;
  /** When its last owner let go: a reading from before says nothing of it now. */
  freedAtMs: number;
}

/**
 * What a node can run, from the backends it registered:
 * - jobs: batch jobs on its GPUs and jobs without GPUs on its cores, as real
 *   processes ('process': `command`) or simulated ('simulated': `sim`);
 * - replicas: 'managed' when decision loads and evicts them (`sim`), 'external'
 *   when the agent's server has its models loaded already (`openai`).
 */
export interface NodeAbilities {
  jobs: 'process' | 'simulated' | 'none';
  replicas: 'managed' | 'external' | 'none';
}

export function abilitiesOf(backends: readonly string[]): NodeAbilities {
  const sim = backends.includes('sim');
  return {
    jobs: backends.includes('command') ? 'process' : sim ? 'simulated' : 'none',
    replicas: sim ? 'managed' : backends.includes('openai') ? 'external' : 'none',
  };
}

/** What an agent says of itself when it registers. */
export interface NodeRegistration {
  nodeId: string;
  address: string;
  /** Models it serves; '*' means any (a `command` agent runs a job naming any model). */
  models: readonly string[];
  backends: readonly string[];
  gpus: ReadonlyArray<{ index: number; memoryTotalBytes: number }>;
  /** Cores for jobs, in thousandths. */
  cpuMillis: number;
  /** Host memory for jobs, bytes. */
  memoryBytes: number;
  /** How its GPUs are linked (nvidia-smi topo -m), when it knows. */
  topology?: GpuTopology;
  /** Most sequences one replica runs at once; 0 for the placement default. */
  maxSequencesPerReplica?: number;
}

export interface FleetNode {
  readonly nodeId: string;
  readonly address: string;
  readonly models: ReadonlySet<string>;
  readonly anyModel: boolean;
  readonly abilities: NodeAbilities;
  readonly gpus: GpuState[];
  readonly topology: GpuTopology | undefined;
  readonly cpuMillis: number;
  readonly memoryBytes: number;
  cpuClaimedMillis: number;
  memoryClaimedBytes: number;
  readonly maxSequencesPerReplica: number;
  readonly replicas: Map<string, Replica>;
  health: NodeHealth;
  /** When telemetry (or registration) last arrived. */
  lastSeenMs: number;
  /** Claims placed here and not released. */
  claims: number;
  /** GPUs neither a job nor a replica holds (held-for GPUs included): kept by the fleet for quick rejects. */
  freeGpus: number;
  /** GPUs of replicas (not external) running no sequence: evictable when a job needs them. */
  idleGpus: number;
  /** GPUs held for some task (free or not). */
  heldGpus: number;
  /** Holds of host cores and memory on it (for jobs without GPUs). */
  heldHost: number;
  /** Memory of its smallest GPU (what a replica here is sized by). */
  readonly smallestGpuBytes: number;
  /** Replica sizes on it by model and least GPU count, worked out once (null: it cannot host one). */
  readonly replicaShapes: Map<string, ReplicaShape | null>;
  /** The kinds of room it has, a bit set kept current by the fleet for hasRoom(). */
  room: number;
}

/** Whether the node runs work for `model` ('' for a job without one). */
export function servesModel(node: FleetNode, model: string): boolean {
  return model === '' || node.anyModel || node.models.has(model);
}

export function gpuIsFree(gpu: GpuState): boolean {
  return gpu.job === undefined && gpu.replica === undefined;
}
