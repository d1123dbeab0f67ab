import { DEFAULT_FIRE_RETRY_POLICY, fireRetryAt } from './fire-retry';

const NOW = Date.parse('2024-05-01T11:00:00Z');
const HOUR = 3_600_000;

describe('fireRetryAt', () => {
  it("waits the refusal's retry-after when it gives one", () => {
    expect(fireRetryAt({ nowMs: NOW, attempts: 7, retryAfterMs: 30_000, nextFireAtMs: NOW + HOUR })).toBe(NOW + 30_000);
    expect(fireRetryAt({ nowMs: NOW, attempts: 1, retryAfterMs: 0.2, nextFireAtMs: NOW + HOUR })).toBe(NOW + 1);
  });

  it('backs off exponentially with jitter otherwise, up to the cap', () => {
    const waits = (random: number) => [1, 2, 3, 9, 10, 40].map((attempts) => fireRetryAt({ nowMs: NOW, attempts, nextFireAtMs: NOW + HOUR }, DEFAULT_FIRE_RETRY_POLICY, () => random) - NOW);
    expect(waits(0)).toEqual([500, 1000, 2000, 128_000, 150_000, 150_000]);
    expect(waits(0.999_999)).toEqual([1000, 2000, 4000, 256_000, 300_000, 300_000]);
    expect(fireRetryAt({ nowMs: NOW, attempts: 1, retryAfterMs: undefined, nextFireAtMs: NOW + HOUR }, { baseMs: 10, maxMs: 10 }, () => 0)).toBe(NOW + 5);
  });

  it('never waits past the next fire time, which supersedes the pending one, and always moves on from now', () => {
    expect(fireRetryAt({ nowMs: NOW, attempts: 1, retryAfterMs: 2 * HOUR, nextFireAtMs: NOW + HOUR })).toBe(NOW + HOUR);
    expect(fireRetryAt({ nowMs: NOW, attempts: 20, nextFireAtMs: NOW + 60_000 }, DEFAULT_FIRE_RETRY_POLICY, () => 0.5)).toBe(NOW + 60_000);
    expect(fireRetryAt({ nowMs: NOW, attempts: 1, nextFireAtMs: NOW }, DEFAULT_FIRE_RETRY_POLICY, () => 0)).toBe(NOW + 1);
  });
});
