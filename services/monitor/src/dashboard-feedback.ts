import { AlertState, type Alert, type FeedbackAction, type ScaleRecommendation, type SloStatus, type Timestamp } from '@autoglm/proto';
import { timestampToMillis } from '@autoglm/core';

/** The parts of the feedback loop the dashboard shows (FeedbackDriver has them). */
export interface FeedbackSource {
  sloStatus(): SloStatus[];
  alerts(includeResolved: boolean): Alert[];
  recentActions(): FeedbackAction[];
  recommendations(): { recommendations: ScaleRecommendation[]; computedAt: number | undefined };
  readonly enabled: boolean;
}

/** The feedback loop as the dashboard draws it: plain JSON, times in epoch milliseconds. */
export interface FeedbackView {
  readonly enabled: boolean;
  readonly slos: readonly SloStatus[];
  readonly alerts: ReadonlyArray<{
    readonly name: string;
    readonly labels: Readonly<Record<string, string>>;
    /** "pending", "firing" or "resolved". */
    readonly state: string;
    readonly severity: string;
    readonly summary: string;
    readonly value: number;
    readonly activeSinceMs: number | null;
    readonly resolvedAtMs: number | null;
  }>;
  /** Newest first. */
  readonly actions: ReadonlyArray<Omit<FeedbackAction, 'time'> & { readonly timeMs: number | null }>;
  readonly recommendations: readonly ScaleRecommendation[];
  readonly recommendedAtMs: number | null;
}

/** Actions shown: the dashboard lists the latest few; `autoglm feedback` has all 200. */
const ACTIONS_SHOWN = 20;

/** What the feedback loop says now, for the dashboard. */
export function feedbackView(source: FeedbackSource): FeedbackView {
  const { recommendations, computedAt } = source.recommendations();
  return {
    enabled: source.enabled,
    slos: source.sloStatus(),
    alerts: source.alerts(true).map((a) => ({
      name: a.name,
      labels: a.labels,
      state: alertStateName(a.state),
      severity: a.severity,
      summary: a.summary,
      value: a.value,
      activeSinceMs: millis(a.activeSince),
      resolvedAtMs: millis(a.resolvedAt),
    })),
    actions: source
      .recentActions()
      .slice(0, ACTIONS_SHOWN)
      .map(({ time, ...rest }) => ({ ...rest, timeMs: millis(time) })),
    recommendations,
    recommendedAtMs: computedAt ?? null,
  };
}

function alertStateName(state: AlertState): string {
  switch (state) {
    case AlertState.PENDING:
      return 'pending';
    case AlertState.FIRING:
      return 'firing';
    case AlertState.RESOLVED:
      return 'resolved';
    default:
      return 'unknown';
  }
}

function millis(t: Timestamp | undefined): number | null {
  return t === undefined ? null : timestampToMillis(t);
}
