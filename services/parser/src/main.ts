import { runMain, startTracing } from '@autoglm/runtime';
import { loadParserConfig } from './config';
import { startParser } from './start';

runMain('parser', async () => {
  const config = loadParserConfig();
  const stopTracing = startTracing({ serviceName: 'autoglm-parser' });
  const running = await startParser(config);
  return { ...running, stop: async () => { await running.stop(); await stopTracing(); } };
});
