import * as os from 'node:os';
import { z } from 'zod';
import { loadModelCatalog } from '@autoglm/core';
import { checkedFile, hostPort, loadConfig, logLevel, tlsConfigShape, TLS_ENV } from '@autoglm/runtime';

const list = z.union([z.array(z.string()), z.string().transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))]);

/** executor-agent's configuration: AUTOGLM_CONFIG file section "executor-agent", then these variables, then defaults. */
export const AgentConfigSchema = z.object({
  ...tlsConfigShape,
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
  /** sim: how fast the host reads model weights onto its GPUs, GB/s (a replica's cold start is its weights over this). */
  simLoadGbps: z.coerce.number().positive().max(10_000).default(7),
  /** sim: fault injection for chaos tests, the share of attempts that fail at start (0 = none). */
  simFailFraction: z.coerce.number().min(0).max(1).default(0),
  /** Cores offered to jobs; unset: the machine's (command), 32 (sim), none (openai). */
  cpuCores: z.coerce.number().positive().max(100_000).optional(),
  /** Host memory offered to jobs, GiB; unset: the machine's (command), 256 (sim), none (openai). */
  memoryGb: z.coerce.number().positive().max(1_000_000).optional(),
  /** A model catalog file (JSON or YAML) extending or replacing the built-in models. */
  modelCatalog: checkedFile(loadModelCatalog),
  /** openai: base URL of the server, e.g. http://127.0.0.1:8000. */
  openaiBaseUrl: z.string().url().optional(),
  /** openai: models the server serves. */
  openaiModels: list.default([]),
  /** openai: API key sent as a bearer token, if the server wants one. */
  openaiApiKey: z.string().optional(),
  /** openai: how often the server's /v1/models and /metrics are read; 0 never. */
  openaiRefreshMs: z.coerce.number().int().min(0).max(3_600_000).default(5000),
  /** command: programs jobs may run (names, resolved from the agent's PATH at start, or absolute paths); empty disables the backend. */
  commandAllow: list.default([]),
  /** command: the user jobs run as (a name or uid:gid; the agent must be root). Unset: the agent's own user. */
  commandUser: z.string().min(1).optional(),
  /** command: a delegated cgroup v2 directory; each job gets its own cgroup under it (memory and cores it claimed enforced, killed through it). Unset: none. */
  commandCgroup: z.string().min(1).optional(),
  /** command: where each job gets a private directory (its cwd, HOME and TMPDIR). Unset: <tmpdir>/autoglm-jobs. */
  commandWorkDir: z.string().min(1).optional(),
  /** Most sequences one model replica runs at once (vLLM's max_num_seqs); 0 leaves it to decision (256). */
  maxSequencesPerReplica: z.coerce.number().int().min(0).max(100_000).default(0),
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
    ...TLS_ENV,
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
    commandUser: 'AUTOGLM_COMMAND_USER',
    commandWorkDir: 'AUTOGLM_COMMAND_WORK_DIR',
    commandCgroup: 'AUTOGLM_COMMAND_CGROUP',
    maxSequencesPerReplica: 'AUTOGLM_MAX_SEQUENCES_PER_REPLICA',
    simLoadGbps: 'AUTOGLM_SIM_LOAD_GBPS',
    simFailFraction: 'AUTOGLM_SIM_FAIL_FRACTION',
    cpuCores: 'AUTOGLM_AGENT_CPUS',
    memoryGb: 'AUTOGLM_AGENT_MEMORY_GB',
    modelCatalog: 'AUTOGLM_MODEL_CATALOG',
    openaiRefreshMs: 'AUTOGLM_OPENAI_REFRESH_MS',
    drainGraceMs: 'AUTOGLM_DRAIN_GRACE_MS',
    executeWaitMs: 'AUTOGLM_EXECUTE_WAIT_MS',
    logLevel: 'AUTOGLM_LOG_LEVEL',
  }, env);
}
