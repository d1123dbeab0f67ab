import {
  credentials,
  InterceptingCall,
  Metadata,
  type CallOptions,
  type ChannelOptions,
  type Client,
  type ClientOptions,
  type Interceptor,
  type ServiceError,
} from '@grpc/grpc-js';
import { context, SpanKind, trace } from '@opentelemetry/api';
import { clientCredentials, tlsChannelOptions, type TlsMaterial } from './tls';
import { endSpan, injectTraceContext } from './tracing';

const MiB = 1024 * 1024;

/** Channel options every internal client uses: explicit size limits and keepalive. */
export function channelOptions(maxMessageBytes = 16 * MiB): ChannelOptions {
  return {
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 2_000,
  };
}

/**
 * Starts a client span per call and sends its W3C trace context in the
 * metadata, so a trace follows a task from parser to decision to agent.
 */
export const tracingInterceptor: Interceptor = (options, nextCall) => {
  const method = options.method_definition.path;
  const parent = context.active();
  const span = trace.getTracer('autoglm').startSpan(method, { kind: SpanKind.CLIENT, attributes: { 'rpc.system': 'grpc', 'rpc.method': method } }, parent);
  return new InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      injectTraceContext(metadata, trace.setSpan(parent, span));
      next(metadata, {
        onReceiveStatus(status, nextStatus) {
          endSpan(span, status.code, status.details);
          nextStatus(status);
        },
      });
    },
  });
};

type ClientConstructor<C extends Client> = new (address: string, creds: ReturnType<typeof credentials.createInsecure>, options?: ClientOptions) => C;

/**
 * A ts-proto grpc-js client for an internal peer: mutual TLS with this
 * service's certificate when `tls` is given, else plaintext (a trusted
 * network or a test).
 */
export function createClient<C extends Client>(Ctor: ClientConstructor<C>, address: string, options: { tls?: TlsMaterial; maxMessageBytes?: number } = {}): C {
  return new Ctor(address, clientCredentials(options.tls), {
    ...channelOptions(options.maxMessageBytes),
    ...(options.tls ? tlsChannelOptions(address) : {}),
    interceptors: [tracingInterceptor],
  });
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (err: ServiceError | null, response: Res) => void,
) => unknown;

/** Calls a unary method with a deadline and returns a promise. */
export function callUnary<Req, Res>(
  method: UnaryMethod<Req, Res>,
  request: Req,
  options: { deadlineMs: number; metadata?: Metadata; signal?: AbortSignal },
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    const call = method(request, options.metadata ?? new Metadata(), { deadline: Date.now() + options.deadlineMs }, (err, res) =>
      err ? reject(err) : resolve(res),
    ) as { cancel?: () => void };
    options.signal?.addEventListener('abort', () => call.cancel?.(), { once: true });
  });
}
