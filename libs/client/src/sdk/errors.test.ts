import { Metadata, status } from '@grpc/grpc-js';
import { backoffDelay, resolveRetryOptions } from './backoff';
import { AutoglmError, isRetryable, statusName } from './errors';

describe('AutoglmError', () => {
  it('keeps a server status by name, with details, trailers and cause', () => {
    const metadata = new Metadata();
    metadata.set('retry-after-ms', '250');
    const serviceError = Object.assign(new Error('8 RESOURCE_EXHAUSTED: slow down'), {
      code: status.RESOURCE_EXHAUSTED,
      details: 'slow down',
      metadata,
    });
    const error = AutoglmError.from(serviceError);
    expect(error).toMatchObject({ code: 'RESOURCE_EXHAUSTED', details: 'slow down', message: 'slow down', retryAfterMs: 250 });
    expect(error.cause).toBe(serviceError);
    expect(AutoglmError.from(error)).toBe(error);
  });

  it('turns anything else into UNKNOWN', () => {
    expect(AutoglmError.from(new TypeError('boom'))).toMatchObject({ code: 'UNKNOWN', details: 'boom' });
    expect(AutoglmError.from('text')).toMatchObject({ code: 'UNKNOWN', details: 'text' });
    expect(statusName(99)).toBe('UNKNOWN');
    expect(statusName(status.NOT_FOUND)).toBe('NOT_FOUND');
  });

  it('retries UNAVAILABLE, and RESOURCE_EXHAUSTED only with retry-after-ms', () => {
    const withTrailer = new Metadata();
    withTrailer.set('retry-after-ms', '10');
    expect(isRetryable(new AutoglmError('UNAVAILABLE', 'x'))).toBe(true);
    expect(isRetryable(new AutoglmError('RESOURCE_EXHAUSTED', 'x'))).toBe(false);
    expect(isRetryable(new AutoglmError('RESOURCE_EXHAUSTED', 'x', { metadata: withTrailer }))).toBe(true);
    for (const code of ['INTERNAL', 'UNKNOWN', 'DEADLINE_EXCEEDED', 'INVALID_ARGUMENT'] as const) {
      expect(isRetryable(new AutoglmError(code, 'x'))).toBe(false);
    }
  });
});

describe('backoffDelay', () => {
  const options = resolveRetryOptions({ initialBackoffMs: 100, maxBackoffMs: 1000 });

  it('doubles up to the ceiling, with ±20 % jitter', () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, options, undefined, () => 0.5))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelay(1, options, undefined, () => 0)).toBe(80);
    expect(backoffDelay(1, options, undefined, () => 1)).toBe(120);
  });

  it('waits at least what the server asked for', () => {
    expect(backoffDelay(1, options, 750, () => 0.5)).toBe(750);
  });
});
