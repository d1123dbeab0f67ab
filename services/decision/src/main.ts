import { runMain, startTracing } from '@autoglm/runtime';
import { loadDecisionConfig } from './config';
import { startDecision } from './start';

runMain('decision', async () => {
  const config = loadDecisionConfig();
  const stopTracing = startTracing({ serviceName: 'autoglm-decision' });
  const running = await startDecision(config);
  return { ...running, stop: async () => { await running.stop(); await stopTracing(); } };
});
