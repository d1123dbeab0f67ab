import { Metadata, status } from '@grpc/grpc-js';
import pino from 'pino';
import { CancelledError, DomainError, InvalidArgumentError, PermissionDeniedError, ResourceExhaustedError, UnauthenticatedError, UnavailableError } from '@autoglm/core';
import { ourStatus } from '@autoglm/runtime';
import { HTTP_BY_GRPC, ModelNotFoundError, toHttpError } from './http-error';

const quiet = pino({ level: 'silent' });
const map = (err: unknown, param?: (field: string) => string | null) => toHttpError(err, quiet, param);

describe('toHttpError: one mapping from our errors to OpenAI-shaped HTTP answers', () => {
  it('400 invalid_request_error naming the field as the request names it', () => {
    const answer = map(new InvalidArgumentError('input.params.temperature', '3 is outside [0, 2]'), (f) => f.replace('input.params.', ''));
    expect(answer).toMatchObject({ statusCode: 400, grpcCode: status.INVALID_ARGUMENT, headers: {} });
    expect(answer.body).toEqual({ error: { message: 'temperature: 3 is outside [0, 2]', type: 'invalid_request_error', param: 'temperature', code: null } });
    expect(map(new InvalidArgumentError('body', 'must be a JSON object')).body.error).toMatchObject({ param: null, message: 'must be a JSON object' });
  });

  it('401 for a missing or unknown credential, 403 for a role that may not', () => {
    expect(map(new UnauthenticatedError('no credential: send a token'))).toMatchObject({
      statusCode: 401,
      body: { error: { message: 'no credential: send a token', type: 'authentication_error', param: null, code: 'invalid_api_key' } },
    });
    expect(map(new PermissionDeniedError('a viewer may not Infer'))).toMatchObject({ statusCode: 403, body: { error: { type: 'permission_error' } } });
  });

  it('404 model_not_found for an unknown model, as OpenAI answers it', () => {
    expect(map(new ModelNotFoundError('glm-9', '"glm-9" is not in the catalog'))).toMatchObject({
      statusCode: 404,
      body: { error: { message: '"glm-9" is not in the catalog', type: 'invalid_request_error', param: 'model', code: 'model_not_found' } },
    });
  });

  it('429 with Retry-After (seconds, rounded up) and retry-after-ms from the rate limiter', () => {
    const answer = map(new ResourceExhaustedError('tenant a is over its submission rate limit', 1500));
    expect(answer).toMatchObject({ statusCode: 429, headers: { 'retry-after': '2', 'retry-after-ms': '1500' }, body: { error: { type: 'rate_limit_error', code: 'rate_limit_exceeded' } } });
    expect(map(new ResourceExhaustedError('too many streams')).headers).toEqual({});
  });

  it('passes a downstream status of ours through with its code, and hides one grpc-js made', () => {
    expect(map(ourStatus(status.UNAVAILABLE, 'decision is draining', 300))).toMatchObject({ statusCode: 503, body: { error: { message: 'decision is draining', type: 'server_error' } } });
    const transport = Object.assign(new Error('14 UNAVAILABLE: connect ECONNREFUSED 10.0.0.7:50052'), { code: status.UNAVAILABLE, details: 'connect ECONNREFUSED 10.0.0.7:50052', metadata: new Metadata() });
    const answer = map(transport);
    expect(answer.statusCode).toBe(503);
    expect(answer.body.error.message).not.toMatch(/10\.0\.0\.7/);
    expect(map(new UnavailableError('the parser is shutting down')).statusCode).toBe(503);
    expect(map(new DomainError('DEADLINE_EXCEEDED', 'Infer: no start message')).statusCode).toBe(504);
    expect(map(new CancelledError('cancelled by an operator'))).toMatchObject({ statusCode: 499, grpcCode: status.CANCELLED });
  });

  it('500 without internals for anything else', () => {
    const answer = map(new TypeError("Cannot read properties of undefined (reading 'secret') at /srv/parser/dist/x.js:1"));
    expect(answer).toMatchObject({ statusCode: 500, grpcCode: status.INTERNAL, body: { error: { type: 'server_error', param: null, code: 'internal_error' } } });
    expect(answer.body.error.message).toMatch(/^internal error/);
    expect(answer.body.error.message).not.toMatch(/secret|srv/);
  });

  it("keeps the framework's own refusals of a body it could not read", () => {
    const tooLarge = Object.assign(new RangeError('Request body is too large'), { statusCode: 413, code: 'FST_ERR_CTP_BODY_TOO_LARGE' });
    expect(map(tooLarge)).toMatchObject({ statusCode: 413, body: { error: { type: 'invalid_request_error', code: 'request_too_large' } } });
    const notJson = Object.assign(new Error('Unsupported Media Type'), { statusCode: 415, code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE' });
    expect(map(notJson).body.error.message).toMatch(/Content-Type: application\/json/);
    const badJson = Object.assign(new SyntaxError('Body is not valid JSON but content-type is set to \'application/json\''), { statusCode: 400, code: 'FST_ERR_CTP_INVALID_JSON_BODY' });
    expect(map(badJson)).toMatchObject({ statusCode: 400, body: { error: { type: 'invalid_request_error' } } });
  });

  it('gives only what retrying can fix a status OpenAI clients retry (408, 409, 429, 5xx)', () => {
    const retried = (http: number) => http === 408 || http === 409 || http === 429 || http >= 500;
    const retriedCodes = [...HTTP_BY_GRPC].filter(([, row]) => retried(row.http)).map(([code]) => status[code]);
    expect(retriedCodes.sort()).toEqual(['ABORTED', 'DEADLINE_EXCEEDED', 'RESOURCE_EXHAUSTED', 'UNAVAILABLE']);
  });
});
