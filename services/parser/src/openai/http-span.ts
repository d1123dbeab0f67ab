import type { Metadata } from '@grpc/grpc-js';
import { endSpan, extractTraceContext, SpanKind, trace, type Context, type Span } from '@autoglm/runtime';

/**
 * A server span for an OpenAI request, named as OpenTelemetry names HTTP
 * server spans ("POST /v1/chat/completions"), child of the caller's
 * traceparent header. Calls made under its context (Admit, Execute) carry it
 * on, so a request is one trace across parser, decision and agent, as a gRPC
 * Infer is.
 */
export function startHttpSpan(method: string, route: string, metadata: Metadata): { span: Span; ctx: Context } {
  const parent = extractTraceContext(metadata);
  const span = trace.getTracer('autoglm').startSpan(`${method} ${route}`, { kind: SpanKind.SERVER, attributes: { 'http.request.method': method, 'http.route': route } }, parent);
  return { span, ctx: trace.setSpan(parent, span) };
}

/** Ends it with the HTTP status, and the gRPC status the same outcome has on the gRPC path (so both read alike). */
export function endHttpSpan(span: Span, outcome: { statusCode: number; grpcCode: number; taskId?: string | undefined }, message?: string): void {
  span.setAttribute('http.response.status_code', outcome.statusCode);
  if (outcome.taskId) span.setAttribute('autoglm.task_id', outcome.taskId);
  endSpan(span, outcome.grpcCode, message);
}
