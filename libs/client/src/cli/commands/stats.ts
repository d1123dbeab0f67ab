import type { Command } from 'commander';
import { commandContext } from '../context';
import { table } from '../format';
import { examples } from '../help';
import { type CliIo, println } from '../io';
import { queueStatsJson } from '../json';
import { className } from '../names';

/** `autoglm stats`. */
export function registerStats(program: Command, io: CliIo): void {
  program
    .command('stats')
    .description('Show queue counts: overall, per priority class and per tenant, and deadlines met and missed.')
    .addHelpText('after', examples('autoglm stats', 'autoglm stats --json'))
    .action(async (_options: object, command: Command) => {
      const ctx = commandContext(io, command);
      const stats = await ctx.withClient((client) => client.queueStats());
      if (ctx.globals.json) {
        ctx.printJson(queueStatsJson(stats));
        return;
      }
      println(
        io.stdout,
        `waiting on deps ${stats.waitingDeps}  queued ${stats.queued}  running ${stats.running}  retrying ${stats.retrying}  succeeded ${stats.succeeded}  failed ${stats.failed}`,
      );
      println(io.stdout, `dead letters ${stats.deadLetters}  lost attempts ${stats.lostAttempts}  rejected reports ${stats.rejectedReports}  preempted ${stats.preempted}`);
      if (stats.classes.length > 0) {
        println(io.stdout);
        println(
          io.stdout,
          table(
            ['CLASS', 'QUEUED', 'RUNNING', 'OLDEST WAIT'],
            stats.classes.map((c) => [className(c.priorityClass), String(c.queued), String(c.running), `${c.oldestWaitSeconds.toFixed(1)}s`]),
            [false, true, true, true],
          ),
        );
      }
      if (stats.tenants.length > 0) {
        println(io.stdout);
        println(
          io.stdout,
          table(['TENANT', 'QUEUED', 'RUNNING'], stats.tenants.map((t) => [t.tenant, String(t.queued), String(t.running)]), [false, true, true]),
        );
      }
      if (stats.variants.length > 0) {
        println(io.stdout);
        println(
          io.stdout,
          table(
            ['EXPERIMENT', 'VARIANT', 'PERCENT', 'SUBMITTED', 'PLACED', 'MEAN QUEUE', 'DEADLINES MET', 'MISSED'],
            stats.variants.map((v) => [v.experiment, v.variant, `${v.percent}%`, String(v.submitted), String(v.placed), `${v.meanQueueSeconds.toFixed(2)}s`, String(v.deadlinesMet), String(v.deadlinesMissed)]),
            [false, false, true, true, true, true, true, true],
          ),
        );
      }
      if (stats.deadlines.length > 0) {
        println(io.stdout);
        println(
          io.stdout,
          table(
            ['TENANT', 'CLASS', 'DEADLINES MET', 'MISSED', 'REFUSED'],
            stats.deadlines.map((d) => [d.tenant, className(d.priorityClass), String(d.met), String(d.missed), String(d.refused)]),
            [false, false, true, true, true],
          ),
        );
      }
    });
}
