import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from '../support/temp-dir';

// deploy/grafana/autoglm-dashboard.json charts only series the monitor
// exports, under the names it exports them, and every query parses as PromQL
// (promtool, from Debian's `prometheus` package, which .ci/run installs).
const REPO_ROOT = path.resolve(__dirname, '..', '..');
const DASHBOARD = path.join(REPO_ROOT, 'deploy/grafana/autoglm-dashboard.json');
// Where the monitor declares its series: one `new Counter|Gauge|Histogram({ name: '...' })` each.
const METRIC_SOURCES = ['services/monitor/src/metrics.ts', 'services/monitor/src/feedback-metrics.ts'];
const DATASOURCE = '${DS_PROMETHEUS}';

interface Target {
  refId?: string;
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id?: number;
  type: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  gridPos?: { h: number; w: number; x: number; y: number };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  schemaVersion: number;
  uid: string;
  __inputs?: Array<{ name: string; type: string; pluginId: string }>;
  templating: { list: Array<{ name: string; type: string; query?: string }> };
  panels: Panel[];
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
// Rows hold their panels only while collapsed; both kinds count.
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');
const queries = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p, target: t, expr: t.expr ?? '' })));

/** Every series name a Prometheus scraping the monitor can see, histograms by their _bucket, _count and _sum. */
function exportedNames(): Set<string> {
  const names = new Set<string>();
  for (const file of METRIC_SOURCES) {
    const source = readFileSync(path.join(REPO_ROOT, file), 'utf8');
    for (const [, kind, name] of source.matchAll(/new (Counter|Gauge|Histogram|Summary)\(\{\s*name: '(autoglm_\w+)'/g)) {
      if (kind === 'Histogram') for (const suffix of ['_bucket', '_count', '_sum']) names.add(name + suffix);
      else if (kind === 'Summary') for (const suffix of ['', '_count', '_sum']) names.add(name + suffix);
      else names.add(name!);
    }
  }
  return names;
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan']);

/**
 * The series names a PromQL expression selects: identifiers left once strings,
 * label matchers, ranges and grouping clauses are gone, that are neither
 * functions (followed by "(") nor keywords.
 */
function selectedNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names: string[] = [];
  for (const m of bare.matchAll(/(?<![\w.$])[a-zA-Z_:][\w:]*/g)) {
    const after = bare.slice(m.index + m[0].length);
    if (/^\s*\(/.test(after) || KEYWORDS.has(m[0].toLowerCase())) continue;
    names.push(m[0]);
  }
  return names;
}

/** Grafana's interval variables as Prometheus durations, so that promtool can parse the query. */
function withGrafanaVariables(expr: string): string {
  return expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '5m');
}

describe('deploy/grafana/autoglm-dashboard.json', () => {
  it('imports with a Prometheus data source input and selects it through ${DS_PROMETHEUS} on every panel and query', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.__inputs).toContainEqual(expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' }));
    expect(dashboard.templating.list).toContainEqual(expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', query: 'prometheus' }));
    for (const p of panels) {
      expect({ title: p.title, uid: p.datasource?.uid }).toEqual({ title: p.title, uid: DATASOURCE });
      expect(p.targets?.length ?? 0).toBeGreaterThan(0);
      const refIds = (p.targets ?? []).map((t) => t.refId);
      expect(new Set(refIds).size).toBe(refIds.length);
      for (const t of p.targets ?? []) expect({ title: p.title, uid: t.datasource?.uid ?? DATASOURCE }).toEqual({ title: p.title, uid: DATASOURCE });
    }
    const ids = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('queries only series the monitor exports', () => {
    const exported = exportedNames();
    // The loop's series, so that a renamed or dropped source file shows here and not as an empty panel.
    expect([...exported]).toEqual(expect.arrayContaining(['autoglm_tasks_pending', 'autoglm_slo_attainment_ratio', 'autoglm_scale_desired']));
    const unknown = queries.flatMap(({ panel, expr }) => selectedNames(expr).filter((n) => !exported.has(n)).map((n) => `${panel.title}: ${n} (in ${expr})`));
    expect(unknown).toEqual([]);
    for (const { panel, expr } of queries) expect({ title: panel.title, names: selectedNames(expr).length > 0 }).toEqual({ title: panel.title, names: true });
  });

  it('charts the fleet, queue, latency, SLO, alert and feedback-loop series', () => {
    const charted = new Set(queries.flatMap(({ expr }) => selectedNames(expr)));
    expect([...charted].sort()).toEqual(
      expect.arrayContaining([
        'autoglm_gpu_utilization_ratio',
        'autoglm_tasks_pending',
        'autoglm_task_outcomes_total',
        'autoglm_task_queue_wait_seconds_bucket',
        'autoglm_task_time_to_first_token_seconds_bucket',
        'autoglm_slo_attainment_ratio',
        'autoglm_slo_objective_ratio',
        'autoglm_alerts_active',
        'autoglm_node_quarantined',
        'autoglm_scale_desired',
        'autoglm_scale_current',
        'autoglm_feedback_actions_total',
        'autoglm_forecast_requests_per_second',
      ]),
    );
  });

  // promtool has no query check of its own; each query as a recording rule
  // goes through the same PromQL parser under `promtool check rules`.
  const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  const promtoolReady = probe.status === 0;
  const inCi = process.env.CI === 'true';
  const missing = `promtool is not on PATH (${(probe.error?.message ?? probe.stderr ?? '').trim()}); install it with: apt-get install -y prometheus`;
  if (!promtoolReady && !inCi) {
    // Not console (lint): a skip has to be visible in the run's output, not only in a count.
    process.stderr.write(`test/deploy/grafana.test.ts: PromQL check skipped: ${missing}\n`);
  }

  (promtoolReady || inCi ? it : it.skip)('has queries that parse as PromQL (promtool check rules)', () => {
    if (!promtoolReady) throw new Error(`CI=true and ${missing}`);
    const dir = tempDir('grafana-promql');
    try {
      const rules = queries.map(({ panel, target, expr }) => ({ record: `dashboard:panel_${panel.id}_${target.refId}`, expr: withGrafanaVariables(expr) }));
      const file = path.join(dir.dir, 'dashboard-queries.yml');
      // JSON is YAML: no YAML writer needed.
      writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }, null, 2));
      const run = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8', timeout: 30_000 });
      const output = `${run.stdout}${run.stderr}`;
      if (run.status !== 0) throw new Error(`promtool check rules rejected a dashboard query:\n${output}`);
      expect(output).toContain(`SUCCESS: ${rules.length} rules found`);
    } finally {
      dir.remove();
    }
  });
});
