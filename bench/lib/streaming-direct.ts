import { countChatTokens, DEFAULT_MODEL_CATALOG, kvCacheBytesPerToken, SimulatedHost, type Scheduler, type SimModel } from '@autoglm/core';
import type { MeshShape, PlacedReplica } from './streaming-mesh';
import type { StreamRequest } from './streaming-request';
import type { StreamTiming } from './streaming-measures';

/** What the mesh's agents run on: the event loop's clock and timers (the sim backend's realTimeScheduler). */
const realTime: Scheduler = {
  now: () => performance.now(),
  setTimer: (ms, fn) => {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

/** 80 GiB: startMesh's default GPU memory, which the agents are given. */
const GPU_MEMORY_BYTES = 80 * 1024 ** 3;

/**
 * The baseline without the mesh: in this process, the simulated hosts the
 * agents run (same GPU count and memory, same time scale, the built-in
 * catalog's model costs), with the replicas decision placed loaded on the
 * same GPUs with the same KV-cache capacity. Streams go to the replicas in
 * turn, as decision's least-loaded choice spreads streams that arrive together.
 */
export class DirectFleet {
  private readonly hosts = new Map<string, SimulatedHost>();
  private readonly replicaIds: string[] = [];
  private readonly hostOf = new Map<string, SimulatedHost>();
  private readonly promptTokens: number;
  private next = 0;
  private sequence = 0;

  private constructor(private readonly request: StreamRequest) {
    const model = DEFAULT_MODEL_CATALOG.get(request.model);
    if (model === undefined) throw new Error(`model ${request.model} is not in the built-in catalog`);
    // What the parser counts for the same messages (parseInferenceInput), so prefill costs the same.
    this.promptTokens = countChatTokens(request.messages, model.tokenizer);
  }

  /** Loads the mesh's replicas on hosts shaped like its agents and resolves once all serve. */
  static async start(shape: MeshShape, replicas: readonly PlacedReplica[], request: StreamRequest): Promise<DirectFleet> {
    const fleet = new DirectFleet(request);
    const model = DEFAULT_MODEL_CATALOG.get(request.model)!;
    const cost: SimModel = { name: model.name, weightBytes: model.weightBytes, kvBytesPerToken: kvCacheBytesPerToken(model) };
    const loaded: Array<Promise<void>> = [];
    for (const r of replicas) {
      let host = fleet.hosts.get(r.nodeId);
      if (host === undefined) {
        host = new SimulatedHost({ scheduler: realTime, gpuCount: shape.gpusPerAgent, gpuMemoryBytes: GPU_MEMORY_BYTES, timeScale: shape.timeScale });
        fleet.hosts.set(r.nodeId, host);
      }
      const on = host;
      loaded.push(new Promise<void>((resolve) => on.loadReplica({ id: r.replicaId, model: cost, gpuIndices: r.gpuIndices, capacityTokens: r.capacityTokens }, resolve)));
      fleet.replicaIds.push(r.replicaId);
      fleet.hostOf.set(r.replicaId, on);
    }
    await Promise.all(loaded);
    return fleet;
  }

  /** One stream: the sequence submitted to the next replica, timed from submission to each token. */
  stream(): Promise<StreamTiming> {
    const replicaId = this.replicaIds[this.next++ % this.replicaIds.length]!;
    const timing: StreamTiming = { startedAt: performance.now(), tokenAt: [] };
    return new Promise<StreamTiming>((resolve) => {
      this.hostOf.get(replicaId)!.submitToReplica(replicaId, {
        id: `direct-${this.sequence++}`,
        promptTokens: this.promptTokens,
        maxTokens: this.request.maxTokens,
        onTokens: (_text, count) => {
          const at = performance.now();
          for (let i = 0; i < count; i++) timing.tokenAt.push(at);
        },
        onDone: (outcome) => {
          if (outcome.finishReason === 'cancelled') timing.error = 'cancelled';
          resolve(timing);
        },
      });
    });
  }

  close(): void {
    for (const host of this.hosts.values()) host.shutdown();
  }
}
