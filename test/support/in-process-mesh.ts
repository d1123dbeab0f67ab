import { readFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { AutoglmClient, ensureMeshPki, type TlsFiles } from '@autoglm/client';
import { AgentConfigSchema, startAgent } from '@autoglm/executor-agent';
import { DecisionConfigSchema, startDecision, type RunningDecision, type StartDecisionOptions } from '@autoglm/decision';
import { MonitorConfigSchema, startMonitor, type RunningMonitor } from '@autoglm/monitor';
import { ParserConfigSchema, startParser } from '@autoglm/parser';
import type { RunningService } from '@autoglm/runtime';
import { tempDir } from './temp-dir';
import { until } from './until';

/**
 * decision, one sim agent and the parser as real gRPC servers on
 * 127.0.0.1:0 inside the test process: the fixture of the contract tests.
 */
export interface InProcessMesh {
  client: AutoglmClient;
  /** The first admin token (decision made it): acts for any tenant. */
  adminToken: string;
  adminTokenFile: string;
  /** With `tls`: the CA's certificate (PEM), and each identity's files. */
  ca: Buffer | undefined;
  tlsFiles: ReadonlyMap<string, TlsFiles>;
  decision: RunningDecision;
  agent: RunningService;
  parser: RunningService;
  /** The parser's OpenAI-compatible API: `https://127.0.0.1:<port>/v1` (http:// without `tls`); undefined when the test turned it off. */
  openaiUrl: string | undefined;
  /** With `monitor`: the monitor, its feedback loop included. */
  monitor: RunningMonitor | undefined;
  /** Fails unless every stream a test opened has closed (the agent's Connect is the one expected). */
  expectNoLeakedStreams(): Promise<void>;
  /** Stops decision and starts a new one on the same address and data (the agent reconnects on its own). */
  restartDecision(options?: StartDecisionOptions): Promise<RunningDecision>;
  stop(): Promise<void>;
}

export interface InProcessMeshOptions {
  timeScale?: number;
  /** Decision settings over the defaults (config keys, as in AUTOGLM_CONFIG). */
  decision?: Record<string, unknown>;
  /** Parser settings over the defaults. */
  parser?: Record<string, unknown>;
  /** Decision's test seams (the clock schedules fire by). */
  decisionOptions?: StartDecisionOptions;
  /**
   * Mutual TLS between the services and TLS on the public endpoint, as a
   * local mesh runs (certificates for decision, parser, monitor, admin and
   * the agent under `<data>/tls`; `tlsFiles` has them).
   */
  tls?: boolean;
  /** Also start the monitor (before the parser, which forwards to it), with these settings over the defaults. */
  monitor?: Record<string, unknown>;
  /** Settings of the agent over the fixture's. */
  agent?: Record<string, unknown>;
}

export async function startInProcessMesh(options: InProcessMeshOptions = {}): Promise<InProcessMesh> {
  const data = tempDir('contract');
  const quiet = pino({ level: 'silent' });
  // Authentication on, as by default: decision makes the first admin token, the fixture's client uses it.
  const tokenFile = path.join(data.dir, 'admin-token');
  const pki = options.tls
    ? await ensureMeshPki(path.join(data.dir, 'tls'), [
        { role: 'decision', name: 'decision' },
        { role: 'parser', name: 'parser' },
        { role: 'monitor', name: 'monitor' },
        { role: 'admin', name: 'admin' },
        { role: 'agent', name: 'contract-node' },
        { role: 'agent', name: 'other-node' },
      ])
    : undefined;
  const tlsOf = (name: string) => {
    const f = pki?.get(name);
    return f ? { tlsCa: f.ca, tlsCert: f.cert, tlsKey: f.key } : {};
  };
  const decisionConfig = (listen: string) => DecisionConfigSchema.parse({ listen, dataDir: data.dir, bootstrapTokenFile: tokenFile, ...tlsOf('decision'), ...options.decision });
  const decision = await startDecision(decisionConfig('127.0.0.1:0'), quiet, options.decisionOptions);
  const agent = await startAgent(
    AgentConfigSchema.parse({ listen: '127.0.0.1:0', decisionAddress: decision.grpcAddress, nodeId: 'contract-node', simGpus: 2, simTimeScale: options.timeScale ?? 20, ...tlsOf('contract-node'), ...options.agent }),
    quiet,
  );
  const monitor = options.monitor
    ? await startMonitor(
        MonitorConfigSchema.parse({ listen: '127.0.0.1:0', httpListen: '127.0.0.1:0', kedaListen: '127.0.0.1:0', decisionAddress: decision.grpcAddress, ...tlsOf('monitor'), ...options.monitor }),
        quiet,
      )
    : undefined;
  const parser = await startParser(
    ParserConfigSchema.parse({ listen: '127.0.0.1:0', openaiListen: '127.0.0.1:0', decisionAddress: decision.grpcAddress, ...(monitor ? { monitorAddress: monitor.grpcAddress } : {}), ...tlsOf('parser'), ...options.parser }),
    quiet,
  );
  const adminToken = readFileSync(tokenFile, 'utf8').trim();
  const ca = pki ? readFileSync(pki.get('parser')!.ca) : undefined;
  const client = new AutoglmClient({ address: parser.grpcAddress, tenant: 'contract', token: adminToken, ca });
  await until(async () => ((await client.listNodes()).nodes.length === 1 ? true : undefined), 10_000, 'the agent to register');
  // The agent's Connect, and the monitor's Subscribe when it runs, stay open.
  const ownStreams = monitor ? 2 : 1;
  const mesh: InProcessMesh = {
    client,
    adminToken,
    adminTokenFile: tokenFile,
    ca,
    tlsFiles: pki ?? new Map(),
    decision,
    agent,
    parser,
    openaiUrl: parser.httpAddress === undefined ? undefined : `${pki ? 'https' : 'http'}://${parser.httpAddress}/v1`,
    monitor,
    expectNoLeakedStreams: async () => {
      await until(
        async () => (parser.openStreams!() === 0 && agent.openStreams!() === 0 && mesh.decision.openStreams!() === ownStreams ? true : undefined),
        5_000,
        `streams to close (parser ${parser.openStreams!()}, agent ${agent.openStreams!()}, decision ${mesh.decision.openStreams!()} of which ${ownStreams} are the agent's Connect and the monitor's Subscribe)`,
      );
    },
    restartDecision: async (restartOptions) => {
      await mesh.decision.stop();
      mesh.decision = await startDecision(decisionConfig(mesh.decision.grpcAddress), quiet, restartOptions ?? options.decisionOptions);
      return mesh.decision;
    },
    stop: async () => {
      client.close();
      await parser.stop();
      await monitor?.stop();
      await agent.stop();
      await mesh.decision.stop();
      data.remove();
    },
  };
  return mesh;
}
