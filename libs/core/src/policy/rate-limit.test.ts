import { parseRateLimits, TenantRateLimiter } from './rate-limit';

describe('TenantRateLimiter', () => {
  it('allows a burst, then one per 1/rate seconds, and says how long to wait', () => {
    const limiter = new TenantRateLimiter(() => ({ rate: 10, burst: 3 }));
    expect([0, 0, 0].map(() => limiter.take('a', 0))).toEqual([0, 0, 0]);
    expect(limiter.take('a', 0)).toBe(100);
    expect(limiter.take('a', 50)).toBe(50);
    expect(limiter.take('a', 100)).toBe(0);
  });

  it('keeps tenants apart, and leaves unlimited tenants alone', () => {
    const limiter = new TenantRateLimiter((t) => (t === 'capped' ? { rate: 1, burst: 1 } : undefined));
    expect(limiter.take('capped', 0)).toBe(0);
    expect(limiter.take('capped', 0)).toBe(1000);
    for (let i = 0; i < 1000; i++) expect(limiter.take('free', 0)).toBe(0);
  });

  it('charges a workflow a token per step; one larger than the burst goes from a full bucket and leaves a debt', () => {
    const limiter = new TenantRateLimiter(() => ({ rate: 10, burst: 5 }));
    expect(limiter.take('a', 0, 3)).toBe(0);
    expect(limiter.take('a', 0, 3)).toBe(100);
    // Not full yet: wait until it is (3 tokens at 10/s).
    expect(limiter.take('a', 0, 50)).toBe(300);
    expect(limiter.take('a', 1000, 50)).toBe(0);
    // 45 tokens owed: the next submission waits 4.6 s, as 50 single ones would have.
    expect(limiter.take('a', 1000, 1)).toBe(4600);
    expect(limiter.take('a', 5600, 1)).toBe(0);
  });

  it('never banks more than the burst, however long a tenant was idle', () => {
    const limiter = new TenantRateLimiter(() => ({ rate: 100, burst: 5 }));
    limiter.take('a', 0);
    let allowed = 0;
    for (let i = 0; i < 20; i++) if (limiter.take('a', 3_600_000) === 0) allowed += 1;
    expect(allowed).toBe(5);
  });

  it('does not refill a slow tenant by forgetting its bucket while it is still empty', () => {
    // One every two minutes: emptied at 0, the bucket holds half a token at the sweep (61 s) and 3/4 at 90 s.
    const limiter = new TenantRateLimiter(() => ({ rate: 1 / 120, burst: 1 }));
    expect(limiter.take('slow', 0)).toBe(0);
    expect(limiter.take('other', 61_000)).toBe(0); // a sweep runs
    expect(limiter.take('slow', 90_000)).toBe(30_000);
    expect(limiter.take('slow', 120_000)).toBe(0);
  });
});

describe('parseRateLimits', () => {
  it('reads a default and per-tenant limits', () => {
    const { defaultLimit, perTenant } = parseRateLimits('500/1000, acme=50/100, tiny=5');
    expect(defaultLimit).toEqual({ rate: 500, burst: 1000 });
    expect(perTenant.get('acme')).toEqual({ rate: 50, burst: 100 });
    expect(perTenant.get('tiny')).toEqual({ rate: 5, burst: 5 });
    expect(parseRateLimits('').defaultLimit).toBeUndefined();
  });

  it('refuses nonsense, saying what a limit looks like', () => {
    expect(() => parseRateLimits('fast')).toThrow(/"fast" is not a rate limit: use rate\[\/burst\]/);
    expect(() => parseRateLimits('acme=-1')).toThrow(/not a rate limit/);
    expect(() => parseRateLimits('acme=5/0')).toThrow(/not a rate limit/);
    expect(() => parseRateLimits('acme=0/10')).toThrow(/rate above 0/);
  });
});
