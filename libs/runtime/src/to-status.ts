import { Metadata, status, type StatusObject } from '@grpc/grpc-js';
import { trace } from '@opentelemetry/api';
import { DomainError, ResourceExhaustedError, type ErrorCode } from '@autoglm/core';
import type { Logger } from 'pino';

const CODE_BY_NAME: Record<ErrorCode, status> = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  UNAVAILABLE: status.UNAVAILABLE,
  DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
  CANCELLED: status.CANCELLED,
  ABORTED: status.ABORTED,
};

/** Trailer carrying how long a client should wait before retrying. */
export const RETRY_AFTER_TRAILER = 'retry-after-ms';

/**
 * Trailer marking a status made by toStatus in one of our services: only
 * those pass through another service verbatim. A status grpc-js made itself
 * (a refused connection, a deadline) names internal addresses, so it is
 * replaced by a generic one.
 */
export const ORIGIN_TRAILER = 'x-autoglm-status';

const OURS = Symbol('autoglm status');

/** An error carrying a status our own service made (one item of a batch reply, our shutdown): it passes through. */
export function ourStatus(code: status, details: string, retryAfterMs?: number): Error & { code: number; details: string; metadata: Metadata } {
  const metadata = new Metadata();
  if (retryAfterMs !== undefined) metadata.set(RETRY_AFTER_TRAILER, String(Math.ceil(retryAfterMs)));
  return Object.assign(new Error(details), { code, details, metadata, [OURS]: true });
}

const GENERIC: Partial<Record<status, string>> = {
  [status.UNAVAILABLE]: 'a service behind this one is unavailable; retry shortly',
  [status.DEADLINE_EXCEEDED]: 'a service behind this one did not answer in time; retry',
  [status.CANCELLED]: 'cancelled',
  [status.RESOURCE_EXHAUSTED]: 'a limit was hit; retry later',
};

/** A status as grpc-js callbacks and `call.destroy` accept it. */
export type GrpcStatus = StatusObject & { name: string; message: string };

function make(code: status, details: string, metadata = new Metadata()): GrpcStatus {
  metadata.set(ORIGIN_TRAILER, '1');
  return { name: 'Error', message: details, code, details, metadata };
}

/** True for errors that came back from another gRPC call (already a status). */
export function isServiceError(err: unknown): err is Error & { code: number; details: string; metadata?: Metadata } {
  return (
    err instanceof Error &&
    typeof (err as { code?: unknown }).code === 'number' &&
    typeof (err as { details?: unknown }).details === 'string'
  );
}

/**
 * The one place that decides what a client sees of an error. Domain errors map
 * to their code with their message; a status from a downstream service of ours
 * passes through (it was made by this same function there); an abort is
 * CANCELLED; anything else is logged with its stack and trace id and becomes
 * INTERNAL with a message that names the trace but leaks nothing.
 */
export function toStatus(err: unknown, logger: Logger): GrpcStatus {
  if (err instanceof DomainError) {
    const metadata = new Metadata();
    if (err instanceof ResourceExhaustedError && err.retryAfterMs !== undefined) {
      metadata.set(RETRY_AFTER_TRAILER, String(Math.ceil(err.retryAfterMs)));
    }
    return make(CODE_BY_NAME[err.code], err.message, metadata);
  }
  if (isServiceError(err)) {
    const metadata = new Metadata();
    const retry = err.metadata?.get(RETRY_AFTER_TRAILER)[0];
    if (retry !== undefined) metadata.set(RETRY_AFTER_TRAILER, String(retry));
    const ours = (err as { [OURS]?: boolean })[OURS] === true || (err.metadata?.get(ORIGIN_TRAILER).length ?? 0) > 0;
    if (ours) return make(err.code, err.details, metadata);
    const generic = GENERIC[err.code as status];
    logger.warn({ code: err.code, details: err.details }, 'downstream call failed');
    return generic ? make(err.code, generic, metadata) : make(status.INTERNAL, 'internal error; it has been logged');
  }
  if (err instanceof Error && err.name === 'AbortError') return make(status.CANCELLED, 'cancelled');
  const traceId = trace.getActiveSpan()?.spanContext().traceId;
  logger.error({ err }, 'unexpected error at the server edge');
  return make(status.INTERNAL, `internal error${traceId ? ` (trace ${traceId})` : ''}; it has been logged`);
}
