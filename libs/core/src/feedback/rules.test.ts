import { parse } from 'yaml';
import { sloConditions, prometheusRules, DEFAULT_BACKLOG_RULES, backlogConditions } from './rules';
import { DEFAULT_SLOS, type SloReading } from './slo';

describe('alert rules', () => {
  it('renders every SLO and backlog rule as a Prometheus alert with its for: and labels', () => {
    const doc = parse(prometheusRules(DEFAULT_SLOS, DEFAULT_BACKLOG_RULES)) as { groups: Array<{ rules: Array<Record<string, unknown>> }> };
    const rules = doc.groups[0]!.rules;
    expect(rules).toHaveLength(DEFAULT_SLOS.length + DEFAULT_BACKLOG_RULES.length + 1);
    const ttft = rules[0]!;
    expect(ttft).toMatchObject({ alert: 'SloMissed', for: '1m', labels: { slo: 'urgent-ttft', severity: 'page' } });
    expect(ttft.expr).toContain('sum by (tenant) (increase(autoglm_slo_events_total{slo="urgent-ttft",good="true"}[5m]))');
    expect(ttft.expr).toContain('< 0.95');
    expect(ttft.expr).toContain('>= 20');
  });

  it('turns a missed reading into a SloMissed condition and an over-limit queue into QueueBacklog', () => {
    const missed: SloReading = { slo: 'urgent-ttft', indicator: 'ttft', tenant: 'acme', priorityClass: 'urgent', good: 80, total: 100, attainment: 0.8, objective: 0.95, met: false, burnRate: 4 };
    const [c] = sloConditions(DEFAULT_SLOS, [missed, { ...missed, tenant: 'globex', met: undefined }]);
    expect(c).toMatchObject({ alert: 'SloMissed', labels: { tenant: 'acme' }, forMs: 60_000, summary: 'tenant acme misses SLO urgent-ttft: 80% good of 100 in 5 min (objective 95%)' });
    expect(backlogConditions(DEFAULT_BACKLOG_RULES, new Map([['urgent', 101], ['normal', 5]]))).toEqual([expect.objectContaining({ alert: 'QueueBacklog', labels: { class: 'urgent' }, value: 101 })]);
  });
});
