import { runMain, startTracing } from '@autoglm/runtime';
import { loadAgentConfig } from './config';
import { startAgent } from './start';

runMain('executor-agent', async () => {
  const config = loadAgentConfig();
  const stopTracing = startTracing({ serviceName: 'autoglm-executor-agent' });
  const running = await startAgent(config);
  return { ...running, stop: async () => { await running.stop(); await stopTracing(); } };
});
