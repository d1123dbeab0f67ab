import * as os from 'node:os';
import { z } from 'zod';
import { hostPort, loadConfig, logLevel } from '@autoglm/runtime';

const list = z.union([z.array(z.string()), z.string().transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))]);

/** executor-agent's configuration: AUTOGLM_CONFIG file section "executor-agent", then these variables, then defaults. */
export const AgentConfigSchema = z.object({
  /** ExecutorService listen address (interactive streams from the parser). */
  listen: hostPort.default('127.0.0.1:50060'),
  /** Address decision can give the parser for this agent; defaults to the bound listen address. */
  advertiseAddress: hostPort.optional(),
  /** decision's address. */
  decisionAddress: hostPort.default('127.0.0.1:50052'),
  /** Stable node id; defaults to the host name. */
  nodeId: z.string().min(1).max(128).default(os.hostname()),
  /** Where work runs: the GPU simulator, an OpenAI-compatible server, or allow-listed commands. */
  backend: z.enum(['sim', 'openai', 'command']).default('sim'),
  /** sim: simulated GPUs on this host. */
  simGpus: z.coerce.number().int().min(1).max(64).default(8),
  /** sim: memory of each simulated GPU, GiB. */
  simGpuMemoryGb: z.coerce.number().positive().max(4096).default(80),
  /** sim: how much faster than real time the simulator runs (10 = ten times). */
  simTimeScale: z.coerce.number().positive().max(1_000_000).default(1),
  /** openai: base URL of the server, e.g. http://127.0.0.1:8000. */
  openaiBaseUrl: z.string().url().optional(),
  /** openai: models the server serves. */
  openaiModels: list.default([]),
  /** openai: API key sent as a bearer token, if the server wants one. */
  openaiApiKey: z.string().optional(),
  /** command: executables allowed to run (argv[0]); empty disables the backend. */
  commandAllow: list.default([]),
  /** Tasks one GPU runs at once. */
  maxTasksPerGpu: z.coerce.number().int().min(1).max(1024).default(64),
  /** On SIGTERM, running work gets this long to finish before it is handed back to decision. */
  drainGraceMs: z.coerce.number().int().min(0).max(3_600_000).default(10_000),
  /** An interactive placement waits this long for the parser's Execute stream. */
  executeWaitMs: z.coerce.number().int().min(100).max(600_000).default(10_000),
  /** Log level. */
  logLevel: logLevel.default('info'),
});

export type AgentConfig = z.infer<typeof AgentConfigSchema>;

export function loadAgentConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  return loadConfig('executor-agent', AgentConfigSchema, {
    listen: 'AUTOGLM_AGENT_LISTEN',
    advertiseAddress: 'AUTOGLM_AGENT_ADVERTISE_ADDRESS',
    decisionAddress: 'AUTOGLM_DECISION_ADDRESS',
    nodeId: 'AUTOGLM_AGENT_NODE_ID',
    backend: 'AUTOGLM_AGENT_BACKEND',
    simGpus: 'AUTOGLM_SIM_GPUS',
    simGpuMemoryGb: 'AUTOGLM_SIM_GPU_MEMORY_GB',
    simTimeScale: 'AUTOGLM_SIM_TIME_SCALE',
    openaiBaseUrl: 'AUTOGLM_OPENAI_BASE_URL',
    openaiModels: 'AUTOGLM_OPENAI_MODELS',
    openaiApiKey: 'AUTOGLM_OPENAI_API_KEY',
    commandAllow: 'AUTOGLM_COMMAND_ALLOW',
    maxTasksPerGpu: 'AUTOGLM_MAX_TASKS_PER_GPU',
    drainGraceMs: 'AUTOGLM_DRAIN_GRACE_MS',
    executeWaitMs: 'AUTOGLM_EXECUTE_WAIT_MS',
    logLevel: 'AUTOGLM_LOG_LEVEL',
  }, env);
}
