import { type Claim, NO_RESOURCES, type Resources } from './claim';
import { type Demand, type ModelShapes, replicaCapacityTokens, replicaShape, type ReplicaShape } from './demand';
import { abilitiesOf, type FleetNode, type GpuState, gpuIsFree, type NodeHealth, type NodeRegistration, servesModel } from './node';
import { newReplica, type Replica, type ReplicaCommand, replicaFits, replicaLoad, type ReplicaLimits, type ReplicaReport } from './replica';
import { chooseConnectedGpus } from './topology';

export interface PlacementPolicy {
  /** A free GPU whose fresh reading shows it busier than this is in use outside the claims, and takes nothing. @default 0.8 */
  maxGpuUtilization: number;
  /**
   * Share of a GPU's memory placement plans to use, like vLLM's
   * gpu_memory_utilization: a replica's KV cache fills it, a job must fit in
   * it. The parser sizes requests with the same headroom. @default 0.9
   */
  maxGpuMemoryFraction: number;
  /** Telemetry older than this marks a node unplaceable, as stale metrics count as saturated. @default 1000 */
  staleTelemetryMs: number;
  /**
   * 'pack' best-fits (the node left with the fewest free GPUs or cores),
   * keeping whole hosts free for large jobs; 'spread' does the opposite.
   * @default 'pack'
   */
  mode: 'pack' | 'spread';
  /** Most sequences a replica runs at once, when its agent does not say (vLLM's max_num_seqs). @default 256 */
  maxSequencesPerReplica: number;
  /** A replica whose engine reports this many requests waiting is saturated: it takes no more. @default 64 */
  maxWaitingPerReplica: number;
  /** Once every replica of a model is this loaded, placement starts another on free GPUs. @default 0.8 */
  scaleOutLoad: number;
  /** Idle replicas kept per model: never evicted below this, and started while GPUs are free. @default {} */
  keepWarm: Readonly<Record<string, number>>;
  /** A replica decision asked for that its agent has not reported after this long was never loaded. @default 5000 */
  replicaReportGraceMs: number;
}

export const DEFAULT_PLACEMENT_POLICY: PlacementPolicy = Object.freeze({
  maxGpuUtilization: 0.8,
  maxGpuMemoryFraction: 0.9,
  staleTelemetryMs: 1000,
  mode: 'pack',
  maxSequencesPerReplica: 256,
  maxWaitingPerReplica: 64,
  scaleOutLoad: 0.8,
  keepWarm: Object.freeze({}),
  replicaReportGraceMs: 5000,
});

/**
 * Why nothing fits: no ready node; none serves the model (or runs jobs);
 * none has room now; or none could ever take it (too many GPUs for any host,
 * too much memory for any GPU, a model no host can hold).
 */
export type NoFit = 'no-node' | 'no-model' | 'no-capacity' | 'too-large';

/** A GPU reading as telemetry brings it. */
export interface GpuReading {
  index: number;
  utilization: number;
  memoryUsedBytes: number;
}

/** Claims counted as gone in a what-if (preemption). */
interface Freed {
  jobs: Set<number>;
  /** Per replica id: tokens and sequences freed. */
  replicas: Map<string, { tokens: number; sequences: number }>;
  cpuMillis: number;
  memoryBytes: number;
}

interface PlanContext {
  holder: string | undefined;
  freed: Freed | undefined;
  /** Placement for real: telemetry counts and the node must be fresh. A what-if looks at claims alone. */
  live: boolean;
  nowMs: number;
  /** May evict idle replicas (a scale-out never does). */
  mayEvict: boolean;
  /** When the work being placed is predicted to end: before a reservation starts, it may use the reserved GPUs (backfill). */
  endMs?: number;
}

/** Where a demand would go on one node, and at what cost. */
interface Plan {
  node: FleetNode;
  /** GPUs the job or the new replica takes (an existing replica's for a sequence). */
  gpus: number[];
  /** An existing replica for a sequence. */
  replica?: Replica;
  /** A new replica to start for a sequence. */
  shape?: ReplicaShape;
  /** Idle replicas evicted to make room. */
  evict: Replica[];
  /** Lower is better, compared in order. */
  score: number[];
}

interface Hold {
  nodeId: string;
  gpus: number[];
  replicaId: string | undefined;
  /** Host cores and memory held (for a job without GPUs that preempted for them). */
  cpuMillis: number;
  memoryBytes: number;
  /** The claims of the victims still stopping for it: the cores and memory they hold are part of what is held. */
  stopping: readonly Claim[];
  /**
   * A reservation: when its task is predicted to be able to start (the
   * predicted end of what runs on its GPUs). Work predicted to end by then
   * may use them meanwhile (backfill). Absent for a plain hold, which
   * nothing else uses.
   */
  startMs?: number;
}

/** Load rate assumed for a model's first replica, before any has loaded (local NVMe to GPU). */
const DEFAULT_LOAD_BYTES_PER_SECOND = 2e9;
/** Load time assumed for a model whose size is unknown, before any replica of it has loaded. */
const DEFAULT_LOAD_MS = 10_000;
/** Weight of the newest load time in a model's moving average. */
const LOAD_ALPHA = 0.3;

/** Kinds of room a node has, for hasRoom(). */
const ROOM_GPU = 1;
const ROOM_REPLICA = 2;
const ROOM_CPU = 4;

/**
 * The fleet as the claim model books it: the one truth for placement,
 * preemption, quotas, fair share and explanations.
 *
 * - A batch job asking for N GPUs holds N whole GPUs of one host, alone,
 *   from the moment it is placed; CPU jobs hold cores and memory.
 * - Inference runs in model replicas (a model on K GPUs of one host) whose
 *   sequences share them up to their KV capacity; a replica's GPUs hold no
 *   job. Placement starts replicas (cold starts), prefers warm ones, scales a
 *   model out when its replicas fill, and evicts idle ones (least recently
 *   used, above a keep-warm minimum) when their GPUs are needed.
 * - Claims count at once and are released on the final state; telemetry can
 *   only take room away (a free GPU some other process uses, a replica whose
 *   engine reports a queue), never add it.
 *
 * The same feasibility test serves placement and preemption (`fitsAfter`),
 * so victims chosen by it make the room they promise (unless something
 * outside the claims takes it while they stop; the dispatcher then makes
 * room afresh).
 */
export class Fleet {
  private readonly nodesById = new Map<string, FleetNode>();
  /** Live claims by key (a released or voided claim is absent). */
  private readonly claims = new Map<number, Claim>();
  private readonly holds = new Map<string, Hold>();
  private commands: ReplicaCommand[] = [];
  /** Replicas to keep warm per model set at run time (the feedback loop), on top of policy.keepWarm. */
  private readonly warmFloors = new Map<string, number>();
  private nextKey = 1;
  private nextReplica = 1;
  private readonly replicaPrefix: string;
  /** Ready nodes with each kind of room. */
  private readonly roomCounts = new Map<number, number>([
    [ROOM_GPU, 0],
    [ROOM_REPLICA, 0],
    [ROOM_CPU, 0],
  ]);
  private readonly limits: ReplicaLimits;
  /** Connected nodes that run jobs as processes (see runsJob). */
  private processNodes = 0;
  /** Every replica by model, so a sequence looks only at its model's. */
  private readonly replicasByModel = new Map<string, Set<Replica>>();
  /** How long each model's replicas took to load (moving average of request to ready). */
  private readonly loadMs = new Map<string, number>();
  /** Bumped whenever a claim is booked or released: what warmSlotAt computed stays good until then. */
  private claimsVersion = 0;
  /** Predicted ends of the sequences in warm replicas open to a holder, ascending, by model and holder (see warmEnds). */
  private warmSlots: { version: number; atMs: number; byModel: Map<string, number[]> } = { version: -1, atMs: NaN, byModel: new Map() };
  /** The sequences (holders) of each model told to wait for a warm slot at one instant, in order (see waitForWarmSlot). */
  private warmWaiting: { atMs: number; byModel: Map<string, string[]> } = { atMs: NaN, byModel: new Map() };

  constructor(
    private readonly policy: PlacementPolicy = DEFAULT_PLACEMENT_POLICY,
    private readonly clock: () => number = Date.now,
    private readonly shapes: ModelShapes = () => undefined,
    random: () => number = Math.random,
  ) {
    this.limits = { maxWaiting: policy.maxWaitingPerReplica, staleTelemetryMs: policy.staleTelemetryMs };
    // Replica ids must not repeat across decision restarts: agents keep their replicas.
    this.replicaPrefix = Math.floor(random() * 36 ** 6).toString(36).padStart(6, '0');
  }

  // ---- nodes ---------------------------------------------------------------

  /**
   * Adds or replaces a node. A re-registration keeps nothing of the old
   * session's claims (the caller restores what the agent still runs); the
   * replicas the agent reports are taken in.
   */
  upsert(registration: NodeRegistration, replicas: readonly ReplicaReport[] = []): FleetNode {
    this.remove(registration.nodeId);
    const now = this.clock();
    const node: FleetNode = {
      nodeId: registration.nodeId,
      address: registration.address,
      models: new Set(registration.models.filter((m) => m !== '*')),
      anyModel: registration.models.includes('*'),
      abilities: abilitiesOf(registration.backends),
      gpus: registration.gpus.map((g) => ({
        index: g.index,
        memoryTotalBytes: g.memoryTotalBytes,
        job: undefined,
        replica: undefined,
        heldFor: undefined,
        utilization: 0,
        memoryUsedBytes: 0,
        observedAtMs: -Infinity,
        freedAtMs: -Infinity,
      })),
      topology: registration.topology,
      cpuMillis: Math.max(0, registration.cpuMillis),
      memoryBytes: Math.max(0, registration.memoryBytes),
      cpuClaimedMillis: 0,
      memoryClaimedBytes: 0,
      maxSequencesPerReplica: registration.maxSequencesPerReplica || this.policy.maxSequencesPerReplica,
      replicas: new Map(),
      health: 'ready',
      lastSeenMs: now,
      claims: 0,
      room: 0,
      freeGpus: registration.gpus.length,
      idleGpus: 0,
      heldGpus: 0,
      heldHost: 0,
      smallestGpuBytes: registration.gpus.length === 0 ? 0 : Math.min(...registration.gpus.map((g) => g.memoryTotalBytes)),
      replicaShapes: new Map(),
    };
    this.nodesById.set(node.nodeId, node);
    this.countProcessNode(node, 1);
    this.observeReplicas(node, replicas, now, true);
    this.touch(node);
    return node;
  }

  /** Forgets a node: its claims are void (releasing them later changes nothing), its holds end. */
  remove(nodeId: string): void {
    const node = this.nodesById.get(nodeId);
    if (!node) return;
    this.setRoom(node, 0);
    this.countProcessNode(node, -1);
    for (const [key, claim] of this.claims) if (claim.nodeId === nodeId) this.claims.delete(key);
    for (const [holder, hold] of this.holds) if (hold.nodeId === nodeId) this.holds.delete(holder);
    this.commands = this.commands.filter((c) => c.nodeId !== nodeId);
    for (const r of node.replicas.values()) this.replicasByModel.get(r.model)?.delete(r);
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
    this.countProcessNode(node, -1);
    node.health = health;
    this.countProcessNode(node, 1);
    this.touch(node);
  }

  /**
   * Records a telemetry push (which also proves the node alive): GPU readings
   * and, when given, the replicas the agent runs. Returns whether it may
   * have made room placement did not see before (a GPU no longer busy
   * outside the claims, a replica ready or no longer saturated), so the
   * caller knows when a dispatch pass is worth running.
   */
  observe(nodeId: string, readings: readonly GpuReading[], replicas?: readonly ReplicaReport[]): boolean {
    const node = this.nodesById.get(nodeId);
    if (!node) return false;
    const now = this.clock();
    const wasStale = now - node.lastSeenMs > this.policy.staleTelemetryMs;
    node.lastSeenMs = now;
    let opened = wasStale;
    for (const reading of readings) {
      const gpu = node.gpus.find((g) => g.index === reading.index);
      if (!gpu) continue;
      const blocked = gpuIsFree(gpu) && !this.gpuReadingAllows(gpu, 0);
      gpu.utilization = reading.utilization;
      gpu.memoryUsedBytes = reading.memoryUsedBytes;
      gpu.observedAtMs = now;
      if (blocked && this.gpuReadingAllows(gpu, 0)) opened = true;
    }
    if (replicas && this.observeReplicas(node, replicas, now, false)) opened = true;
    if (opened) this.touch(node);
    return opened;
  }

  // ---- placement -------------------------------------------------------------

  /**
   * Places and claims, or says why not. GPUs and replicas held for another
   * task are left alone; `holder` may use what is held for it.
   */
  place(demand: Demand, holder?: string, endMs?: number): Claim | NoFit {
    const ctx: PlanContext = { holder, freed: undefined, live: true, nowMs: this.clock(), mayEvict: true, endMs };
    if (demand.kind === 'sequence') return this.placeSequence(demand, ctx);
    // Where something is held for it (preemption made room there) is where it goes, if it fits.
    const heldOn = holder !== undefined ? this.nodesById.get(this.holds.get(holder)?.nodeId ?? '') : undefined;
    if (heldOn && heldOn.health === 'ready' && this.fresh(heldOn, ctx)) {
      const plan = this.planOn(heldOn, demand, ctx);
      if (plan) return this.claimJob(plan, demand, holder, endMs);
    }
    let best: Plan | undefined;
    for (const node of this.nodesById.values()) {
      if (node.health !== 'ready' || !this.fresh(node, ctx) || !this.runsJob(node, demand)) continue;
      // Quick rejects before any plan is drawn (a fleet of thousands of hosts, most of them full):
      // no room at all, or no better than the best found even at its most optimistic.
      if (demand.kind === 'gpus' ? node.freeGpus + node.idleGpus < demand.gpuCount : node.cpuMillis - node.cpuClaimedMillis < demand.cpuMillis) continue;
      if (best && !better(this.scoreBound(node, demand.kind === 'cpu' ? 0 : demand.gpuCount, demand.cpuMillis), best.score)) continue;
      if (!this.couldEverTake(node, demand)) continue;
      const plan = this.planJob(node, demand, ctx);
      if (!plan || (best && !better(plan.score, best.score))) continue;
      best = plan;
      // Nothing beats an exact fit that evicts nothing (best-fit: no free GPU or core left there).
      if (this.policy.mode === 'pack' && plan.score[0] === 0 && plan.score[1] === 0 && plan.score[2] === 0) break;
    }
    return best ? this.claimJob(best, demand, holder, endMs) : this.jobNoFit(demand);
  }

  /** Why a job fits nowhere (the slow path: only when it does not). */
  private jobNoFit(demand: Demand): NoFit {
    let reason: NoFit = 'no-node';
    for (const node of this.nodesById.values()) {
      if (node.health !== 'ready') continue;
      if (reason === 'no-node') reason = 'no-model';
      if (!this.runsJob(node, demand)) continue;
      if (reason === 'no-model') reason = 'too-large';
      if (this.couldEverTake(node, demand)) return 'no-capacity';
    }
    return reason;
  }

  /**
   * Whether `demand` would fit on the node once the `freed` claims are
   * released: the test preemption chooses victims by. The freed claims' GPUs
   * count as free whatever their readings say (readings fall once the work
   * stops); any other free GPU must pass its reading as in placement (a
   * process outside the claims keeps using it), and the node must be ready
   * with fresh telemetry.
   */
  fitsAfter(nodeId: string, demand: Demand, freed: readonly Claim[], holder?: string): boolean {
    return this.planAfter(nodeId, demand, freed, holder) !== undefined;
  }

  /** Whether the node is ready and its telemetry fresh enough to place on. */
  isFresh(nodeId: string): boolean {
    const node = this.nodesById.get(nodeId);
    return node !== undefined && node.health === 'ready' && this.clock() - node.lastSeenMs <= this.policy.staleTelemetryMs;
  }

  /** The plan `fitsAfter` and `holdAfter` test: on a ready node with fresh telemetry, with `freed` counted as released. */
  private planAfter(nodeId: string, demand: Demand, freed: readonly Claim[], holder: string | undefined): Plan | undefined {
    const node = this.nodesById.get(nodeId);
    if (!node || !this.isFresh(nodeId)) return undefined;
    return this.planOn(node, demand, { holder, freed: this.freedOf(nodeId, freed), live: false, nowMs: this.clock(), mayEvict: true });
  }

  /**
   * Holds what `demand` would take on the node once `freed` is released (the
   * room preemption is making for it), so no other task takes it meanwhile.
   * False when it would not fit, or the node is unknown.
   */
  holdAfter(nodeId: string, demand: Demand, freed: readonly Claim[], holder: string): boolean {
    const plan = this.planAfter(nodeId, demand, freed, holder);
    if (!plan) return false;
    this.unhold(holder);
    const stopping = freed.filter((c) => c.nodeId === nodeId);
    if (plan.replica) this.setHold(holder, { nodeId, gpus: [], replicaId: plan.replica.id, cpuMillis: 0, memoryBytes: 0, stopping });
    else this.setHold(holder, { nodeId, gpus: plan.gpus, replicaId: undefined, cpuMillis: demand.cpuMillis, memoryBytes: demand.memoryBytes, stopping });
    return true;
  }

  /**
   * Holds GPUs for a task that fits nowhere now, so capacity freed there is
   * not taken by smaller tasks (no starvation of large work): on the node
   * that could take it where the most of what it needs is free already,
   * the GPUs nearest to fitting it (free ones, then idle replicas', then
   * busy ones). The node's other GPUs stay open. Returns the node, or
   * undefined when none could take it or all are held for others.
   */
  hold(demand: Demand, holder: string): string | undefined {
    if (demand.kind === 'cpu') return undefined;
    let best: { node: FleetNode; gpus: number[]; ready: number } | undefined;
    for (const node of this.nodesById.values()) {
      if (node.health !== 'ready' || !servesModel(node, demand.model)) continue;
      const count = this.gpusToHold(node, demand);
      if (count === undefined) continue;
      const open = node.gpus.filter((g) => (g.heldFor === undefined || g.heldFor === holder) && g.memoryTotalBytes * this.policy.maxGpuMemoryFraction >= demand.gpuMemoryBytes);
      if (open.length < count) continue;
      // Nearest to fitting: free first, then idle replicas' GPUs, then the rest.
      const rank = (g: GpuState) => (gpuIsFree(g) ? 0 : g.replica && !g.replica.external && g.replica.sequences === 0 ? 1 : 2);
      const ordered = [...open].sort((a, b) => rank(a) - rank(b) || a.index - b.index);
      const gpus = ordered.slice(0, count).map((g) => g.index);
      const ready = ordered.slice(0, count).filter((g) => rank(g) < 2).length;
      if (!best || ready > best.ready) best = { node, gpus, ready };
    }
    if (!best) return undefined;
    this.unhold(holder);
    this.setHold(holder, { nodeId: best.node.nodeId, gpus: best.gpus, replicaId: undefined, cpuMillis: 0, memoryBytes: 0, stopping: [] });
    return best.node.nodeId;
  }

  /**
   * Reserves GPUs for a job that fits nowhere now, from a time it can start
   * predicted from the running work's predicted ends (free GPUs now, a job's
   * at its predicted end, a replica's once its last sequence is predicted to
   * end). Each run of N GPUs of a node in the order they free is a plan.
   * Among the plans that start it by `startByMs` (its age bound), the one
   * that starts latest wins (what it reserves stays open to backfill the
   * longest, and the job often finds room on its own before), then the one
   * leaving the least GPU-time idle; with no bound, or none in time, the
   * earliest. Until the start, work
   * predicted to end before it may use the reserved GPUs (backfill, `place`
   * with its predicted end), so nothing sits idle that could run and be done
   * in time; nothing else may. Where a running claim's end is unknown, the
   * reservation is a plain hold. Returns the node and start, or undefined
   * when no node could take the job or all that could are held for others.
   */
  reserve(demand: Demand, holder: string, startByMs = Infinity): { nodeId: string; startMs: number | undefined } | undefined {
    if (demand.kind !== 'gpus') return undefined;
    const now = this.clock();
    // When each replica's sequences are predicted to be done (Infinity: one's end is unknown).
    const replicaEnds = new Map<string, number>();
    for (const c of this.claims.values()) {
      if (c.replicaId === undefined) continue;
      replicaEnds.set(c.replicaId, Math.max(replicaEnds.get(c.replicaId) ?? now, c.endMs ?? Infinity));
    }
    const freeAt = (g: GpuState): number => {
      if (gpuIsFree(g)) return now;
      if (g.job) return Math.max(now, g.job.endMs ?? Infinity);
      if (g.replica) return g.replica.external ? Infinity : g.replica.sequences === 0 ? now : Math.max(now, replicaEnds.get(g.replica.id) ?? Infinity);
      return Infinity;
    };
    type Option = { node: FleetNode; gpus: number[]; startMs: number; idleMs: number; ready: number };
    // With a bound: the latest start still in time (its GPUs stay open to backfill the longest, and
    // the job often finds room on its own before), then the least GPU-time left idle waiting for
    // it. Without one, or with none in time: the earliest start.
    const bounded = Number.isFinite(startByMs);
    const cost = (o: Option) => (bounded && o.startMs <= startByMs ? [0, -o.startMs, o.idleMs, -o.ready] : [1, o.startMs, o.idleMs, -o.ready]);
    let best: Option | undefined;
    for (const node of this.nodesById.values()) {
      if (node.health !== 'ready' || !servesModel(node, demand.model)) continue;
      const count = this.gpusToHold(node, demand);
      if (count === undefined) continue;
      const open = node.gpus
        .filter((g) => (g.heldFor === undefined || g.heldFor === holder) && g.memoryTotalBytes * this.policy.maxGpuMemoryFraction >= demand.gpuMemoryBytes)
        .map((g) => ({ index: g.index, at: freeAt(g) }))
        .sort((a, b) => a.at - b.at || a.index - b.index);
      // Every run of `count` GPUs in the order they free: the first starts earliest, later ones may idle less.
      for (let i = 0; i + count <= open.length; i++) {
        const chosen = open.slice(i, i + count);
        const startMs = chosen[count - 1]!.at;
        if (!Number.isFinite(startMs) && i > 0) break;
        const option: Option = {
          node,
          gpus: chosen.map((g) => g.index),
          startMs,
          idleMs: Number.isFinite(startMs) ? chosen.reduce((sum, g) => sum + (startMs - g.at), 0) : Infinity,
          ready: chosen.filter((g) => g.at <= now).length,
        };
        if (!best || better(cost(option), cost(best))) best = option;
      }
    }
    if (!best) return undefined;
    this.unhold(holder);
    const startMs = Number.isFinite(best.startMs) ? best.startMs : undefined;
    this.setHold(holder, { nodeId: best.node.nodeId, gpus: best.gpus, replicaId: undefined, cpuMillis: 0, memoryBytes: 0, stopping: [], startMs });
    return { nodeId: best.node.nodeId, startMs };
  }

  /** When a reservation's task is predicted to start (undefined: not a reservation, or the end of what runs there is unknown). */
  reservedStart(holder: string): number | undefined {
    return this.holds.get(holder)?.startMs;
  }

  /** Ends a hold (its task was placed, cancelled, or no longer qualifies). */
  unhold(holder: string): void {
    const hold = this.holds.get(holder);
    if (!hold) return;
    this.holds.delete(holder);
    const node = this.nodesById.get(hold.nodeId);
    if (!node) return;
    if (hold.cpuMillis > 0 || hold.memoryBytes > 0) node.heldHost -= 1;
    for (const gpu of node.gpus) {
      if (gpu.heldFor !== holder) continue;
      gpu.heldFor = undefined;
      node.heldGpus -= 1;
    }
    for (const r of node.replicas.values()) if (r.heldFor === holder) r.heldFor = undefined;
    this.touch(node);
  }

  /** The GPUs held for a task (empty when it holds a replica), if it holds any. */
  heldGpus(holder: string): number[] | undefined {
    const hold = this.holds.get(holder);
    return hold ? [...hold.gpus].sort((a, b) => a - b) : undefined;
  }

  /** The replica held for a task, if it holds one. */
  heldReplica(holder: string): string | undefined {
    return this.holds.get(holder)?.replicaId;
  }

  /** The node where something is held for a task, if any. */
  heldNode(holder: string): string | undefined {
    return this.holds.get(holder)?.nodeId;
  }

  /**
   * Books an attempt already running (an agent that reconnected, or decision
   * after a restart) on the GPUs or replica it runs on. It is counted even
   * past the replica's capacity or the host's cores, because the work is
   * there; undefined when the node, a GPU or the replica is unknown, or a GPU
   * is another's.
   */
  restore(nodeId: string, gpuIndices: readonly number[], demand: Demand, owner?: string): Claim | undefined {
    const node = this.nodesById.get(nodeId);
    if (!node) return undefined;
    if (demand.kind === 'sequence') {
      const replica = [...node.replicas.values()].find((r) => r.model === demand.model && (gpuIndices.length === 0 || r.gpuIndices.includes(gpuIndices[0]!)));
      return replica ? this.claimSequence(node, replica, demand, owner) : undefined;
    }
    const gpus: GpuState[] = [];
    for (const index of gpuIndices) {
      const gpu = node.gpus.find((g) => g.index === index);
      if (!gpu || !gpuIsFree(gpu)) return undefined;
      gpus.push(gpu);
    }
    if (demand.kind === 'gpus' && gpus.length === 0) return undefined;
    return this.claimGpus(node, gpus.map((g) => g.index), demand, owner);
  }

  /** Gives a claim's capacity back (attempt ended, or its node lost). Releasing twice changes nothing. */
  release(claim: Claim): void {
    if (this.claims.get(claim.key) !== claim) return;
    this.claims.delete(claim.key);
    this.claimsVersion += 1;
    const node = this.nodesById.get(claim.nodeId);
    if (!node) return;
    const now = this.clock();
    if (claim.replicaId !== undefined) {
      const replica = node.replicas.get(claim.replicaId);
      if (replica) {
        replica.usedTokens = Math.max(0, replica.usedTokens - claim.demand.tokens);
        replica.lastUsedMs = now;
        if (replica.sequences > 0) {
          replica.sequences -= 1;
          if (replica.sequences === 0 && !replica.external) node.idleGpus += replica.gpuIndices.length;
        }
      }
    } else {
      for (const index of claim.gpuIndices) {
        const gpu = node.gpus.find((g) => g.index === index);
        if (gpu?.job !== claim) continue;
        gpu.job = undefined;
        gpu.freedAtMs = now;
        node.freeGpus += 1;
      }
    }
    node.cpuClaimedMillis = Math.max(0, node.cpuClaimedMillis - claim.demand.cpuMillis);
    node.memoryClaimedBytes = Math.max(0, node.memoryClaimedBytes - claim.demand.memoryBytes);
    node.claims -= 1;
    this.touch(node);
  }

  /**
   * Starts replicas of the models with a keep-warm minimum that have fewer,
   * on free GPUs (never evicting anything for it).
   */
  ensureWarm(): void {
    if (Object.keys(this.policy.keepWarm).length === 0 && this.warmFloors.size === 0) return;
    const now = this.clock();
    for (const model of new Set([...Object.keys(this.policy.keepWarm), ...this.warmFloors.keys()])) {
      const minimum = this.keepWarmOf(model);
      let have = this.replicaCount(model);
      while (have < minimum) {
        const demand: Demand = { kind: 'sequence', model, gpuCount: 1, gpuMemoryBytes: 0, tokens: 0, cpuMillis: 0, memoryBytes: 0 };
        const plan = this.bestNewReplica(demand, { holder: undefined, freed: undefined, live: true, nowMs: now, mayEvict: false });
        if (!plan) break;
        this.startReplica(plan, model);
        have += 1;
      }
    }
  }

  /**
   * Sets the replicas to keep warm per model on top of the configured
   * keep-warm (the feedback loop's pre-warm floors): merged per model, the
   * larger of the two counts, 0 removes a model's floor.
   */
  setWarmFloors(floors: Readonly<Record<string, number>>): void {
    for (const [model, n] of Object.entries(floors)) {
      if (n > 0) this.warmFloors.set(model, n);
      else this.warmFloors.delete(model);
    }
  }

  /** The replicas kept warm for a model: the configured keep-warm or the floor set, whichever is larger. */
  keepWarmOf(model: string): number {
    return Math.max(this.policy.keepWarm[model] ?? 0, this.warmFloors.get(model) ?? 0);
  }

  /** Replica loads and evictions placement decided, for the caller to send to the agents (taken once). */
  takeCommands(): ReplicaCommand[] {
    const out = this.commands;
    this.commands = [];
    return out;
  }

  // ---- queries ---------------------------------------------------------------

  /** Cheap check before scanning a queue: does any ready node have room of this kind (any kind when omitted)? */
  hasRoom(kind?: Demand['kind']): boolean {
    const gpu = this.roomCounts.get(ROOM_GPU)! > 0;
    if (kind === 'gpus') return gpu;
    if (kind === 'sequence') return gpu || this.roomCounts.get(ROOM_REPLICA)! > 0;
    if (kind === 'cpu') return this.roomCounts.get(ROOM_CPU)! > 0;
    return gpu || this.roomCounts.get(ROOM_REPLICA)! > 0 || this.roomCounts.get(ROOM_CPU)! > 0;
  }

  /** Whether any connected node runs this model (to tell "nobody serves it" from "busy"). */
  servesModel(model: string, kind: Demand['kind'] = 'sequence'): boolean {
    for (const node of this.nodesById.values()) {
      if (node.health === 'lost') continue;
      if (kind === 'sequence') {
        if (node.abilities.replicas === 'managed' && servesModel(node, model)) return true;
        for (const r of node.replicas.values()) if (r.model === model) return true;
      } else if (node.abilities.jobs !== 'none' && servesModel(node, model)) return true;
    }
    return false;
  }

  /** The fleet's ready GPUs, their memory and the cores for jobs (what fair shares divide). */
  capacity(): Resources {
    const total: Resources = { gpus: 0, gpuMemoryBytes: 0, cpus: 0 };
    for (const node of this.nodesById.values()) {
      if (node.health !== 'ready') continue;
      total.gpus += node.gpus.length;
      for (const g of node.gpus) total.gpuMemoryBytes += g.memoryTotalBytes;
      if (node.abilities.jobs !== 'none') total.cpus += node.cpuMillis / 1000;
    }
    return total;
  }

  /**
   * GPUs on ready nodes now serving or loading replicas with work (busy
   * replicas), and GPUs a job could take now (free, or under an idle
   * replica it may evict).
   */
  gpuUse(): { inference: number; open: number } {
    let inference = 0;
    let open = 0;
    for (const node of this.nodesById.values()) {
      if (node.health !== 'ready') continue;
      open += node.freeGpus + node.idleGpus;
      for (const r of node.replicas.values()) if (r.sequences > 0 || r.state === 'loading') inference += r.gpuIndices.length;
    }
    return { inference, open };
  }

  /**
   * What a demand would count for fair share and quotas once placed, before
   * it is (a claim carries the exact figure): whole GPUs of the fleet's
   * largest for a job, for a sequence its share of a replica of its model.
   */
  estimateResources(demand: Demand): Resources {
    const cpus = demand.cpuMillis / 1000;
    if (demand.kind === 'cpu') return { ...NO_RESOURCES, cpus };
    const gpuBytes = this.largestGpuBytes();
    if (demand.kind === 'gpus') return { gpus: demand.gpuCount, gpuMemoryBytes: demand.gpuCount * gpuBytes, cpus };
    const model = this.shapes(demand.model);
    const shape = model && gpuBytes > 0 ? replicaShape(model, gpuBytes, this.policy.maxGpuMemoryFraction, 64, demand.gpuCount) : undefined;
    const fraction = shape ? Math.min(1, demand.tokens / Math.max(1, shape.capacityTokens)) : 1 / this.policy.maxSequencesPerReplica;
    const gpus = shape?.gpuCount ?? demand.gpuCount;
    return { gpus: gpus * fraction, gpuMemoryBytes: gpus * gpuBytes * fraction, cpus };
  }

  /** Claims live now (for checks and tests). */
  liveClaims(): IterableIterator<Claim> {
    return this.claims.values();
  }

  /** The replicas of a model on ready nodes. */
  replicaCount(model: string): number {
    let n = 0;
    for (const r of this.replicasByModel.get(model) ?? []) if (this.nodesById.get(r.nodeId)?.health === 'ready') n += 1;
    return n;
  }

  // ---- sequences -------------------------------------------------------------

  /**
   * A sequence goes to the least loaded replica of its model with room,
   * ready before loading. When every replica of the model is past the
   * scale-out mark, another is started on free GPUs (the sequence still goes
   * where it can run now). With no room in any replica, a new one is started
   * for it (a cold start), evicting idle replicas if it must.
   */
  private placeSequence(demand: Demand, ctx: PlanContext): Claim | NoFit {
    // A replica held for it (preemption made room there) is where it goes.
    const hold = ctx.holder !== undefined ? this.holds.get(ctx.holder) : undefined;
    const heldNode = hold?.replicaId !== undefined ? this.nodesById.get(hold.nodeId) : undefined;
    const heldReplica = heldNode?.replicas.get(hold!.replicaId!);
    if (heldNode && heldReplica && heldNode.health === 'ready' && replicaFits(heldReplica, demand.tokens, ctx.nowMs, this.limits, true)) {
      return this.claimSequence(heldNode, heldReplica, demand, ctx.holder, ctx.endMs);
    }
    let best: { node: FleetNode; replica: Replica; load: number } | undefined;
    let belowScaleOut = false;
    for (const r of this.replicasByModel.get(demand.model) ?? []) {
      const node = this.nodesById.get(r.nodeId)!;
      if (node.health !== 'ready' || !this.fresh(node, ctx) || this.replicaClosed(node, r, ctx)) continue;
      const load = replicaLoad(r, ctx.nowMs, this.limits);
      if (load < this.policy.scaleOutLoad) belowScaleOut = true;
      if (!replicaFits(r, demand.tokens, ctx.nowMs, this.limits, true)) continue;
      if (!best || rankReplica(r, load, ctx.nowMs, this.limits) < rankReplica(best.replica, best.load, ctx.nowMs, this.limits)) best = { node, replica: r, load };
    }
    if (best && best.replica.state === 'ready' && best.load < this.policy.scaleOutLoad) return this.claimSequence(best.node, best.replica, demand, ctx.holder, ctx.endMs);
    if (best) {
      if (!belowScaleOut) {
        const more = this.bestNewReplica(demand, { ...ctx, mayEvict: false });
        if (more) this.startReplica(more, demand.model);
      }
      // On a replica still loading, it would wait for the load: a slot of a warm one may free sooner.
      if (best.replica.state === 'loading' && this.waitForWarmSlot(demand.model, best.replica.requestedAtMs + this.loadEstimateMs(demand.model), ctx)) return 'no-capacity';
      return this.claimSequence(best.node, best.replica, demand, ctx.holder, ctx.endMs);
    }
    const fresh = this.bestNewReplica(demand, ctx);
    if (!fresh) return this.sequenceNoFit(demand);
    const replica = this.startReplica(fresh, demand.model);
    // The new replica loads for what keeps coming; this sequence waits for a warm slot if one frees before the load is done.
    if (this.waitForWarmSlot(demand.model, ctx.nowMs + this.loadEstimateMs(demand.model), ctx)) return 'no-capacity';
    return this.claimSequence(fresh.node, replica, demand, ctx.holder, ctx.endMs);
  }

  /**
   * How long a replica of the model takes to load: what its replicas took
   * (moving average), or its weights at DEFAULT_LOAD_BYTES_PER_SECOND
   * before any has loaded.
   */
  loadEstimateMs(model: string): number {
    const learned = this.loadMs.get(model);
    if (learned !== undefined) return learned;
    const weights = this.shapes(model)?.weightBytes;
    return weights !== undefined ? (weights / DEFAULT_LOAD_BYTES_PER_SECOND) * 1000 : DEFAULT_LOAD_MS;
  }

  /**
   * How many slots of warm replicas of the model are predicted to free
   * before a replica started now would serve (what is held for `holder`
   * counts as open to it): while no more sequences wait than that, a new
   * replica (and preempting work to make room for one) is the slower way to
   * serve them.
   */
  warmSlotsBeforeColdStart(model: string, holder?: string): number {
    const now = this.clock();
    const ends = this.warmEnds(model, { holder, freed: undefined, live: true, nowMs: now, mayEvict: false });
    const coldReadyMs = now + this.loadEstimateMs(model);
    let n = 0;
    while (n < ends.length && ends[n]! < coldReadyMs) n += 1;
    return n;
  }

  /**
   * Whether this sequence should wait for a warm slot rather than a replica
   * still loading (or about to): only while fewer sequences of the model have
   * been told to wait at this instant than slots of ready replicas are
   * predicted to free before `coldReadyMs`. Each slot serves one waiting
   * sequence; those beyond them are served sooner by the cold replica (and,
   * placed on it, fill it so another scales out).
   */
  private waitForWarmSlot(model: string, coldReadyMs: number, ctx: PlanContext): boolean {
    if (this.warmWaiting.atMs !== ctx.nowMs) this.warmWaiting = { atMs: ctx.nowMs, byModel: new Map() };
    let told = this.warmWaiting.byModel.get(model);
    if (!told) this.warmWaiting.byModel.set(model, (told = []));
    // A sequence tried again at the same instant keeps its place among those told to wait.
    const known = ctx.holder === undefined ? -1 : told.indexOf(ctx.holder);
    const place = known >= 0 ? known : told.length;
    const ends = this.warmEnds(model, ctx);
    if (!(place < ends.length && ends[place]! < coldReadyMs)) return false;
    if (known < 0) told.push(ctx.holder ?? '');
    return true;
  }

  /** The predicted ends of the sequences in ready replicas of the model open to the placement, soonest first (those with a known end). */
  private warmEnds(model: string, ctx: PlanContext): number[] {
    if (this.warmSlots.version !== this.claimsVersion || this.warmSlots.atMs !== ctx.nowMs) this.warmSlots = { version: this.claimsVersion, atMs: ctx.nowMs, byModel: new Map() };
    const cache = this.warmSlots.byModel;
    const key = `${model}\u0000${ctx.holder ?? ''}`;
    const cached = cache.get(key);
    if (cached) return cached;
    // Open to it: not held for another task (a reservation's backfill is not counted on).
    const openTo: PlanContext = { ...ctx, endMs: undefined };
    const open = new Set<string>();
    for (const r of this.replicasByModel.get(model) ?? []) {
      const node = this.nodesById.get(r.nodeId);
      if (r.state === 'ready' && node?.health === 'ready' && !this.replicaClosed(node, r, openTo)) open.add(r.id);
    }
    const ends: number[] = [];
    if (open.size > 0) {
      for (const c of this.claims.values()) {
        if (c.replicaId !== undefined && c.endMs !== undefined && open.has(c.replicaId)) ends.push(c.endMs);
      }
      ends.sort((a, b) => a - b);
    }
    cache.set(key, ends);
    return ends;
  }

  /** Why a sequence fits nowhere (the slow path: only when it does not). */
  private sequenceNoFit(demand: Demand): NoFit {
    let reason: NoFit = 'no-node';
    for (const node of this.nodesById.values()) {
      if (node.health !== 'ready') continue;
      if (reason === 'no-node') reason = 'no-model';
      const managed = node.abilities.replicas === 'managed' && servesModel(node, demand.model) && this.shapes(demand.model) !== undefined;
      let hasReplica = false;
      for (const r of node.replicas.values()) if (r.model === demand.model) hasReplica = true;
      if (!managed && !hasReplica) continue;
      if (reason === 'no-model') reason = 'too-large';
      if (hasReplica || this.replicaShapeOn(node, demand) !== undefined) return 'no-capacity';
    }
    return reason;
  }

  private bestNewReplica(demand: Demand, ctx: PlanContext): Plan | undefined {
    // GPUs held for it (preemption freed them for a replica of its model) come first: no bound below beats them.
    const heldOn = ctx.holder !== undefined ? this.nodesById.get(this.holds.get(ctx.holder)?.nodeId ?? '') : undefined;
    let best: Plan | undefined = heldOn && heldOn.health === 'ready' && this.fresh(heldOn, ctx) ? this.planNewReplica(heldOn, demand, ctx) : undefined;
    for (const node of this.nodesById.values()) {
      if (node === heldOn || node.health !== 'ready' || !this.fresh(node, ctx) || node.abilities.replicas !== 'managed') continue;
      const shape = this.replicaShapeOn(node, demand);
      if (!shape || node.freeGpus + (ctx.mayEvict ? node.idleGpus : 0) < shape.gpuCount) continue;
      if (best && !better(this.scoreBound(node, shape.gpuCount, 0), best.score)) continue;
      const plan = this.planNewReplica(node, demand, ctx);
      if (!plan || (best && !better(plan.score, best.score))) continue;
      best = plan;
      if (this.policy.mode === 'pack' && plan.score[0] === 0 && plan.score[1] === 0 && plan.score[2] === 0) break;
    }
    return best;
  }

  /**
   * A replica the sequence may not join: held for another task, or on GPUs
   * held for one (it drains for it), unless the sequence is predicted to end
   * before that task's reservation starts.
   */
  private replicaClosed(node: FleetNode, r: Replica, ctx: PlanContext): boolean {
    if (this.closedBy(r.heldFor, ctx)) return true;
    for (const index of r.gpuIndices) {
      if (this.closedBy(node.gpus.find((g) => g.index === index)?.heldFor, ctx)) return true;
    }
    return false;
  }

  /** Whether something held for `heldFor` is closed to the work being placed: held for another task, and not a reservation it ends before. */
  private closedBy(heldFor: string | undefined, ctx: PlanContext): boolean {
    if (heldFor === undefined || heldFor === ctx.holder) return false;
    const startMs = this.holds.get(heldFor)?.startMs;
    return !(startMs !== undefined && ctx.endMs !== undefined && ctx.endMs <= startMs);
  }

  /** The replica a new one of this model would be on this node, if its GPUs could ever hold one. */
  private replicaShapeOn(node: FleetNode, demand: Demand): ReplicaShape | undefined {
    const key = `${demand.model}/${demand.gpuCount}`;
    let shape = node.replicaShapes.get(key);
    if (shape === undefined) {
      const model = this.shapes(demand.model);
      shape = (model && node.gpus.length > 0 && replicaShape(model, node.smallestGpuBytes, this.policy.maxGpuMemoryFraction, node.gpus.length, Math.max(1, demand.gpuCount))) || null;
      node.replicaShapes.set(key, shape);
    }
    return shape && shape.capacityTokens >= demand.tokens ? shape : undefined;
  }

  // ---- plans -----------------------------------------------------------------

  /** Where the demand fits on this node, or undefined: the one feasibility test. */
  private planOn(node: FleetNode, demand: Demand, ctx: PlanContext): Plan | undefined {
    if (demand.kind !== 'sequence') {
      if (!this.runsJob(node, demand) || !this.couldEverTake(node, demand)) return undefined;
      return this.planJob(node, demand, ctx);
    }
    for (const r of node.replicas.values()) {
      if (r.model !== demand.model || this.replicaClosed(node, r, ctx)) continue;
      const freed = ctx.freed?.replicas.get(r.id);
      if (replicaFits(r, demand.tokens, ctx.nowMs, this.limits, ctx.live, freed?.tokens, freed?.sequences)) {
        return { node, gpus: [...r.gpuIndices], replica: r, evict: [], score: [0] };
      }
    }
    return this.planNewReplica(node, demand, ctx);
  }

  private planNewReplica(node: FleetNode, demand: Demand, ctx: PlanContext): Plan | undefined {
    if (node.abilities.replicas !== 'managed' || !servesModel(node, demand.model)) return undefined;
    const shape = this.replicaShapeOn(node, demand);
    if (!shape) return undefined;
    // A replica fills its GPUs to the planning fraction: a reading must leave that much.
    const plan = this.planGpus(node, shape.gpuCount, 0, node.smallestGpuBytes * this.policy.maxGpuMemoryFraction, ctx);
    if (!plan) return undefined;
    return { ...plan, shape };
  }

  private planJob(node: FleetNode, demand: Demand, ctx: PlanContext): Plan | undefined {
    // Cores and memory held for another task (preemption freed them for it) are not free to this one.
    const held = this.hostHeldForOthers(node, ctx.holder);
    const freedCpu = (ctx.freed?.cpuMillis ?? 0) - held.cpuMillis;
    const freedMemory = (ctx.freed?.memoryBytes ?? 0) - held.memoryBytes;
    if (node.cpuClaimedMillis - freedCpu + demand.cpuMillis > node.cpuMillis) return undefined;
    if (node.memoryClaimedBytes - freedMemory + demand.memoryBytes > node.memoryBytes) return undefined;
    if (demand.kind === 'cpu') {
      const left = node.cpuMillis - (node.cpuClaimedMillis - freedCpu + demand.cpuMillis);
      return { node, gpus: [], evict: [], score: [0, this.policy.mode === 'pack' ? left : -left] };
    }
    return this.planGpus(node, demand.gpuCount, demand.gpuMemoryBytes, demand.gpuMemoryBytes, ctx);
  }

  /**
   * `count` GPUs of the node that can take `needBytes` each: free ones when
   * there are enough (the best-linked set), else with idle replicas evicted
   * (least recently used first, above their keep-warm minimum). Scored for
   * best fit: fewest evictions, then (pack) the fewest free GPUs left.
   */
  private planGpus(node: FleetNode, count: number, needBytes: number, readingBytes: number, ctx: PlanContext): Plan | undefined {
    const limit = (g: GpuState) => g.memoryTotalBytes * this.policy.maxGpuMemoryFraction;
    const mine = (g: GpuState) => !this.closedBy(g.heldFor, ctx);
    const free: number[] = [];
    /** Free GPUs held for this task: what was held or preempted for it is what it takes. */
    const held: number[] = [];
    let freeTotal = 0;
    for (const g of node.gpus) {
      const released = g.job !== undefined && ctx.freed?.jobs.has(g.job.key) === true;
      if ((!gpuIsFree(g) && !released) || g.replica !== undefined) continue;
      if (g.heldFor === undefined) freeTotal += 1;
      if (!mine(g) || limit(g) < needBytes) continue;
      // A free GPU some process outside the claims uses stays in use after any preemption too.
      if (!released && !this.gpuReadingAllows(g, readingBytes)) continue;
      free.push(g.index);
      if (ctx.holder !== undefined && g.heldFor === ctx.holder) held.push(g.index);
    }
    if (held.length >= count) {
      const gpus = chooseConnectedGpus(held, count, node.topology);
      return { node, gpus, evict: [], score: [-count] };
    }
    let pool = free;
    let evict: Replica[] = [];
    if (free.length < count) {
      if (!ctx.mayEvict) return undefined;
      const surplus = new Map<string, number>();
      const candidates = [...node.replicas.values()]
        .filter((r) => {
          // A replica still loading was started for sequences on their way (some wait for it, or for
          // a warm slot sooner): evicting it would throw the load away and hand their GPUs to others.
          if (r.external || r.state === 'loading' || this.closedBy(r.heldFor, ctx)) return false;
          const freed = ctx.freed?.replicas.get(r.id)?.sequences ?? 0;
          if (r.sequences - freed > 0) return false;
          return r.gpuIndices.every((i) => {
            const g = node.gpus.find((x) => x.index === i);
            return g !== undefined && mine(g) && limit(g) >= needBytes;
          });
        })
        .sort((a, b) => a.lastUsedMs - b.lastUsedMs);
      pool = [...free];
      for (const r of candidates) {
        if (pool.length >= count) break;
        const left = surplus.get(r.model) ?? this.replicaCount(r.model) - this.keepWarmOf(r.model);
        if (left <= 0) continue;
        surplus.set(r.model, left - 1);
        evict.push(r);
        pool.push(...r.gpuIndices);
      }
      if (pool.length < count) return undefined;
    }
    const gpus = chooseConnectedGpus(pool, count, node.topology);
    if (gpus.length < count) return undefined;
    evict = evict.filter((r) => r.gpuIndices.some((i) => gpus.includes(i)));
    const left = freeTotal - gpus.filter((i) => free.includes(i)).length;
    return { node, gpus, evict, score: [-gpus.filter((i) => held.includes(i)).length, evict.length, this.policy.mode === 'pack' ? left : -left] };
  }

  /**
   * The best score a plan on this node could have (nothing held for the
   * task here: its held node is tried first), from the node's counters
   * alone: a node that cannot beat the best plan so far is not planned.
   */
  private scoreBound(node: FleetNode, gpus: number, cpuMillis: number): number[] {
    const pack = this.policy.mode === 'pack';
    if (gpus === 0) {
      // Cores held for other tasks leave less (a better best fit): a bound must count them as gone.
      const left = node.cpuMillis - node.cpuClaimedMillis - cpuMillis;
      return [0, pack ? left - this.hostHeldForOthers(node, undefined).cpuMillis : -left];
    }
    const evict = node.freeGpus >= gpus ? 0 : 1;
    const least = Math.max(0, node.freeGpus - node.heldGpus - gpus);
    // Evicting, a plan may leave every free GPU it cannot use.
    const most = evict ? node.freeGpus : node.freeGpus - gpus;
    return [0, evict, pack ? least : -most];
  }

  /**
   * Whether the node runs this job: a program on an agent that runs
   * processes (or on a simulator, when no such agent is connected), a
   * duration to simulate on a simulator; for the job's model, if it names one.
   */
  private runsJob(node: FleetNode, demand: Demand): boolean {
    if (!servesModel(node, demand.model)) return false;
    if (node.abilities.jobs === 'process') return demand.program === true;
    if (node.abilities.jobs === 'simulated') return !demand.program || !this.anyProcessNode();
    return false;
  }

  private anyProcessNode(): boolean {
    return this.processNodes > 0;
  }

  /** Keeps the count of connected nodes that run processes as a node comes, goes or changes health. */
  private countProcessNode(node: FleetNode, delta: 1 | -1): void {
    if (node.abilities.jobs === 'process' && node.health !== 'lost') this.processNodes += delta;
  }

  /** Whether a node could take the demand at all, were it empty. */
  private couldEverTake(node: FleetNode, demand: Demand): boolean {
    if (demand.cpuMillis > node.cpuMillis || demand.memoryBytes > node.memoryBytes) return false;
    if (demand.kind === 'cpu') return true;
    const big = node.gpus.filter((g) => g.memoryTotalBytes * this.policy.maxGpuMemoryFraction >= demand.gpuMemoryBytes);
    return big.length >= demand.gpuCount;
  }

  /** Host cores and memory held on the node for tasks other than `holder`. */
  private hostHeldForOthers(node: FleetNode, holder: string | undefined): { cpuMillis: number; memoryBytes: number } {
    let cpuMillis = 0;
    let memoryBytes = 0;
    if (node.heldHost === 0) return { cpuMillis, memoryBytes };
    for (const [h, hold] of this.holds) {
      if (h === holder || hold.nodeId !== node.nodeId || (hold.cpuMillis === 0 && hold.memoryBytes === 0)) continue;
      // What its victims still hold is claimed already (and becomes the holder's when they stop): only the rest counts.
      let stoppingCpu = 0;
      let stoppingMemory = 0;
      for (const c of hold.stopping) {
        if (this.claims.get(c.key) !== c) continue;
        stoppingCpu += c.demand.cpuMillis;
        stoppingMemory += c.demand.memoryBytes;
      }
      cpuMillis += Math.max(0, hold.cpuMillis - stoppingCpu);
      memoryBytes += Math.max(0, hold.memoryBytes - stoppingMemory);
    }
    return { cpuMillis, memoryBytes };
  }

  /** GPUs to hold for a demand on this node, or undefined when it could never run there. */
  private gpusToHold(node: FleetNode, demand: Demand): number | undefined {
    if (demand.kind === 'gpus') return this.runsJob(node, demand) && this.couldEverTake(node, demand) ? demand.gpuCount : undefined;
    if (node.abilities.replicas !== 'managed') return undefined;
    return this.replicaShapeOn(node, demand)?.gpuCount;
  }

  /**
   * A free GPU's reading, when it came after the GPU was last freed, must
   * show it idle enough and with room for `bytes` more: something outside the
   * claims (another process, a leak) may be using it. An older reading says
   * nothing about it now.
   */
  private gpuReadingAllows(gpu: GpuState, bytes: number): boolean {
    if (gpu.observedAtMs <= gpu.freedAtMs) return true;
    return gpu.utilization <= this.policy.maxGpuUtilization && gpu.memoryUsedBytes + bytes <= gpu.memoryTotalBytes;
  }

  private fresh(node: FleetNode, ctx: PlanContext): boolean {
    return !ctx.live || ctx.nowMs - node.lastSeenMs <= this.policy.staleTelemetryMs;
  }

  // ---- claims ----------------------------------------------------------------

  private claimJob(plan: Plan, demand: Demand, owner: string | undefined, endMs: number | undefined): Claim {
    for (const r of plan.evict) this.evict(plan.node, r, 'its GPUs are needed for a job');
    return this.claimGpus(plan.node, plan.gpus, demand, owner, endMs);
  }

  private claimGpus(node: FleetNode, gpuIndices: readonly number[], demand: Demand, owner: string | undefined, endMs?: number): Claim {
    const gpus = gpuIndices.map((index) => node.gpus.find((g) => g.index === index)!);
    const claim: Claim = {
      key: this.nextKey++,
      owner,
      nodeId: node.nodeId,
      address: node.address,
      demand,
      gpuIndices: [...gpuIndices],
      replicaId: undefined,
      resources: { gpus: gpus.length, gpuMemoryBytes: gpus.reduce((s, g) => s + g.memoryTotalBytes, 0), cpus: demand.cpuMillis / 1000 },
      endMs,
    };
    for (const gpu of gpus) gpu.job = claim;
    node.freeGpus -= gpus.length;
    this.book(node, claim);
    return claim;
  }

  private claimSequence(node: FleetNode, replica: Replica, demand: Demand, owner: string | undefined, endMs?: number): Claim {
    if (replica.sequences === 0 && !replica.external) node.idleGpus -= replica.gpuIndices.length;
    replica.usedTokens += demand.tokens;
    replica.sequences += 1;
    replica.placedSinceReport += 1;
    replica.lastUsedMs = this.clock();
    const fraction = Number.isFinite(replica.capacityTokens) ? Math.min(1, demand.tokens / Math.max(1, replica.capacityTokens)) : 1 / replica.maxSequences;
    let gpuMemoryBytes = 0;
    for (const index of replica.gpuIndices) gpuMemoryBytes += node.gpus.find((g) => g.index === index)?.memoryTotalBytes ?? 0;
    const claim: Claim = {
      key: this.nextKey++,
      owner,
      nodeId: node.nodeId,
      address: node.address,
      demand,
      gpuIndices: [...replica.gpuIndices],
      replicaId: replica.id,
      resources: { gpus: replica.gpuIndices.length * fraction, gpuMemoryBytes: gpuMemoryBytes * fraction, cpus: demand.cpuMillis / 1000 },
      endMs,
    };
    this.book(node, claim);
    return claim;
  }

  private book(node: FleetNode, claim: Claim): void {
    this.claimsVersion += 1;
    node.cpuClaimedMillis += claim.demand.cpuMillis;
    node.memoryClaimedBytes += claim.demand.memoryBytes;
    node.claims += 1;
    this.claims.set(claim.key, claim);
    this.touch(node);
  }

  private startReplica(plan: Plan, model: string): Replica {
    const { node, shape } = plan;
    for (const r of plan.evict) this.evict(node, r, `its GPUs are needed for a replica of ${model}`);
    const replica = newReplica(
      {
        id: `${this.replicaPrefix}-${this.nextReplica++}`,
        nodeId: node.nodeId,
        model,
        gpuIndices: plan.gpus,
        external: false,
        state: 'loading',
        capacityTokens: shape?.capacityTokens ?? 0,
        maxSequences: node.maxSequencesPerReplica,
      },
      this.clock(),
    );
    this.attach(node, replica);
    this.commands.push({ kind: 'load', nodeId: node.nodeId, replica });
    return replica;
  }

  private attach(node: FleetNode, replica: Replica): void {
    node.replicas.set(replica.id, replica);
    let set = this.replicasByModel.get(replica.model);
    if (!set) this.replicasByModel.set(replica.model, (set = new Set()));
    set.add(replica);
    for (const index of replica.gpuIndices) {
      const gpu = node.gpus.find((g) => g.index === index);
      if (!gpu) continue;
      gpu.replica = replica;
      node.freeGpus -= 1;
      if (!replica.external && replica.sequences === 0) node.idleGpus += 1;
    }
    this.touch(node);
  }

  private evict(node: FleetNode, replica: Replica, reason: string): void {
    this.detach(node, replica);
    this.commands.push({ kind: 'evict', nodeId: node.nodeId, replicaId: replica.id, reason });
  }

  private detach(node: FleetNode, replica: Replica): void {
    const now = this.clock();
    node.replicas.delete(replica.id);
    this.replicasByModel.get(replica.model)?.delete(replica);
    for (const index of replica.gpuIndices) {
      const gpu = node.gpus.find((g) => g.index === index);
      if (gpu?.replica !== replica) continue;
      gpu.replica = undefined;
      gpu.freedAtMs = now;
      node.freeGpus += 1;
      if (!replica.external && replica.sequences === 0) node.idleGpus -= 1;
    }
    for (const [holder, hold] of this.holds) if (hold.replicaId === replica.id) this.holds.delete(holder);
    this.touch(node);
  }

  /**
   * Takes in the agent's list of its replicas: known ones get their state
   * and load; unknown ones are adopted when their GPUs are free (after a
   * decision restart) and evicted otherwise; managed ones the agent no
   * longer reports, past a grace period for the load command to arrive, are
   * gone. Returns whether any replica became usable or less loaded.
   */
  private observeReplicas(node: FleetNode, reports: readonly ReplicaReport[], now: number, complete: boolean): boolean {
    let opened = false;
    const seen = new Set<string>();
    for (const report of reports) {
      seen.add(report.id);
      let replica = node.replicas.get(report.id);
      if (!replica) {
        const gpus = report.gpuIndices.map((i) => node.gpus.find((g) => g.index === i));
        if (gpus.some((g) => g === undefined || !gpuIsFree(g))) {
          if (!report.external) this.commands.push({ kind: 'evict', nodeId: node.nodeId, replicaId: report.id, reason: 'its GPUs are claimed by other work' });
          continue;
        }
        replica = newReplica(
          {
            id: report.id,
            nodeId: node.nodeId,
            model: report.model,
            gpuIndices: report.gpuIndices,
            external: report.external,
            state: report.ready ? 'ready' : 'loading',
            capacityTokens: report.capacityTokens > 0 ? report.capacityTokens : this.adoptedCapacity(node, report),
            maxSequences: node.maxSequencesPerReplica,
          },
          now,
        );
        // Sequences placed in it before it was dropped (a report that went missing) still run there.
        for (const c of this.claims.values()) {
          if (c.nodeId !== node.nodeId || c.replicaId !== report.id) continue;
          replica.sequences += 1;
          replica.usedTokens += c.demand.tokens;
        }
        this.attach(node, replica);
        opened = true;
      }
      const wasFull = replica.reported !== undefined && (replica.reported.waiting >= this.limits.maxWaiting || replica.reported.kvCacheUsage >= 1);
      if (report.ready && replica.state === 'loading') {
        replica.state = 'ready';
        opened = true;
        const took = now - replica.requestedAtMs;
        const before = this.loadMs.get(replica.model);
        if (took >= 0) this.loadMs.set(replica.model, before === undefined ? took : before + LOAD_ALPHA * (took - before));
      }
      if (report.capacityTokens > 0 && report.capacityTokens !== replica.capacityTokens) replica.capacityTokens = report.capacityTokens;
      replica.reported = { running: report.running, waiting: report.waiting, kvCacheUsage: report.kvCacheUsage, atMs: now };
      replica.placedSinceReport = 0;
      if (wasFull && report.waiting < this.limits.maxWaiting && report.kvCacheUsage < 1) opened = true;
    }
    for (const replica of [...node.replicas.values()]) {
      if (seen.has(replica.id)) continue;
      // A load command may still be on its way; a registration lists everything the agent has.
      if (!complete && !replica.external && now - replica.requestedAtMs < this.policy.replicaReportGraceMs) continue;
      this.detach(node, replica);
      opened = true;
    }
    return opened;
  }

  /** Capacity of a replica an agent reports without saying: what placement would have sized it to. */
  private adoptedCapacity(node: FleetNode, report: ReplicaReport): number {
    const model = this.shapes(report.model);
    const gpus = node.gpus.filter((g) => report.gpuIndices.includes(g.index));
    if (!model || gpus.length === 0) return Infinity;
    const smallest = Math.min(...gpus.map((g) => g.memoryTotalBytes));
    return Math.max(0, replicaCapacityTokens(model, gpus.length, smallest, this.policy.maxGpuMemoryFraction));
  }

  private setHold(holder: string, hold: Hold): void {
    const node = this.nodesById.get(hold.nodeId);
    if (!node) return;
    this.holds.set(holder, hold);
    if (hold.cpuMillis > 0 || hold.memoryBytes > 0) node.heldHost += 1;
    for (const index of hold.gpus) {
      const gpu = node.gpus.find((g) => g.index === index);
      if (!gpu) continue;
      if (gpu.heldFor === undefined) node.heldGpus += 1;
      gpu.heldFor = holder;
    }
    if (hold.replicaId !== undefined) {
      const r = node.replicas.get(hold.replicaId);
      if (r) r.heldFor = holder;
    }
    this.touch(node);
  }

  private freedOf(nodeId: string, claims: readonly Claim[]): Freed {
    const freed: Freed = { jobs: new Set(), replicas: new Map(), cpuMillis: 0, memoryBytes: 0 };
    for (const c of claims) {
      if (c.nodeId !== nodeId || this.claims.get(c.key) !== c) continue;
      freed.cpuMillis += c.demand.cpuMillis;
      freed.memoryBytes += c.demand.memoryBytes;
      if (c.replicaId !== undefined) {
        const f = freed.replicas.get(c.replicaId) ?? { tokens: 0, sequences: 0 };
        f.tokens += c.demand.tokens;
        f.sequences += 1;
        freed.replicas.set(c.replicaId, f);
      } else if (c.gpuIndices.length > 0) freed.jobs.add(c.key);
    }
    return freed;
  }

  private largestGpuBytes(): number {
    let largest = 0;
    for (const node of this.nodesById.values()) for (const g of node.gpus) largest = Math.max(largest, g.memoryTotalBytes);
    return largest;
  }

  // ---- room --------------------------------------------------------------------

  /** Recomputes which kinds of room a node has after a change on it. */
  private touch(node: FleetNode): void {
    let room = 0;
    if (node.health === 'ready' && this.nodesById.get(node.nodeId) === node) {
      // Held room counts: the task it is held for is looked for by the same passes.
      for (const g of node.gpus) {
        if (gpuIsFree(g) || (g.replica !== undefined && !g.replica.external && g.replica.sequences === 0)) room |= ROOM_GPU;
      }
      for (const r of node.replicas.values()) {
        if (r.sequences < r.maxSequences && r.usedTokens < r.capacityTokens) room |= ROOM_REPLICA;
      }
      if (node.abilities.jobs !== 'none' && node.cpuClaimedMillis < node.cpuMillis) room |= ROOM_CPU;
    }
    this.setRoom(node, room);
  }

  private setRoom(node: FleetNode, room: number): void {
    for (const kind of [ROOM_GPU, ROOM_REPLICA, ROOM_CPU]) {
      const delta = (room & kind ? 1 : 0) - (node.room & kind ? 1 : 0);
      if (delta !== 0) this.roomCounts.set(kind, this.roomCounts.get(kind)! + delta);
    }
    node.room = room;
  }
}

/**
 * Ready replicas before loading ones, then the least loaded, with the
 * requests it has yet to start (its engine's queue as last reported, and
 * what was placed since) weighing extra: a burst spreads over the replicas
 * instead of queueing its prefills on the one that looked emptiest.
 */
function rankReplica(r: Replica, load: number, nowMs: number, limits: ReplicaLimits): number {
  const fresh = r.reported && nowMs - r.reported.atMs <= limits.staleTelemetryMs;
  const queued = (fresh ? r.reported!.waiting : 0) + r.placedSinceReport;
  // A cold start costs seconds: a loading replica comes only after every ready one with room.
  return (r.state === 'ready' ? 0 : 1e6) + load + (QUEUE_WEIGHT * queued) / Math.max(1, r.maxSequences);
}

/** How much a queued request weighs against a running one: its prefill is ahead of it, and delays every token behind it. */
const QUEUE_WEIGHT = 4;

/** Lexicographic comparison of plan scores (lower is better). */
function better(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x < y;
  }
  return false;
}
