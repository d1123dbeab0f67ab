import type { ServerResponse } from 'node:http';
import type { Metadata } from '@grpc/grpc-js';
import type { InferDone, InferRequest, InferResponse } from '@autoglm/proto';
import { CancelledError, DomainError, InvalidArgumentError } from '@autoglm/core';
import type { BidiHandler, Logger, StreamSink } from '@autoglm/runtime';
import { ModelNotFoundError, toHttpError, type HttpError } from './http-error';
import type { InferCall } from './infer-call';
import { TASK_ID_HEADER } from './request-headers';
import { completionBody, finishChunk, responseHeader, roleChunk, textChunk, usageChunk, usageOf, type ResponseHeader } from './response-bodies';

/** A comment line every this often keeps proxies and clients from timing out a stream that waits for placement. */
const KEEP_ALIVE_MS = 15_000;
/** A client that has read nothing for this long while its writes wait is taken as gone: its task is cancelled, its capacity freed. */
export const STALLED_CLIENT_MS = 60_000;

export interface ServeInferenceOptions {
  call: InferCall;
  /** The credential, tenant and trace context, as gRPC metadata. */
  metadata: Metadata;
  /** The raw response, taken over from the framework. */
  res: ServerResponse;
  /**
   * Aborted when the client goes away (any reason: nobody is told) or the
   * server shuts down (a DomainError reason: the client is told it).
   */
  signal: AbortSignal;
  peer: string;
  /** TaskService's Infer handler: the request runs exactly as a gRPC Infer does. */
  infer: BidiHandler<InferRequest, InferResponse>;
  /** Whether the catalog or an agent's server has this model (an unknown one is a 404). */
  knownModel(model: string): boolean;
  logger: Logger;
  /** How long a client may read nothing while writes to it wait (tests shorten it). */
  stalledClientMs?: number;
}

/** How a request ended, for its span. */
export interface InferenceOutcome {
  statusCode: number;
  /** The gRPC status the same outcome has on the gRPC path (0: OK). */
  grpcCode: number;
  taskId: string | undefined;
}

/** gRPC's CANCELLED: the client went away. */
const CANCELLED = 1;
/** nginx's "client closed request", for spans of requests whose client left. */
const CLIENT_CLOSED = 499;

/**
 * Runs one OpenAI request through TaskService's Infer handler (auth, parsing,
 * rate limit, Admit, Execute relay: one code path with gRPC) and answers it
 * in OpenAI's format: server-sent `data:` events ending with `[DONE]`, or one
 * JSON body. Response headers wait for the task to be admitted, so a refusal
 * is an HTTP status; an error after that is an `error` event, which OpenAI's
 * SDKs raise. The client going away cancels the task, queued or running.
 */
export async function serveInference(o: ServeInferenceOptions): Promise<InferenceOutcome> {
  const { call, res, signal } = o;
  let header: ResponseHeader | undefined;
  let taskId: string | undefined;
  const text: string[] = [];
  let done: InferDone | undefined;
  let keepAlive: NodeJS.Timeout | undefined;

  /** Whether a write waits for the client to read (a keep-alive then adds nothing). */
  let backedUp = false;
  const write = async (data: string): Promise<void> => {
    if (res.destroyed || res.writableEnded || res.write(data)) return;
    backedUp = true;
    await new Promise<void>((resolve) => {
      // Destroying the response closes it: `signal` aborts and the task is cancelled.
      const stalled = setTimeout(() => res.destroy(), o.stalledClientMs ?? STALLED_CLIENT_MS);
      const settle = () => {
        clearTimeout(stalled);
        res.off('drain', settle);
        res.off('close', settle);
        backedUp = false;
        resolve();
      };
      res.on('drain', settle);
      res.on('close', settle);
    });
  };
  const event = (body: unknown) => write(`data: ${JSON.stringify(body)}\n\n`);

  const sink: StreamSink<InferResponse> = {
    write: async (message) => {
      // Nobody to write to: dropped, so that the relay reads the agent's Execute stream to its end (the cancel's `done`).
      if (signal.aborted || res.destroyed) return;
      const kind = message.kind;
      if (kind?.$case === 'accepted') {
        taskId = kind.accepted.taskId;
        header = responseHeader(call.endpoint, taskId, call.model, call.includeUsage);
        if (!call.stream) return;
        res.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache',
          connection: 'keep-alive',
          'x-accel-buffering': 'no',
          [TASK_ID_HEADER]: taskId,
        });
        res.flushHeaders();
        keepAlive = setInterval(() => {
          if (!backedUp) void write(': keep-alive\n\n');
        }, KEEP_ALIVE_MS);
        if (call.endpoint === 'chat') await event(roleChunk(header));
      } else if (kind?.$case === 'chunk') {
        if (!call.stream) text.push(kind.chunk.text);
        else if (header) await event(textChunk(header, kind.chunk.text));
      } else if (kind?.$case === 'done') {
        done = kind.done;
      }
    },
    fail: (error) => {
      if (!res.writableEnded) void answerError(toHttpError(error, o.logger, call.param));
    },
  };

  const answerError = async (error: HttpError): Promise<void> => {
    if (res.writableEnded || res.destroyed) return;
    if (!res.headersSent) {
      res.writeHead(error.statusCode, { 'content-type': 'application/json', ...error.headers, ...(taskId ? { [TASK_ID_HEADER]: taskId } : {}) });
      res.end(JSON.stringify(error.body));
      return;
    }
    // Mid-stream: an error event (OpenAI's SDKs raise it), and no [DONE].
    await event(error.body);
    res.end();
  };

  // The start, and nothing after it: a client that goes away is `signal`, as a gRPC call's cancellation is.
  const requests = (async function* (): AsyncGenerator<InferRequest> {
    yield { kind: { $case: 'start', start: call.start } };
  })();

  let failure: unknown;
  try {
    await o.infer(requests, sink, { metadata: o.metadata, signal, peer: o.peer, identity: undefined, mutualTls: false });
  } catch (err) {
    failure = err;
  } finally {
    clearInterval(keepAlive);
  }

  if (signal.aborted) {
    if (!(signal.reason instanceof DomainError)) return { statusCode: CLIENT_CLOSED, grpcCode: CANCELLED, taskId };
    // Shutdown: whatever the relay made of it, the client hears why.
    failure = signal.reason;
  } else if (failure === undefined && done?.finishReason === 'cancelled') {
    failure = new CancelledError(`the task was cancelled before it finished${taskId ? ` (autoglm explain ${taskId})` : ''}`);
  } else if (failure === undefined && (done === undefined || header === undefined)) {
    failure = new Error('the Infer relay ended without a result');
  }
  if (failure !== undefined) {
    const error = toHttpError(asModelNotFound(failure, call.model, o.knownModel), o.logger, call.param);
    await answerError(error);
    return { statusCode: error.statusCode, grpcCode: error.grpcCode, taskId };
  }

  const reason = done!.finishReason === 'length' ? 'length' : 'stop';
  const usage = usageOf(done!.usage?.promptTokens ?? 0, done!.usage?.completionTokens ?? 0);
  if (call.stream) {
    await event(finishChunk(header!, reason));
    if (call.includeUsage) await event(usageChunk(header!, usage));
    await write('data: [DONE]\n\n');
    res.end();
  } else {
    res.writeHead(200, { 'content-type': 'application/json', [TASK_ID_HEADER]: taskId! });
    res.end(JSON.stringify(completionBody(header!, text.join(''), reason, usage)));
  }
  return { statusCode: 200, grpcCode: 0, taskId };
}

/**
 * The shared parsing refuses an unknown model as INVALID_ARGUMENT on `model`;
 * OpenAI's clients expect 404 model_not_found for it. An empty model stays a 400.
 */
function asModelNotFound(err: unknown, model: string, knownModel: (model: string) => boolean): unknown {
  if (!(err instanceof InvalidArgumentError) || err.field !== 'model' || model === '' || knownModel(model)) return err;
  return new ModelNotFoundError(model, err.message.slice('model: '.length));
}
