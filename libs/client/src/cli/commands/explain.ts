import type { Command } from 'commander';
import { commandContext } from '../context';
import { table } from '../format';
import { examples } from '../help';
import { type CliIo, println } from '../io';
import { explanationJson } from '../json';
import { stateName, waitingCauseName } from '../names';

/** `autoglm explain`. */
export function registerExplain(program: Command, io: CliIo): void {
  program
    .command('explain')
    .description('Explain a task’s priority, factor by factor, and why it is not running yet.')
    .argument('<id>', 'task id')
    .addHelpText('after', examples('autoglm explain 3f1c9a2e-...'))
    .action(async (id: string, _options: object, command: Command) => {
      const ctx = commandContext(io, command);
      const explanation = await ctx.withClient((client) => client.explain(id));
      if (ctx.globals.json) {
        ctx.printJson(explanationJson(explanation));
        return;
      }
      const e = explanation;
      println(io.stdout, `task ${e.taskId}  ${stateName(e.state)}  priority ${e.priority.toFixed(1)}`);
      if (e.queuePosition > 0) println(io.stdout, `position ${e.queuePosition} (${e.tasksAhead} ahead)${e.overdue ? ', overdue: past the age bound' : ''}`);
      if (e.waitingReason !== '') {
        const cause = waitingCauseName(e.waitingCause);
        println(io.stdout, `waiting${cause ? ` (${cause})` : ''}: ${e.waitingReason}`);
      }
      println(io.stdout, `tenant usage: ${e.tenantUsageOverShare.toFixed(2)} of its fair share`);
      println(io.stdout);
      println(
        io.stdout,
        table(
          ['FACTOR', 'VALUE', 'WEIGHT', 'CONTRIBUTION'],
          e.factors.map((f) => [f.name, f.value.toFixed(3), String(f.weight), f.contribution.toFixed(1)]),
          [false, true, true, true],
        ),
      );
    });
}
