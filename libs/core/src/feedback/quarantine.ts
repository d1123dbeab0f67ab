import type { TaskOutcome } from './slo';

export interface QuarantineConfig {
  readonly enabled: boolean;
  /** Attempts older than this are forgotten. */
  readonly windowMs: number;
  /**
   * A node is judged on its last this-many attempts (within the window), so a
   * long healthy history does not hide a node that has just started failing.
   */
  readonly recentAttempts: number;
  /** A node is judged only once it has finished this many attempts in the window. */
  readonly minAttempts: number;
  /**
   * It stands out when failing this many attempts is this unlikely for a node
   * failing at the rest of the fleet's rate (one-sided binomial tail).
   */
  readonly significance: number;
  /** ... and its own failure rate is at least this (a few unlucky failures on a healthy fleet are not a fault). */
  readonly minFailureRatio: number;
  /**
   * Slow: its requests' median time per output token (decode speed: not
   * queueing, not a cold start) is this many times the rest of the fleet's
   * for the same model. A full batch decodes about 3× slower than an idle
   * one, so this stays well above that.
   */
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
  recentAttempts: 40,
  minAttempts: 8,
  significance: 1e-4,
  minFailureRatio: 0.15,
  slowRatio: 5,
  probationMs: 300_000,
  maxProbationMs: 3_600_000,
  maxQuarantinedFraction: 0.25,
});

/** Floor on the fleet's failure rate a node is compared with, so one failure on a spotless fleet is no outlier. */
const FLEET_RATE_FLOOR = 0.02;
const SPEED_SAMPLES = 64;
/** Departed nodes remembered (so late outcomes of their tasks do not bring them back). */
const MAX_GONE = 10_000;
/**
 * The sequential test (its trial) a node readmitted after failing is under (Wald's SPRT
 * between "fails as the fleet does" and "still fails as it did"): the chance
 * of sending a mended node back, and of clearing one still broken.
 */
const TRIAL_FALSE_ALARM = 0.01;
const TRIAL_MISS = 0.05;
const TRIAL_UPPER = Math.log((1 - TRIAL_MISS) / TRIAL_FALSE_ALARM);
const TRIAL_LOWER = Math.log(TRIAL_MISS / (1 - TRIAL_FALSE_ALARM));

/** What a node failed at when it was quarantined for failing, against the rest of the fleet. */
interface Fault {
  readonly rate: number;
  readonly fleetRate: number;
}

/** A readmitted node's trial: the log-likelihood ratio of "still failing" over "mended", over its attempts since. */
interface Trial {
  readonly fault: Fault;
  logRatio: number;
  attempts: number;
  failed: number;
}

interface NodeRecord {
  /** Its last attempts, oldest first: when each ended and whether it failed. */
  attempts: Array<{ atMs: number; failed: boolean }>;
  /** Recent seconds per output token by model, oldest first. */
  tpot: Map<string, Array<{ atMs: number; seconds: number }>>;
  quarantinedUntilMs: number | undefined;
  /** Why its current quarantine began, when it was for failing. */
  fault: Fault | undefined;
  /** Its trial: set while a node readmitted after failing has not yet shown whether it still fails. */
  trial: Trial | undefined;
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
 * readmission; failing again quarantines it for twice as long. One that was
 * quarantined for failing is also on a sequential test from readmission, so
 * a node still as broken as before goes back after two or three failures
 * rather than the eight attempts a fresh judgement needs (its trial).
 */
export class NodeWatch {
  private readonly nodes = new Map<string, NodeRecord>();
  /** Nodes that left the fleet: outcomes still arriving for them (their tasks lost after them) must not bring them back. */
  private readonly gone = new Set<string>();

  constructor(readonly config: QuarantineConfig = DEFAULT_QUARANTINE_CONFIG) {}

  /** Counts a finished attempt against the node it ran on. */
  record(o: TaskOutcome): void {
    if (o.nodeId === '' || o.stopped || this.gone.has(o.nodeId)) return;
    const node = this.node(o.nodeId);
    if (node.quarantinedUntilMs !== undefined) return;
    node.attempts.push({ atMs: o.atMs, failed: !o.succeeded });
    if (node.attempts.length > this.config.recentAttempts) node.attempts.shift();
    const trial = node.trial;
    if (trial !== undefined) {
      const { rate, fleetRate } = trial.fault;
      trial.attempts += 1;
      if (o.succeeded) trial.logRatio += Math.log((1 - rate) / (1 - fleetRate));
      else {
        trial.failed += 1;
        trial.logRatio += Math.log(rate / fleetRate);
      }
      // Shown mended: judged as any other node from here.
      if (trial.logRatio <= TRIAL_LOWER) node.trial = undefined;
    }
    const tpot = secondsPerToken(o);
    if (tpot !== undefined) {
      let samples = node.tpot.get(o.model);
      if (samples === undefined) node.tpot.set(o.model, (samples = []));
      samples.push({ atMs: o.atMs, seconds: tpot });
      if (samples.length > SPEED_SAMPLES) samples.shift();
    }
  }

  /** A node left the fleet: forget it, and ignore what is still reported of it until it is in the fleet again. */
  forget(nodeId: string): void {
    this.nodes.delete(nodeId);
    this.gone.delete(nodeId);
    this.gone.add(nodeId);
    // Bounded: the oldest departures are forgotten first.
    if (this.gone.size > MAX_GONE) this.gone.delete(this.gone.values().next().value!);
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

  /**
   * What to change now, given the nodes in the fleet (those that finished
   * attempts count too) and those of them out of placement already for any
   * reason (quarantined by an operator, draining): they count against the cap.
   */
  judge(nowMs: number, fleetNodeIds: readonly string[], outNodeIds: readonly string[] = []): NodeVerdict[] {
    for (const id of fleetNodeIds) this.gone.delete(id);
    const verdicts: NodeVerdict[] = [];
    for (const [nodeId, n] of this.nodes) {
      if (n.quarantinedUntilMs !== undefined && nowMs >= n.quarantinedUntilMs) {
        n.quarantinedUntilMs = undefined;
        n.attempts = [];
        n.tpot.clear();
        n.trial = n.fault === undefined ? undefined : { fault: n.fault, logRatio: 0, attempts: 0, failed: 0 };
        n.fault = undefined;
        verdicts.push({ kind: 'readmit', nodeId, reason: n.trial ? 'probation over: readmitted, on trial until it shows whether it still fails' : 'probation over: readmitted and watched afresh' });
      }
    }
    if (!this.config.enabled) return verdicts;
    // A node that has finished attempts is in the fleet, even before a snapshot of the fleet lists it.
    const nodeIds = [...new Set([...fleetNodeIds, ...this.nodes.keys()])];
    const inFleet = nodeIds.length;
    const out = new Set(outNodeIds);
    let quarantined = 0;
    for (const id of nodeIds) if (this.isQuarantined(id) || out.has(id)) quarantined += 1;
    const cap = Math.min(inFleet - 1, Math.floor(inFleet * this.config.maxQuarantinedFraction));

    // The fleet's totals, to compare each node with the others.
    let fleetFailed = 0;
    let fleetTotal = 0;
    const totals = new Map<string, { failed: number; total: number }>();
    for (const id of nodeIds) {
      const n = this.nodes.get(id);
      if (n === undefined || n.quarantinedUntilMs !== undefined) continue;
      while (n.attempts.length > 0 && n.attempts[0]!.atMs < nowMs - this.config.windowMs) n.attempts.shift();
      const total = n.attempts.length;
      let failed = 0;
      for (const a of n.attempts) if (a.failed) failed += 1;
      totals.set(id, { failed, total });
      fleetFailed += failed;
      fleetTotal += total;
    }
    const candidates: Array<{ nodeId: string; score: number; reason: string; fault: Fault | undefined }> = [];
    for (const [id, { failed, total }] of totals) {
      const failing = this.failing(failed, total, fleetFailed - failed, fleetTotal - total) ?? this.stillFailing(id);
      const reason = failing?.reason ?? this.slowReason(id, nowMs - this.config.windowMs);
      if (reason !== undefined) candidates.push({ nodeId: id, score: total === 0 ? 0 : failed / total, reason, fault: failing?.fault });
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
      n.fault = c.fault;
      n.trial = undefined;
      quarantined += 1;
      verdicts.push({ kind: 'quarantine', nodeId: c.nodeId, untilMs: n.quarantinedUntilMs, reason: `${c.reason}; quarantined for ${Math.round(probation / 1000)} s` });
    }
    return verdicts;
  }

  private failing(failed: number, total: number, othersFailed: number, othersTotal: number): { reason: string; fault: Fault } | undefined {
    if (total < this.config.minAttempts || failed / total < this.config.minFailureRatio) return undefined;
    const fleetRate = Math.max(FLEET_RATE_FLOOR, othersTotal === 0 ? 0 : othersFailed / othersTotal);
    const p = binomialTail(total, failed, fleetRate);
    if (p >= this.config.significance) return undefined;
    return {
      reason: `failed ${failed} of its last ${total} attempts (${pct(failed / total)}) against ${pct(fleetRate)} on the rest of the fleet`,
      fault: { rate: failed / total, fleetRate },
    };
  }

  /** A readmitted node whose attempts since say it still fails as it did before its quarantine. */
  private stillFailing(nodeId: string): { reason: string; fault: Fault } | undefined {
    const trial = this.nodes.get(nodeId)?.trial;
    if (trial === undefined || trial.logRatio < TRIAL_UPPER) return undefined;
    const { fault, failed, attempts } = trial;
    return {
      reason: `failed ${failed} of its ${attempts} attempts since its readmission: still failing as before its quarantine (${pct(fault.rate)}), not as the rest of the fleet (${pct(fault.fleetRate)})`,
      fault,
    };
  }

  /**
   * Decode speed, by medians: queueing and cold starts (which a time to first
   * token includes) say nothing of a node's health, and a few odd requests
   * must not make a healthy node look slow.
   */
  private slowReason(nodeId: string, sinceMs: number): string | undefined {
    if (!Number.isFinite(this.config.slowRatio)) return undefined;
    const node = this.nodes.get(nodeId)!;
    for (const [model, samples] of node.tpot) {
      const mine = samples.filter((x) => x.atMs >= sinceMs).map((x) => x.seconds);
      if (mine.length < this.config.minAttempts) continue;
      const others: number[] = [];
      for (const [id, n] of this.nodes) {
        if (id === nodeId || n.quarantinedUntilMs !== undefined) continue;
        for (const x of n.tpot.get(model) ?? []) if (x.atMs >= sinceMs) others.push(x.seconds);
      }
      if (others.length < this.config.minAttempts) continue;
      const m = median(mine);
      const theirs = median(others);
      if (theirs > 0 && m >= this.config.slowRatio * theirs) {
        return `its ${model} requests generate at ${(m * 1000).toFixed(1)} ms per token (median), ${(m / theirs).toFixed(1)}× the rest of the fleet's ${(theirs * 1000).toFixed(1)} ms`;
      }
    }
    return undefined;
  }

  private node(nodeId: string): NodeRecord {
    let n = this.nodes.get(nodeId);
    if (n === undefined) {
      n = { attempts: [], tpot: new Map(), quarantinedUntilMs: undefined, fault: undefined, trial: undefined, strikes: 0, lastStrikeMs: -Infinity };
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

/** Seconds per output token after the first: how fast the node's engine decodes. */
function secondsPerToken(o: TaskOutcome): number | undefined {
  if (!o.succeeded || o.ttftSeconds === undefined || o.runSeconds === undefined || o.outputTokens === undefined || o.outputTokens < 2) return undefined;
  const decode = o.runSeconds - o.ttftSeconds;
  return decode > 0 ? decode / (o.outputTokens - 1) : undefined;
}

function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)} %`;
}
