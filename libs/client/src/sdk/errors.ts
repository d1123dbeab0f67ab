import { type Metadata, type ServiceError, status } from '@grpc/grpc-js';

/** A gRPC status code by name, as the server sent it (`'UNAVAILABLE'`, `'NOT_FOUND'`, ...). */
export type StatusName = keyof typeof status;

/** The trailer a server sets on RESOURCE_EXHAUSTED to say when trying again makes sense. */
export const RETRY_AFTER_TRAILER = 'retry-after-ms';

/**
 * Codes worth retrying. Only the code is checked here; `isRetryable` adds the
 * condition on RESOURCE_EXHAUSTED.
 *
 * - UNAVAILABLE: the request did not reach a server able to handle it (ingress
 *   restarting, connection refused, shutdown). Submissions carry a request id,
 *   so resending one that did arrive returns the same task.
 * - RESOURCE_EXHAUSTED: a rate limit or quota; retryable only when the server
 *   said when (`retry-after-ms` trailer). Without it the limit may be permanent
 *   (a quota) and retrying would only add load.
 *
 * INTERNAL and UNKNOWN are deliberately absent: they mean the server hit a bug
 * or an invariant broke while handling this very request. Sending it again is
 * likely to fail the same way, and may repeat a side effect that did happen.
 * DEADLINE_EXCEEDED is absent because the caller's time budget is spent.
 */
export const RETRYABLE_CODES: ReadonlySet<StatusName> = new Set<StatusName>(['UNAVAILABLE', 'RESOURCE_EXHAUSTED']);

/** Options of the AutoglmError constructor. */
export interface AutoglmErrorOptions {
  /** The error this one wraps (a grpc-js ServiceError, or anything thrown). */
  cause?: unknown;
  /** Trailers the server sent with the status. */
  metadata?: Metadata;
}

/**
 * The one error the SDK throws. `code` is the gRPC status name, `details` the
 * server's message, `cause` the original error.
 */
export class AutoglmError extends Error {
  /** gRPC status name, e.g. `'NOT_FOUND'`. */
  readonly code: StatusName;
  /** The server's message (the status details), without the code. */
  readonly details: string;
  /** Trailers sent with the status; undefined for errors raised on this side. */
  readonly metadata: Metadata | undefined;
  /** From the `retry-after-ms` trailer, when the server sent one. */
  readonly retryAfterMs: number | undefined;

  constructor(code: StatusName, details: string, options: AutoglmErrorOptions = {}) {
    super(details, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AutoglmError';
    this.code = code;
    this.details = details;
    this.metadata = options.metadata;
    this.retryAfterMs = options.metadata === undefined ? undefined : readRetryAfterMs(options.metadata);
  }

  /** The numeric gRPC status code. */
  get grpcCode(): status {
    return status[this.code];
  }

  /** Turns anything thrown into an AutoglmError; an AutoglmError is returned as is. */
  static from(error: unknown): AutoglmError {
    if (error instanceof AutoglmError) return error;
    if (isServiceError(error)) {
      return new AutoglmError(statusName(error.code), error.details, { cause: error, metadata: error.metadata });
    }
    const message = error instanceof Error ? error.message : String(error);
    return new AutoglmError('UNKNOWN', message, { cause: error });
  }
}

/** Whether retrying the request that failed with `error` may succeed. */
export function isRetryable(error: AutoglmError): boolean {
  if (!RETRYABLE_CODES.has(error.code)) return false;
  if (error.code === 'RESOURCE_EXHAUSTED') return error.retryAfterMs !== undefined;
  return true;
}

/** The name of a numeric status code; unknown numbers map to UNKNOWN. */
export function statusName(code: number): StatusName {
  const name: unknown = (status as unknown as Record<number, unknown>)[code];
  return typeof name === 'string' && name in status ? (name as StatusName) : 'UNKNOWN';
}

function isServiceError(error: unknown): error is ServiceError {
  return (
    error instanceof Error &&
    typeof (error as Partial<ServiceError>).code === 'number' &&
    typeof (error as Partial<ServiceError>).details === 'string'
  );
}

function readRetryAfterMs(metadata: Metadata): number | undefined {
  const [value] = metadata.get(RETRY_AFTER_TRAILER);
  if (value === undefined) return undefined;
  const ms = Number(typeof value === 'string' ? value : value.toString('utf8'));
  return Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}
