import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AutoglmClient, startMesh, type Mesh } from '@autoglm/client';
import { ReplicaState } from '@autoglm/proto';

/** The mesh's shape: what the direct baseline copies. */
export interface MeshShape {
  agents: number;
  gpusPerAgent: number;
  timeScale: number;
  model: string;
  /** Replicas kept warm (AUTOGLM_KEEP_WARM), one GPU each for a model that fits one. */
  replicas: number;
}

/** A replica as decision placed it: the direct baseline loads the same ones on the same GPUs. */
export interface PlacedReplica {
  nodeId: string;
  replicaId: string;
  gpuIndices: number[];
  capacityTokens: number;
}

/** A running mesh whose replicas are loaded and ready, and a client of its public endpoint. */
export interface WarmMesh {
  mesh: Mesh;
  client: AutoglmClient;
  replicas: PlacedReplica[];
  stop(): Promise<void>;
}

/**
 * Starts the mesh as `autoglm up` runs it (TLS, tokens, services as
 * processes) with `shape.replicas` replicas of the model kept warm, and waits
 * until all of them serve, so no stream waits for a cold start.
 */
export async function startWarmMesh(shape: MeshShape): Promise<WarmMesh> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'autoglm-bench-streaming-'));
  const mesh = await startMesh({
    dataDir,
    ports: 'ephemeral',
    agents: shape.agents,
    gpusPerAgent: shape.gpusPerAgent,
    timeScale: shape.timeScale,
    logLevel: 'warn',
    env: { AUTOGLM_KEEP_WARM: `${shape.model}=${shape.replicas}` },
  });
  const client = new AutoglmClient({ address: mesh.publicAddress, tenant: 'bench', token: mesh.adminToken, ca: mesh.ca, timeoutMs: 60_000 });
  const stop = async (): Promise<void> => {
    client.close();
    await mesh.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const replicas = await waitForReplicas(client, shape, 120_000);
    return { mesh, client, replicas, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The model's replicas that serve now, as the agents report them to decision. */
export async function readyReplicas(client: AutoglmClient, model: string): Promise<PlacedReplica[]> {
  const { nodes } = await client.listNodes();
  return nodes.flatMap((n) =>
    n.replicas
      .filter((r) => r.model === model && r.state === ReplicaState.READY)
      .map((r) => ({ nodeId: n.nodeId, replicaId: r.replicaId, gpuIndices: [...r.gpuIndices], capacityTokens: Number(r.capacityTokens) })),
  );
}

async function waitForReplicas(client: AutoglmClient, shape: MeshShape, timeoutMs: number): Promise<PlacedReplica[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ready = await readyReplicas(client, shape.model);
    if (ready.length >= shape.replicas) return ready;
    if (Date.now() > deadline) throw new Error(`only ${ready.length} of ${shape.replicas} ${shape.model} replicas ready after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces: utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/** USER_HZ: what /proc counts CPU time in; 100 on every Linux this runs on (getconf CLK_TCK). */
const CLOCK_TICKS_PER_SECOND = 100;

/** CPU seconds the whole machine has been busy so far (every core, anything but idle and I/O wait), from /proc/stat. */
export function machineBusySeconds(): number {
  const [, ...ticks] = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal: guest time is counted in user already.
  const busy = ticks.slice(0, 8).reduce((sum, t, i) => (i === 3 || i === 4 ? sum : sum + t), 0);
  return busy / CLOCK_TICKS_PER_SECOND;
}

/** CPU seconds so far of each group of the mesh's processes (parser, decision, agents, monitor), of this process, and of the machine. */
export function meshCpu(mesh: Mesh): Record<'parser' | 'decision' | 'agents' | 'monitor' | 'bench' | 'machine', number> {
  const of = (names: string[]): number => names.reduce((sum, name) => {
    const pid = mesh.processes[name]?.pid;
    return pid === undefined ? sum : sum + cpuSeconds(pid);
  }, 0);
  const usage = process.cpuUsage();
  return {
    parser: of(['parser']),
    decision: of(['decision']),
    agents: of(Object.keys(mesh.processes).filter((n) => n.startsWith('agent-'))),
    monitor: of(['monitor']),
    bench: (usage.user + usage.system) / 1e6,
    machine: machineBusySeconds(),
  };
}
