import type { Alert, FeedbackResult, SloEvent, SloSpec } from '@autoglm/core';
import { Counter, Gauge, type Registry } from 'prom-client';
import { OTHER_TENANTS } from './metrics';

/**
 * The feedback loop's series: what its SLOs count (the Prometheus rules in
 * deploy/prometheus evaluate the same counters), its alerts, quarantines,
 * scale recommendations, boosts, warm floors and forecasts.
 */
export class FeedbackMetrics {
  private readonly tenants = new Set<string>();
  /** The labels of each SLO and tenant's good and bad series, made once (bounded: SLOs × maxTenants + 1). */
  private readonly sloSeries = new Map<string, { good: Record<'slo' | 'tenant' | 'class' | 'good', string>; bad: Record<'slo' | 'tenant' | 'class' | 'good', string> }>();
  private readonly sloEvents: Counter<'slo' | 'tenant' | 'class' | 'good'>;
  private readonly attainment: Gauge<'slo' | 'tenant' | 'class'>;
  private readonly objective: Gauge<'slo'>;
  private readonly alertsActive: Gauge<'alert' | 'severity' | 'state'>;
  private readonly quarantined: Gauge<'node'>;
  private readonly scaleDesired: Gauge<'kind' | 'name'>;
  private readonly scaleCurrent: Gauge<'kind' | 'name'>;
  private readonly actions: Counter<'kind'>;
  private readonly forecast: Gauge<'model'>;
  private readonly forecastTokens: Gauge<'model'>;
  private readonly forecastTenant: Gauge<'tenant'>;
  private readonly boost: Gauge<'tenant'>;
  private readonly warm: Gauge<'model'>;

  constructor(registry: Registry, slos: readonly SloSpec[], private readonly maxTenants = 200) {
    const registers = [registry];
    this.sloEvents = new Counter({ name: 'autoglm_slo_events_total', help: 'Events each SLO judged, good or not, by tenant.', labelNames: ['slo', 'tenant', 'class', 'good'], registers });
    this.attainment = new Gauge({ name: 'autoglm_slo_attainment_ratio', help: "Share of an SLO's events in its window that were good.", labelNames: ['slo', 'tenant', 'class'], registers });
    this.objective = new Gauge({ name: 'autoglm_slo_objective_ratio', help: 'The share of good events each SLO promises.', labelNames: ['slo'], registers });
    this.alertsActive = new Gauge({ name: 'autoglm_alerts_active', help: 'Alerts pending or firing, by rule.', labelNames: ['alert', 'severity', 'state'], registers });
    this.quarantined = new Gauge({ name: 'autoglm_node_quarantined', help: '1 while the feedback loop keeps a node quarantined.', labelNames: ['node'], registers });
    this.scaleDesired = new Gauge({ name: 'autoglm_scale_desired', help: 'Replicas of a model or agents of a pool the monitor recommends.', labelNames: ['kind', 'name'], registers });
    this.scaleCurrent = new Gauge({ name: 'autoglm_scale_current', help: 'Replicas of a model or agents of a pool now.', labelNames: ['kind', 'name'], registers });
    this.actions = new Counter({ name: 'autoglm_feedback_actions_total', help: 'Changes the feedback loop decided, by kind.', labelNames: ['kind'], registers });
    this.forecast = new Gauge({ name: 'autoglm_forecast_requests_per_second', help: "Requests per second forecast for a model over the pre-warm horizon (mean).", labelNames: ['model'], registers });
    this.forecastTokens = new Gauge({ name: 'autoglm_forecast_tokens_per_second', help: 'Tokens per second (prompt plus output budget) forecast for a model over the pre-warm horizon (mean).', labelNames: ['model'], registers });
    this.forecastTenant = new Gauge({ name: 'autoglm_forecast_tenant_tasks_per_second', help: "A tenant's task arrivals per second forecast over the pre-warm horizon (mean).", labelNames: ['tenant'], registers });
    this.boost = new Gauge({ name: 'autoglm_tenant_boost', help: "The feedback loop's multiplier on a tenant's share (1: none).", labelNames: ['tenant'], registers });
    this.warm = new Gauge({ name: 'autoglm_warm_replicas', help: 'Replicas of a model the feedback loop keeps warm.', labelNames: ['model'], registers });
    for (const s of slos) this.objective.set({ slo: s.name }, s.objective);
    for (const kind of ['tenant-boost', 'warm-replicas', 'quarantine', 'readmit']) this.actions.inc({ kind }, 0);
  }

  /** Counts an event an SLO counted (the loop's SloTracker tells of each). */
  sloEvent({ slo, tenant, good }: SloEvent): void {
    const label = this.tenantLabel(tenant);
    const key = `${slo.name}\u0000${label}`;
    let series = this.sloSeries.get(key);
    if (series === undefined) {
      // Both series from the first event: a tenant with only bad events still has a good count (0) for the rule to divide.
      series = {
        good: { slo: slo.name, tenant: label, class: slo.priorityClass, good: 'true' },
        bad: { slo: slo.name, tenant: label, class: slo.priorityClass, good: 'false' },
      };
      this.sloSeries.set(key, series);
      this.sloEvents.inc(series.good, 0);
      this.sloEvents.inc(series.bad, 0);
    }
    this.sloEvents.inc(good ? series.good : series.bad);
  }

  /** Sets the gauges from an evaluation. */
  evaluated(result: FeedbackResult, alerts: readonly Alert[], quarantined: readonly string[], boosts: ReadonlyArray<{ tenant: string; factor: number }>, warm: Readonly<Record<string, number>>): void {
    this.attainment.reset();
    for (const r of result.slos) this.attainment.set({ slo: r.slo, tenant: this.tenantLabel(r.tenant), class: r.priorityClass }, r.attainment);
    this.alertsActive.reset();
    for (const a of alerts) this.alertsActive.inc({ alert: a.alert, severity: a.severity, state: a.state });
    this.quarantined.reset();
    for (const node of quarantined) this.quarantined.set({ node }, 1);
    this.scaleDesired.reset();
    this.scaleCurrent.reset();
    for (const r of result.scale) {
      this.scaleDesired.set({ kind: r.kind, name: r.name }, r.desired);
      this.scaleCurrent.set({ kind: r.kind, name: r.name }, r.current);
    }
    this.forecast.reset();
    this.forecastTokens.reset();
    for (const d of result.demand) {
      this.forecast.set({ model: d.model }, d.ratePerSecond);
      this.forecastTokens.set({ model: d.model }, d.tokensPerSecond ?? 0);
    }
    this.forecastTenant.reset();
    for (const t of result.tenants) this.forecastTenant.inc({ tenant: this.tenantLabel(t.tenant) }, t.ratePerSecond);
    this.boost.reset();
    for (const b of boosts) this.boost.set({ tenant: this.tenantLabel(b.tenant) }, b.factor);
    this.warm.reset();
    for (const [model, n] of Object.entries(warm)) this.warm.set({ model }, n);
    for (const c of result.boosts) this.actions.inc({ kind: 'tenant-boost' }, c.to === c.from ? 0 : 1);
    for (const c of result.warm) this.actions.inc({ kind: 'warm-replicas' }, c.to === c.from ? 0 : 1);
    for (const v of result.nodes) this.actions.inc({ kind: v.kind });
  }

  private tenantLabel(tenant: string): string {
    if (this.tenants.has(tenant)) return tenant;
    if (this.tenants.size >= this.maxTenants) return OTHER_TENANTS;
    this.tenants.add(tenant);
    return tenant;
  }
}
