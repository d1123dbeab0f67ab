import { stringify } from 'yaml';
import type { AlertCondition } from './alerts';
import type { ClassLabel, SloReading, SloSpec } from './slo';

/** Too much work waiting in one class for too long. */
export interface BacklogRule {
  readonly priorityClass: ClassLabel;
  /** Fires when more tasks than this are pending in the class. */
  readonly maxPending: number;
  readonly forMs: number;
}

export const DEFAULT_BACKLOG_RULES: readonly BacklogRule[] = Object.freeze([
  { priorityClass: 'urgent', maxPending: 100, forMs: 60_000 },
  { priorityClass: 'normal', maxPending: 1000, forMs: 300_000 },
]);

/** How long a node may stay quarantined before someone should look at it. */
export const QUARANTINE_ALERT_FOR_MS = 0;

/** The SLO alert, one per series that misses its objective with enough events to judge. */
export function sloConditions(slos: readonly SloSpec[], readings: readonly SloReading[]): AlertCondition[] {
  const byName = new Map(slos.map((s) => [s.name, s]));
  const out: AlertCondition[] = [];
  for (const r of readings) {
    const spec = byName.get(r.slo);
    if (spec === undefined || r.met !== false) continue;
    out.push({
      alert: 'SloMissed',
      labels: { slo: r.slo, tenant: r.tenant, class: r.priorityClass },
      severity: spec.priorityClass === 'urgent' || spec.indicator === 'success' ? 'page' : 'ticket',
      forMs: spec.alertForMs,
      value: r.attainment,
      summary: `tenant ${r.tenant} misses SLO ${r.slo}: ${pct(r.attainment)} good of ${r.total} in ${minutes(spec.windowMs)} (objective ${pct(r.objective)})`,
    });
  }
  return out;
}

/** The backlog alert of each class whose pending count is over its rule's limit. */
export function backlogConditions(rules: readonly BacklogRule[], pendingByClass: ReadonlyMap<string, number>): AlertCondition[] {
  const out: AlertCondition[] = [];
  for (const rule of rules) {
    const pending = pendingByClass.get(rule.priorityClass) ?? 0;
    if (pending <= rule.maxPending) continue;
    out.push({
      alert: 'QueueBacklog',
      labels: { class: rule.priorityClass },
      severity: rule.priorityClass === 'urgent' ? 'page' : 'ticket',
      forMs: rule.forMs,
      value: pending,
      summary: `${pending} ${rule.priorityClass} tasks pending (limit ${rule.maxPending})`,
    });
  }
  return out;
}

/** The alert of a node the feedback loop has quarantined. */
export function quarantineCondition(nodeId: string, reason: string): AlertCondition {
  return { alert: 'NodeQuarantined', labels: { node: nodeId }, severity: 'ticket', forMs: QUARANTINE_ALERT_FOR_MS, value: 1, summary: `node ${nodeId} quarantined: ${reason}` };
}

/**
 * The same rules as a Prometheus rules file, on the monitor's metrics
 * (autoglm_slo_events_total, autoglm_tasks_pending, autoglm_node_quarantined),
 * so a Prometheus and Alertmanager already in place page on exactly what the
 * monitor alerts on. `increase()` over the SLO's window counts what the
 * monitor's rolling window counts (Prometheus extrapolates at the window's
 * edges, so near the objective the two may disagree for a scrape or two).
 */
export function prometheusRules(slos: readonly SloSpec[], backlog: readonly BacklogRule[]): string {
  const rules: object[] = [];
  for (const s of slos) {
    const by = s.tenant === '*' ? 'sum by (tenant)' : 'sum';
    const window = promDuration(s.windowMs);
    const sel = `autoglm_slo_events_total{slo="${s.name}"}`;
    const goodSel = `autoglm_slo_events_total{slo="${s.name}",good="true"}`;
    const total = `${by} (increase(${sel}[${window}]))`;
    rules.push({
      alert: 'SloMissed',
      expr: `(${by} (increase(${goodSel}[${window}])) / ${total}) < ${s.objective}\nand ${total} >= ${s.minEvents}`,
      for: promDuration(s.alertForMs),
      labels: { severity: s.priorityClass === 'urgent' || s.indicator === 'success' ? 'page' : 'ticket', slo: s.name, class: s.priorityClass },
      annotations: {
        summary: `${s.tenant === '*' ? 'Tenant {{ $labels.tenant }}' : `Tenant ${s.tenant}`} misses SLO ${s.name}: {{ $value | humanizePercentage }} good (objective ${pct(s.objective)})`,
        description: describeSlo(s),
      },
    });
  }
  for (const b of backlog) {
    rules.push({
      alert: 'QueueBacklog',
      expr: `sum(autoglm_tasks_pending{class="${b.priorityClass}"}) > ${b.maxPending}`,
      for: promDuration(b.forMs),
      labels: { severity: b.priorityClass === 'urgent' ? 'page' : 'ticket', class: b.priorityClass },
      annotations: { summary: `{{ $value }} ${b.priorityClass} tasks pending (limit ${b.maxPending})` },
    });
  }
  rules.push({
    alert: 'NodeQuarantined',
    expr: 'autoglm_node_quarantined == 1',
    labels: { severity: 'ticket' },
    annotations: { summary: 'Node {{ $labels.node }} is quarantined by the feedback loop: it failed or slowed work far more than its peers' },
  });
  const header =
    "# Generated from the monitor's default SLOs and alert rules (`autoglm alerts rules`, scripts/write-prometheus-rules.js).\n" +
    '# The monitor evaluates the same rules itself; check with `promtool check rules`.\n';
  return header + stringify({ groups: [{ name: 'autoglm', rules }] }, { lineWidth: 0 });
}

/** What an SLO promises, in words. */
export function describeSlo(s: SloSpec): string {
  const whose = `${s.priorityClass === '*' ? '' : `${s.priorityClass} `}tasks${s.tenant === '*' ? ' of each tenant' : ` of tenant ${s.tenant}`}`;
  const what =
    s.indicator === 'queue_time'
      ? `${whose} wait at most ${s.thresholdSeconds} s to be placed`
      : s.indicator === 'ttft'
        ? `${whose} get their first token within ${s.thresholdSeconds} s of submission`
        : s.indicator === 'deadline'
          ? `${whose} with a deadline finish by it`
          : `the attempts of ${whose} succeed`;
  return `${pct(s.objective)} of ${what}, over ${minutes(s.windowMs)}.`;
}

function promDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

function pct(x: number): string {
  return `${Number((x * 100).toFixed(2))}%`;
}

function minutes(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000} min` : `${ms / 1000} s`;
}
