import { seededRandom } from '@autoglm/core';
import type { SqlEngine, SqlQueryable } from './sql-engine';

/**
 * Which faults to inject, as probabilities per write statement:
 * - `transient`: the statement fails before reaching the database, as on a
 *   dropped connection (nothing is written);
 * - `ambiguous`: the statement commits, then the caller sees a timeout, as
 *   when the database's answer is lost.
 */
export interface FaultSpec {
  transient: number;
  ambiguous: number;
  /** Seed for the fault sequence, so a failing run can be replayed. */
  seed: number;
}

/** Parses `transient=0.1,ambiguous=0.1,seed=7` (AUTOGLM_STORE_FAULTS). */
export function parseFaultSpec(text: string): FaultSpec {
  const spec: FaultSpec = { transient: 0, ambiguous: 0, seed: 1 };
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const [key, raw] = part.split('=');
    const value = Number(raw);
    if (!(key === 'transient' || key === 'ambiguous' || key === 'seed') || raw === undefined || !Number.isFinite(value)) {
      throw new Error(`store faults: "${part}" is not one of transient=<0..1>, ambiguous=<0..1>, seed=<n>`);
    }
    if (key !== 'seed' && (value < 0 || value > 1)) throw new Error(`store faults: ${key} must be between 0 and 1, got ${raw}`);
    spec[key] = value;
  }
  return spec;
}

/** The error a caller sees for an injected fault; marked transient like a real lost connection. */
export class InjectedFault extends Error {
  readonly transient = true;
  constructor(readonly kind: 'transient' | 'ambiguous') {
    super(kind === 'transient' ? 'injected fault: connection reset before the statement ran' : 'injected fault: timeout after the commit');
    this.name = 'InjectedFault';
  }
}

const WRITE = /^\s*(WITH|INSERT|UPDATE|DELETE)\b/i;

/**
 * A test aid: an engine that injects faults into write statements (reads
 * pass through), to prove that retries neither lose nor duplicate work.
 * Enabled in decision by AUTOGLM_STORE_FAULTS; never in production.
 */
export class FaultyEngine implements SqlEngine {
  readonly kind: SqlEngine['kind'];
  readonly injected = { transient: 0, ambiguous: 0 };
  private readonly next: () => number;

  constructor(
    private readonly inner: SqlEngine,
    private spec: FaultSpec,
  ) {
    this.kind = inner.kind;
    this.next = seededRandom(spec.seed);
  }

  /** Changes the fault rates from now on (the random sequence goes on). */
  setFaults(spec: Partial<Omit<FaultSpec, 'seed'>>): void {
    this.spec = { ...this.spec, ...spec };
  }

  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: T[] }> {
    return this.faulty(this.inner, sql, params);
  }

  transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T> {
    return this.inner.transaction((tx) => fn({ query: <R>(sql: string, params?: unknown[]) => this.faulty<R>(tx, sql, params) }));
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private async faulty<T>(target: SqlQueryable, sql: string, params?: unknown[]): Promise<{ rows: T[] }> {
    if (!WRITE.test(sql)) return target.query<T>(sql, params);
    const roll = this.next();
    if (roll < this.spec.transient) {
      this.injected.transient += 1;
      throw new InjectedFault('transient');
    }
    const result = await target.query<T>(sql, params);
    if (roll < this.spec.transient + this.spec.ambiguous) {
      this.injected.ambiguous += 1;
      throw new InjectedFault('ambiguous');
    }
    return result;
  }
}
