import { DecisionServiceClient, ExecutorServiceService, type GpuInfo, type GpuLinkRow, type GpuStatus } from '@autoglm/proto';
import { kvCacheBytesPerToken, loadModelCatalog } from '@autoglm/core';
import { withRoles, loadTls, createClient, createLogger, GrpcServer, type Logger, type RunningService } from '@autoglm/runtime';
import { Agent } from './agent';
import { CommandBackend, OpenAIBackend, SimBackend, type Backend, type HostResources } from './backends';
import { resolveJobUser } from './backends/containment';
import type { AgentConfig } from './config';
import { executorHandlers } from './execute-service';
import { readNvidiaSmi, readNvidiaSmiTopology } from './telemetry';

const GiB = 1024 ** 3;

function makeBackend(config: AgentConfig): Backend {
  const host: Partial<HostResources> = {
    ...(config.cpuCores === undefined ? {} : { cpuMillis: Math.round(config.cpuCores * 1000) }),
    ...(config.memoryGb === undefined ? {} : { memoryBytes: Math.round(config.memoryGb * GiB) }),
  };
  switch (config.backend) {
    case 'sim': {
      const catalog = loadModelCatalog(config.modelCatalog);
      return new SimBackend({
        gpuCount: config.simGpus,
        gpuMemoryBytes: Math.round(config.simGpuMemoryGb * GiB),
        timeScale: config.simTimeScale,
        loadBytesPerSecond: config.simLoadGbps * 1e9,
        failFraction: config.simFailFraction,
        ...(host.cpuMillis === undefined ? {} : { cpuCores: host.cpuMillis / 1000 }),
        ...(host.memoryBytes === undefined ? {} : { memoryBytes: host.memoryBytes }),
        models: catalog.names(),
        catalog: (name) => {
          const model = catalog.get(name);
          return model && { weightBytes: model.weightBytes, kvBytesPerToken: kvCacheBytesPerToken(model) };
        },
      });
    }
    case 'openai':
      if (!config.openaiBaseUrl) throw new Error('AUTOGLM_OPENAI_BASE_URL is required with AUTOGLM_AGENT_BACKEND=openai');
      return new OpenAIBackend({ baseUrl: config.openaiBaseUrl, models: config.openaiModels, apiKey: config.openaiApiKey, refreshMs: config.openaiRefreshMs });
    case 'command':
      return new CommandBackend({
        allow: config.commandAllow,
        host,
        user: config.commandUser === undefined ? undefined : resolveJobUser(config.commandUser),
        workRoot: config.commandWorkDir,
        cgroupParent: config.commandCgroup,
      });
  }
}

/**
 * Real GPUs: polled through nvidia-smi once a second (telemetry goes out more
 * often, with the latest reading). None when nvidia-smi is absent.
 */
async function watchRealGpus(logger: Logger): Promise<{ gpus: GpuInfo[]; links: GpuLinkRow[]; latest(): GpuStatus[]; stop(): void }> {
  let latest = (await readNvidiaSmi().catch((err: unknown) => {
    logger.warn({ err }, 'nvidia-smi failed; reporting no GPUs');
    return undefined;
  })) ?? [];
  const gpus = latest.map((g) => ({ index: g.index, name: g.name, memoryTotalBytes: g.memoryTotalBytes }));
  if (gpus.length === 0) return { gpus, links: [], latest: () => [], stop: () => {} };
  // Which GPUs share NVLink or a PCIe switch: multi-GPU work is placed on linked ones.
  const topology = await readNvidiaSmiTopology();
  const links = topology && topology.links.length === gpus.length ? topology.links.map((row) => ({ links: row })) : [];
  const timer = setInterval(() => {
    readNvidiaSmi().then(
      (r) => (latest = r ?? latest),
      (err: unknown) => logger.warn({ err }, 'nvidia-smi failed; keeping the last reading'),
    );
  }, 1000);
  return { gpus, links, latest: () => latest, stop: () => clearInterval(timer) };
}

/** Starts the agent: ExecutorService for interactive streams, and the Connect session to decision. */
export async function startAgent(config: AgentConfig, logger: Logger = createLogger('executor-agent', config.logLevel)): Promise<RunningService & { agent: Agent }> {
  const backend = makeBackend(config);
  if (backend instanceof OpenAIBackend) await backend.start();
  const simulated = backend.gpus().length > 0;
  const real = simulated ? undefined : await watchRealGpus(logger);
  const tls = loadTls(config);
  if (!tls) logger.warn('no TLS (AUTOGLM_TLS_CA, _CERT, _KEY unset): Execute is open to any process that reaches this port');
  const decision = createClient(DecisionServiceClient, config.decisionAddress, { tls });
  const server = new GrpcServer({ logger, tls, requireClientCertificate: true });
  const agent = new Agent({
    nodeId: config.nodeId,
    decision,
    backend,
    gpus: simulated ? backend.gpus() : (real?.gpus ?? []),
    gpuStatus: simulated ? () => backend.gpuStatus() : () => real?.latest() ?? [],
    gpuLinks: real?.links ?? [],
    host: backend.hostResources(),
    maxSequencesPerReplica: config.maxSequencesPerReplica,
    executeWaitMs: config.executeWaitMs,
    logger,
  });
  // Only the parser relays interactive streams (with TLS: by its certificate).
  server.addService(ExecutorServiceService, withRoles('ExecutorService', executorHandlers(agent, backend, config.nodeId, logger), { execute: ['parser'] }));
  const grpcAddress = await server.listen(config.listen);
  agent.start(config.advertiseAddress ?? grpcAddress);
  return {
    grpcAddress,
    logger,
    openStreams: () => server.openStreams,
    agent,
    stop: async () => {
      // Drain: no new work (health NOT_SERVING at once), running work gets a grace window.
      server.setNotServing();
      await agent.drain(config.drainGraceMs);
      await agent.stop();
      real?.stop();
      await server.shutdown();
      await backend.close();
      decision.close();
    },
  };
}
