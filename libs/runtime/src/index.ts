export { checkedFile, ConfigError, flag, hostPort, loadConfig, logLevel, type EnvNames } from './config';
export { callUnary, channelOptions, createClient, tracingInterceptor } from './grpc-client';
export {
  GrpcServer,
  type BidiHandler,
  type CallContext,
  type GrpcServerOptions,
  type ServerStreamHandler,
  type ServiceHandlers,
  type StreamSink,
  type UnaryHandler,
} from './grpc-server';
export { createLogger, type Logger } from './logger';
export { runMain, type ReadyMessage, type RunningService } from './main';
export { readStartThenCancel, type StartedStream } from './start-then-cancel';
export { isServiceError, ORIGIN_TRAILER, ourStatus, RETRY_AFTER_TRAILER, toStatus, type GrpcStatus } from './to-status';
export {
  captureTraceContext,
  context,
  contextFromCarrier,
  endSpan,
  extractTraceContext,
  injectTraceContext,
  SpanKind,
  startServerSpan,
  startSpan,
  startTracing,
  trace,
  type Context,
  type Span,
  type StopTracing,
  type TracingOptions,
} from './tracing';
export { clientCredentials, identityOf, loadTls, requireRole, serverCredentials, tlsChannelOptions, withRoles, TLS_ENV, tlsConfigShape, type PeerIdentity, type TlsMaterial } from './tls';
