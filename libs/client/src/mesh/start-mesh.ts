import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { hostPort } from '@autoglm/runtime';
import { LogSink } from './log-sink';
import { MeshStartError } from './mesh-start-error';
import { ensureMeshPki } from './pki';
import { ADMIN_TOKEN_FILE, defaultServiceEntry, MAX_AGENTS, type MeshOptions, type MeshServiceName, portPlan } from './mesh-options';
import { type ListenAddresses, type RestartBackoff, SupervisedProcess } from './supervised-process';

/** One process of a running mesh. */
export interface MeshProcess {
  /** Name in the mesh: "decision", "monitor", "parser", "agent-1", ... */
  readonly name: string;
  /** pid of the live incarnation; undefined while it is being restarted. */
  readonly pid: number | undefined;
  /** Its gRPC address; unchanged across restarts. */
  readonly address: string;
  /** How often it has been restarted. */
  readonly restarts: number;
  /**
   * Sends a signal to the live incarnation (chaos tests); false when none is
   * alive. With `restart: false` it stays dead (an agent that does not come back).
   */
  kill(signal?: NodeJS.Signals, options?: { restart?: boolean }): boolean;
  /** Resolves with the new pid once an incarnation other than `previousPid` is ready. */
  waitForRestart(previousPid: number, timeoutMs?: number): Promise<number>;
}

/** A running local mesh. */
export interface Mesh {
  /** The public endpoint (the parser), for clients. */
  readonly publicAddress: string;
  /**
   * The parser's OpenAI-compatible API, as OpenAI clients take it
   * (`https://127.0.0.1:8000/v1`; http:// without TLS). Its API key is an
   * Open-AutoGLM token. Undefined when `openaiListen` is off.
   */
  readonly openaiUrl: string | undefined;
  readonly decisionAddress: string;
  readonly monitorAddress: string;
  /** Prometheus metrics of the monitor. */
  readonly metricsUrl: string;
  /** The monitor's live dashboard. */
  readonly dashboardUrl: string;
  /** Absolute data directory; logs are under `logs/`. */
  readonly dataDir: string;
  /** The file decision made the first admin token in (mode 0600): the CLI on this machine reads it. */
  readonly adminTokenFile: string;
  /** That token ('' when decision made none). */
  readonly adminToken: string;
  /** The mesh CA's certificate file: clients of the public endpoint trust it (undefined without TLS). */
  readonly caFile: string | undefined;
  /** Its PEM. */
  readonly ca: Buffer | undefined;
  /** Every process by name. */
  readonly processes: Readonly<Record<string, MeshProcess>>;
  /** Stops every process in order (parser, then agents and monitor, then decision). */
  stop(): Promise<void>;
}

/** The supervisor's own log: `<dataDir>/logs/mesh.log` and onLog("mesh", line). */
const SUPERVISOR = 'mesh';

/**
 * Starts the local mesh as child processes: decision first, then monitor and
 * the agents (they dial decision), then the parser. Resolves once every
 * process has said it is ready; on any failure stops what was started and
 * rejects with the failing process's log tail.
 */
export async function startMesh(options: MeshOptions = {}): Promise<Mesh> {
  const dataDir = path.resolve(options.dataDir ?? './.autoglm');
  const logDir = path.join(dataDir, 'logs');
  // Prompts, outputs and the admin token live here: the owner's alone.
  mkdirSync(logDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);
  const adminTokenFile = path.join(dataDir, ADMIN_TOKEN_FILE);
  const agents = options.agents ?? 4;
  if (!Number.isInteger(agents) || agents < 0 || agents > MAX_AGENTS) throw new RangeError(`agents: ${agents} is not a whole number from 0 to ${MAX_AGENTS}`);
  if (options.openaiListen !== undefined && options.openaiListen !== 'off' && !hostPort.safeParse(options.openaiListen).success) {
    throw new RangeError(`openaiListen: "${options.openaiListen}" is not host:port (for example 127.0.0.1:8001) or off`);
  }
  const backoff: RestartBackoff = {
    initialMs: options.restartBackoff?.initialMs ?? 200,
    maxMs: options.restartBackoff?.maxMs ?? 10000,
    resetAfterMs: options.restartBackoff?.resetAfterMs ?? 30000,
  };
  const sinks: LogSink[] = [];
  const supervisorSink = new LogSink(path.join(logDir, `${SUPERVISOR}.log`), SUPERVISOR, options.onLog);
  sinks.push(supervisorSink);
  const supervisorLog = (line: string): void => supervisorSink.write(`${new Date().toISOString()} ${line}`);

  const common: NodeJS.ProcessEnv = {
    ...process.env,
    AUTOGLM_LOG_LEVEL: options.logLevel ?? process.env.AUTOGLM_LOG_LEVEL ?? 'info',
    ...options.env,
  };

  // Every service proves who it is with a certificate of the mesh's own CA (made on first start).
  const agentNames = Array.from({ length: agents }, (_, i) => `agent-${i + 1}`);
  const allow = options.commandAllow ?? [];
  const commandAgents = options.commandAgents ?? (allow.length > 0 ? 1 : 0);
  const commandNames = Array.from({ length: commandAgents }, (_, i) => `command-${i + 1}`);
  const useTls = options.tls !== false;
  const pki = useTls
    ? await ensureMeshPki(path.join(dataDir, 'tls'), [
        { role: 'decision', name: 'decision' },
        { role: 'parser', name: 'parser' },
        { role: 'monitor', name: 'monitor' },
        { role: 'admin', name: 'admin' },
        ...[...agentNames, ...commandNames].map((name) => ({ role: 'agent', name })),
      ], options.host && options.host !== '127.0.0.1' ? [options.host] : [])
    : undefined;
  const tlsEnv = (name: string): NodeJS.ProcessEnv => {
    const files = pki?.get(name);
    return files ? { AUTOGLM_TLS_CA: files.ca, AUTOGLM_TLS_CERT: files.cert, AUTOGLM_TLS_KEY: files.key } : {};
  };
  const host = options.host ?? '127.0.0.1';
  const plan = portPlan(options.ports ?? 'default', host);
  const entryOf = options.entry ?? defaultServiceEntry;
  const missing = (['decision', 'monitor', 'executor-agent', 'parser'] as const)
    .map((service) => entryOf(service))
    .filter((entry) => !existsSync(entry));
  if (missing.length > 0) {
    await Promise.all(sinks.map((sink) => sink.close()));
    throw new MeshStartError(`service entry not found: ${missing.join(', ')} (build the services first: npm run build)`);
  }

  const processes = new Map<string, SupervisedProcess>();
  const define = (
    name: string,
    service: MeshServiceName,
    listen: ListenAddresses,
    env: (listen: ListenAddresses) => NodeJS.ProcessEnv,
  ): SupervisedProcess => {
    const log = new LogSink(path.join(logDir, `${name}.log`), name, options.onLog);
    sinks.push(log);
    const child = new SupervisedProcess({
      name,
      entry: entryOf(service),
      env: (bound) => ({ ...common, ...env(bound) }),
      listen,
      log,
      supervisorLog,
      restart: options.restart ?? true,
      readyTimeoutMs: options.readyTimeoutMs ?? 30000,
      stopTimeoutMs: options.stopTimeoutMs ?? 10000,
      backoff,
    });
    processes.set(name, child);
    return child;
  };

  // Start order and stop order, by tier: decision, then monitor and agents, then the parser.
  const tiers: SupervisedProcess[][] = [];
  const stopAll = async (): Promise<void> => {
    for (const tier of [...tiers].reverse()) await Promise.all(tier.map((p) => p.stop()));
  };
  // A supervisor that exits without stop() (an uncaught error, process.exit) takes the mesh with it.
  const killOnExit = (): void => {
    for (const child of processes.values()) child.killNow();
  };
  process.once('exit', killOnExit);

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      supervisorLog('stopping the mesh');
      await stopAll();
      process.removeListener('exit', killOnExit);
      supervisorLog('mesh stopped');
      await Promise.all(sinks.map((sink) => sink.close()));
    })();
    return stopped;
  };

  const startTier = async (tier: SupervisedProcess[]): Promise<void> => {
    tiers.push(tier);
    const results = await Promise.allSettled(tier.map((p) => p.start()));
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure !== undefined) throw failure.reason;
  };

  try {
    const decision = define('decision', 'decision', { grpc: plan.decision }, (listen) => ({
      AUTOGLM_DECISION_LISTEN: listen.grpc,
      AUTOGLM_DATA_DIR: path.join(dataDir, 'decision'),
      AUTOGLM_BOOTSTRAP_TOKEN_FILE: adminTokenFile,
      ...tlsEnv('decision'),
      ...(options.databaseUrl === undefined ? {} : { AUTOGLM_DATABASE_URL: options.databaseUrl }),
    }));
    await startTier([decision]);

    const decisionAddress = decision.address;
    const monitor = define('monitor', 'monitor', { grpc: plan.monitor, http: plan.monitorHttp }, (listen) => ({
      AUTOGLM_MONITOR_LISTEN: listen.grpc,
      AUTOGLM_MONITOR_HTTP_LISTEN: listen.http,
      AUTOGLM_KEDA_LISTEN: plan.keda,
      AUTOGLM_DECISION_ADDRESS: decisionAddress,
      ...tlsEnv('monitor'),
    }));
    const agentProcesses = Array.from({ length: agents }, (_, index) => {
      const name = `agent-${index + 1}`;
      return define(name, 'executor-agent', { grpc: plan.agent(index) }, (listen) => ({
        AUTOGLM_AGENT_LISTEN: listen.grpc,
        AUTOGLM_DECISION_ADDRESS: decisionAddress,
        AUTOGLM_AGENT_NODE_ID: name,
        AUTOGLM_AGENT_BACKEND: 'sim',
        AUTOGLM_SIM_GPUS: String(options.gpusPerAgent ?? 8),
        AUTOGLM_SIM_GPU_MEMORY_GB: String(options.gpuMemoryGb ?? 80),
        AUTOGLM_SIM_TIME_SCALE: String(options.timeScale ?? 1),
        ...tlsEnv(name),
      }));
    });
    const commandProcesses = Array.from({ length: commandAgents }, (_, index) => {
      const name = `command-${index + 1}`;
      return define(name, 'executor-agent', { grpc: plan.commandAgent(index) }, (listen) => ({
        AUTOGLM_AGENT_LISTEN: listen.grpc,
        AUTOGLM_DECISION_ADDRESS: decisionAddress,
        AUTOGLM_AGENT_NODE_ID: name,
        AUTOGLM_AGENT_BACKEND: 'command',
        AUTOGLM_COMMAND_ALLOW: allow.join(','),
        ...tlsEnv(name),
      }));
    });
    await startTier([monitor, ...agentProcesses, ...commandProcesses]);

    const openaiListen = options.openaiListen ?? plan.openai;
    const openaiOn = openaiListen !== 'off';
    const parser = define('parser', 'parser', { grpc: plan.parser, ...(openaiOn ? { http: openaiListen } : {}) }, (listen) => ({
      AUTOGLM_PARSER_LISTEN: listen.grpc,
      AUTOGLM_OPENAI_LISTEN: listen.http ?? 'off',
      AUTOGLM_DECISION_ADDRESS: decisionAddress,
      AUTOGLM_MONITOR_ADDRESS: monitor.address,
      ...tlsEnv('parser'),
    }));
    await startTier([parser]);

    const monitorHttp = monitor.httpAddress ?? plan.monitorHttp;
    const openaiUrl = openaiOn ? `${useTls ? 'https' : 'http'}://${parser.httpAddress ?? openaiListen}/v1` : undefined;
    supervisorLog(`mesh ready: public endpoint ${parser.address}, OpenAI-compatible API ${openaiUrl ?? 'off'}`);
    return {
      publicAddress: parser.address,
      openaiUrl,
      decisionAddress,
      monitorAddress: monitor.address,
      metricsUrl: `http://${monitorHttp}/metrics`,
      dashboardUrl: `http://${monitorHttp}/`,
      dataDir,
      adminTokenFile,
      adminToken: existsSync(adminTokenFile) ? readFileSync(adminTokenFile, 'utf8').trim() : '',
      caFile: pki?.get('parser')?.ca,
      ca: pki ? readFileSync(pki.get('parser')!.ca) : undefined,
      processes: Object.fromEntries([...processes].map(([name, child]) => [name, meshProcess(child)])),
      stop,
    };
  } catch (error) {
    supervisorLog(`mesh failed to start: ${error instanceof Error ? error.message : String(error)}`);
    await stop();
    throw error;
  }
}

function meshProcess(child: SupervisedProcess): MeshProcess {
  return {
    name: child.name,
    get pid() {
      return child.pid;
    },
    get address() {
      return child.address;
    },
    get restarts() {
      return child.restarts;
    },
    kill: (signal, options) => child.kill(signal, options),
    waitForRestart: (previousPid, timeoutMs) => child.waitForRestart(previousPid, timeoutMs),
  };
}
