import { DecisionServiceClient, MonitorServiceService } from '@autoglm/proto';
import { createClient, createLogger, GrpcServer, loadTls, type Logger, type RunningService } from '@autoglm/runtime';
import type { MonitorConfig } from './config';
import { followDecisionEvents } from './event-feed';
import { startHttpServer } from './http-server';
import { MonitorMetrics } from './metrics';
import { MonitorSummary } from './summary';

function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) };
}

/** Subscribes to decision and serves /metrics, the dashboard and MonitorService. */
export async function startMonitor(config: MonitorConfig, logger: Logger = createLogger('monitor', config.logLevel)): Promise<RunningService> {
  const metrics = new MonitorMetrics({ processMetrics: true });
  const summary = new MonitorSummary();
  const tls = loadTls(config);
  const decision = createClient(DecisionServiceClient, config.decisionAddress, { tls });
  const feed = followDecisionEvents(
    decision,
    (event) => {
      metrics.observe(event);
      summary.observe(event);
    },
    logger,
  );
  const http = await startHttpServer({ ...splitHostPort(config.httpListen), metrics, summary, logger });
  // MonitorService: any certificate of the mesh (with TLS).
  const server = new GrpcServer({ logger, tls, requireClientCertificate: true });
  server.addService(MonitorServiceService, { getSummary: async () => summary.snapshot() });
  const grpcAddress = await server.listen(config.listen);
  return {
    grpcAddress,
    httpAddress: http.address,
    logger,
    openStreams: () => server.openStreams,
    stop: async () => {
      feed.stop();
      await Promise.all([server.shutdown(), http.close()]);
      decision.close();
    },
  };
}
