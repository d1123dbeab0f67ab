import type { SloSpec } from '@autoglm/core';
import { Registry } from 'prom-client';
import { FeedbackMetrics } from './feedback-metrics';

const SLO: SloSpec = { name: 'normal-queue', indicator: 'queue_time', tenant: '*', priorityClass: 'normal', thresholdSeconds: 1, objective: 0.9, windowMs: 60_000, minEvents: 1, alertForMs: 0 };

describe('FeedbackMetrics', () => {
  it("gives a tenant's SLO both its good and its bad series from its first event, so the Prometheus rule's ratio exists for a tenant with no good event", async () => {
    const registry = new Registry();
    const metrics = new FeedbackMetrics(registry, [SLO]);
    metrics.sloEvent({ slo: SLO, tenant: 'acme', good: false });
    metrics.sloEvent({ slo: SLO, tenant: 'acme', good: false });
    const text = await registry.metrics();
    expect(text).toContain('autoglm_slo_events_total{slo="normal-queue",tenant="acme",class="normal",good="true"} 0');
    expect(text).toContain('autoglm_slo_events_total{slo="normal-queue",tenant="acme",class="normal",good="false"} 2');
  });
});
