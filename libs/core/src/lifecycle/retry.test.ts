import fc from 'fast-check';
import { DEFAULT_RETRY_POLICY, retryDelayMs } from './retry';

describe('retryDelayMs', () => {
  it('doubles from the base on each failure and stops growing at the cap', () => {
    const top = () => 0.999999;
    expect([1, 2, 3, 4].map((n) => retryDelayMs(n, { baseMs: 100, maxMs: 1000 }, top))).toEqual([100, 200, 400, 800]);
    expect(retryDelayMs(5, { baseMs: 100, maxMs: 1000 }, top)).toBe(1000);
    expect(retryDelayMs(60, { baseMs: 100, maxMs: 1000 }, top)).toBe(1000);
  });

  it('always waits between half and all of the backoff, so retries spread out', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.double({ min: 0, max: 0.999999, noNaN: true }), (failures, r) => {
        const ceiling = Math.min(DEFAULT_RETRY_POLICY.maxMs, DEFAULT_RETRY_POLICY.baseMs * 2 ** (failures - 1));
        const delay = retryDelayMs(failures, DEFAULT_RETRY_POLICY, () => r);
        expect(delay).toBeGreaterThanOrEqual(Math.floor(ceiling / 2));
        expect(delay).toBeLessThanOrEqual(ceiling);
      }),
    );
  });

  it('gives tasks that failed together different delays', () => {
    const delays = new Set(Array.from({ length: 50 }, () => retryDelayMs(3)));
    expect(delays.size).toBeGreaterThan(10);
  });
});
