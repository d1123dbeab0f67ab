/** One tenant's allowance: `rate` submissions a second on average, up to `burst` at once. */
export interface RateLimit {
  rate: number;
  burst: number;
}

interface Bucket {
  tokens: number;
  atMs: number;
  limit: RateLimit;
}

/** How often idle buckets are looked for. */
const SWEEP_EVERY_MS = 60_000;

/**
 * Per-tenant token buckets for submissions. A submission takes one token; a
 * tenant out of tokens is told how long until it has one again, which the
 * caller returns as a retry-after hint. Pure: the clock is passed in.
 */
export class TenantRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private lastSweepMs = 0;

  /**
   * @param limitOf a tenant's limit, or undefined for none
   */
  constructor(private readonly limitOf: (tenant: string) => RateLimit | undefined) {}

  /**
   * Takes `n` tokens for the tenant (a workflow of n steps): 0 when allowed,
   * else the milliseconds until they would be. More than the burst is
   * allowed from a full bucket and leaves it in debt, which later
   * submissions wait out: a big workflow costs what its steps would.
   */
  take(tenant: string, nowMs: number, n = 1): number {
    const limit = this.limitOf(tenant);
    if (!limit) return 0;
    this.sweep(nowMs);
    let b = this.buckets.get(tenant);
    if (!b) {
      b = { tokens: limit.burst, atMs: nowMs, limit };
      this.buckets.set(tenant, b);
    }
    b.tokens = Math.min(limit.burst, b.tokens + (Math.max(0, nowMs - b.atMs) / 1000) * limit.rate);
    b.atMs = nowMs;
    const need = Math.min(n, limit.burst);
    if (b.tokens >= need) {
      b.tokens -= n;
      return 0;
    }
    return Math.ceil(((need - b.tokens) / limit.rate) * 1000);
  }

  /** Forgets buckets that have refilled (a new one starts full, so nothing changes): memory stays bounded by active tenants. */
  private sweep(nowMs: number): void {
    if (nowMs - this.lastSweepMs < SWEEP_EVERY_MS) return;
    this.lastSweepMs = nowMs;
    for (const [tenant, b] of this.buckets) {
      if (b.tokens + (Math.max(0, nowMs - b.atMs) / 1000) * b.limit.rate >= b.limit.burst) this.buckets.delete(tenant);
    }
  }
}

/**
 * Parses rate limits: "500/1000" (500 a second, bursts of 1000) for every
 * tenant, or "500/1000,acme=50/100,batch-team=5" (a burst defaults to the
 * rate); "*=" names the default explicitly. Empty: no limits.
 */
export function parseRateLimits(text: string): { defaultLimit?: RateLimit; perTenant: Map<string, RateLimit> } {
  const perTenant = new Map<string, RateLimit>();
  let defaultLimit: RateLimit | undefined;
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    const tenant = eq >= 0 ? part.slice(0, eq).trim() : '*';
    const spec = eq >= 0 ? part.slice(eq + 1) : part;
    const [rateText, burstText] = spec.split('/');
    const rate = Number(rateText);
    const burst = burstText === undefined ? Math.max(1, rate) : Number(burstText);
    if (!tenant || !Number.isFinite(rate) || rate <= 0 || !Number.isFinite(burst) || burst < 1) {
      throw new Error(`"${part}" is not a rate limit: use rate[/burst] or tenant=rate[/burst] with a rate above 0 a second, e.g. 500/1000 or acme=50/100`);
    }
    if (tenant === '*') defaultLimit = { rate, burst };
    else perTenant.set(tenant, { rate, burst });
  }
  return { defaultLimit, perTenant };
}
