import { Metadata } from '@grpc/grpc-js';
import { PriorityClass, type Timestamp } from '@autoglm/proto';
import { InvalidArgumentError, toTimestamp, UnauthenticatedError } from '@autoglm/core';
import { TENANT_METADATA } from '../tenant';

/** Request headers as Node gives them (names lower-cased). */
export type RequestHeaders = Readonly<Record<string, string | string[] | undefined>>;

/** Headers that choose how an OpenAI-style request is scheduled (no body field can: OpenAI's schema has none). */
export const PRIORITY_CLASS_HEADER = 'x-autoglm-priority-class';
export const PRIORITY_HEADER = 'x-autoglm-priority';
export const DEADLINE_HEADER = 'x-autoglm-deadline';
/** Response header naming the task a request became (`autoglm get`, `explain`, `cancel` take it). */
export const TASK_ID_HEADER = 'x-autoglm-task-id';

/** The caller's trace context (W3C), carried as gRPC metadata. */
const TRACE_CONTEXT = ['traceparent', 'tracestate'] as const;
/** What travels as gRPC metadata on the Infer path: the credential, the tenant an admin acts for, the trace context. */
const FORWARDED = ['authorization', TENANT_METADATA, ...TRACE_CONTEXT] as const;

export interface Scheduling {
  priorityClass: PriorityClass;
  priority: number;
  deadline: Timestamp | undefined;
}

const CLASSES: Record<string, PriorityClass> = {
  urgent: PriorityClass.URGENT,
  normal: PriorityClass.NORMAL,
  background: PriorityClass.BACKGROUND,
};

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** What gRPC metadata may carry (printable ASCII; grpc-js refuses anything else). */
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/** The metadata the gRPC handlers read, built from an HTTP request's headers; a value metadata cannot carry is refused by name. */
export function metadataFromHeaders(headers: RequestHeaders): Metadata {
  const metadata = new Metadata();
  for (const name of FORWARDED) {
    const value = header(headers, name);
    if (value === undefined) continue;
    if (!PRINTABLE_ASCII.test(value)) {
      if (name === 'authorization') throw new UnauthenticatedError('the authorization header holds characters no API token has; send "Bearer <token>"');
      throw new InvalidArgumentError(name, 'must be printable ASCII');
    }
    metadata.set(name, value);
  }
  return metadata;
}

/** The caller's trace context alone, for the request's own span: a value metadata cannot carry is dropped, as W3C drops a malformed one. */
export function tracingMetadata(headers: RequestHeaders): Metadata {
  const metadata = new Metadata();
  for (const name of TRACE_CONTEXT) {
    const value = header(headers, name);
    if (value !== undefined && PRINTABLE_ASCII.test(value)) metadata.set(name, value);
  }
  return metadata;
}

/**
 * Priority class, priority and deadline from the x-autoglm-* headers; unset
 * ones are left to the Infer defaults (class URGENT, priority 0, no deadline).
 * The bounds (priority -1000..1000, a deadline in the future) are checked
 * where gRPC requests are checked, by parseInferStart.
 */
export function schedulingFromHeaders(headers: RequestHeaders, nowMs: number = Date.now()): Scheduling {
  const className = header(headers, PRIORITY_CLASS_HEADER);
  let priorityClass = PriorityClass.UNSPECIFIED;
  if (className !== undefined) {
    const known = CLASSES[className.trim().toLowerCase()];
    if (known === undefined) throw new InvalidArgumentError(PRIORITY_CLASS_HEADER, `${JSON.stringify(className)} is not a priority class; known: ${Object.keys(CLASSES).join(', ')}`);
    priorityClass = known;
  }
  const priorityText = header(headers, PRIORITY_HEADER);
  let priority = 0;
  if (priorityText !== undefined) {
    if (!/^\s*[-+]?\d+\s*$/.test(priorityText)) throw new InvalidArgumentError(PRIORITY_HEADER, `${JSON.stringify(priorityText)} is not a whole number (-1000..1000)`);
    priority = Number(priorityText);
  }
  const deadlineText = header(headers, DEADLINE_HEADER);
  return { priorityClass, priority, deadline: deadlineText === undefined ? undefined : parseDeadlineHeader(deadlineText, nowMs) };
}

/** "+30s", "+5m", "90s", "+20" (seconds) from now, or an RFC 3339 time. */
export function parseDeadlineHeader(text: string, nowMs: number): Timestamp {
  const trimmed = text.trim();
  const relative = /^\+?(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(trimmed);
  if (relative?.[1] !== undefined && (trimmed.startsWith('+') || relative[2] !== undefined)) {
    return toTimestamp(nowMs + Number(relative[1]) * (UNIT_MS[relative[2] ?? 's'] ?? 1000));
  }
  const at = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$/.test(trimmed) ? Date.parse(trimmed) : Number.NaN;
  if (Number.isNaN(at)) {
    throw new InvalidArgumentError(DEADLINE_HEADER, `${JSON.stringify(text)} is neither an RFC 3339 time (2026-01-31T18:00:00Z) nor a time from now (+30s, +5m, +1h)`);
  }
  return toTimestamp(at);
}

function header(headers: RequestHeaders, name: string): string | undefined {
  const value = headers[name];
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined || first === '' ? undefined : first;
}
