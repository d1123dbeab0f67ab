export { Agent, type AgentOptions, type ClaimedExecution } from './agent';
export { AgentConfigSchema, loadAgentConfig, type AgentConfig } from './config';
export { startAgent } from './start';
