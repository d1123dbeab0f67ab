import type { Command } from 'commander';
import { commandContext } from '../context';
import { examples } from '../help';
import { type CliIo, println } from '../io';
import { taskJson } from '../json';
import { stateName } from '../names';

/** `autoglm cancel`. */
export function registerCancel(program: Command, io: CliIo): void {
  program
    .command('cancel')
    .description('Cancel a task that has not finished (a finished one is left as it is).')
    .argument('<id>', 'task id')
    .option('--reason <text>', 'recorded with the CANCELLED event', 'cancelled from the autoglm CLI')
    .addHelpText('after', examples('autoglm cancel 3f1c9a2e-...', 'autoglm cancel 3f1c9a2e-... --reason "superseded by v2"'))
    .action(async (id: string, options: { reason: string }, command: Command) => {
      const ctx = commandContext(io, command);
      const task = await ctx.withClient((client) => client.cancel(id, options.reason));
      if (ctx.globals.json) ctx.printJson(taskJson(task));
      else println(io.stdout, `${task.id}  ${stateName(task.state)}${task.reason ? `  ${task.reason}` : ''}`);
    });
}
