import {
  MonitorServiceClient,
  AuthServiceService,
  ClusterServiceService,
  DecisionAuthServiceClient,
  DecisionScheduleServiceClient,
  DecisionServiceClient,
  ExecutorServiceClient,
  ScheduleServiceService,
  TaskServiceService,
} from '@autoglm/proto';
import { loadModelCatalog, parseRateLimits, parseRole, TenantRateLimiter } from '@autoglm/core';
import { callUnary, createClient, createLogger, GrpcServer, loadTls, type Logger, type RunningService } from '@autoglm/runtime';
import { authServiceHandlers } from './auth-service';
import { Authenticator, lookUpOrUndefined } from './authenticate';
import { gpuMemoryBytes, type ParserConfig } from './config';
import { OidcVerifier } from './oidc';
import { startOpenAiServer } from './openai/openai-server';
import { EnqueueBatcher } from './enqueue-batcher';
import { scheduleHandlers } from './schedule-service';
import { ServedModels } from './served-models';
import { clusterHandlers, taskHandlers, type ParserDeps } from './task-service';

/** Serves the public API on `config.listen`, forwarding to decision. */
export async function startParser(config: ParserConfig, logger: Logger = createLogger('parser', config.logLevel)): Promise<RunningService> {
  // Mutual TLS to decision and the agents with the parser's certificate; the same certificate on the public endpoint.
  const tls = loadTls(config);
  if (!tls) logger.warn('no TLS (AUTOGLM_TLS_CA, _CERT, _KEY unset): the public endpoint is plaintext, API tokens included');
  const decision = createClient(DecisionServiceClient, config.decisionAddress, { tls });
  const executors = new Map<string, ExecutorServiceClient>();
  const limits = parseRateLimits(config.tenantRateLimits);
  const catalog = loadModelCatalog(config.modelCatalog);
  const served = new ServedModels(decision, config.decisionTimeoutMs);
  served.start();
  const tokens = createClient(DecisionAuthServiceClient, config.decisionAddress, { tls });
  const auth = new Authenticator(
    config.auth,
    (secretSha256) => lookUpOrUndefined(() => callUnary(tokens.lookUpToken.bind(tokens), { secretSha256 }, { deadlineMs: config.decisionTimeoutMs })),
    config.authCacheMs,
    Date.now,
    oidcVerifier(config),
  );
  if (config.auth === 'none') logger.warn('authentication is off (AUTOGLM_AUTH=none): any caller may act for any tenant and do anything');
  const monitor = createClient(MonitorServiceClient, config.monitorAddress, { tls });
  const deps: ParserDeps = {
    auth,
    monitor,
    rateLimiter: new TenantRateLimiter((tenant) => limits.perTenant.get(tenant) ?? limits.defaultLimit),
    decision,
    enqueue: new EnqueueBatcher(decision, config.decisionTimeoutMs),
    executorAt: (address) => {
      let client = executors.get(address);
      if (!client) executors.set(address, (client = createClient(ExecutorServiceClient, address, { tls })));
      return client;
    },
    knowModels: async (models) => {
      await Promise.all(models.map((m) => served.lookUp(m, catalog.has(m))));
    },
    parseContext: () => ({
      catalog,
      served: (model) => served.get(model),
      now: new Date(),
      gpuMemoryBytes: gpuMemoryBytes(config),
      maxGpusPerTask: config.maxGpusPerTask,
      defaultMaxRetries: config.defaultMaxRetries,
    }),
    decisionTimeoutMs: config.decisionTimeoutMs,
    streamStartTimeoutMs: config.streamStartTimeoutMs,
  };
  // Public: clients prove who they are with API tokens, not certificates.
  const server = new GrpcServer({ logger, maxReceiveMessageBytes: config.maxMessageBytes, tls, requireClientCertificate: false });
  server.addService(TaskServiceService, taskHandlers(deps));
  server.addService(ClusterServiceService, clusterHandlers(deps));
  const schedules = createClient(DecisionScheduleServiceClient, config.decisionAddress, { tls });
  server.addService(ScheduleServiceService, scheduleHandlers({ ...deps, schedules }));
  server.addService(AuthServiceService, authServiceHandlers({ auth, tokens, decisionTimeoutMs: config.decisionTimeoutMs }));
  // OpenAI's HTTP API on its own port, over the same handlers (Infer, the catalog): one path, one policy.
  const openai =
    config.openaiListen === 'off'
      ? undefined
      : await startOpenAiServer({
          listen: config.openaiListen,
          tls,
          maxBodyBytes: config.maxMessageBytes,
          deps,
          catalogModels: () => catalog.names(),
          servedModels: () => served.names(),
          knownModel: (model) => catalog.has(model) || served.get(model) !== undefined,
          logger,
        });
  if (openai && !tls) logger.warn('no TLS (AUTOGLM_TLS_CA, _CERT, _KEY unset): the OpenAI-compatible endpoint is plain HTTP, API tokens included');
  let grpcAddress: string;
  try {
    grpcAddress = await server.listen(config.listen);
  } catch (err) {
    await openai?.close();
    throw err;
  }
  return {
    grpcAddress,
    // The OpenAI-compatible endpoint's host:port (the supervisor's ready message carries it).
    httpAddress: openai?.address,
    logger,
    // OpenAI requests in flight count as open streams: a leak check sees them too.
    openStreams: () => server.openStreams + (openai?.openRequests ?? 0),
    stop: async () => {
      // First: its open requests end (their tasks cancelled) while decision and the agents are still reachable.
      await openai?.close();
      served.stop();
      await server.shutdown();
      decision.close();
      schedules.close();
      tokens.close();
      for (const client of executors.values()) client.close();
    },
  };
}

/** JWTs of the configured OpenID Connect issuer as credentials, or undefined when none is configured. */
function oidcVerifier(config: ParserConfig): OidcVerifier | undefined {
  if (config.oidcIssuer === undefined) return undefined;
  if (config.oidcAudience === undefined) throw new Error('AUTOGLM_OIDC_AUDIENCE is required with AUTOGLM_OIDC_ISSUER');
  return new OidcVerifier({
    issuer: config.oidcIssuer,
    audience: config.oidcAudience,
    jwksUrl: config.oidcJwksUrl ?? `${config.oidcIssuer.replace(/\/$/, '')}/.well-known/jwks.json`,
    tenantClaim: config.oidcTenantClaim,
    roleClaim: config.oidcRoleClaim,
    defaultRole: parseRole(config.oidcDefaultRole),
  });
}
