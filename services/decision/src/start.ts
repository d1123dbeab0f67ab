import {
  applyPolicyUpdate,
  DEFAULT_PLACEMENT_POLICY,
  DEFAULT_POLICY,
  Fleet,
  heartbeatIntervalMs,
  kvCacheBytesPerToken,
  loadModelCatalog,
  parseExperiment,
  toDuration,
  type Clock,
  type ModelShape,
  type PolicyExperiment,
} from '@autoglm/core';
import { DecisionAuthServiceService, DecisionScheduleServiceService, DecisionServiceService } from '@autoglm/proto';
import { parseFaultSpec, ScheduleStore, TaskStore, TokenStore, type SqlEngine } from '@autoglm/store';
import { createLogger, GrpcServer, loadTls, withRoles, type Logger, type RunningService } from '@autoglm/runtime';
import { authHandlers, ensureBootstrapToken } from './auth-service';
import type { DecisionConfig } from './config';
import { decisionHandlers } from './decision-service';
import { EventBus } from './event-bus';
import { RecurringTasks } from './recurring';
import { scheduleHandlers } from './schedule-service';
import { Scheduler } from './scheduler';
import { withSharedEventEncoding } from './shared-serializer';

/** Node snapshots go to subscribers (the monitor) this often. */
const NODE_SNAPSHOT_MS = 1000;
/** Submissions whose commit the store could not confirm are looked up this often. */
const IN_DOUBT_CHECK_MS = 1000;

export interface RunningDecision extends RunningService {
  scheduler: Scheduler;
  store: TaskStore;
  recurring: RecurringTasks;
}

/** Test seams of startDecision. */
export interface StartDecisionOptions {
  /** The clock schedules (recurring tasks) fire by. @default Date.now */
  scheduleClock?: Clock;
  /** How often due schedules are looked for, ms. @default 1000 */
  schedulePollMs?: number;
  /** The schedules' store over the task store's engine (a test injects faults into it). @default new ScheduleStore(engine) */
  scheduleStore?: (engine: SqlEngine) => ScheduleStore;
}

/** Opens the store, rebuilds the queue, and serves DecisionService. */
export async function startDecision(
  config: DecisionConfig,
  logger: Logger = createLogger('decision', config.logLevel),
  options: StartDecisionOptions = {},
): Promise<RunningDecision> {
  const store = await TaskStore.open({
    dataDir: config.dataDir,
    pgliteSharedBuffers: config.pgliteSharedBuffers,
    databaseUrl: config.databaseUrl,
    faults: config.storeFaults ? parseFaultSpec(config.storeFaults) : undefined,
    submitAttempts: config.storeSubmitAttempts,
    onWriteError: (err, attempt, willRetry) => logger.warn({ err, attempt, willRetry }, 'task store write failed'),
  });
  if (config.storeFaults) logger.warn({ faults: config.storeFaults }, 'injecting store faults (AUTOGLM_STORE_FAULTS): for tests only');
  const incarnation = await store.newIncarnation();
  const bus = new EventBus();
  const catalog = loadModelCatalog(config.modelCatalog);
  const shapes = new Map<string, ModelShape>(
    catalog.names().map((name) => {
      const m = catalog.get(name)!;
      return [name, { name, weightBytes: m.weightBytes, kvBytesPerToken: kvCacheBytesPerToken(m), contextLength: m.contextLength }];
    }),
  );
  const fleet = new Fleet(
    {
      ...DEFAULT_PLACEMENT_POLICY,
      maxGpuUtilization: config.maxGpuUtilization,
      maxGpuMemoryFraction: config.maxGpuMemoryFraction,
      staleTelemetryMs: Math.max(1000, config.telemetryIntervalMs * 10),
      mode: config.placementMode,
      keepWarm: config.keepWarm,
      scaleOutLoad: config.scaleOutLoad,
      maxSequencesPerReplica: config.maxSequencesPerReplica,
    },
    Date.now,
    (model) => shapes.get(model),
  );
  const scheduler = new Scheduler({
    store,
    bus,
    fleet,
    logger,
    leaseMs: config.leaseMs,
    preemptGraceMs: config.preemptGraceMs,
    feedbackTtlMs: config.feedbackTtlMs,
    telemetryIntervalMs: config.telemetryIntervalMs,
    retry: { baseMs: config.retryBaseMs, maxMs: config.retryMaxMs },
    incarnation,
    policy: startingPolicy(config),
    tenants: config.tenants,
    shedQueueLimit: config.shedQueueLimit,
    experiment: parsedExperiment(config.policyExperiment),
  });
  const started = Date.now();
  const recovered = await scheduler.recover();
  logger.info({ ...recovered, incarnation, ms: Date.now() - started, engine: store.engine.kind }, 'queue rebuilt from the store');

  const recurring = new RecurringTasks({
    schedules: options.scheduleStore ? options.scheduleStore(store.engine) : new ScheduleStore(store.engine),
    enqueue: (request) => scheduler.enqueue(request),
    logger,
    clock: options.scheduleClock,
    pollMs: options.schedulePollMs,
  });

  const tokens = new TokenStore(store.engine);
  if (config.bootstrapTokenFile) {
    await ensureBootstrapToken(tokens, config.bootstrapTokenFile, logger).catch(async (err: unknown) => {
      await store.close();
      throw err;
    });
  }

  const tls = loadTls(config);
  if (!tls) logger.warn('no TLS (AUTOGLM_TLS_CA, _CERT, _KEY unset): any process that reaches this port may call every RPC, Connect as any agent included');
  const server = new GrpcServer({ logger, maxReceiveMessageBytes: config.maxMessageBytes, tls, requireClientCertificate: true });
  // Each internal RPC is for the services whose certificates say so (with TLS; see docs/architecture.md, "Service identities").
  server.addService(withSharedEventEncoding(), withRoles('DecisionService', decisionHandlers(scheduler, store, bus, logger, { subscriberBacklog: config.subscriberBacklog, maxSubscribers: config.maxSubscribers }), DECISION_ROLES));
  server.addService(DecisionScheduleServiceService, withRoles('DecisionScheduleService', scheduleHandlers(recurring), allFor(DecisionScheduleServiceService, PARSER)));
  server.addService(DecisionAuthServiceService, withRoles('DecisionAuthService', authHandlers(tokens), allFor(DecisionAuthServiceService, PARSER)));
  const grpcAddress = await server.listen(config.listen);
  scheduler.openForAgents();
  recurring.start();
  const timers = [
    setInterval(() => scheduler.sweepSilentAgents(), Math.max(100, Math.floor(config.leaseMs / 6))),
    setInterval(() => scheduler.publishNodes(), NODE_SNAPSHOT_MS),
    // An agent that hears no heartbeat for most of a lease fences itself.
    setInterval(() => scheduler.heartbeat(), heartbeatIntervalMs(config.leaseMs)),
    setInterval(() => scheduler.resolveInDoubt().catch((err: unknown) => logger.warn({ err }, 'checking unconfirmed submissions failed')), IN_DOUBT_CHECK_MS),
  ];
  return {
    grpcAddress,
    logger,
    openStreams: () => server.openStreams,
    scheduler,
    store,
    recurring,
    stop: async () => {
      for (const t of timers) clearInterval(t);
      await recurring.stop();
      await server.shutdown();
      await store.close();
    },
  };
}

/** The configured policy: the preset, then the weights and durations over it (validated as ApplyPolicy would). */
export function startingPolicy(
  config: Pick<
    DecisionConfig,
    'policyPreset' | 'policyWeights' | 'maxAgeMs' | 'fairShareHalfLifeMs' | 'preemptAfterMs' | 'urgentPreemptAfterMs' | 'preemptMaxRunMs' | 'reserveAfterMs' | 'inferenceHeadroomMs'
  >,
) {
  let policy;
  try {
    policy = applyPolicyUpdate(DEFAULT_POLICY, {
    preset: config.policyPreset,
    weights: config.policyWeights,
    tenantBoosts: {},
    warmReplicas: {},
    source: 'config',
    reason: 'starting policy',
    maxAge: toDuration(config.maxAgeMs),
    fairShareHalfLife: toDuration(config.fairShareHalfLifeMs),
    preemptAfter: toDuration(config.preemptAfterMs),
    urgentPreemptAfter: toDuration(config.urgentPreemptAfterMs),
    preemptMaxRun: toDuration(config.preemptMaxRunMs),
    reserveAfter: toDuration(config.reserveAfterMs),
    inferenceHeadroom: toDuration(config.inferenceHeadroomMs),
    });
  } catch (err) {
    throw new Error(`AUTOGLM_POLICY_WEIGHTS: ${(err as Error).message}`, { cause: err });
  }
  return { ...policy, version: DEFAULT_POLICY.version };
}

function parsedExperiment(text: string): PolicyExperiment | undefined {
  try {
    return parseExperiment(text);
  } catch (err) {
    throw new Error(`AUTOGLM_POLICY_EXPERIMENT: ${(err as Error).message}`, { cause: err });
  }
}

const PARSER = ['parser'] as const;
const READERS = ['parser', 'monitor', 'admin'] as const;

/** Who may call each of decision's RPCs, by certificate role. */
const DECISION_ROLES: { readonly [M in keyof typeof DecisionServiceService]: readonly string[] } = {
  enqueue: PARSER,
  enqueueBatch: PARSER,
  enqueueWorkflow: PARSER,
  admit: PARSER,
  connect: ['agent'],
  subscribe: ['parser', 'monitor'],
  applyPolicy: ['admin', 'monitor'],
  setNodeQuarantine: ['admin', 'monitor'],
  reportAlerts: ['monitor'],
  getTask: READERS,
  listTasks: READERS,
  cancelTask: ['parser', 'admin'],
  explainTask: READERS,
  listNodes: READERS,
  getQueueStats: READERS,
  requeueDeadLetters: ['parser', 'admin'],
  purgeDeadLetters: ['parser', 'admin'],
};

/** The same roles for every method of a service. */
function allFor<S extends object>(service: S, roles: readonly string[]): { readonly [M in keyof S]: readonly string[] } {
  return Object.fromEntries(Object.keys(service).map((m) => [m, roles])) as { [M in keyof S]: readonly string[] };
}
