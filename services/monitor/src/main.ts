import { runMain, startTracing } from '@autoglm/runtime';
import { loadMonitorConfig } from './config';
import { startMonitor } from './start';

runMain('monitor', async () => {
  const config = loadMonitorConfig();
  const stopTracing = startTracing({ serviceName: 'autoglm-monitor' });
  const running = await startMonitor(config);
  return { ...running, stop: async () => { await running.stop(); await stopTracing(); } };
});
