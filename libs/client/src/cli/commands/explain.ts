import type { Command } from 'commander';
import { commandContext } from '../context';
import { table } from '../format';
import { examples } from '../help';
import { type CliIo, println } from '../io';
import { explanationJson } from '../json';
import { stateName } from '../names';

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
      const position = explanation.queuePosition > 0 ? `, queue position ${explanation.queuePosition}` : '';
      println(io.stdout, `task ${explanation.taskId}  ${stateName(explanation.state)}  priority ${explanation.priority.toFixed(3)}${position}`);
      if (explanation.waitingReason !== '') println(io.stdout, `waiting: ${explanation.waitingReason}`);
      println(io.stdout);
      println(
        io.stdout,
        table(
          ['FACTOR', 'VALUE', 'WEIGHT', 'CONTRIBUTION'],
          explanation.factors.map((f) => [f.name, f.value.toFixed(3), f.weight.toFixed(3), f.contribution.toFixed(3)]),
          [false, true, true, true],
        ),
      );
    });
}
