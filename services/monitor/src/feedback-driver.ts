import {
  AlertState,
  NodeState,
  PolicyUpdate,
  TaskState,
  type Alert as AlertMessage,
  type DecisionServiceClient,
  type Event,
  type FeedbackAction,
  type Node,
  type ScaleRecommendation as ScaleRecommendationMessage,
  type SloStatus,
  type TaskEvent,
  type TaskSpec,
} from '@autoglm/proto';
import {
  DeadlineOutcomes,
  FeedbackLoop,
  timestampToMillis,
  type Alert,
  type BacklogRule,
  type FeedbackConfig,
  type FeedbackResult,
  type FleetSnapshot,
  type SloSpec,
} from '@autoglm/core';
import { callUnary, type Logger } from '@autoglm/runtime';
import type { FeedbackMetrics } from './feedback-metrics';
import { timestampFromMillis, durationSeconds } from './proto-time';
import { TaskTracker } from './task-tracker';

export interface FeedbackDriverOptions {
  readonly decision: DecisionServiceClient;
  readonly config: FeedbackConfig;
  readonly slos: readonly SloSpec[];
  readonly backlogRules: readonly BacklogRule[];
  /** How often the loop evaluates. */
  readonly evaluateEveryMs: number;
  /** The forecast's interval. */
  readonly forecastIntervalMs: number;
  /** Sequences one replica runs at once, as decision places them. */
  readonly sequencesPerReplica: number;
  /** POSTed every alert change as JSON, when set. */
  readonly webhookUrl?: string;
  readonly metrics: FeedbackMetrics;
  readonly logger: Logger;
  readonly clock?: () => number;
  /** Deadline of each call to decision. */
  readonly callTimeoutMs?: number;
}

/** What the monitor remembers of a live task for the fleet snapshot. */
interface LiveTask {
  model: string;
  priorityClass: string;
  inference: boolean;
  gpus: number;
  state: TaskState;
}

const PENDING = new Set([TaskState.PENDING, TaskState.WAITING_DEPS, TaskState.QUEUED]);
const RUNNING = new Set([TaskState.ASSIGNED, TaskState.RUNNING]);
const KEEP_ACTIONS = 200;
/** The loop's state is sent again this often while it holds any (decision lets it lapse after AUTOGLM_FEEDBACK_TTL_MS, 5 min by default). */
const FEEDBACK_REFRESH_MS = 60_000;

/**
 * Runs the pure FeedbackLoop against the live mesh: turns decision's events
 * into arrivals, outcomes and a fleet snapshot, evaluates every few seconds,
 * and applies what the loop decides through decision's API under the
 * monitor's own identity (its mesh certificate): tenant boosts and warm
 * floors as one ApplyPolicy (source "monitor", with the reasons), quarantines
 * through SetNodeQuarantine, alert changes through ReportAlerts (into the
 * event stream) and the webhook. Switched off (feedback.enabled false) it
 * still evaluates, alerts and recommends, and records what it would have done.
 */
export class FeedbackDriver {
  readonly loop: FeedbackLoop;
  private readonly tracker = new TaskTracker();
  private readonly live = new Map<string, LiveTask>();
  private readonly nodes = new Map<string, Node>();
  /** Boosts set by others (operators), which the loop's factors multiply. */
  /** Whether decision has the loop's current state (false after a failed send, and before the first). */
  private feedbackSent = false;
  private feedbackSentAtMs = -Infinity;
  private readonly actions: FeedbackAction[] = [];
  private readonly clock: () => number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();
  private last: FeedbackResult | undefined;

  constructor(private readonly o: FeedbackDriverOptions) {
    this.loop = new FeedbackLoop(o.config, o.slos, o.backlogRules, o.forecastIntervalMs);
    this.loop.sloTracker.listen((e) => o.metrics.sloEvent(e));
    this.clock = o.clock ?? Date.now;
  }

  /** Evaluates every evaluateEveryMs until stopped. */
  start(): void {
    this.timer = setInterval(() => {
      this.running = this.evaluate().catch((err: unknown) => this.o.logger.error({ err }, 'feedback evaluation failed'));
    }, this.o.evaluateEveryMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /**
   * Forgets live tasks, nodes and open waits before decision's stream starts
   * again with a snapshot (what happened while away is not replayed). The
   * loop's own history (SLO windows, forecasts, boosts) stays.
   */
  resync(): void {
    this.tracker.clear();
    this.live.clear();
    this.nodes.clear();
    this.loop.sloTracker.clearWaits();
  }

  observe(event: Event): void {
    switch (event.kind?.$case) {
      case 'task':
        this.observeTask(event.kind.task);
        return;
      case 'node':
        this.observeNode(event.kind.node);
        return;
      default:
        return;
    }
  }

  /** One evaluation, applied: what the timer runs (tests call it directly). */
  async evaluate(): Promise<FeedbackResult> {
    const now = this.clock();
    const result = this.loop.evaluate(now, this.snapshot());
    this.last = result;
    await Promise.all([this.applyPolicy(result, now), this.applyVerdicts(result, now), this.reportAlerts(result)]);
    const quarantined = this.loop.nodeWatch.quarantined().map((q) => q.nodeId);
    this.o.metrics.evaluated(result, this.loop.alerts.current(), quarantined, this.loop.boosts.boosted(), this.loop.warm.current());
    return result;
  }

  alerts(includeResolved: boolean): AlertMessage[] {
    const current = this.loop.alerts.current();
    return [...current, ...(includeResolved ? this.loop.alerts.recentlyResolved() : [])].map(alertMessage);
  }

  sloStatus(): SloStatus[] {
    return (this.last?.slos ?? []).map((r) => ({
      slo: r.slo,
      indicator: r.indicator,
      tenant: r.tenant,
      priorityClass: r.priorityClass,
      good: r.good,
      total: r.total,
      attainment: r.attainment,
      objective: r.objective,
      status: r.met === undefined ? 'too few events' : r.met ? 'met' : 'missed',
      burnRate: r.burnRate,
    }));
  }

  recommendations(): { recommendations: ScaleRecommendationMessage[]; computedAt: number | undefined } {
    return { recommendations: this.loop.scale.recommendations().map((r) => ({ ...r })), computedAt: this.last?.atMs };
  }

  /** The last actions, newest first. */
  recentActions(): FeedbackAction[] {
    return [...this.actions].reverse();
  }

  get enabled(): boolean {
    return this.o.config.enabled;
  }

  /** The fleet as the loop needs it, from the latest node snapshots and the live tasks. */
  snapshot(): FleetSnapshot {
    const replicas = new Map<string, { count: number; capacityTokens: number; gpus: number }>();
    const nodes: Array<{ nodeId: string; gpus: number; out: boolean }> = [];
    for (const node of this.nodes.values()) {
      nodes.push({ nodeId: node.nodeId, gpus: node.gpus.length, out: node.state !== NodeState.READY });
      for (const r of node.replicas) {
        const m = replicas.get(r.model) ?? { count: 0, capacityTokens: 0, gpus: 1 };
        m.count += 1;
        m.capacityTokens = Math.max(m.capacityTokens, r.capacityTokens);
        m.gpus = Math.max(1, r.gpuIndices.length);
        replicas.set(r.model, m);
      }
    }
    const inFlightByModel = new Map<string, number>();
    const pendingByClass = new Map<string, number>();
    let batchGpusInUse = 0;
    let batchGpusQueued = 0;
    for (const t of this.live.values()) {
      if (PENDING.has(t.state)) pendingByClass.set(t.priorityClass, (pendingByClass.get(t.priorityClass) ?? 0) + 1);
      if (t.inference && (t.state === TaskState.QUEUED || RUNNING.has(t.state))) inFlightByModel.set(t.model, (inFlightByModel.get(t.model) ?? 0) + 1);
      if (!t.inference && t.state === TaskState.QUEUED) batchGpusQueued += t.gpus;
      if (!t.inference && RUNNING.has(t.state)) batchGpusInUse += t.gpus;
    }
    return { nodes, replicas, inFlightByModel, pendingByClass, batchGpusInUse, batchGpusQueued, sequencesPerReplica: this.o.sequencesPerReplica };
  }

  private observeTask(event: TaskEvent): void {
    const t = this.tracker.track(event);
    if (t === undefined) return;
    const now = this.clock();
    const task = event.task;
    const known = this.live.get(t.taskId);
    const spec = task?.spec;
    // Its creation (from no state at all), not a retry or a requeue coming back to the queue.
    if (t.reportedFrom === TaskState.UNSPECIFIED && spec !== undefined) {
      this.loop.arrived({ atMs: now, tenant: t.labels.tenant, model: spec.model, inference: isInference(spec), tokens: spec.inputTokens + spec.maxOutputTokens });
    }
    if (PENDING.has(t.to) || RUNNING.has(t.to)) {
      this.live.set(
        t.taskId,
        known ? { ...known, state: t.to } : { model: t.labels.model, priorityClass: t.labels.priorityClass, inference: spec !== undefined && isInference(spec), gpus: spec?.gpuCount ?? 0, state: t.to },
      );
    } else {
      this.live.delete(t.taskId);
    }
    // Queue-time SLOs watch each wait from when it is seen to start (the monitor's clock, as their sweep's).
    if (t.to === TaskState.QUEUED) this.loop.sloTracker.waitStarted(t.taskId, t.labels.tenant, t.labels.priorityClass, now);
    else this.loop.sloTracker.waitEnded(t.taskId, now, RUNNING.has(t.to), t.queueWaitSeconds);
    const ended = t.to === TaskState.SUCCEEDED || t.to === TaskState.FAILED || t.to === TaskState.LOST || t.to === TaskState.CANCELLED || t.to === TaskState.PREEMPTED ||
      (t.to === TaskState.DEAD_LETTER && t.reportedFrom !== TaskState.FAILED && t.reportedFrom !== TaskState.LOST);
    if (!ended && !event.final) return;
    const result = t.result;
    const deadline = task?.spec?.deadline;
    const finishedAt = task?.finishedAt ?? event.time;
    // Judged when the task ends, as decision judges it: by its deadline if it succeeded; a miss if it ended in any way after it.
    const deadlineOutcome = deadline !== undefined && event.final && finishedAt !== undefined ? DeadlineOutcomes.of(t.to === TaskState.SUCCEEDED, timestampToMillis(finishedAt), timestampToMillis(deadline)) : undefined;
    const deadlineMet = deadlineOutcome === undefined ? undefined : deadlineOutcome === 'met';
    const { tenant, priorityClass, model } = t.labels;
    if (!ended) {
      // The end of a task whose last attempt was counted already (FAILED, then DEAD_LETTER): only its deadline is news.
      // As a stopped attempt on no node, it counts for no other SLO and against no node.
      if (deadlineMet !== undefined) {
        this.loop.finished({ atMs: now, tenant, priorityClass, model, nodeId: '', succeeded: false, stopped: true, queueSeconds: undefined, ttftSeconds: undefined, runSeconds: undefined, tokens: undefined, deadlineMet });
      }
      return;
    }
    // Built whole (no spread): this runs for every ended attempt.
    const outcome = {
      atMs: now,
      tenant,
      priorityClass,
      model,
      nodeId: task?.nodeId ?? '',
      succeeded: t.to === TaskState.SUCCEEDED,
      stopped: t.to === TaskState.CANCELLED || t.to === TaskState.PREEMPTED,
      queueSeconds: t.queueWaitSeconds,
      ttftSeconds: result?.timeToFirstToken ? durationSeconds(result.timeToFirstToken) : undefined,
      runSeconds: result?.runTime ? durationSeconds(result.runTime) : undefined,
      tokens: result && result.promptTokens + result.completionTokens > 0 ? result.promptTokens + result.completionTokens : undefined,
      outputTokens: result && result.completionTokens > 0 ? result.completionTokens : undefined,
      deadlineMet,
    } as const;
    this.loop.finished(outcome);
  }

  private observeNode(node: Node): void {
    if (node.state === NodeState.LOST) {
      this.nodes.delete(node.nodeId);
      this.loop.nodeGone(node.nodeId);
      return;
    }
    this.nodes.set(node.nodeId, node);
  }

  /**
   * Sends the loop's whole state (its boost factors, which decision
   * multiplies with the operators' boosts, and its warm floors) when it
   * changed, when the last send failed, and at least every FEEDBACK_REFRESH_MS
   * while it holds any: decision drops it unless it is sent again in time
   * (AUTOGLM_FEEDBACK_TTL_MS), and a restarted decision gets it back.
   */
  private async applyPolicy(result: FeedbackResult, now: number): Promise<void> {
    const boosted = this.loop.boosts.boosted();
    const floors = this.loop.warm.current();
    const holds = boosted.length > 0 || Object.keys(floors).length > 0;
    const changed = result.boosts.length > 0 || result.warm.length > 0;
    const due = !this.feedbackSent || (holds && now - this.feedbackSentAtMs >= FEEDBACK_REFRESH_MS);
    if (!changed && !due) return;
    // Built from entries: a tenant or model named "__proto__" is a key like any other.
    const tenantBoosts: Record<string, number> = Object.fromEntries(boosted.map((b) => [b.tenant, b.factor]));
    const reasons = [
      ...result.boosts.map((c) => `tenant ${c.tenant} boost ${c.from} → ${c.to}: ${c.reason}`),
      ...result.warm.map((c) => `${c.model} warm replicas ${c.from} → ${c.to}: ${c.reason}`),
    ];
    const reason = changed ? reasons.join('; ') : "the feedback loop's state, sent again";
    const applied = await this.send('ApplyPolicy', () =>
      callUnary(this.o.decision.applyPolicy.bind(this.o.decision), { update: PolicyUpdate.fromPartial({ tenantBoosts, warmReplicas: floors, source: 'monitor', reason }) }, { deadlineMs: this.callTimeoutMs }),
    );
    this.feedbackSent = applied;
    if (applied) this.feedbackSentAtMs = now;
    for (const c of result.boosts) this.record({ time: timestampFromMillis(now), kind: 'tenant-boost', target: c.tenant, from: c.from, to: c.to, reason: c.reason, applied });
    for (const c of result.warm) this.record({ time: timestampFromMillis(now), kind: 'warm-replicas', target: c.model, from: c.from, to: c.to, reason: c.reason, applied });
  }

  private async applyVerdicts(result: FeedbackResult, now: number): Promise<void> {
    await Promise.all(
      result.nodes.map(async (v) => {
        const quarantined = v.kind === 'quarantine';
        const applied = await this.send('SetNodeQuarantine', () =>
          callUnary(
            this.o.decision.setNodeQuarantine.bind(this.o.decision),
            { nodeId: v.nodeId, quarantined, reason: v.reason, until: quarantined ? timestampFromMillis(v.untilMs) : undefined, source: 'monitor' },
            { deadlineMs: this.callTimeoutMs },
          ),
        );
        this.record({ time: timestampFromMillis(now), kind: v.kind, target: v.nodeId, from: quarantined ? 0 : 1, to: quarantined ? 1 : 0, reason: v.reason, applied });
      }),
    );
  }

  private async reportAlerts(result: FeedbackResult): Promise<void> {
    if (result.alertChanges.length === 0) return;
    const alerts = result.alertChanges.map(alertMessage);
    for (const a of result.alertChanges) this.o.logger.warn({ alert: a.alert, labels: a.labels, state: a.state }, a.summary);
    // Alerts are observations, not feedback: they go out whether or not the loop may act.
    await Promise.all([
      callUnary(this.o.decision.reportAlerts.bind(this.o.decision), { alerts }, { deadlineMs: this.callTimeoutMs }).catch((err: unknown) =>
        this.o.logger.warn({ err }, 'could not report alerts to decision'),
      ),
      this.o.webhookUrl ? this.postWebhook(result.alertChanges) : undefined,
    ]);
  }

  private async postWebhook(alerts: readonly Alert[]): Promise<void> {
    try {
      const res = await fetch(this.o.webhookUrl!, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ source: 'autoglm-monitor', alerts: alerts.map(webhookAlert) }),
        signal: AbortSignal.timeout(this.callTimeoutMs),
      });
      if (!res.ok) this.o.logger.warn({ status: res.status }, 'alert webhook refused the alerts');
    } catch (err) {
      this.o.logger.warn({ err }, 'alert webhook unreachable');
    }
  }

  /** Calls decision when the loop may act; says whether the change went through. */
  private async send(what: string, call: () => Promise<unknown>): Promise<boolean> {
    if (!this.o.config.enabled) return false;
    try {
      await call();
      return true;
    } catch (err) {
      this.o.logger.warn({ err, call: what }, 'feedback change not applied');
      return false;
    }
  }

  private record(action: FeedbackAction): void {
    this.o.logger.info({ kind: action.kind, target: action.target, from: action.from, to: action.to, applied: action.applied }, `feedback: ${action.reason}`);
    this.actions.push(action);
    if (this.actions.length > KEEP_ACTIONS) this.actions.shift();
  }

  private get callTimeoutMs(): number {
    return this.o.callTimeoutMs ?? 5000;
  }
}

function isInference(spec: TaskSpec): boolean {
  return spec.payload?.$case === 'inference' || spec.interactive;
}

const STATES = { pending: AlertState.PENDING, firing: AlertState.FIRING, resolved: AlertState.RESOLVED } as const;

function alertMessage(a: Alert): AlertMessage {
  return {
    name: a.alert,
    labels: { ...a.labels },
    state: STATES[a.state],
    severity: a.severity,
    summary: a.summary,
    value: a.value,
    activeSince: timestampFromMillis(a.activeSinceMs),
    firedAt: a.firedAtMs === undefined ? undefined : timestampFromMillis(a.firedAtMs),
    resolvedAt: a.resolvedAtMs === undefined ? undefined : timestampFromMillis(a.resolvedAtMs),
  };
}

/** The webhook's shape: close to Alertmanager's, so receivers written for it read ours. */
function webhookAlert(a: Alert): object {
  return {
    status: a.state === 'resolved' ? 'resolved' : a.state,
    labels: { alertname: a.alert, severity: a.severity, ...a.labels },
    annotations: { summary: a.summary },
    startsAt: new Date(a.activeSinceMs).toISOString(),
    endsAt: a.resolvedAtMs === undefined ? undefined : new Date(a.resolvedAtMs).toISOString(),
    value: a.value,
  };
}
