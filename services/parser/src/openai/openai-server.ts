import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import Fastify, { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Metadata } from '@grpc/grpc-js';
import { UnavailableError } from '@autoglm/core';
import { context, type Logger, type TlsMaterial } from '@autoglm/runtime';
import { taskHandlers, type ParserDeps } from '../task-service';
import { ModelNotFoundError, toHttpError, type HttpError } from './http-error';
import { endHttpSpan, startHttpSpan } from './http-span';
import { chatCall, completionCall, type Endpoint } from './infer-call';
import { modelEntry, modelList } from './model-list';
import { metadataFromHeaders, tracingMetadata } from './request-headers';
import { serveInference, type InferenceOutcome } from './serve-inference';

export interface OpenAiServerOptions {
  /** host:port to listen on; port 0 picks a free one. */
  listen: string;
  /** HTTPS with the parser's certificate; unset: plain HTTP. */
  tls: TlsMaterial | undefined;
  /** Largest body accepted (the parser's maxMessageBytes); larger ones get 413. */
  maxBodyBytes: number;
  /** The parser's own dependencies: requests run through its TaskService handlers. */
  deps: ParserDeps;
  /** The catalog's model names. */
  catalogModels(): string[];
  /** Models only agents' servers list. */
  servedModels(): string[];
  /** Whether the catalog or some agent's server has `model`. */
  knownModel(model: string): boolean;
  logger: Logger;
  /**
   * How long close() waits for open requests, once told the server is going,
   * to end before it cuts their connections.
   * @default 5000
   */
  closeGraceMs?: number;
}

/** The running OpenAI-compatible endpoint. */
export interface OpenAiServer {
  /** The bound host:port. */
  address: string;
  /** What OpenAI clients take as base URL: `https://host:port/v1` (http:// without TLS). */
  baseUrl: string;
  /** Inference requests open now (a test that ends with more than it started with leaked one). */
  readonly openRequests: number;
  /** Ends open requests (503, or an error event mid-stream; their tasks are cancelled), then stops listening. */
  close(): Promise<void>;
}

const SHUTTING_DOWN = 'the parser is shutting down; retry on another instance';

/**
 * OpenAI's HTTP API over the parser's own paths: /v1/chat/completions and
 * /v1/completions are TaskService.Infer (same auth, parsing, policy, task and
 * trace), /v1/models lists the catalog and what agents' servers serve. JSON
 * bodies only, at most `maxBodyBytes`; every error in OpenAI's shape.
 */
export async function startOpenAiServer(options: OpenAiServerOptions): Promise<OpenAiServer> {
  const { deps, logger } = options;
  const infer = taskHandlers(deps).infer;
  const startedAt = Math.floor(Date.now() / 1000);
  const open = new Map<AbortController, Promise<void>>();
  let closing = false;

  const app = Fastify({
    loggerInstance: logger,
    // Requests are traced, and their tasks are events: a log line per request would only repeat them.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.maxBodyBytes,
    // Answered below in OpenAI's shape instead.
    return503OnClosing: false,
    serverFactory: (handler) => {
      const listener = (req: IncomingMessage, res: ServerResponse) => handler(req, res);
      // An https.Server serves requests as an http.Server does; Fastify's types name only the latter.
      return options.tls ? (createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, listener) as unknown as Server) : createServer(listener);
    },
  });
  // JSON only: OpenAI's API takes nothing else.
  app.removeContentTypeParser('text/plain');

  const sendError = (reply: FastifyReply, error: HttpError) => reply.code(error.statusCode).headers(error.headers).send(error.body);
  app.setErrorHandler((err, _request, reply) => sendError(reply, toHttpError(err, logger)));
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: { message: `Invalid URL (${request.method} ${request.url})`, type: 'invalid_request_error', param: null, code: null } }),
  );
  app.addHook('onRequest', async (_request, reply) => {
    if (closing) return sendError(reply, toHttpError(new UnavailableError(SHUTTING_DOWN), logger));
  });

  /** A JSON route in a server span, its errors in OpenAI's shape. */
  const traced = (route: string, handle: (request: FastifyRequest, metadata: Metadata) => Promise<object>) => async (request: FastifyRequest, reply: FastifyReply) => {
    const metadata = tracingMetadata(request.headers);
    const { span, ctx } = startHttpSpan(request.method, route, metadata);
    return context.with(ctx, async () => {
      try {
        const body = await handle(request, metadataFromHeaders(request.headers));
        endHttpSpan(span, { statusCode: 200, grpcCode: 0 });
        return reply.send(body);
      } catch (err) {
        const error = toHttpError(err, logger);
        endHttpSpan(span, error, error.body.error.message);
        return sendError(reply, error);
      }
    });
  };

  app.get(
    '/v1/models',
    traced('/v1/models', async (_request, metadata) => {
      await deps.auth.authorize(metadata, 'read', 'ListModels');
      return modelList(options.catalogModels(), options.servedModels(), startedAt);
    }),
  );
  // A wildcard: fine-tunes are named like "acme/glm-4-9b-support".
  app.get(
    '/v1/models/*',
    traced('/v1/models/{model}', async (request, metadata) => {
      await deps.auth.authorize(metadata, 'read', 'GetModel');
      const model = (request.params as { '*': string })['*'];
      await deps.knowModels([model]);
      if (!options.knownModel(model)) throw new ModelNotFoundError(model, `the model ${JSON.stringify(model)} is not in the catalog and no connected agent serves it`);
      return modelEntry(model, startedAt);
    }),
  );

  const inference = (endpoint: Endpoint, route: string) => async (request: FastifyRequest, reply: FastifyReply) => {
    const { span, ctx } = startHttpSpan('POST', route, tracingMetadata(request.headers));
    // From here the response is written by hand: headers wait for admission, then events as tokens come.
    reply.hijack();
    const res = reply.raw;
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort(new Error('the client went away'));
    });
    let finished!: () => void;
    open.set(abort, new Promise<void>((resolve) => (finished = resolve)));
    // Its body may have finished arriving after close() began (onRequest let it in before): it is turned away like the rest.
    if (closing) abort.abort(new UnavailableError(SHUTTING_DOWN));
    try {
      const outcome = await context.with(ctx, () => runInference(endpoint, request, res, abort.signal));
      endHttpSpan(span, outcome);
    } finally {
      open.delete(abort);
      finished();
    }
  };

  const runInference = async (endpoint: Endpoint, request: FastifyRequest, res: ServerResponse, signal: AbortSignal): Promise<InferenceOutcome> => {
    let call;
    let metadata;
    try {
      if (signal.aborted) throw signal.reason;
      metadata = metadataFromHeaders(request.headers);
      // Who asks is known before the body is looked at, as OpenAI answers (the Infer handler checks again, from the cache).
      await deps.auth.authorize(metadata, 'submit', 'Infer');
      call = endpoint === 'chat' ? chatCall(request.body, request.headers) : completionCall(request.body, request.headers);
    } catch (err) {
      const error = toHttpError(err, logger);
      if (!res.destroyed) res.writeHead(error.statusCode, { 'content-type': 'application/json', ...error.headers }).end(JSON.stringify(error.body));
      return { statusCode: error.statusCode, grpcCode: error.grpcCode, taskId: undefined };
    }
    return serveInference({ call, metadata, res, signal, peer: request.ip, infer, knownModel: options.knownModel, logger });
  };

  app.post('/v1/chat/completions', inference('chat', '/v1/chat/completions'));
  app.post('/v1/completions', inference('completion', '/v1/completions'));

  const { host, port } = splitHostPort(options.listen);
  await app.listen({ host, port });
  const bound = (app.server.address() as AddressInfo).port;
  const hostPart = options.listen.slice(0, options.listen.lastIndexOf(':'));
  const address = `${hostPart}:${bound}`;
  const baseUrl = `${options.tls ? 'https' : 'http'}://${address}/v1`;
  logger.info({ baseUrl }, 'OpenAI-compatible API listening');
  return {
    address,
    baseUrl,
    get openRequests() {
      return open.size;
    },
    close: async () => {
      if (closing) return;
      closing = true;
      const reason = new UnavailableError(SHUTTING_DOWN);
      const ended = [...open.values()];
      for (const abort of open.keys()) abort.abort(reason);
      let timer: NodeJS.Timeout | undefined;
      const inTime = await Promise.race([
        Promise.all(ended).then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), options.closeGraceMs ?? 5000))),
      ]);
      clearTimeout(timer);
      // Ended responses are left to flush (close() drops idle connections); ones still open past the grace are cut.
      if (!inTime) app.server.closeAllConnections();
      await app.close();
    },
  };
}

function splitHostPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port: Number(address.slice(at + 1)) };
}
