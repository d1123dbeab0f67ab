/** Live accounting of one GPU: decision's reservations plus the agent's last reading. */
export interface GpuSlot {
  index: number;
  memoryTotalBytes: number;
  /** Bytes reserved by placements not yet released (private bytes plus weights of resident models). */
  reservedBytes: number;
  /** Tasks placed on it and not released. */
  tasks: number;
  /** Models whose weights are counted in reservedBytes: how many placed tasks use them, and the bytes counted. */
  models: Map<string, { users: number; bytes: number }>;
  /** Last telemetry; utilisation in [0, 1]. */
  utilization: number;
  memoryUsedBytes: number;
}

export type NodeHealth = 'ready' | 'draining' | 'lost';

export interface FleetNode {
  nodeId: string;
  address: string;
  /** Models it serves; an empty set with `anyModel` means it runs anything (command backend). */
  models: Set<string>;
  anyModel: boolean;
  maxTasksPerGpu: number;
  gpus: GpuSlot[];
  health: NodeHealth;
  /** When telemetry (or registration) last arrived. */
  lastSeenMs: number;
  /** Tasks placed and not released. */
  inFlight: number;
  /** A task this node is held for (no other task is placed here until it is). */
  heldFor?: string;
  /** The GPUs held for it, when not the whole node: the others stay open to other tasks. */
  heldGpus?: Set<number>;
}

/** What one task needs. */
export interface Demand {
  /** Catalog model, or '' for a batch job without one. */
  model: string;
  gpuCount: number;
  /** Model weights per GPU: shared by every task of the same model on that GPU. */
  sharedBytesPerGpu: number;
  /** KV cache or job memory per GPU: this task's alone. */
  privateBytesPerGpu: number;
}

/** A placement, counted against the fleet until released. */
export interface Reservation {
  nodeId: string;
  address: string;
  gpuIndices: number[];
  demand: Demand;
  /** Per GPU index: whether this reservation brought the model's weights in. */
  loadedWeights: boolean[];
}

export interface PlacementPolicy {
  /** GPUs busier than this (by telemetry) take no new work. @default 0.8 */
  maxGpuUtilization: number;
  /**
   * A GPU's reservations and its measured use stay under this fraction of its
   * memory, like vLLM's gpu_memory_utilization; the parser sizes tasks with the
   * same headroom, so a task it accepts fits here. @default 0.9
   */
  maxGpuMemoryFraction: number;
  /** Telemetry older than this marks a node unplaceable, as stale metrics count as saturated. @default 1000 */
  staleTelemetryMs: number;
  /** 'spread' prefers the least allocated GPUs, 'pack' the most (against fragmentation). @default 'spread' */
  mode: 'spread' | 'pack';
  /** Near-ties (within this score) are broken at random so a burst does not pile onto one host. @default 0.05 */
  tieBreakMargin: number;
}

export const DEFAULT_PLACEMENT_POLICY: PlacementPolicy = {
  maxGpuUtilization: 0.8,
  maxGpuMemoryFraction: 0.9,
  staleTelemetryMs: 1000,
  mode: 'spread',
  tieBreakMargin: 0.05,
};

/** Why nothing fits, for explanations and logs. */
export type NoFit = 'no-node' | 'no-model' | 'no-capacity';

/**
 * The fleet as decision sees it, and placement over it: filter nodes and GPUs
 * that can take the task, score them, pick the best with random near-tie
 * breaking, and count the placement at once (before the next telemetry push)
 * so a burst spreads instead of landing on one host.
 */
export class Fleet {
  private readonly nodesById = new Map<string, FleetNode>();
  private freeSlots = 0;

  constructor(
    private readonly policy: PlacementPolicy = DEFAULT_PLACEMENT_POLICY,
    private readonly clock: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {}

  /** Adds or replaces a node (a re-registration keeps nothing of the old session's reservations). */
  upsert(node: { nodeId: string; address: string; models: string[]; maxTasksPerGpu: number; gpus: Array<{ index: number; memoryTotalBytes: number }> }): FleetNode {
    this.remove(node.nodeId);
    const entry: FleetNode = {
      nodeId: node.nodeId,
      address: node.address,
      models: new Set(node.models.filter((m) => m !== '*')),
      anyModel: node.models.includes('*'),
      maxTasksPerGpu: Math.max(1, node.maxTasksPerGpu),
      gpus: node.gpus.map((g) => ({ index: g.index, memoryTotalBytes: g.memoryTotalBytes, reservedBytes: 0, tasks: 0, models: new Map(), utilization: 0, memoryUsedBytes: 0 })),
      health: 'ready',
      lastSeenMs: this.clock(),
      inFlight: 0,
    };
    this.nodesById.set(node.nodeId, entry);
    this.freeSlots += entry.gpus.length * entry.maxTasksPerGpu;
    return entry;
  }

  remove(nodeId: string): void {
    const node = this.nodesById.get(nodeId);
    if (!node) return;
    // Only a ready node's slots are counted as free (setHealth took the others out).
    if (node.health === 'ready') this.freeSlots -= this.freeSlotsOf(node);
    this.nodesById.delete(nodeId);
  }

  get(nodeId: string): FleetNode | undefined {
    return this.nodesById.get(nodeId);
  }

  nodes(): IterableIterator<FleetNode> {
    return this.nodesById.values();
  }

  setHealth(nodeId: string, health: NodeHealth): void {
    const node = this.nodesById.get(nodeId);
    if (!node || node.health === health) return;
    if (node.health === 'ready') this.freeSlots -= this.freeSlotsOf(node);
    node.health = health;
    if (health === 'ready') this.freeSlots += this.freeSlotsOf(node);
  }

  /** Records a telemetry push (which also proves the node alive). */
  observe(nodeId: string, gpus: Array<{ index: number; utilization: number; memoryUsedBytes: number }>): void {
    const node = this.nodesById.get(nodeId);
    if (!node) return;
    node.lastSeenMs = this.clock();
    for (const reading of gpus) {
      const slot = node.gpus.find((g) => g.index === reading.index);
      if (!slot) continue;
      slot.utilization = reading.utilization;
      slot.memoryUsedBytes = reading.memoryUsedBytes;
    }
  }

  /** Cheap check before scanning a queue: is any task slot free on a ready node? */
  hasFreeSlot(): boolean {
    return this.freeSlots > 0;
  }

  /** Whether any node serves the model at all (to tell "no such capacity" from "busy"). */
  servesModel(model: string): boolean {
    for (const node of this.nodesById.values()) if (node.health !== 'lost' && this.serves(node, model)) return true;
    return false;
  }

  /**
   * Places and reserves, or explains why not. Nodes held for another task
   * are skipped; `holder` may use the node held for it.
   */
  place(demand: Demand, holder?: string): Reservation | NoFit {
    const now = this.clock();
    let sawModel = false;
    let sawNode = false;
    const candidates: Array<{ node: FleetNode; gpus: GpuSlot[]; score: number }> = [];
    for (const node of this.nodesById.values()) {
      if (node.health !== 'ready') continue;
      sawNode = true;
      if (!this.serves(node, demand.model)) continue;
      sawModel = true;
      if (now - node.lastSeenMs > this.policy.staleTelemetryMs) continue;
      const heldForOther = node.heldFor !== undefined && node.heldFor !== holder;
      if (heldForOther && node.heldGpus === undefined) continue;
      const fitting: Array<{ gpu: GpuSlot; score: number }> = [];
      for (const gpu of node.gpus) {
        if (heldForOther && node.heldGpus!.has(gpu.index)) continue;
        const score = this.gpuScore(node, gpu, demand);
        if (score !== undefined) fitting.push({ gpu, score });
      }
      if (fitting.length < demand.gpuCount) continue;
      fitting.sort((a, b) => b.score - a.score);
      const chosen = fitting.slice(0, demand.gpuCount);
      const score = chosen.reduce((s, c) => s + c.score, 0) / chosen.length;
      candidates.push({ node, gpus: chosen.map((c) => c.gpu), score });
    }
    if (candidates.length === 0) return !sawNode ? 'no-node' : !sawModel ? 'no-model' : 'no-capacity';
    let best = candidates[0]!;
    for (const c of candidates) if (c.score > best.score) best = c;
    const near = candidates.filter((c) => c.score >= best.score - this.policy.tieBreakMargin);
    const pick = near[Math.floor(this.random() * near.length)] ?? best;
    return this.reserve(pick.node, pick.gpus, demand);
  }

  /**
   * Holds GPUs for a task too large to fit anywhere now, so capacity freed
   * there is not taken by smaller tasks (no starvation of large work): on the
   * ready node serving its model with enough GPUs and memory when empty, the
   * `gpuCount` GPUs nearest to fitting now. The node's other GPUs stay open
   * to other tasks. Returns the node, or undefined when none could ever take
   * it or every candidate is held for another task.
   */
  hold(demand: Demand, holder: string): string | undefined {
    const limitOf = (gpu: GpuSlot) => gpu.memoryTotalBytes * this.policy.maxGpuMemoryFraction;
    const need = demand.privateBytesPerGpu + demand.sharedBytesPerGpu;
    let best: { node: FleetNode; gpus: GpuSlot[]; free: number } | undefined;
    for (const node of this.nodesById.values()) {
      if (node.health !== 'ready' || !this.serves(node, demand.model)) continue;
      if (node.heldFor !== undefined && node.heldFor !== holder) continue;
      const big = node.gpus.filter((g) => limitOf(g) >= need);
      if (big.length < demand.gpuCount) continue;
      // Free memory on the GPUs it would take: the nearer to fitting, the sooner it runs.
      const gpus = big.sort((a, b) => limitOf(b) - b.reservedBytes - (limitOf(a) - a.reservedBytes)).slice(0, demand.gpuCount);
      const free = gpus.reduce((s, g) => s + limitOf(g) - g.reservedBytes, 0);
      if (!best || free > best.free) best = { node, gpus, free };
    }
    if (!best) return undefined;
    this.unhold(holder);
    best.node.heldFor = holder;
    best.node.heldGpus = new Set(best.gpus.map((g) => g.index));
    return best.node.nodeId;
  }

  /**
   * Whether `demand` would fit on the node once the `freed` reservations are
   * released (for choosing preemption victims). Counts reservations only, not
   * telemetry: the readings will fall once the freed work stops.
   */
  fitsAfter(nodeId: string, demand: Demand, freed: Reservation[]): boolean {
    const node = this.nodesById.get(nodeId);
    if (!node || node.health !== 'ready' || !this.serves(node, demand.model)) return false;
    let fitting = 0;
    for (const gpu of node.gpus) {
      let tasks = gpu.tasks;
      let reserved = gpu.reservedBytes;
      const users = new Map([...gpu.models].map(([model, w]) => [model, w.users]));
      for (const r of freed) {
        if (r.nodeId !== nodeId || !r.gpuIndices.includes(gpu.index)) continue;
        tasks -= 1;
        reserved -= r.demand.privateBytesPerGpu;
        if (r.demand.model && r.demand.sharedBytesPerGpu > 0 && users.has(r.demand.model)) users.set(r.demand.model, users.get(r.demand.model)! - 1);
      }
      // Weights whose last user goes are given back.
      for (const [model, n] of users) if (n <= 0) reserved -= gpu.models.get(model)!.bytes;
      const resident = demand.model !== '' && (users.get(demand.model) ?? 0) > 0;
      const need = demand.privateBytesPerGpu + (resident ? 0 : demand.sharedBytesPerGpu);
      if (tasks < node.maxTasksPerGpu && reserved + need <= gpu.memoryTotalBytes * this.policy.maxGpuMemoryFraction) fitting += 1;
    }
    return fitting >= demand.gpuCount;
  }

  /** Holds this node for a task (after preempting work there for it); false when the node is unknown or held for another. */
  holdNode(nodeId: string, holder: string): boolean {
    const node = this.nodesById.get(nodeId);
    if (!node || (node.heldFor !== undefined && node.heldFor !== holder)) return false;
    this.unhold(holder);
    node.heldFor = holder;
    node.heldGpus = undefined;
    return true;
  }

  /** Ends a hold (its task was placed, cancelled or is no longer overdue). */
  unhold(holder: string): void {
    for (const node of this.nodesById.values()) {
      if (node.heldFor !== holder) continue;
      node.heldFor = undefined;
      node.heldGpus = undefined;
    }
  }

  /** The GPUs held for a task on its held node (undefined: the whole node, or none held). */
  heldGpus(holder: string): number[] | undefined {
    for (const node of this.nodesById.values()) if (node.heldFor === holder && node.heldGpus) return [...node.heldGpus].sort((a, b) => a - b);
    return undefined;
  }

  /** The node held for a task, if any. */
  heldNode(holder: string): string | undefined {
    for (const node of this.nodesById.values()) if (node.heldFor === holder) return node.nodeId;
    return undefined;
  }

  /** The fleet's ready GPUs and their memory (what fair shares divide). */
  capacity(): { gpus: number; gpuMemoryBytes: number } {
    let gpus = 0;
    let gpuMemoryBytes = 0;
    for (const node of this.nodesById.values()) {
      if (node.health !== 'ready') continue;
      gpus += node.gpus.length;
      for (const g of node.gpus) gpuMemoryBytes += g.memoryTotalBytes;
    }
    return { gpus, gpuMemoryBytes };
  }

  /**
   * Books capacity for an attempt already running on these GPUs (an agent
   * that reconnected, or decision after a restart). It is counted even past
   * the limits, because the work is there whether it fits or not. Undefined
   * when the node or one of the GPUs is unknown.
   */
  restore(nodeId: string, gpuIndices: number[], demand: Demand): Reservation | undefined {
    const node = this.nodesById.get(nodeId);
    if (!node || gpuIndices.length === 0) return undefined;
    const gpus: GpuSlot[] = [];
    for (const index of gpuIndices) {
      const gpu = node.gpus.find((g) => g.index === index);
      if (!gpu) return undefined;
      gpus.push(gpu);
    }
    return this.reserve(node, gpus, demand);
  }

  /** Gives a reservation's capacity back (task finished, failed, cancelled or lost). */
  release(res: Reservation): void {
    const node = this.nodesById.get(res.nodeId);
    if (!node) return;
    const before = this.freeSlotsOf(node);
    node.inFlight -= 1;
    for (const index of res.gpuIndices) {
      const gpu = node.gpus.find((g) => g.index === index);
      if (!gpu) continue;
      gpu.tasks -= 1;
      gpu.reservedBytes -= res.demand.privateBytesPerGpu;
      const weights = res.demand.model ? gpu.models.get(res.demand.model) : undefined;
      if (weights && res.demand.sharedBytesPerGpu > 0) {
        weights.users -= 1;
        if (weights.users <= 0) {
          // Give back what was counted when the weights came in, whoever brought them.
          gpu.models.delete(res.demand.model);
          gpu.reservedBytes -= weights.bytes;
        }
      }
    }
    if (node.health === 'ready') this.freeSlots += this.freeSlotsOf(node) - before;
  }

  private serves(node: FleetNode, model: string): boolean {
    return model === '' || node.anyModel || node.models.has(model);
  }

  /** Score in [0, 1] of putting the demand on this GPU, or undefined if it does not fit. */
  private gpuScore(node: FleetNode, gpu: GpuSlot, demand: Demand): number | undefined {
    if (gpu.tasks >= node.maxTasksPerGpu) return undefined;
    if (gpu.utilization > this.policy.maxGpuUtilization) return undefined;
    const resident = demand.model !== '' && gpu.models.has(demand.model);
    const need = demand.privateBytesPerGpu + (resident ? 0 : demand.sharedBytesPerGpu);
    const limit = gpu.memoryTotalBytes * this.policy.maxGpuMemoryFraction;
    if (gpu.reservedBytes + need > limit) return undefined;
    // The agent may use memory decision did not reserve (another process, a leak): respect its reading too.
    if (gpu.memoryUsedBytes + (resident ? demand.privateBytesPerGpu : need) > limit && gpu.tasks > 0) return undefined;
    const freeAfter = 1 - (gpu.reservedBytes + need) / gpu.memoryTotalBytes;
    const spread = this.policy.mode === 'spread';
    // Pack inverts every allocation term, or free slots would still pull small jobs apart.
    const memory = spread ? freeAfter : 1 - freeAfter;
    const idle = 1 - gpu.utilization;
    const freeSlots = 1 - gpu.tasks / node.maxTasksPerGpu;
    const slots = spread ? freeSlots : 1 - freeSlots;
    const warm = resident ? 1 : 0;
    return 0.35 * memory + 0.25 * idle + 0.25 * slots + 0.15 * warm;
  }

  private reserve(node: FleetNode, gpus: GpuSlot[], demand: Demand): Reservation {
    const before = this.freeSlotsOf(node);
    const loadedWeights: boolean[] = [];
    for (const gpu of gpus) {
      gpu.tasks += 1;
      gpu.reservedBytes += demand.privateBytesPerGpu;
      let loaded = false;
      if (demand.model && demand.sharedBytesPerGpu > 0) {
        const weights = gpu.models.get(demand.model);
        if (weights) weights.users += 1;
        else {
          gpu.reservedBytes += demand.sharedBytesPerGpu;
          gpu.models.set(demand.model, { users: 1, bytes: demand.sharedBytesPerGpu });
          loaded = true;
        }
      }
      loadedWeights.push(loaded);
    }
    node.inFlight += 1;
    this.freeSlots += this.freeSlotsOf(node) - before;
    return { nodeId: node.nodeId, address: node.address, gpuIndices: gpus.map((g) => g.index), demand, loadedWeights };
  }

  private freeSlotsOf(node: FleetNode): number {
    let free = 0;
    for (const gpu of node.gpus) free += Math.max(0, node.maxTasksPerGpu - gpu.tasks);
    return free;
  }
}
