import { DEFAULT_PLACEMENT_POLICY, Fleet, ManualScheduler, SimulatedHost, type Claim, type ModelShape, type SimModel } from '@autoglm/core';
import { percentile } from './report';

/**
 * Routing inference requests to the replicas of one model: the same
 * arrivals, on the same simulated fleet (the project's GPU simulator:
 * continuous batching, KV cache reserved for prompt plus max_tokens, step
 * times from the public vLLM fit), under three routers.
 *
 * - round-robin: each request to the next replica in turn, whatever its load
 *   (a Kubernetes Service, a plain load balancer).
 * - least-loaded: each request to the replica with the fewest requests in
 *   its engine (running plus waiting), read live at no cost: a generous
 *   "least outstanding requests" balancer.
 * - claims: the project's placement (libs/core Fleet, as decision runs it):
 *   a request is placed in the least loaded replica whose KV cache has room
 *   for its prompt plus max_tokens, judged by decision's own claims and the
 *   engines' reports (pushed every 100 ms, as agents do); with no room
 *   anywhere it waits in decision's queue (oldest first) until a sequence ends.
 *
 * A request's output length is not known to any router: each asks for the
 * trace's cap (max_tokens 1000) and the simulated model stops after the
 * trace's output tokens. A client gives up (the request fails) when no
 * token has arrived after `timeoutMs`.
 */
export type Router = 'round-robin' | 'least-loaded' | 'claims';

export const ROUTERS: readonly Router[] = ['round-robin', 'least-loaded', 'claims'];

/** One kind of GPU in a fleet. */
export interface GpuClass {
  name: string;
  count: number;
  memoryBytes: number;
  /** Decode and prefill speed relative to an H100 (the latency model's GPU): memory bandwidth ratio. */
  speed: number;
}

export interface RoutingRequest {
  arrivalMs: number;
  promptTokens: number;
  outputTokens: number;
}

export interface RoutingOptions {
  model: ModelShape;
  fleet: readonly GpuClass[];
  maxTokens: number;
  timeoutMs: number;
  /** How often replicas report their engine's load to placement. @default 100 */
  telemetryMs?: number;
}

export interface RoutingResult {
  router: Router;
  requests: number;
  failed: number;
  ttftP50Ms: number;
  ttftP99Ms: number;
  meanResponseMs: number;
  outputTokensPerSecond: number;
  gpuUtilization: number;
  makespanMs: number;
}

interface Replica {
  id: string;
  node: string;
  host: SimulatedHost;
}

/** Runs the requests through one router on a fresh fleet and measures what the clients saw. */
export function simulateRouting(requests: readonly RoutingRequest[], router: Router, o: RoutingOptions): RoutingResult {
  const scheduler = new ManualScheduler(0);
  const simModel: SimModel = { name: o.model.name, weightBytes: o.model.weightBytes, kvBytesPerToken: o.model.kvBytesPerToken };
  const gpus = o.fleet.reduce((n, c) => n + c.count, 0);
  const fleet = new Fleet(
    // One replica per GPU, started by placement itself (keep-warm); no scale-out (every GPU has one).
    { ...DEFAULT_PLACEMENT_POLICY, staleTelemetryMs: 10 * (o.telemetryMs ?? 100), scaleOutLoad: 1, keepWarm: { [o.model.name]: gpus } },
    () => scheduler.now(),
    (m) => (m === o.model.name ? o.model : undefined),
  );
  // Each GPU on a host of its own; placement sizes the replicas, the simulator loads them.
  const hosts = new Map<string, SimulatedHost>();
  for (const [c, gpu] of o.fleet.entries()) {
    for (let i = 0; i < gpu.count; i++) {
      const node = `${gpu.name}-${c}-${i}`;
      hosts.set(node, new SimulatedHost({ scheduler, gpuCount: 1, gpuMemoryBytes: gpu.memoryBytes, timeScale: gpu.speed, loadBytesPerSecond: Infinity }));
      fleet.upsert({ nodeId: node, address: '', models: [o.model.name], backends: ['sim'], gpus: [{ index: 0, memoryTotalBytes: gpu.memoryBytes }], cpuMillis: 0, memoryBytes: 0 });
    }
  }
  fleet.ensureWarm();
  const replicas: Replica[] = [];
  for (const command of fleet.takeCommands()) {
    if (command.kind !== 'load') continue;
    const host = hosts.get(command.nodeId)!;
    host.loadReplica({ id: command.replica.id, model: simModel, gpuIndices: [0], capacityTokens: command.replica.capacityTokens });
    replicas.push({ id: command.replica.id, node: command.nodeId, host });
  }
  if (replicas.length !== gpus) throw new Error(`placement started ${replicas.length} replicas for ${gpus} GPUs`);
  scheduler.advance(1);
  const report = () => {
    for (const r of replicas) {
      fleet.observe(
        r.node,
        [],
        r.host.replicaStatus().map((s) => ({ id: s.id, model: s.model, gpuIndices: s.gpuIndices, ready: s.ready, external: false, capacityTokens: s.capacityTokens, running: s.running, waiting: s.waiting, kvCacheUsage: s.kvCacheUsage })),
      );
    }
  };
  report();
  const byId = new Map(replicas.map((r) => [r.id, r]));

  const start = scheduler.now();
  const ttft: number[] = [];
  const response: number[] = [];
  let failed = 0;
  let outputTokens = 0;
  let lastDoneAt = start;
  let rr = 0;
  const waiting: Array<{ req: RoutingRequest; arrivedAt: number; index: number; gaveUp: boolean }> = [];

  const run = (replica: Replica, req: RoutingRequest, arrivedAt: number, index: number, onDone: () => void) => {
    let first = false;
    const giveUp = scheduler.setTimer(arrivedAt + o.timeoutMs - scheduler.now(), () => {
      if (first) return;
      failed += 1;
      replica.host.cancel(`r${index}`);
    });
    try {
      replica.host.submitToReplica(replica.id, {
        id: `r${index}`,
        promptTokens: req.promptTokens,
        maxTokens: o.maxTokens,
        stopAfterTokens: req.outputTokens,
        onFirstToken: () => {
          first = true;
          giveUp();
          ttft.push(scheduler.now() - arrivedAt);
        },
        onTokens: () => undefined,
        onDone: (out) => {
          giveUp();
          onDone();
          if (out.finishReason === 'cancelled') return;
          outputTokens += out.completionTokens;
          response.push(scheduler.now() - arrivedAt);
          lastDoneAt = Math.max(lastDoneAt, scheduler.now());
        },
      });
    } catch {
      // The engine cannot hold it at all (prompt plus max_tokens over its whole cache).
      giveUp();
      failed += 1;
      onDone();
    }
  };

  const tokensOf = (req: RoutingRequest) => req.promptTokens + o.maxTokens;
  /** Places waiting requests (oldest first, none blocking the others) while any fits. */
  const drain = () => {
    for (let i = 0; i < waiting.length; ) {
      const w = waiting[i]!;
      if (w.gaveUp) {
        waiting.splice(i, 1);
        continue;
      }
      const placed = fleet.place({ kind: 'sequence', model: o.model.name, gpuCount: 1, gpuMemoryBytes: 0, tokens: tokensOf(w.req), cpuMillis: 0, memoryBytes: 0 });
      if (typeof placed === 'string') {
        i += 1;
        continue;
      }
      waiting.splice(i, 1);
      const claim: Claim = placed;
      run(byId.get(claim.replicaId!)!, w.req, w.arrivedAt, w.index, () => {
        fleet.release(claim);
        scheduler.setTimer(0, drain);
      });
    }
  };

  const arrive = (req: RoutingRequest, index: number) => {
    const arrivedAt = scheduler.now();
    if (router === 'round-robin') {
      run(replicas[rr++ % replicas.length]!, req, arrivedAt, index, () => undefined);
      return;
    }
    if (router === 'least-loaded') {
      let best = replicas[0]!;
      let bestLoad = Infinity;
      for (const r of replicas) {
        const s = r.host.gpus[0]!.load();
        const load = s.numRequestsRunning + s.numRequestsWaiting;
        if (load < bestLoad) {
          best = r;
          bestLoad = load;
        }
      }
      run(best, req, arrivedAt, index, () => undefined);
      return;
    }
    const w = { req, arrivedAt, index, gaveUp: false };
    waiting.push(w);
    // Waiting in decision's queue counts against the client's patience too.
    scheduler.setTimer(o.timeoutMs, () => {
      const i = waiting.indexOf(w);
      if (i < 0) return;
      waiting.splice(i, 1);
      failed += 1;
    });
    drain();
  };

  for (const [index, req] of requests.entries()) scheduler.setTimer(start + req.arrivalMs - scheduler.now(), () => arrive(req, index));
  if (router === 'claims') {
    const every = o.telemetryMs ?? 100;
    const tick = () => {
      report();
      drain();
      if (ttft.length + failed < requests.length || waiting.length > 0) scheduler.setTimer(every, tick);
    };
    scheduler.setTimer(every, tick);
  }
  scheduler.runUntilIdle(1e9);

  const makespan = Math.max(1, lastDoneAt - start);
  const busy = replicas.reduce((s, r) => s + r.host.gpus[0]!.busyMs(), 0);
  ttft.sort((a, b) => a - b);
  return {
    router,
    requests: requests.length,
    failed,
    ttftP50Ms: percentile(ttft, 50),
    ttftP99Ms: percentile(ttft, 99),
    meanResponseMs: response.reduce((s, x) => s + x, 0) / Math.max(1, response.length),
    outputTokensPerSecond: (outputTokens * 1000) / makespan,
    gpuUtilization: busy / (makespan * replicas.length),
    makespanMs: makespan,
  };
}
