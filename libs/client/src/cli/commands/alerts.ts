import type { Command } from 'commander';
import { DEFAULT_BACKLOG_RULES, DEFAULT_SLOS, prometheusRules } from '@autoglm/core';
import { AlertState, type Alert, type FeedbackAction, type ScaleRecommendation, type SloStatus } from '@autoglm/proto';
import { commandContext } from '../context';
import { age, isoTime, table } from '../format';
import { examples } from '../help';
import { type CliIo, println } from '../io';

const STATE_NAMES: Record<number, string> = { [AlertState.PENDING]: 'pending', [AlertState.FIRING]: 'firing', [AlertState.RESOLVED]: 'resolved' };

function alertJson(a: Alert) {
  return {
    name: a.name,
    state: STATE_NAMES[a.state] ?? 'unknown',
    severity: a.severity,
    labels: a.labels,
    summary: a.summary,
    value: a.value,
    activeSince: isoTime(a.activeSince) ?? null,
    firedAt: isoTime(a.firedAt) ?? null,
    resolvedAt: isoTime(a.resolvedAt) ?? null,
  };
}

function labelText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .filter(([, v]) => v !== '*')
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

/** `autoglm alerts`, `autoglm slos`, `autoglm scale` and `autoglm feedback`: the monitor's view, through the public endpoint. */
export function registerAlerts(program: Command, io: CliIo): void {
  const alerts = program
    .command('alerts')
    .description("The monitor's alerts (firing, then pending): SLOs missed, queues backed up, nodes quarantined.")
    .option('--all', 'also the alerts resolved lately')
    .addHelpText('after', examples('autoglm alerts', 'autoglm alerts --all --json', 'autoglm alerts rules > autoglm-rules.yml'))
    .action(async (options: { all?: boolean }, command: Command) => {
      const ctx = commandContext(io, command);
      const answer = await ctx.withClient((client) => client.listAlerts(options.all ?? false));
      if (ctx.globals.json) {
        for (const a of answer.alerts) ctx.printJson(alertJson(a));
        return;
      }
      if (answer.alerts.length === 0) {
        println(io.stdout, options.all ? 'no alerts' : 'no alerts firing or pending');
        return;
      }
      const now = Date.now();
      const rows = answer.alerts.map((a) => [STATE_NAMES[a.state] ?? '?', a.severity, a.name, labelText(a.labels), age(a.resolvedAt ?? a.firedAt ?? a.activeSince, now), a.summary]);
      println(io.stdout, table(['STATE', 'SEVERITY', 'ALERT', 'LABELS', 'SINCE', 'SUMMARY'], rows));
    });
  alerts
    .command('rules')
    .description("Print the monitor's default SLO and alert rules as a Prometheus rules file (check it with promtool check rules).")
    .action(() => {
      io.stdout.write(prometheusRules(DEFAULT_SLOS, DEFAULT_BACKLOG_RULES));
    });

  program
    .command('slos')
    .description('Each SLO series: good events over its window against its objective.')
    .addHelpText('after', examples('autoglm slos', 'autoglm slos --json'))
    .action(async (_options: unknown, command: Command) => {
      const ctx = commandContext(io, command);
      const { slos } = await ctx.withClient((client) => client.sloStatus());
      if (ctx.globals.json) {
        for (const s of slos) ctx.printJson({ ...s });
        return;
      }
      if (slos.length === 0) {
        println(io.stdout, 'no SLO has events in its window yet');
        return;
      }
      println(io.stdout, table(['SLO', 'TENANT', 'CLASS', 'GOOD', 'OBJECTIVE', 'EVENTS', 'BURN', 'STATUS'], slos.map(sloRow), [false, false, false, true, true, true, true, false]));
    });

  program
    .command('scale')
    .description('Recommended replicas per model and agents per pool (what KEDA is told), against what runs now.')
    .addHelpText('after', examples('autoglm scale', 'autoglm scale --json'))
    .action(async (_options: unknown, command: Command) => {
      const ctx = commandContext(io, command);
      const { recommendations } = await ctx.withClient((client) => client.scaleRecommendations());
      if (ctx.globals.json) {
        for (const r of recommendations) ctx.printJson({ ...r });
        return;
      }
      println(io.stdout, table(['KIND', 'NAME', 'NOW', 'DESIRED', 'WHY'], recommendations.map(scaleRow), [false, false, true, true, false]));
    });

  program
    .command('feedback')
    .description("The feedback loop's recent changes (boosts, warm replicas, quarantines) and why.")
    .addHelpText('after', examples('autoglm feedback', 'autoglm feedback --json'))
    .action(async (_options: unknown, command: Command) => {
      const ctx = commandContext(io, command);
      const answer = await ctx.withClient((client) => client.feedbackActions());
      if (ctx.globals.json) {
        for (const a of answer.actions) ctx.printJson({ ...a, time: isoTime(a.time) ?? null });
        return;
      }
      if (!answer.enabled) println(io.stderr, 'the feedback loop is off (AUTOGLM_FEEDBACK=false): these changes were not applied');
      if (answer.actions.length === 0) {
        println(io.stdout, 'no feedback changes yet');
        return;
      }
      const now = Date.now();
      println(io.stdout, table(['AGO', 'KIND', 'TARGET', 'FROM', 'TO', 'APPLIED', 'WHY'], answer.actions.map((a) => actionRow(a, now))));
    });
}

function sloRow(s: SloStatus): string[] {
  return [s.slo, s.tenant, s.priorityClass, `${(s.attainment * 100).toFixed(1)}%`, `${(s.objective * 100).toFixed(1)}%`, String(s.total), s.burnRate.toFixed(2), s.status];
}

function scaleRow(r: ScaleRecommendation): string[] {
  return [r.kind, r.name, String(r.current), String(r.desired), r.reason];
}

function actionRow(a: FeedbackAction, now: number): string[] {
  return [age(a.time, now), a.kind, a.target, String(a.from), String(a.to), a.applied ? 'yes' : 'no', a.reason];
}
