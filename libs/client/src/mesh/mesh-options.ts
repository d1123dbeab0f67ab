import path from 'node:path';

/** The services of the mesh, by their directory under `services/`. */
export type MeshServiceName = 'decision' | 'monitor' | 'executor-agent' | 'parser';

/** Options of startMesh. */
export interface MeshOptions {
  /**
   * Directory for durable state and logs (`<dataDir>/logs/<name>.log`).
   * @default './.autoglm'
   */
  /**
   * Mutual TLS between the services and TLS on the public endpoint, with a
   * CA and certificates made under `<dataDir>/tls` on first start.
   * @default true
   */
  tls?: boolean;
  dataDir?: string;
  /**
   * Number of executor agents (simulated GPU hosts).
   * @default 4
   */
  agents?: number;
  /**
   * Simulated GPUs per agent.
   * @default 8
   */
  gpusPerAgent?: number;
  /**
   * Memory of each simulated GPU, in GB.
   * @default 80
   */
  gpuMemoryGb?: number;
  /**
   * Agents with the `command` backend on this machine ("command-1", ...):
   * they run real, allow-listed processes on its cores and memory, and on its
   * GPUs when nvidia-smi finds any. None unless `commandAllow` names programs.
   * @default 1 when commandAllow is given, else 0
   */
  commandAgents?: number;
  /** Programs (argv[0], exact) the command agents may run. */
  commandAllow?: string[];
  /**
   * Simulator speed-up: 10 runs simulated work ten times faster than real time.
   * @default 1
   */
  timeScale?: number;
  /**
   * `'default'`: the documented local ports (parser 50051 and its
   * OpenAI-compatible API 8000, decision 50052, monitor 50053 and HTTP 8080,
   * agents 50060 and up, command agents 50316 and up). `'ephemeral'`: port 0
   * everywhere, each service picks a free port (tests).
   * @default 'default'
   */
  ports?: 'default' | 'ephemeral';
  /**
   * Where the parser's OpenAI-compatible API listens (`host:port`), over the
   * port plan; `'off'` serves none. 8000 is also vLLM's default port, so a
   * machine running vLLM next to the mesh moves one of them.
   * @default the port plan's (8000, or port 0 with ephemeral ports)
   */
  openaiListen?: string;
  /**
   * Host every service listens on.
   * @default '127.0.0.1'
   */
  host?: string;
  /** Passed to decision as AUTOGLM_DATABASE_URL (external PostgreSQL instead of the embedded store). */
  databaseUrl?: string;
  /** Extra environment for every service (OTEL_* and the like), over the supervisor's own. */
  env?: Record<string, string | undefined>;
  /**
   * AUTOGLM_LOG_LEVEL of every service.
   * @default process.env.AUTOGLM_LOG_LEVEL ?? 'info'
   */
  logLevel?: string;
  /** Every output line of every process, and the supervisor's own lines under the name "mesh". */
  onLog?: (service: string, line: string) => void;
  /**
   * Restart a process that exits unexpectedly.
   * @default true
   */
  restart?: boolean;
  /**
   * Script of each service.
   * @default the built service in this repository: services/<service>/dist/main.js
   */
  entry?: (service: MeshServiceName) => string;
  /**
   * How long a process has to say it is ready.
   * @default 30000
   */
  readyTimeoutMs?: number;
  /**
   * How long a process has to exit after SIGTERM before it gets SIGKILL.
   * @default 10000
   */
  stopTimeoutMs?: number;
  /**
   * Restart delays: doubling from initialMs to maxMs, back to initialMs after a
   * process stayed up resetAfterMs.
   * @default { initialMs: 200, maxMs: 10000, resetAfterMs: 30000 }
   */
  restartBackoff?: { initialMs?: number; maxMs?: number; resetAfterMs?: number };
}

/** The built entry point of a service in this repository. */
export function defaultServiceEntry(service: MeshServiceName): string {
  // Same depth from src/mesh (ts-jest, tsx) and dist/mesh (built): libs/client/<src|dist>/mesh.
  const repoRoot = path.resolve(__dirname, '..', '..', '..', '..');
  return path.join(repoRoot, 'services', service, 'dist', 'main.js');
}

/** The most simulated agents a mesh runs. */
export const MAX_AGENTS = 256;

/** Listen addresses of every process, before any is bound. */
export interface PortPlan {
  decision: string;
  monitor: string;
  monitorHttp: string;
  /** The monitor's KEDA external scaler. */
  keda: string;
  parser: string;
  /** The parser's OpenAI-compatible HTTP API. */
  openai: string;
  agent: (index: number) => string;
  commandAgent: (index: number) => string;
}

/** The addresses to ask for: the documented defaults, or port 0 everywhere. */
export function portPlan(ports: 'default' | 'ephemeral', host: string): PortPlan {
  const at = (port: number): string => `${host}:${ports === 'ephemeral' ? 0 : port}`;
  return {
    parser: at(50051),
    openai: at(8000),
    decision: at(50052),
    monitor: at(50053),
    monitorHttp: at(8080),
    keda: at(50054),
    agent: (index) => at(50060 + index),
    // After the most simulated agents `up` starts (256).
    commandAgent: (index) => at(50060 + MAX_AGENTS + index),
  };
}

/** The first admin token's file in the mesh's data directory (decision makes it, mode 0600; the CLI reads it). */
export const ADMIN_TOKEN_FILE = 'admin-token';
