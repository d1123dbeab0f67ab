import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { tlsChannelOptions } from '@autoglm/runtime';
import {
  type CallOptions as GrpcCallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientUnaryCall,
  credentials as grpcCredentials,
  Metadata,
  type ServiceError,
} from '@grpc/grpc-js';
import {
  GetScaleRecommendationsRequest,
  type GetScaleRecommendationsResponse,
  GetSloStatusRequest,
  type GetSloStatusResponse,
  ListAlertsRequest,
  type ListAlertsResponse,
  ListFeedbackActionsRequest,
  type ListFeedbackActionsResponse,
  type ApiToken,
  AuthServiceClient,
  CreateTokenRequest,
  type CreateTokenResponse,
  ListTokensRequest,
  type ListTokensResponse,
  RevokeTokenRequest,
  WhoAmIRequest,
  type WhoAmIResponse,
  CancelTaskRequest,
  ClusterServiceClient,
  CreateScheduleRequest,
  type CreateScheduleResponse,
  DeleteScheduleRequest,
  type DeleteScheduleResponse,
  GetScheduleRequest,
  ListSchedulesRequest,
  type ListSchedulesResponse,
  PauseScheduleRequest,
  ResumeScheduleRequest,
  type Schedule,
  ScheduleServiceClient,
  type DeadLetterSelector,
  ExplainTaskRequest,
  GetQueueStatsRequest,
  GetTaskRequest,
  InferRequest,
  InferStart,
  ListNodesRequest,
  type ListNodesResponse,
  ListTasksRequest,
  type ListTasksResponse,
  type PriorityExplanation,
  PurgeDeadLettersRequest,
  type PurgeDeadLettersResponse,
  type QueueStats,
  RequeueDeadLettersRequest,
  type RequeueDeadLettersResponse,
  SubmitTaskRequest,
  type SubmitTaskResponse,
  SubmitWorkflowRequest,
  type SubmitWorkflowResponse,
  type Task,
  type TaskEvent,
  TaskServiceClient,
  type InferResponse,
  WatchTaskRequest,
} from '@autoglm/proto';
import { abortableDelay, backoffDelay, type ResolvedRetryOptions, resolveRetryOptions, type RetryOptions } from './backoff';
import { AutoglmError, isRetryable } from './errors';
import type { MessageInit } from './message-init';
import { readStream } from './read-stream';

/** Largest message either side may send: prompts and outputs can be long. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** Options of AutoglmClient. */
export interface AutoglmClientOptions {
  /**
   * host:port of the public endpoint (the parser).
   * @default process.env.AUTOGLM_ADDRESS ?? '127.0.0.1:50051'
   */
  address?: string;
  /** Tenant the work is billed to: sent as `x-autoglm-tenant` and filled into requests that name none. */
  tenant?: string;
  /**
   * API token, sent as `authorization: Bearer <token>`: it says who calls
   * (tenant and role). An admin makes them (`createToken`, `autoglm tokens
   * create`); the local mesh makes the first one (`<data dir>/admin-token`).
   * @default process.env.AUTOGLM_TOKEN
   */
  token?: string;
  /**
   * Deadline of each unary call, in milliseconds.
   * @default 30000
   */
  timeoutMs?: number;
  /**
   * The CA certificate (PEM) the endpoint's TLS certificate is checked
   * against: a local mesh's is `<data dir>/tls/ca.pem`. Set, the channel
   * uses TLS.
   * @default the file process.env.AUTOGLM_CA names, if set
   */
  ca?: Buffer;
  /**
   * Channel credentials (overrides `ca`).
   * @default TLS with `ca` when there is one, else plaintext
   */
  credentials?: ChannelCredentials;
  /** How `submit` retries. */
  retry?: RetryOptions;
  /** Extra grpc-js channel options; the message size limits are set already. */
  channelOptions?: ChannelOptions;
}

/** Per-call options of unary calls. */
export interface RequestOptions {
  /** Overrides the client's timeoutMs for this call. */
  timeoutMs?: number;
  /** Cancels the call (and, for submit, the wait between attempts). */
  signal?: AbortSignal;
}

/** Options of `watch`. */
export interface WatchOptions {
  /** Stops watching: the stream is cancelled and the iteration ends without error. */
  signal?: AbortSignal;
}

/** Options of `infer`. */
export interface InferOptions {
  /**
   * Stops the inference: a cancel message is sent and the request side closed;
   * the iteration goes on until the server ends the stream (usually with a
   * `done` whose finish reason is "cancelled").
   */
  signal?: AbortSignal;
  /**
   * Reason recorded with the CANCELLED event.
   * @default 'cancelled by client'
   */
  cancelReason?: string;
  /**
   * How long the server has to end the stream after a cancel before the call is
   * cut (RST_STREAM).
   * @default 5000
   */
  cancelGraceMs?: number;
}

type UnaryMethod<Res> = (
  metadata: Metadata,
  options: Partial<GrpcCallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/**
 * Client of the public API (TaskService, ClusterService, ScheduleService) over one channel.
 * Every unary call has a deadline; streams end when the server ends them or
 * the caller aborts.
 */
export class AutoglmClient {
  readonly address: string;
  readonly tenant: string | undefined;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;
  private readonly retry: ResolvedRetryOptions;
  private readonly tasks: TaskServiceClient;
  private readonly cluster: ClusterServiceClient;
  private readonly schedules: ScheduleServiceClient;
  private readonly auth: AuthServiceClient;

  constructor(options: AutoglmClientOptions = {}) {
    this.address = options.address ?? process.env.AUTOGLM_ADDRESS ?? '127.0.0.1:50051';
    this.tenant = options.tenant;
    this.token = options.token ?? process.env.AUTOGLM_TOKEN;
    this.timeoutMs = options.timeoutMs ?? 30000;
    this.retry = resolveRetryOptions(options.retry);
    const ca = options.ca ?? (process.env.AUTOGLM_CA ? readFileSync(process.env.AUTOGLM_CA) : undefined);
    const channelOptions: ChannelOptions = {
      ...(ca && !options.credentials ? tlsChannelOptions(this.address) : {}),
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.primary_user_agent': 'autoglm-ts',
      ...options.channelOptions,
    };
    const creds = options.credentials ?? (ca ? grpcCredentials.createSsl(ca) : grpcCredentials.createInsecure());
    this.tasks = new TaskServiceClient(this.address, creds, channelOptions);
    this.cluster = new ClusterServiceClient(this.address, creds, {
      ...channelOptions,
      channelOverride: this.tasks.getChannel(),
    });
    this.schedules = new ScheduleServiceClient(this.address, creds, { ...channelOptions, channelOverride: this.tasks.getChannel() });
    this.auth = new AuthServiceClient(this.address, creds, { ...channelOptions, channelOverride: this.tasks.getChannel() });
  }

  /**
   * Submits a task and returns once it is durable. UNAVAILABLE (and
   * RESOURCE_EXHAUSTED with a retry-after) are retried with backoff under the
   * same request id, generated when the request has none, so a retry of a
   * submission that did arrive returns the same task.
   */
  async submit(request: MessageInit<SubmitTaskRequest>, options: RequestOptions = {}): Promise<SubmitTaskResponse> {
    const message = SubmitTaskRequest.fromPartial(request);
    if (message.requestId === '') message.requestId = randomUUID();
    if (message.tenant === '' && this.tenant !== undefined) message.tenant = this.tenant;
    return this.retrying('submit', options, () =>
      this.unary<SubmitTaskResponse>((md, opts, cb) => this.tasks.submitTask(message, md, opts, cb), options),
    );
  }

  /**
   * Submits a workflow: steps that name the steps they wait for (`after`),
   * made durable together, or not at all. Retried as submit is, under one
   * request id for the whole workflow. The answer has one task per step, in
   * the request's order.
   */
  async submitWorkflow(request: MessageInit<SubmitWorkflowRequest>, options: RequestOptions = {}): Promise<SubmitWorkflowResponse> {
    const message = SubmitWorkflowRequest.fromPartial(request);
    if (message.requestId === '') message.requestId = randomUUID();
    if (message.tenant === '' && this.tenant !== undefined) message.tenant = this.tenant;
    return this.retrying('submitWorkflow', options, () =>
      this.unary<SubmitWorkflowResponse>((md, opts, cb) => this.tasks.submitWorkflow(message, md, opts, cb), options),
    );
  }

  /** Runs an idempotent call, retrying UNAVAILABLE (and RESOURCE_EXHAUSTED with a retry-after) with backoff. */
  private async retrying<T>(what: string, options: RequestOptions, call: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        const failure = AutoglmError.from(error);
        if (attempt >= this.retry.maxAttempts || !isRetryable(failure) || options.signal?.aborted) throw failure;
        try {
          await abortableDelay(backoffDelay(attempt, this.retry, failure.retryAfterMs), options.signal);
        } catch (abort) {
          throw new AutoglmError('CANCELLED', `${what} aborted while waiting to retry`, { cause: abort });
        }
      }
    }
  }

  /** A task with its result. */
  get(taskId: string, options: RequestOptions = {}): Promise<Task> {
    const request = GetTaskRequest.fromPartial({ taskId });
    return this.unary<Task>((md, opts, cb) => this.tasks.getTask(request, md, opts, cb), options);
  }

  /** One page of tasks, newest first. */
  list(request: MessageInit<ListTasksRequest> = {}, options: RequestOptions = {}): Promise<ListTasksResponse> {
    const message = ListTasksRequest.fromPartial(request);
    return this.unary<ListTasksResponse>((md, opts, cb) => this.tasks.listTasks(message, md, opts, cb), options);
  }

  /** Cancels a task that has not finished; a finished task comes back unchanged. */
  cancel(taskId: string, reason = '', options: RequestOptions = {}): Promise<Task> {
    const request = CancelTaskRequest.fromPartial({ taskId, reason });
    return this.unary<Task>((md, opts, cb) => this.tasks.cancelTask(request, md, opts, cb), options);
  }

  /**
   * Submits a new task in place of each selected dead letter (the same spec,
   * a fresh retry budget, the label autoglm.requeued_from). Retrying the call
   * returns the same new tasks. The tenant defaults to the client's.
   */
  requeueDeadLetters(select: MessageInit<DeadLetterSelector>, options: RequestOptions = {}): Promise<RequeueDeadLettersResponse> {
    const request = RequeueDeadLettersRequest.fromPartial({ select: { tenant: this.tenant ?? '', ...select } });
    return this.unary<RequeueDeadLettersResponse>((md, opts, cb) => this.tasks.requeueDeadLetters(request, md, opts, cb), options);
  }

  /** Deletes the selected dead letters and their events. The tenant defaults to the client's. */
  purgeDeadLetters(select: MessageInit<DeadLetterSelector>, options: RequestOptions = {}): Promise<PurgeDeadLettersResponse> {
    const request = PurgeDeadLettersRequest.fromPartial({ select: { tenant: this.tenant ?? '', ...select } });
    return this.unary<PurgeDeadLettersResponse>((md, opts, cb) => this.tasks.purgeDeadLetters(request, md, opts, cb), options);
  }

  /**
   * A task's transitions after `afterSequence` (0 replays its whole history),
   * until the server ends the stream at a final state. The call starts when
   * iteration starts.
   */
  async *watch(taskId: string, afterSequence = 0, options: WatchOptions = {}): AsyncGenerator<TaskEvent, void, undefined> {
    if (options.signal?.aborted) return;
    const request = WatchTaskRequest.fromPartial({ taskId, afterSequence });
    const call = this.tasks.watchTask(request, this.metadata());
    yield* readStream<TaskEvent>(call, options.signal);
  }

  /**
   * Interactive inference over the bidi Infer stream: sends `start`, yields
   * accepted, chunks and done as they arrive. The call starts when iteration
   * starts.
   */
  async *infer(start: MessageInit<InferStart>, options: InferOptions = {}): AsyncGenerator<InferResponse, void, undefined> {
    const { signal } = options;
    if (signal?.aborted) return;
    const message = InferStart.fromPartial(start);
    if (message.tenant === '' && this.tenant !== undefined) message.tenant = this.tenant;
    const call = this.tasks.infer(this.metadata());
    let graceTimer: NodeJS.Timeout | undefined;
    const cancel = (): void => {
      const reason = options.cancelReason ?? 'cancelled by client';
      call.write(InferRequest.fromPartial({ kind: { $case: 'cancel', cancel: { reason } } }));
      call.end();
      graceTimer = setTimeout(() => call.cancel(), options.cancelGraceMs ?? 5000);
    };
    call.write(InferRequest.fromPartial({ kind: { $case: 'start', start: message } }));
    try {
      yield* readStream<InferResponse>(call, signal, cancel);
    } finally {
      clearTimeout(graceTimer);
    }
  }

  /** Why a task has the priority and queue position it has. */
  explain(taskId: string, options: RequestOptions = {}): Promise<PriorityExplanation> {
    const request = ExplainTaskRequest.fromPartial({ taskId });
    return this.unary<PriorityExplanation>((md, opts, cb) => this.tasks.explainTask(request, md, opts, cb), options);
  }

  /** Every agent decision knows of, with its latest telemetry. */
  listNodes(options: RequestOptions = {}): Promise<ListNodesResponse> {
    const request = ListNodesRequest.fromPartial({});
    return this.unary<ListNodesResponse>((md, opts, cb) => this.cluster.listNodes(request, md, opts, cb), options);
  }

  /** A snapshot of the queue. */
  queueStats(options: RequestOptions = {}): Promise<QueueStats> {
    const request = GetQueueStatsRequest.fromPartial({});
    return this.unary<QueueStats>((md, opts, cb) => this.cluster.getQueueStats(request, md, opts, cb), options);
  }

  /** The monitor's alerts: firing, then pending; with `includeResolved`, the ones resolved lately too. */
  listAlerts(includeResolved = false, options: RequestOptions = {}): Promise<ListAlertsResponse> {
    const request = ListAlertsRequest.fromPartial({ includeResolved });
    return this.unary<ListAlertsResponse>((md, opts, cb) => this.cluster.listAlerts(request, md, opts, cb), options);
  }

  /** Every SLO series' attainment over its window (another tenant's only for an admin). */
  sloStatus(options: RequestOptions = {}): Promise<GetSloStatusResponse> {
    const request = GetSloStatusRequest.fromPartial({});
    return this.unary<GetSloStatusResponse>((md, opts, cb) => this.cluster.getSloStatus(request, md, opts, cb), options);
  }

  /** Desired replicas per model and agents per pool, as the monitor recommends. */
  scaleRecommendations(options: RequestOptions = {}): Promise<GetScaleRecommendationsResponse> {
    const request = GetScaleRecommendationsRequest.fromPartial({});
    return this.unary<GetScaleRecommendationsResponse>((md, opts, cb) => this.cluster.getScaleRecommendations(request, md, opts, cb), options);
  }

  /** The feedback loop's recent changes, newest first. */
  feedbackActions(options: RequestOptions = {}): Promise<ListFeedbackActionsResponse> {
    const request = ListFeedbackActionsRequest.fromPartial({});
    return this.unary<ListFeedbackActionsResponse>((md, opts, cb) => this.cluster.listFeedbackActions(request, md, opts, cb), options);
  }

  /**
   * Creates a recurring task: `template` (a SubmitTask request) is submitted
   * at each fire time of `cron` in `timeZone`. Retried like `submit`, under
   * the same request id (generated when the request has none), so a retry of
   * a creation that did arrive returns the same schedule.
   */
  async createSchedule(request: MessageInit<CreateScheduleRequest>, options: RequestOptions = {}): Promise<CreateScheduleResponse> {
    const message = CreateScheduleRequest.fromPartial(request);
    if (message.requestId === '') message.requestId = randomUUID();
    if (message.tenant === '' && this.tenant !== undefined) message.tenant = this.tenant;
    return this.retrying('createSchedule', options, () =>
      this.unary<CreateScheduleResponse>((md, opts, cb) => this.schedules.createSchedule(message, md, opts, cb), options),
    );
  }

  /** A schedule, with its next and last fire times. */
  getSchedule(scheduleId: string, options: RequestOptions = {}): Promise<Schedule> {
    const request = GetScheduleRequest.fromPartial({ scheduleId });
    return this.unary<Schedule>((md, opts, cb) => this.schedules.getSchedule(request, md, opts, cb), options);
  }

  /** One page of schedules, newest first; the tenant defaults to the client's. */
  listSchedules(request: MessageInit<ListSchedulesRequest> = {}, options: RequestOptions = {}): Promise<ListSchedulesResponse> {
    const message = ListSchedulesRequest.fromPartial({ tenant: this.tenant ?? '', ...request });
    return this.unary<ListSchedulesResponse>((md, opts, cb) => this.schedules.listSchedules(message, md, opts, cb), options);
  }

  /** Stops a schedule from firing. */
  pauseSchedule(scheduleId: string, options: RequestOptions = {}): Promise<Schedule> {
    const request = PauseScheduleRequest.fromPartial({ scheduleId });
    return this.unary<Schedule>((md, opts, cb) => this.schedules.pauseSchedule(request, md, opts, cb), options);
  }

  /** Lets a paused schedule fire again, from its next fire time after now. */
  resumeSchedule(scheduleId: string, options: RequestOptions = {}): Promise<Schedule> {
    const request = ResumeScheduleRequest.fromPartial({ scheduleId });
    return this.unary<Schedule>((md, opts, cb) => this.schedules.resumeSchedule(request, md, opts, cb), options);
  }

  /** Deletes a schedule; the tasks it submitted are not touched. */
  deleteSchedule(scheduleId: string, options: RequestOptions = {}): Promise<DeleteScheduleResponse> {
    const request = DeleteScheduleRequest.fromPartial({ scheduleId });
    return this.unary<DeleteScheduleResponse>((md, opts, cb) => this.schedules.deleteSchedule(request, md, opts, cb), options);
  }

  /** A new API token (admin only); its secret is in the answer and nowhere else. */
  createToken(request: MessageInit<CreateTokenRequest>, options: RequestOptions = {}): Promise<CreateTokenResponse> {
    const message = CreateTokenRequest.fromPartial(request);
    return this.unary<CreateTokenResponse>((md, opts, cb) => this.auth.createToken(message, md, opts, cb), options);
  }

  /** API tokens, newest first (admin only): every tenant's unless `tenant` is set. */
  listTokens(request: MessageInit<ListTokensRequest> = {}, options: RequestOptions = {}): Promise<ListTokensResponse> {
    const message = ListTokensRequest.fromPartial(request);
    return this.unary<ListTokensResponse>((md, opts, cb) => this.auth.listTokens(message, md, opts, cb), options);
  }

  /** Revokes a token (admin only): refused from then on. */
  revokeToken(tokenId: string, options: RequestOptions = {}): Promise<ApiToken> {
    const message = RevokeTokenRequest.fromPartial({ tokenId });
    return this.unary<ApiToken>((md, opts, cb) => this.auth.revokeToken(message, md, opts, cb), options);
  }

  /** The tenant and role this client's token stands for. */
  whoAmI(options: RequestOptions = {}): Promise<WhoAmIResponse> {
    return this.unary<WhoAmIResponse>((md, opts, cb) => this.auth.whoAmI(WhoAmIRequest.fromPartial({}), md, opts, cb), options);
  }

  /** Closes the channel to new calls. Calls already in flight run to their end: cancel them with their AbortSignal. */
  close(): void {
    // Both service clients share the one channel.
    this.tasks.close();
  }

  private metadata(): Metadata {
    const metadata = new Metadata();
    if (this.token !== undefined && this.token !== '') metadata.set('authorization', `Bearer ${this.token}`);
    if (this.tenant !== undefined && this.tenant !== '') metadata.set('x-autoglm-tenant', this.tenant);
    return metadata;
  }

  private unary<Res>(method: UnaryMethod<Res>, options: RequestOptions): Promise<Res> {
    const { signal } = options;
    return new Promise<Res>((resolve, reject) => {
      if (signal?.aborted) {
        reject(new AutoglmError('CANCELLED', 'aborted before the call started', { cause: signal.reason }));
        return;
      }
      const onAbort = (): void => call.cancel();
      const deadline = Date.now() + (options.timeoutMs ?? this.timeoutMs);
      const call = method(this.metadata(), { deadline }, (error, response) => {
        signal?.removeEventListener('abort', onAbort);
        if (error) reject(AutoglmError.from(error));
        else resolve(response);
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
