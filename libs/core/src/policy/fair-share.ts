import { InvalidArgumentError } from '../errors';
import { NO_RESOURCES, type Resources } from '../placement/claim';

export type { Resources } from '../placement/claim';

export const RESOURCE_NAMES = ['gpus', 'gpuMemoryBytes', 'cpus'] as const;
export type ResourceName = (typeof RESOURCE_NAMES)[number];

/** A quota on one resource, as Kueue's ClusterQueue has it. */
export interface ResourceQuota {
  /** What the tenant is guaranteed (and may use without borrowing). */
  nominal: number;
  /** How much more than nominal it may borrow while others leave capacity unused; unlimited when absent. */
  borrowingLimit?: number;
}

export interface TenantConfig {
  name: string;
  /** Relative weight of its fair share. @default 1 */
  share?: number;
  /** Quotas per resource; a resource without one is unlimited. */
  quota?: Partial<Record<ResourceName, ResourceQuota>>;
}

interface TenantState {
  name: string;
  share: number;
  quota: Partial<Record<ResourceName, ResourceQuota>>;
  allocated: Resources;
  /** Decayed integral of the dominant share (share-milliseconds), as of `asOfMs`. */
  decayed: number;
  asOfMs: number;
  /** Has queued or running work: only active tenants divide the fleet. */
  queued: number;
}

const ZERO: Resources = NO_RESOURCES;

/**
 * Weighted dominant-resource fair share with usage decay, and quotas.
 *
 * A tenant's usage rate is its dominant share (DRF): the largest of its
 * fractions of the fleet's GPUs, GPU memory and job cores, as the claim
 * model counts them (a batch job's whole GPUs, a sequence's share of its
 * replica, a CPU job's cores). Usage is integrated over
 * time and decays with a half-life, as Slurm's fair-share usage does, so a
 * tenant that ran a lot an hour ago is not punished for ever and one that just
 * burst is held back. `usageOverShare` compares a tenant's part of the active
 * tenants' decayed usage with its part of their shares (1 = exactly its share).
 *
 * Quotas are Kueue's: a tenant may always use its nominal amount and may
 * borrow up to a limit beyond it; a tenant above nominal on any resource is a
 * borrower (first to be preempted when a tenant within its quota needs room).
 */
export class FairShare {
  private readonly tenants = new Map<string, TenantState>();
  private readonly defaults: { share: number };
  private capacity: Resources = ZERO;
  private halfLifeMs: number;
  private readonly boosts = new Map<string, number>();
  /** Whether any configured tenant has a quota (quotas come only from configuration). */
  private readonly quotas: boolean;

  constructor(tenants: TenantConfig[] = [], options: { halfLifeMs: number; defaultShare?: number; nowMs?: number }) {
    this.halfLifeMs = options.halfLifeMs;
    this.defaults = { share: options.defaultShare ?? 1 };
    const now = options.nowMs ?? 0;
    for (const [i, t] of tenants.entries()) {
      const share = t.share ?? this.defaults.share;
      if (!t.name) throw new InvalidArgumentError(`tenants[${i}].name`, 'is required');
      if (!(share > 0) || !Number.isFinite(share)) throw new InvalidArgumentError(`tenants[${i}].share`, `must be a positive number, got ${share}`);
      for (const [resource, q] of Object.entries(t.quota ?? {})) {
        if (!(RESOURCE_NAMES as readonly string[]).includes(resource)) {
          throw new InvalidArgumentError(`tenants[${i}].quota.${resource}`, `unknown resource; use ${RESOURCE_NAMES.join(' or ')}`);
        }
        if (!q || !(q.nominal >= 0)) throw new InvalidArgumentError(`tenants[${i}].quota.${resource}.nominal`, 'must be 0 or more');
        if (q.borrowingLimit !== undefined && !(q.borrowingLimit >= 0)) {
          throw new InvalidArgumentError(`tenants[${i}].quota.${resource}.borrowingLimit`, 'must be 0 or more (leave it out for no limit)');
        }
      }
      this.tenants.set(t.name, { name: t.name, share, quota: { ...t.quota }, allocated: { ...ZERO }, decayed: 0, asOfMs: now, queued: 0 });
    }
    this.quotas = [...this.tenants.keys()].some((name) => this.hasQuota(name));
  }

  /** The fleet's total resources, against which dominant shares are measured. */
  setCapacity(capacity: Resources, nowMs: number): void {
    for (const t of this.tenants.values()) this.advance(t, nowMs);
    this.capacity = { ...capacity };
  }

  setHalfLife(halfLifeMs: number, nowMs: number): void {
    for (const t of this.tenants.values()) this.advance(t, nowMs);
    this.halfLifeMs = halfLifeMs;
  }

  /** Multiplies a tenant's share (the policy's tenant boosts); 1 when unset. */
  setBoosts(boosts: Record<string, number>): void {
    this.boosts.clear();
    for (const [name, b] of Object.entries(boosts)) this.boosts.set(name, b);
  }

  /** Counts a tenant's queued work in or out (a tenant with none takes no part in dividing the fleet). */
  queued(tenant: string, delta: number): void {
    const t = this.state(tenant);
    t.queued = Math.max(0, t.queued + delta);
  }

  allocate(tenant: string, r: Resources, nowMs: number): void {
    const t = this.state(tenant);
    this.advance(t, nowMs);
    t.allocated.gpus += r.gpus;
    t.allocated.gpuMemoryBytes += r.gpuMemoryBytes;
    t.allocated.cpus += r.cpus;
  }

  release(tenant: string, r: Resources, nowMs: number): void {
    const t = this.state(tenant);
    this.advance(t, nowMs);
    t.allocated.gpus = Math.max(0, t.allocated.gpus - r.gpus);
    t.allocated.gpuMemoryBytes = Math.max(0, t.allocated.gpuMemoryBytes - r.gpuMemoryBytes);
    t.allocated.cpus = Math.max(0, t.allocated.cpus - r.cpus);
  }

  allocated(tenant: string): Resources {
    return { ...(this.tenants.get(tenant)?.allocated ?? ZERO) };
  }

  /**
   * Whether the tenant holds its share of the fleet or more now (its
   * dominant share against its part of the active tenants' shares) while
   * another tenant with work queued holds less than its own: running more of
   * this tenant's work first would crowd that one out. The age bound's
   * promises (reservations, overdue placements) are kept for work that does
   * not; a tenant alone, or within its share, is never crowding.
   */
  crowdsOthers(tenant: string): boolean {
    const t = this.tenants.get(tenant);
    if (!t) return false;
    let shares = 0;
    for (const other of this.tenants.values()) if (this.active(other)) shares += this.shareOf(other);
    if (!this.active(t)) shares += this.shareOf(t);
    if (!(shares > 0) || this.rate(t.allocated) < this.shareOf(t) / shares) return false;
    for (const other of this.tenants.values()) {
      if (other !== t && other.queued > 0 && this.rate(other.allocated) < this.shareOf(other) / shares) return true;
    }
    return false;
  }

  /** The tenant's current dominant share of the fleet, 0..1. */
  dominantShare(tenant: string): number {
    const t = this.tenants.get(tenant);
    return t ? this.rate(t.allocated) : 0;
  }

  /**
   * The tenant's part of the active tenants' decayed usage over its part of
   * their (boosted) shares: 0 unused, 1 exactly its share, 2 twice it.
   */
  usageOverShare(tenant: string, nowMs: number): number {
    return this.usageOverShares(nowMs).get(tenant) ?? 0;
  }

  /** usageOverShare for every known tenant at once (one pass). */
  usageOverShares(nowMs: number): Map<string, number> {
    let usage = 0;
    let shares = 0;
    for (const t of this.tenants.values()) {
      this.advance(t, nowMs);
      if (!this.active(t)) continue;
      usage += t.decayed;
      shares += this.shareOf(t);
    }
    const out = new Map<string, number>();
    for (const t of this.tenants.values()) {
      const total = this.active(t) ? shares : shares + this.shareOf(t);
      out.set(t.name, usage > 0 && total > 0 ? t.decayed / usage / (this.shareOf(t) / total) : 0);
    }
    return out;
  }

  /** Why the tenant cannot take `demand` more without breaking a quota, or undefined when it can. */
  quotaBlock(tenant: string, demand: Resources): string | undefined {
    const t = this.tenants.get(tenant);
    if (!t) return undefined;
    for (const resource of RESOURCE_NAMES) {
      const q = t.quota[resource];
      if (!q || q.borrowingLimit === undefined) continue;
      const limit = q.nominal + q.borrowingLimit;
      if (t.allocated[resource] + demand[resource] > limit) {
        return `tenant ${tenant} would use ${formatAmount(resource, t.allocated[resource] + demand[resource])} of ${resource}, over its quota of ${formatAmount(resource, q.nominal)} nominal + ${formatAmount(resource, q.borrowingLimit)} borrowing`;
      }
    }
    return undefined;
  }

  /** Whether the tenant uses more than its nominal quota of some resource (so it is borrowing). */
  isBorrowing(tenant: string): boolean {
    const t = this.tenants.get(tenant);
    if (!t) return false;
    return RESOURCE_NAMES.some((r) => t.quota[r] !== undefined && t.allocated[r] > t.quota[r]!.nominal);
  }

  /**
   * What the tenant uses beyond its nominal quota, per resource: 0 within
   * it, and 0 for a resource its quota leaves out. Once any tenant has a
   * quota, a tenant without one counts as having a nominal quota of 0 on
   * every resource (all it uses is borrowed); with no quotas anywhere, 0.
   */
  borrowed(tenant: string): Resources {
    const t = this.tenants.get(tenant);
    if (!t || !this.anyQuota()) return { ...NO_RESOURCES };
    const unquoted = this.hasQuota(tenant) ? undefined : 0;
    const over = (r: ResourceName) => {
      const nominal = t.quota[r]?.nominal ?? unquoted;
      return nominal === undefined ? 0 : Math.max(0, t.allocated[r] - nominal);
    };
    return { gpus: over('gpus'), gpuMemoryBytes: over('gpuMemoryBytes'), cpus: over('cpus') };
  }

  /** Whether any tenant has a nominal quota. */
  anyQuota(): boolean {
    return this.quotas;
  }

  /** Whether the tenant has a nominal quota on any resource (only such a tenant can reclaim). */
  hasQuota(tenant: string): boolean {
    const t = this.tenants.get(tenant);
    return t !== undefined && RESOURCE_NAMES.some((r) => t.quota[r] !== undefined);
  }

  /** Whether `demand` more keeps the tenant within its nominal quota on every resource with one. */
  withinNominal(tenant: string, demand: Resources): boolean {
    const t = this.tenants.get(tenant);
    if (!t) return true;
    return RESOURCE_NAMES.every((r) => t.quota[r] === undefined || t.allocated[r] + demand[r] <= t.quota[r]!.nominal);
  }

  /** Known tenants (configured, or seen since start). */
  names(): string[] {
    return [...this.tenants.keys()];
  }

  private shareOf(t: TenantState): number {
    return t.share * (this.boosts.get(t.name) ?? 1);
  }

  private active(t: TenantState): boolean {
    return t.queued > 0 || t.allocated.gpus > 0 || t.allocated.gpuMemoryBytes > 0 || t.allocated.cpus > 0;
  }

  private state(tenant: string): TenantState {
    let t = this.tenants.get(tenant);
    if (!t) {
      t = { name: tenant, share: this.defaults.share, quota: {}, allocated: { ...ZERO }, decayed: 0, asOfMs: Number.NaN, queued: 0 };
      this.tenants.set(tenant, t);
    }
    return t;
  }

  private rate(r: Resources): number {
    const gpus = this.capacity.gpus > 0 ? r.gpus / this.capacity.gpus : 0;
    const memory = this.capacity.gpuMemoryBytes > 0 ? r.gpuMemoryBytes / this.capacity.gpuMemoryBytes : 0;
    const cpus = this.capacity.cpus > 0 ? r.cpus / this.capacity.cpus : 0;
    return Math.max(gpus, memory, cpus);
  }

  /** Brings the decayed usage up to `nowMs`: old usage halves every half-life, the current rate adds in. */
  private advance(t: TenantState, nowMs: number): void {
    if (Number.isNaN(t.asOfMs)) t.asOfMs = nowMs;
    const dt = nowMs - t.asOfMs;
    if (dt <= 0) return;
    const keep = 2 ** (-dt / this.halfLifeMs);
    // The integral of rate * 2^(-(now - s)/h) ds over the interval, the rate being constant in it.
    t.decayed = t.decayed * keep + this.rate(t.allocated) * (this.halfLifeMs / Math.LN2) * (1 - keep);
    t.asOfMs = nowMs;
  }
}

function formatAmount(resource: ResourceName, n: number): string {
  if (resource === 'gpuMemoryBytes') return `${(n / 2 ** 30).toFixed(1)} GiB`;
  // Sequences count fractions of a replica's GPUs.
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}
