import { DecisionServiceClient, ExternalScalerService, MonitorServiceService } from '@autoglm/proto';
import { createClient, createLogger, GrpcServer, loadTls, type Logger, type RunningService } from '@autoglm/runtime';
import type { MonitorConfig } from './config';
import { followDecisionEvents } from './event-feed';
import { FeedbackDriver } from './feedback-driver';
import { FeedbackMetrics } from './feedback-metrics';
import { startHttpServer } from './http-server';
import { kedaScalerHandlers, type ScaleSource } from './keda-scaler';
import { adviceScaleSource } from './keda-source';
import { LiveState } from './live-state';
import { MonitorMetrics } from './metrics';
import { timestampFromMillis } from './proto-time';
import { MonitorSummary } from './summary';

function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) };
}

/** The running monitor; `feedback` is exposed for tests that evaluate on demand. */
export interface RunningMonitor extends RunningService {
  readonly feedback: FeedbackDriver;
  /** The KEDA external scaler's address, when served. */
  readonly kedaAddress: string | undefined;
}

/**
 * Subscribes to decision and serves /metrics, the dashboard and
 * MonitorService; runs the feedback loop; serves KEDA's external scaler.
 */
export async function startMonitor(config: MonitorConfig, logger: Logger = createLogger('monitor', config.logLevel)): Promise<RunningMonitor> {
  const metrics = new MonitorMetrics({ processMetrics: true });
  const summary = new MonitorSummary();
  const live = new LiveState();
  const tls = loadTls(config);
  const decision = createClient(DecisionServiceClient, config.decisionAddress, { tls });
  const feedback = new FeedbackDriver({
    decision,
    config: { enabled: config.feedback, boost: config.boost, warm: config.warm, quarantine: config.quarantine, scale: config.scale },
    slos: config.slos,
    backlogRules: config.backlogRules,
    evaluateEveryMs: config.evaluateEveryMs,
    forecastIntervalMs: config.forecastIntervalMs,
    sequencesPerReplica: config.sequencesPerReplica,
    webhookUrl: config.alertWebhook,
    metrics: new FeedbackMetrics(metrics.registry, config.slos),
    logger: logger.child({ component: 'feedback' }),
  });
  if (!config.feedback) logger.warn('feedback loop is off (AUTOGLM_FEEDBACK=false): it alerts and recommends but changes nothing');
  const feed = followDecisionEvents(
    decision,
    (event) => {
      metrics.observe(event);
      summary.observe(event);
      live.observe(event);
      feedback.observe(event);
    },
    () => {
      metrics.resync();
      summary.resync();
      live.resync();
      feedback.resync();
    },
    logger,
  );
  feedback.start();
  const http = await startHttpServer({ ...splitHostPort(config.httpListen), allowedHosts: config.allowedHosts, metrics, summary, live, feedback, decision, logger });
  // MonitorService: any certificate of the mesh (with TLS). The parser forwards users' calls.
  const server = new GrpcServer({ logger, tls, requireClientCertificate: true });
  server.addService(MonitorServiceService, {
    getSummary: async () => summary.snapshot(),
    listAlerts: async (req) => ({ alerts: feedback.alerts(req.includeResolved) }),
    getSloStatus: async () => ({ slos: feedback.sloStatus() }),
    getScaleRecommendations: async () => {
      const { recommendations, computedAt } = feedback.recommendations();
      return { recommendations, computedAt: computedAt === undefined ? undefined : timestampFromMillis(computedAt) };
    },
    listFeedbackActions: async () => ({ actions: feedback.recentActions(), enabled: feedback.enabled }),
  });
  const grpcAddress = await server.listen(config.listen);

  // KEDA connects with its own TLS settings; it may present a client certificate but need not:
  // the scaler only reads recommendations.
  let keda: GrpcServer | undefined;
  let kedaAddress: string | undefined;
  if (config.kedaListen !== 'off') {
    keda = new GrpcServer({ logger, tls, requireClientCertificate: false });
    keda.addService(ExternalScalerService, kedaScalerHandlers(scaleSource(feedback)));
    kedaAddress = await keda.listen(config.kedaListen);
    logger.info({ address: kedaAddress }, 'KEDA external scaler listening');
  }
  return {
    grpcAddress,
    httpAddress: http.address,
    kedaAddress,
    feedback,
    logger,
    openStreams: () => server.openStreams + (keda?.openStreams ?? 0),
    stop: async () => {
      feed.stop();
      await feedback.stop();
      await Promise.all([server.shutdown(), keda?.shutdown(), http.close()]);
      decision.close();
    },
  };
}

/**
 * KEDA's view of the scale advisor (keda-source.ts): known models and pool
 * `default`, refused until the first evaluation.
 */
function scaleSource(feedback: FeedbackDriver): ScaleSource {
  return adviceScaleSource(feedback);
}
