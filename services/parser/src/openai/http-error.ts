import { status } from '@grpc/grpc-js';
import { DomainError, InvalidArgumentError, NotFoundError } from '@autoglm/core';
import { RETRY_AFTER_TRAILER, toStatus, type Logger } from '@autoglm/runtime';
import { BODY_FIELD } from './request-body';

/** OpenAI's error body. */
export interface OpenAiErrorBody {
  error: {
    message: string;
    type: string;
    param: string | null;
    code: string | null;
  };
}

/** What the client gets for an error: status, OpenAI's body, and headers (Retry-After). */
export interface HttpError {
  statusCode: number;
  body: OpenAiErrorBody;
  headers: Record<string, string>;
  /** The gRPC status code of the same error (for spans, as the gRPC edge records them). */
  grpcCode: number;
}

/** A model neither the catalog nor any connected agent's server has: OpenAI's 404 `model_not_found`. */
export class ModelNotFoundError extends NotFoundError {
  constructor(readonly model: string, detail: string) {
    super(detail);
  }
}

interface Row {
  http: number;
  type: string;
  code: string | null;
}

/**
 * gRPC status → HTTP status and OpenAI error type. OpenAI's SDKs retry 408,
 * 409, 429 and 5xx, so only what retrying can fix is given one of those.
 */
export const HTTP_BY_GRPC: ReadonlyMap<status, Row> = new Map<status, Row>([
  [status.INVALID_ARGUMENT, { http: 400, type: 'invalid_request_error', code: null }],
  [status.OUT_OF_RANGE, { http: 400, type: 'invalid_request_error', code: null }],
  [status.FAILED_PRECONDITION, { http: 400, type: 'invalid_request_error', code: 'failed_precondition' }],
  [status.UNAUTHENTICATED, { http: 401, type: 'authentication_error', code: 'invalid_api_key' }],
  [status.PERMISSION_DENIED, { http: 403, type: 'permission_error', code: 'permission_denied' }],
  [status.NOT_FOUND, { http: 404, type: 'not_found_error', code: 'not_found' }],
  // Not 409, which the SDKs retry: the same request would exist again.
  [status.ALREADY_EXISTS, { http: 400, type: 'invalid_request_error', code: 'already_exists' }],
  [status.ABORTED, { http: 409, type: 'conflict_error', code: 'aborted' }],
  [status.RESOURCE_EXHAUSTED, { http: 429, type: 'rate_limit_error', code: 'rate_limit_exceeded' }],
  // As grpc-gateway maps it: the request was cancelled (by an operator's CancelTask, or shutdown) before it finished.
  [status.CANCELLED, { http: 499, type: 'cancelled_error', code: 'cancelled' }],
  [status.UNIMPLEMENTED, { http: 400, type: 'invalid_request_error', code: 'unsupported' }],
  [status.UNAVAILABLE, { http: 503, type: 'server_error', code: 'service_unavailable' }],
  [status.DEADLINE_EXCEEDED, { http: 504, type: 'server_error', code: 'timeout' }],
]);

const INTERNAL: Row = { http: 500, type: 'server_error', code: 'internal_error' };

const sameName = (field: string): string | null => (field === BODY_FIELD ? null : field);

/**
 * The one place that decides what an OpenAI client sees of an error. The
 * gRPC edge's toStatus() decides first (domain errors keep their message, a
 * downstream status of ours passes through, anything else is logged and
 * becomes INTERNAL naming only the trace); its code then picks the HTTP
 * status and OpenAI type. Fastify's own refusals (bad JSON, too large, wrong
 * content type) keep their 4xx.
 *
 * @param param the request's name for a field the shared parsing names.
 */
export function toHttpError(err: unknown, logger: Logger, param: (field: string) => string | null = sameName): HttpError {
  const framework = frameworkRefusal(err);
  if (framework) return framework;
  const st = toStatus(err, logger);
  const row = HTTP_BY_GRPC.get(st.code) ?? INTERNAL;
  const headers: Record<string, string> = {};
  const retryMs = Number(st.metadata.get(RETRY_AFTER_TRAILER)[0]);
  if (row.http === 429 && Number.isFinite(retryMs) && retryMs > 0) {
    headers['retry-after'] = String(Math.max(1, Math.ceil(retryMs / 1000)));
    // OpenAI's SDKs read this one first: a finer wait than whole seconds.
    headers['retry-after-ms'] = String(Math.ceil(retryMs));
  }
  let message = st.details;
  let name: string | null = null;
  let code = row.code;
  let type = row.type;
  if (err instanceof InvalidArgumentError) {
    name = param(err.field);
    const prefix = `${err.field}: `;
    if (message.startsWith(prefix)) message = name === null ? message.slice(prefix.length) : `${name}: ${message.slice(prefix.length)}`;
  } else if (err instanceof ModelNotFoundError) {
    // As OpenAI answers an unknown model.
    name = 'model';
    type = 'invalid_request_error';
    code = 'model_not_found';
  }
  return { statusCode: row.http, body: { error: { message, type, param: name, code } }, headers, grpcCode: st.code };
}

/** Fastify's refusals of a request it could not read (a 4xx it set: bad JSON, too large, not JSON). */
function frameworkRefusal(err: unknown): HttpError | undefined {
  if (!(err instanceof Error) || err instanceof DomainError) return undefined;
  const { statusCode, code } = err as { statusCode?: unknown; code?: unknown };
  if (typeof statusCode !== 'number' || statusCode < 400 || statusCode >= 500) return undefined;
  const message =
    code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
      ? 'the body must be JSON: send Content-Type: application/json'
      : code === 'FST_ERR_CTP_INVALID_JSON_BODY' || code === 'FST_ERR_CTP_EMPTY_JSON_BODY'
        ? `the body is not valid JSON (${err.message})`
        : err.message;
  return { statusCode, body: { error: { message, type: 'invalid_request_error', param: null, code: statusCode === 413 ? 'request_too_large' : null } }, headers: {}, grpcCode: status.INVALID_ARGUMENT };
}
