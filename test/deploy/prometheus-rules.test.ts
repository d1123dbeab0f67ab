import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_BACKLOG_RULES, DEFAULT_SLOS, prometheusRules } from '@autoglm/core';

// The Prometheus rules file shipped in deploy/prometheus: generated from the
// monitor's defaults, valid for promtool, and alerting when and only when it
// should (deploy/prometheus/autoglm-rules.test.yml). promtool comes from
// Debian's `prometheus` package, which .ci/run installs.
const REPO_ROOT = path.resolve(__dirname, '..', '..');
const RULES = path.join(REPO_ROOT, 'deploy/prometheus/autoglm-rules.yml');
const RULES_TESTS = path.join(REPO_ROOT, 'deploy/prometheus/autoglm-rules.test.yml');

const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
const promtoolReady = probe.status === 0;
const inCi = process.env.CI === 'true';
const missing = `promtool is not on PATH (${(probe.error?.message ?? probe.stderr ?? '').trim()}); install it with: apt-get install -y prometheus`;

if (!promtoolReady && !inCi) {
  // Not console (lint): a skip has to be visible in the run's output, not only in a count.
  process.stderr.write(`test/deploy/prometheus-rules.test.ts: promtool checks skipped: ${missing}\n`);
}

function promtool(...args: string[]): { status: number | null; output: string } {
  const run = spawnSync('promtool', args, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 30_000 });
  return { status: run.status, output: `${run.stdout}${run.stderr}${run.error?.message ?? ''}` };
}

describe('deploy/prometheus/autoglm-rules.yml', () => {
  it('is what prometheusRules() makes of the default SLOs and backlog rules', () => {
    const shipped = readFileSync(RULES, 'utf8');
    if (shipped !== prometheusRules(DEFAULT_SLOS, DEFAULT_BACKLOG_RULES)) {
      throw new Error(
        'deploy/prometheus/autoglm-rules.yml is stale: run `npx tsc -b tsconfig.build.json && node scripts/write-prometheus-rules.js` and commit the result',
      );
    }
  });

  (promtoolReady || inCi ? describe : describe.skip)('with promtool', () => {
    beforeAll(() => {
      if (!promtoolReady) throw new Error(`CI=true and ${missing}`);
    });

    it('passes `promtool check rules`', () => {
      const { status, output } = promtool('check', 'rules', RULES);
      // One SloMissed per SLO, one QueueBacklog per backlog rule, NodeQuarantined.
      const rules = DEFAULT_SLOS.length + DEFAULT_BACKLOG_RULES.length + 1;
      expect({ status, output }).toEqual({ status: 0, output: expect.stringContaining(`SUCCESS: ${rules} rules found`) });
    });

    it('is loaded by deploy/prometheus.yml (`promtool check config`)', () => {
      const { status, output } = promtool('check', 'config', 'deploy/prometheus.yml');
      expect({ status, output }).toEqual({ status: 0, output: expect.stringContaining('Checking deploy/prometheus/autoglm-rules.yml') });
    });

    it('pends, fires and clears SloMissed and QueueBacklog as `promtool test rules` expects', () => {
      // The SLO cases use urgent-ttft's objective and timing; if the defaults
      // change, the expectations in autoglm-rules.test.yml have to follow.
      const urgentTtft = DEFAULT_SLOS.find((s) => s.name === 'urgent-ttft');
      expect(urgentTtft).toMatchObject({ objective: 0.95, minEvents: 20, alertForMs: 60_000, windowMs: 300_000 });
      expect(DEFAULT_BACKLOG_RULES.find((b) => b.priorityClass === 'urgent')).toMatchObject({ maxPending: 100, forMs: 60_000 });

      const { status, output } = promtool('test', 'rules', RULES_TESTS);
      if (status !== 0) throw new Error(`promtool test rules ${path.relative(REPO_ROOT, RULES_TESTS)} failed:\n${output}`);
      expect(output).toContain('SUCCESS');
    });
  });
});
