import type { Command } from 'commander';
import type { TaskState } from '@autoglm/proto';
import { commandContext } from '../context';
import { age, table } from '../format';
import { examples } from '../help';
import { type CliIo, println } from '../io';
import { taskJson } from '../json';
import { className, kindName, stateName } from '../names';
import { listTasks } from '../list-tasks';
import { collectList, parseInteger, parseTaskState } from '../parse';

interface ListOptions {
  state?: TaskState[];
  limit: number;
}

/** `autoglm list`. */
export function registerList(program: Command, io: CliIo): void {
  program
    .command('list')
    .description("List the tenant's tasks, newest first.")
    .option('--state <state>', 'only tasks in this state (repeatable, or comma-separated)', collectList(parseTaskState))
    .option('--limit <n>', 'at most this many tasks', parseInteger(1, 100_000), 20)
    .addHelpText('after', examples('autoglm list', 'autoglm list --state queued,running --limit 100', 'autoglm list --state dead_letter --json'))
    .action(async (options: ListOptions, command: Command) => {
      const ctx = commandContext(io, command);
      const tasks = await ctx.withClient((client) => listTasks(client, { tenant: ctx.globals.tenant ?? '', states: options.state ?? [], limit: options.limit }));
      if (ctx.globals.json) {
        for (const task of tasks) ctx.printJson(taskJson(task));
        return;
      }
      const now = Date.now();
      println(
        io.stdout,
        table(
          ['ID', 'STATE', 'KIND', 'MODEL', 'CLASS', 'PRIO', 'NODE', 'AGE'],
          tasks.map((task) => [
            task.id,
            stateName(task.state),
            task.spec === undefined ? '-' : kindName(task.spec.kind),
            task.spec?.model || '-',
            task.spec === undefined ? '-' : className(task.spec.priorityClass),
            String(task.spec?.priority ?? 0),
            task.nodeId || '-',
            age(task.createdAt, now),
          ]),
          [false, false, false, false, false, true, false, true],
        ),
      );
    });
}
