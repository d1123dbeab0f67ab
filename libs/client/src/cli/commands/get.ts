import type { Command } from 'commander';
import { commandContext } from '../context';
import { describeTask } from '../describe-task';
import { examples } from '../help';
import { type CliIo, println } from '../io';
import { taskJson } from '../json';

/** `autoglm get`. */
export function registerGet(program: Command, io: CliIo): void {
  program
    .command('get')
    .description('Show a task: its state, placement, timings and output.')
    .argument('<id>', 'task id')
    .addHelpText('after', examples('autoglm get 3f1c9a2e-...', 'autoglm get 3f1c9a2e-... --json | jq .result.output'))
    .action(async (id: string, _options: object, command: Command) => {
      const ctx = commandContext(io, command);
      const task = await ctx.withClient((client) => client.get(id));
      if (ctx.globals.json) ctx.printJson(taskJson(task));
      else println(io.stdout, describeTask(task));
    });
}
