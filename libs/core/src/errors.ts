/**
 * Typed domain errors. Services never build gRPC statuses by hand: they throw
 * one of these and the single `toStatus()` at each server edge (libs/runtime)
 * maps it to its code. Anything else that escapes becomes INTERNAL with a
 * generic message, so internals never leak to a client.
 */

/** The gRPC code a domain error maps to, by name (kept free of grpc-js here). */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'FAILED_PRECONDITION'
  | 'RESOURCE_EXHAUSTED'
  | 'PERMISSION_DENIED'
  | 'UNAUTHENTICATED'
  | 'UNAVAILABLE'
  | 'DEADLINE_EXCEEDED'
  | 'CANCELLED'
  | 'ABORTED';

/** Base of every error a client may see verbatim. */
export class DomainError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Bad input. `field` names the offending field in the request, snake_case as in the proto. */
export class InvalidArgumentError extends DomainError {
  readonly field: string;

  constructor(field: string, message: string) {
    super('INVALID_ARGUMENT', `${field}: ${message}`);
    this.field = field;
  }
}

/** A referenced entity does not exist (or the caller may not see it). */
export class NotFoundError extends DomainError {
  constructor(message: string) {
    super('NOT_FOUND', message);
  }
}

/** What the request would create exists already, differently (a reused idempotency key). */
export class AlreadyExistsError extends DomainError {
  constructor(message: string) {
    super('ALREADY_EXISTS', message);
  }
}

/** The request is valid but the system is not in a state to do it. */
export class FailedPreconditionError extends DomainError {
  constructor(message: string) {
    super('FAILED_PRECONDITION', message);
  }
}

/** A limit was hit; `retryAfterMs` tells the client when trying again makes sense. */
export class ResourceExhaustedError extends DomainError {
  readonly retryAfterMs: number | undefined;

  constructor(message: string, retryAfterMs?: number) {
    super('RESOURCE_EXHAUSTED', message);
    this.retryAfterMs = retryAfterMs;
  }
}

/** A dependency (another service, the store) cannot be reached; retrying may help. */
export class UnavailableError extends DomainError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNAVAILABLE', message, options);
  }
}

/** The operation was cancelled by its caller or by shutdown. */
export class CancelledError extends DomainError {
  constructor(message: string) {
    super('CANCELLED', message);
  }
}

/** Lost a race with another change (a lease superseded, a placement undone); trying the whole request again may succeed. */
export class AbortedError extends DomainError {
  constructor(message: string) {
    super('ABORTED', message);
  }
}
