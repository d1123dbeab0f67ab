import {
  context,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Metadata } from '@grpc/grpc-js';

export interface TracingOptions {
  /** service.name of every span. */
  serviceName: string;
  /** Span processors to use instead of the OTLP exporter (tests pass an in-memory one). */
  spanProcessors?: SpanProcessor[];
  /** Environment to read OTEL_* from. @default process.env */
  env?: NodeJS.ProcessEnv;
}

/** Stops tracing, flushing spans not yet exported. */
export type StopTracing = () => Promise<void>;

/**
 * Starts OpenTelemetry tracing when an exporter is configured through the
 * standard variables (OTEL_EXPORTER_OTLP_ENDPOINT or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTLP over HTTP) or span processors are
 * passed. Otherwise only the W3C propagator is installed: the API's no-op
 * tracer then makes every span free, which is what "no exporter, no cost" means.
 */
export function startTracing(options: TracingOptions): StopTracing {
  const env = options.env ?? process.env;
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const configured = Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  const disabled = env.OTEL_SDK_DISABLED === 'true' || env.OTEL_TRACES_EXPORTER === 'none';
  if (disabled || (!configured && !options.spanProcessors)) return async () => {};
  const spanProcessors = options.spanProcessors ?? [
    // The exporter reads its endpoint, headers and timeout from OTEL_EXPORTER_OTLP_*.
    new BatchSpanProcessor(new OTLPTraceExporter(), { scheduledDelayMillis: 500 }),
  ];
  const sdk = new NodeSDK({
    serviceName: options.serviceName,
    spanProcessors,
    textMapPropagator: new W3CTraceContextPropagator(),
    instrumentations: [],
  });
  sdk.start();
  // Flush what is buffered, but do not let an unreachable collector hold up an exit.
  return () => Promise.race([sdk.shutdown(), new Promise<void>((resolve) => setTimeout(resolve, 2000).unref())]);
}

const metadataGetter: TextMapGetter<Metadata> = {
  keys: (carrier) => Object.keys(carrier.getMap()),
  get: (carrier, key) => {
    const values = carrier.get(key);
    if (values.length === 0) return undefined;
    return values.map(String);
  },
};

const metadataSetter: TextMapSetter<Metadata> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

/** Writes the trace context of `ctx` into gRPC metadata (traceparent, tracestate). */
export function injectTraceContext(metadata: Metadata, ctx: Context = context.active()): void {
  propagation.inject(ctx, metadata, metadataSetter);
}

/** Reads the caller's trace context from gRPC metadata. */
export function extractTraceContext(metadata: Metadata): Context {
  return propagation.extract(context.active(), metadata, metadataGetter);
}

/** The active trace context as a plain carrier, to send inside a message (not metadata). */
export function captureTraceContext(ctx: Context = context.active()): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier;
}

/** A context from a carrier made by {@link captureTraceContext}. */
export function contextFromCarrier(carrier: Record<string, string>): Context {
  return propagation.extract(context.active(), carrier);
}

const tracer = () => trace.getTracer('autoglm');

/** Starts a server span for an incoming call, as a child of the caller's context. */
export function startServerSpan(method: string, metadata: Metadata): { span: Span; ctx: Context } {
  const parent = extractTraceContext(metadata);
  const span = tracer().startSpan(method, { kind: SpanKind.SERVER, attributes: { 'rpc.system': 'grpc', 'rpc.method': method } }, parent);
  return { span, ctx: trace.setSpan(parent, span) };
}

/** Starts an internal span (e.g. a placement decision) under the active context. */
export function startSpan(name: string, attributes: Record<string, string | number | boolean> = {}, parent: Context = context.active()): { span: Span; ctx: Context } {
  const span = tracer().startSpan(name, { attributes }, parent);
  return { span, ctx: trace.setSpan(parent, span) };
}

/** Ends a span with the outcome of a call; `code` is the gRPC status code (0 = OK). */
export function endSpan(span: Span, code: number, message?: string): void {
  span.setAttribute('rpc.grpc.status_code', code);
  if (code !== 0) span.setStatus({ code: SpanStatusCode.ERROR, message });
  span.end();
}

export { context, trace, SpanKind };
export type { Context, Span };
