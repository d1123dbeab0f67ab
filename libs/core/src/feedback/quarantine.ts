import { RollingCounts } from './window';
import type { TaskOutcome } from './slo';

export interface QuarantineConfig {
  readonly enabled: boolean;
  /** Attempts judged over this window. */
  readonly windowMs: number;
  /** A node is judged only once it has finished this many attempts in the window. */
  readonly minAttempts: number;
  /**
   * It stands out when failing this many attempts is this unlikely for a node
   * failing at the rest of the fleet's rate (one-sided binomial tail).
   */
  readonly significance: number;
  /** ... and its own failure rate is at least this (a few unlucky failures on a healthy fleet are not a fault). */
  readonly minFailureRatio: number;
  /** Slow: its requests' mean time to first token is this many times the rest of the fleet's for the same model. */
  readonly slowRatio: number;
  /** How long a first quarantine lasts; each repeat within a day doubles it, up to maxProbationMs. */
  readonly probationMs: number;
  readonly maxProbationMs: number;
  /** Never more than this share of the nodes quarantined at once (and never the last one). */
  readonly maxQuarantinedFraction: number;
}

export const DEFAULT_QUARANTINE_CONFIG: QuarantineConfig = Object.freeze({
  enabled: true,
  windowMs: 600_000,
  minAttempts: 8,
  significance: 1e-4,
  minFailureRatio: 0.15,
  slowRatio: 3,
  probationMs: 300_000,
  maxProbationMs: 3_600_000,
  maxQuarantinedFraction: 0.25,
});

/** Floor on the fleet's failure rate a node is compared with, so one failure on a spotless fleet is no outlier. */
const FLEET_RATE_FLOOR = 0.02;
const TTFT_SAMPLES = 64;

interface NodeRecord {
  attempts: RollingCounts;
  /** Recent times to first token by model (newest last). */
  ttft: Map<string, number[]>;
  quarantinedUntilMs: number | undefined;
  /** Quarantines in the last day, for the doubling. */
  strikes: number;
  lastStrikeMs: number;
}

export type NodeVerdict =
  | { kind: 'quarantine'; nodeId: string; untilMs: number; reason: string }
  | { kind: 'readmit'; nodeId: string; reason: string };

/**
 * Watches each node's attempts for a failure rate or latency that stands out
 * from the rest of the fleet, and says when to quarantine a node (drain it:
 * no new work, running work finishes) and when to readmit it after its
 * probation. A readmitted node is judged afresh, on what it does after
 * readmission; failing again quarantines it for twice as long.
 */
export class NodeWatch {
  private readonly nodes = new Map<string, NodeRecord>();

  constructor(readonly config: QuarantineConfig = DEFAULT_QUARANTINE_CONFIG) {}

  /** Counts a finished attempt against the node it ran on. */
  record(o: TaskOutcome): void {
    if (o.nodeId === '' || o.stopped) return;
    const node = this.node(o.nodeId);
    if (node.quarantinedUntilMs !== undefined) return;
    // good = failed: the counts are of failures.
    node.attempts.add(o.atMs, !o.succeeded);
    if (o.succeeded && o.ttftSeconds !== undefined) {
      let samples = node.ttft.get(o.model);
      if (samples === undefined) node.ttft.set(o.model, (samples = []));
      samples.push(o.ttftSeconds);
      if (samples.length > TTFT_SAMPLES) samples.shift();
    }
  }

  /** A node left the fleet: forget it. */
  forget(nodeId: string): void {
    this.nodes.delete(nodeId);
  }

  isQuarantined(nodeId: string): boolean {
    return this.nodes.get(nodeId)?.quarantinedUntilMs !== undefined;
  }

  /** Nodes quarantined now, with when their probation ends. */
  quarantined(): Array<{ nodeId: string; untilMs: number }> {
    const out: Array<{ nodeId: string; untilMs: number }> = [];
    for (const [nodeId, n] of this.nodes) if (n.quarantinedUntilMs !== undefined) out.push({ nodeId, untilMs: n.quarantinedUntilMs });
    return out;
  }

  /** What to change now, given the nodes in the fleet (those that finished attempts count too). */
  judge(nowMs: number, fleetNodeIds: readonly string[]): NodeVerdict[] {
    const verdicts: NodeVerdict[] = [];
    for (const [nodeId, n] of this.nodes) {
      if (n.quarantinedUntilMs !== undefined && nowMs >= n.quarantinedUntilMs) {
        n.quarantinedUntilMs = undefined;
        n.attempts = new RollingCounts(this.config.windowMs);
        n.ttft.clear();
        verdicts.push({ kind: 'readmit', nodeId, reason: 'probation over: readmitted and watched afresh' });
      }
    }
    if (!this.config.enabled) return verdicts;
    // A node that has finished attempts is in the fleet, even before a snapshot of the fleet lists it.
    const nodeIds = [...new Set([...fleetNodeIds, ...this.nodes.keys()])];
    const inFleet = nodeIds.length;
    let quarantined = 0;
    for (const id of nodeIds) if (this.isQuarantined(id)) quarantined += 1;
    const cap = Math.min(inFleet - 1, Math.floor(inFleet * this.config.maxQuarantinedFraction));

    // The fleet's totals, to compare each node with the others.
    let fleetFailed = 0;
    let fleetTotal = 0;
    const totals = new Map<string, { failed: number; total: number }>();
    for (const id of nodeIds) {
      const n = this.nodes.get(id);
      if (n === undefined || n.quarantinedUntilMs !== undefined) continue;
      const { good: failed, total } = n.attempts.totals(nowMs);
      totals.set(id, { failed, total });
      fleetFailed += failed;
      fleetTotal += total;
    }
    const candidates: Array<{ nodeId: string; score: number; reason: string }> = [];
    for (const [id, { failed, total }] of totals) {
      const reason = this.failureReason(failed, total, fleetFailed - failed, fleetTotal - total) ?? this.slowReason(id, nowMs);
      if (reason !== undefined) candidates.push({ nodeId: id, score: total === 0 ? 0 : failed / total, reason });
    }
    // The worst first, while the cap allows.
    candidates.sort((a, b) => b.score - a.score);
    for (const c of candidates) {
      if (quarantined >= cap) break;
      const n = this.nodes.get(c.nodeId)!;
      n.strikes = nowMs - n.lastStrikeMs < 86_400_000 ? n.strikes + 1 : 1;
      n.lastStrikeMs = nowMs;
      const probation = Math.min(this.config.maxProbationMs, this.config.probationMs * 2 ** (n.strikes - 1));
      n.quarantinedUntilMs = nowMs + probation;
      quarantined += 1;
      verdicts.push({ kind: 'quarantine', nodeId: c.nodeId, untilMs: n.quarantinedUntilMs, reason: `${c.reason}; quarantined for ${Math.round(probation / 1000)} s` });
    }
    return verdicts;
  }

  private failureReason(failed: number, total: number, othersFailed: number, othersTotal: number): string | undefined {
    if (total < this.config.minAttempts || failed / total < this.config.minFailureRatio) return undefined;
    const fleetRate = Math.max(FLEET_RATE_FLOOR, othersTotal === 0 ? 0 : othersFailed / othersTotal);
    const p = binomialTail(total, failed, fleetRate);
    if (p >= this.config.significance) return undefined;
    return `failed ${failed} of its last ${total} attempts (${pct(failed / total)}) against ${pct(fleetRate)} on the rest of the fleet`;
  }

  private slowReason(nodeId: string, _nowMs: number): string | undefined {
    const node = this.nodes.get(nodeId)!;
    for (const [model, samples] of node.ttft) {
      if (samples.length < this.config.minAttempts) continue;
      const others: number[] = [];
      for (const [id, n] of this.nodes) if (id !== nodeId && n.quarantinedUntilMs === undefined) others.push(...(n.ttft.get(model) ?? []));
      if (others.length < this.config.minAttempts) continue;
      const mine = mean(samples);
      const theirs = mean(others);
      if (theirs > 0 && mine >= this.config.slowRatio * theirs) {
        return `its ${model} requests take ${mine.toFixed(2)} s to the first token, ${(mine / theirs).toFixed(1)}× the rest of the fleet's ${theirs.toFixed(2)} s`;
      }
    }
    return undefined;
  }

  private node(nodeId: string): NodeRecord {
    let n = this.nodes.get(nodeId);
    if (n === undefined) {
      n = { attempts: new RollingCounts(this.config.windowMs), ttft: new Map(), quarantinedUntilMs: undefined, strikes: 0, lastStrikeMs: -Infinity };
      this.nodes.set(nodeId, n);
    }
    return n;
  }
}

/** P(X >= k) for X ~ Binomial(n, p), summed in log space. */
export function binomialTail(n: number, k: number, p: number): number {
  if (k <= 0) return 1;
  if (p <= 0) return 0;
  if (p >= 1) return 1;
  const logP = Math.log(p);
  const logQ = Math.log1p(-p);
  // Sum the upper tail from k: terms shrink fast past the mean, so stop once they no longer matter.
  let logCoef = logChoose(n, k);
  let sum = 0;
  for (let i = k; i <= n; i++) {
    const term = Math.exp(logCoef + i * logP + (n - i) * logQ);
    sum += term;
    if (i > n * p && term < sum * 1e-12) break;
    logCoef += Math.log(n - i) - Math.log(i + 1);
  }
  return Math.min(1, sum);
}

function logChoose(n: number, k: number): number {
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log(n - k + i) - Math.log(i);
  return s;
}

function mean(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return xs.length === 0 ? 0 : s / xs.length;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)} %`;
}
