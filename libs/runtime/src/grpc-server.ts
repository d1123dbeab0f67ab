import {
  Server,
  status,

  type Metadata,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { AuthContext } from '@grpc/grpc-js/build/src/auth-context';
import { HealthImplementation } from 'grpc-health-check';
import { FILE_DESCRIPTOR_SET } from '@autoglm/proto';
import type { Logger } from 'pino';
import { context } from '@opentelemetry/api';
import { Reflection } from './reflection';
import { identityOf, serverCredentials, type PeerIdentity, type TlsMaterial } from './tls';
import { ourStatus, toStatus, type GrpcStatus } from './to-status';
import { endSpan, startServerSpan } from './tracing';

/** What every handler gets besides its request: who called, and when to stop. */
export interface CallContext {
  /** Request metadata (auth, trace context). */
  metadata: Metadata;
  /** Aborted when the client cancels or the server shuts down. */
  signal: AbortSignal;
  /** The caller's address. */
  peer: string;
  /**
   * Who the caller is by its certificate, on a server that requires one
   * (mutual TLS); undefined on a plaintext or public server.
   */
  identity: PeerIdentity | undefined;
  /** Whether this server checks callers' certificates (then `identity` is always set). */
  mutualTls: boolean;
}

/** Writes to a server stream, honouring backpressure. */
export interface StreamSink<T> {
  /** Resolves once the message is buffered below the high-water mark; rejects if the stream ended. */
  write(message: T): Promise<void>;
  /**
   * Ends the stream now with the error's status (as if the handler had thrown
   * it), even while a write waits for a client that does not read: that write
   * rejects, and the handler's own ending is ignored.
   */
  fail(error: unknown): void;
}

export type UnaryHandler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res>;
export type ServerStreamHandler<Req, Res> = (request: Req, sink: StreamSink<Res>, ctx: CallContext) => Promise<void>;
export type BidiHandler<Req, Res> = (requests: AsyncIterable<Req>, sink: StreamSink<Res>, ctx: CallContext) => Promise<void>;

type RequestOf<M> = M extends { requestDeserialize: (b: Buffer) => infer R } ? R : never;
type ResponseOf<M> = M extends { responseSerialize: (v: infer R) => Buffer } ? R : never;
type HandlerFor<M> = M extends { requestStream: true; responseStream: true }
  ? BidiHandler<RequestOf<M>, ResponseOf<M>>
  : M extends { requestStream: false; responseStream: true }
    ? ServerStreamHandler<RequestOf<M>, ResponseOf<M>>
    : M extends { requestStream: false; responseStream: false }
      ? UnaryHandler<RequestOf<M>, ResponseOf<M>>
      : never;

/** Handlers for every method of a ts-proto service definition, typed from it. */
export type ServiceHandlers<S> = { [K in keyof S]: HandlerFor<S[K]> };

export interface GrpcServerOptions {
  logger: Logger;
  /** Largest request accepted; bigger ones fail with RESOURCE_EXHAUSTED. @default 4 MiB */
  maxReceiveMessageBytes?: number;
  /** Largest response sent. @default 16 MiB */
  maxSendMessageBytes?: number;
  /** TLS with this certificate; unset: plaintext. */
  tls?: TlsMaterial;
  /** With tls: callers must present a certificate of the same CA (internal services). @default true */
  requireClientCertificate?: boolean;
}

const MiB = 1024 * 1024;

/**
 * A grpc-js server with what every Open-AutoGLM service needs: grpc.health.v1,
 * server reflection over the autoglm.v1 contract, a server span per call with
 * the caller's W3C trace context, one `toStatus()` for every error, explicit
 * message-size limits, and a graceful shutdown that ends open streams with
 * UNAVAILABLE instead of leaving clients hanging.
 */
export class GrpcServer {
  readonly health = new HealthImplementation({ '': 'NOT_SERVING' });
  private readonly server: Server;
  private readonly logger: Logger;
  private readonly serviceNames: string[] = [];
  private readonly streams = new Set<{ abort: AbortController; readonly ended: boolean; end: (s: GrpcStatus) => void }>();
  private shuttingDown = false;
  private readonly tls: TlsMaterial | undefined;
  private readonly mutualTls: boolean;

  constructor(options: GrpcServerOptions) {
    this.logger = options.logger;
    this.tls = options.tls;
    this.mutualTls = options.tls !== undefined && options.requireClientCertificate !== false;
    this.server = new Server({
      'grpc.max_receive_message_length': options.maxReceiveMessageBytes ?? 4 * MiB,
      'grpc.max_send_message_length': options.maxSendMessageBytes ?? 16 * MiB,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_permit_without_calls': 1,
    });
    this.health.addToServer(this.server);
    // Lists the contract's services this server serves (health is the standard grpc.health.v1, known to every client).
    new Reflection(FILE_DESCRIPTOR_SET, () => [...this.serviceNames]).addToServer(this.server);
  }

  /** Registers a service; `name` is its full name for health (e.g. "autoglm.v1.TaskService"). */
  addService<S extends ServiceDefinition>(definition: S, handlers: ServiceHandlers<S>): void {
    const impl: UntypedServiceImplementation = {};
    for (const [method, spec] of Object.entries(definition)) {
      const handler = (handlers as Record<string, unknown>)[method] as (...args: unknown[]) => Promise<unknown>;
      if (!spec.requestStream && !spec.responseStream) impl[method] = this.wrapUnary(spec.path, handler);
      else if (!spec.requestStream) impl[method] = this.wrapServerStream(spec.path, handler);
      else if (spec.responseStream) impl[method] = this.wrapBidi(spec.path, handler);
      else throw new Error(`${spec.path}: client-streaming methods are not used by this contract`);
    }
    this.server.addService(definition, impl);
    const first = Object.values(definition)[0];
    if (first) this.serviceNames.push(first.path.split('/')[1] ?? '');
  }

  /** Binds and starts serving; resolves with the bound `host:port` (port 0 picks a free one). */
  async listen(address: string): Promise<string> {
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(address, serverCredentials(this.tls, this.mutualTls), (err, bound) => (err ? reject(err) : resolve(bound))),
    );
    for (const name of ['', ...this.serviceNames]) this.health.setStatus(name, 'SERVING');
    const host = address.slice(0, address.lastIndexOf(':'));
    return `${host}:${port}`;
  }

  /** Server streams open now; a test that ends with more than it started with leaked one. */
  get openStreams(): number {
    return this.streams.size;
  }

  /** Marks every service NOT_SERVING (e.g. while draining) without stopping. */
  setNotServing(): void {
    for (const name of ['', ...this.serviceNames]) this.health.setStatus(name, 'NOT_SERVING');
  }

  /**
   * Graceful shutdown: health NOT_SERVING, stop accepting, end streams with
   * UNAVAILABLE, let unary calls finish within `graceMs`, then force.
   */
  async shutdown(graceMs = 5_000): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.setNotServing();
    const unavailable: GrpcStatus = toStatus(ourStatus(status.UNAVAILABLE, 'server is shutting down; retry on another instance'), this.logger);
    for (const stream of [...this.streams]) stream.end(unavailable);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      timer.unref();
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private context(call: { metadata: Metadata; getPeer(): string; getAuthContext(): AuthContext; on(e: 'cancelled', f: () => void): unknown }, abort: AbortController): CallContext {
    call.on('cancelled', () => abort.abort(new Error('cancelled by the client')));
    const identity = this.mutualTls ? identityOf(call.getAuthContext().sslPeerCertificate) : undefined;
    return { metadata: call.metadata, signal: abort.signal, peer: call.getPeer(), identity, mutualTls: this.mutualTls };
  }

  private wrapUnary(path: string, handler: (...args: unknown[]) => Promise<unknown>) {
    return (call: ServerUnaryCall<unknown, unknown>, callback: (err: GrpcStatus | null, value?: unknown) => void) => {
      const { span, ctx } = startServerSpan(path, call.metadata);
      const abort = new AbortController();
      context.with(ctx, () => {
        handler(call.request, this.context(call, abort)).then(
          (value) => {
            endSpan(span, 0);
            callback(null, value);
          },
          (err: unknown) => {
            const st = toStatus(err, this.logger);
            endSpan(span, st.code, st.details);
            callback(st);
          },
        );
      });
    };
  }

  private track(call: ServerWritableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>, abort: AbortController) {
    let ended = false;
    const entry = {
      abort,
      get ended() {
        return ended;
      },
      end: (st: GrpcStatus) => {
        if (ended) return;
        ended = true;
        abort.abort(new Error(st.details));
        if (st.code === status.OK) call.end();
        else call.emit('error', st);
      },
    };
    this.streams.add(entry);
    const forget = () => {
      ended = true;
      this.streams.delete(entry);
      abort.abort(new Error('stream closed'));
    };
    call.on('finish', forget);
    call.on('close', forget);
    call.on('cancelled', forget);
    return entry;
  }

  private sink<T>(call: ServerWritableStream<unknown, T> | ServerDuplexStream<unknown, T>, signal: AbortSignal, fail: (error: unknown) => void): StreamSink<T> {
    return {
      fail,
      write: (message: T) => {
        if (signal.aborted || call.writableEnded) return Promise.reject(new Error('stream closed'));
        if (call.write(message)) return Promise.resolve();
        return new Promise<void>((resolve, reject) => {
          const onDrain = () => {
            signal.removeEventListener('abort', onAbort);
            resolve();
          };
          const onAbort = () => {
            call.off('drain', onDrain);
            reject(new Error('stream closed'));
          };
          call.once('drain', onDrain);
          signal.addEventListener('abort', onAbort, { once: true });
        });
      },
    };
  }

  private runStream(
    path: string,
    call: ServerWritableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>,
    run: (ctx: CallContext, sink: StreamSink<unknown>) => Promise<unknown>,
  ) {
    const { span, ctx } = startServerSpan(path, call.metadata);
    const abort = new AbortController();
    if (this.shuttingDown) {
      call.emit('error', toStatus(ourStatus(status.UNAVAILABLE, 'server is shutting down; retry on another instance'), this.logger));
      return;
    }
    const entry = this.track(call, abort);
    const callCtx = this.context(call, abort);
    context.with(ctx, () => {
      let failed = false;
      const fail = (error: unknown) => {
        if (entry.ended) return;
        failed = true;
        const st = toStatus(error, this.logger);
        endSpan(span, st.code, st.details);
        entry.end(st);
      };
      run(callCtx, this.sink(call, abort.signal, fail)).then(
        () => {
          if (failed) return;
          endSpan(span, 0);
          entry.end({ name: 'OK', message: 'OK', code: status.OK, details: 'OK', metadata: call.metadata });
        },
        (err: unknown) => {
          if (failed) return;
          // A stream the client cancelled, or that shutdown already ended with
          // UNAVAILABLE, has nobody left to tell: its handler's error is expected.
          if (call.cancelled || entry.ended) {
            endSpan(span, status.CANCELLED, 'cancelled');
            return;
          }
          const st = toStatus(err, this.logger);
          endSpan(span, st.code, st.details);
          entry.end(st);
        },
      );
    });
  }

  private wrapServerStream(path: string, handler: (...args: unknown[]) => Promise<unknown>) {
    return (call: ServerWritableStream<unknown, unknown>) =>
      this.runStream(path, call, (ctx, sink) => handler(call.request, sink, ctx));
  }

  private wrapBidi(path: string, handler: (...args: unknown[]) => Promise<unknown>) {
    // destroyOnReturn false: a client's half-close ends the requests, not the whole call
    // (Node's default iterator destroys the stream when iteration ends).
    return (call: ServerDuplexStream<unknown, unknown>) =>
      this.runStream(path, call, (ctx, sink) => handler(call.iterator({ destroyOnReturn: false }), sink, ctx));
  }
}
