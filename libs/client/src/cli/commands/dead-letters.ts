import type { Command } from 'commander';
import { type DeadLetterSelector, TaskState } from '@autoglm/proto';
import { toTimestamp } from '@autoglm/core';
import { commandContext } from '../context';
import { age, table, truncate } from '../format';
import { examples } from '../help';
import { type CliIo, println } from '../io';
import { taskJson } from '../json';
import { listTasks } from '../list-tasks';
import { parseDurationMs, parseInteger } from '../parse';

interface SelectOptions {
  all?: boolean;
  olderThan?: number;
}

/** The selector of `requeue` and `purge`: ids, or --all (optionally --older-than). A usage error exits 1 with commander's message. */
function selector(ids: string[], options: SelectOptions, command: Command): Partial<DeadLetterSelector> {
  if (ids.length > 0 && options.all) command.error('error: give task ids or --all, not both');
  if (ids.length === 0 && !options.all) command.error('error: name the dead letters by id, or pass --all');
  if (options.olderThan !== undefined && !options.all) command.error('error: --older-than goes with --all');
  return ids.length > 0 ? { taskIds: ids } : { all: true, finishedBefore: options.olderThan === undefined ? undefined : toTimestamp(Date.now() - options.olderThan) };
}

/** `autoglm dead-letters list|requeue|purge`. */
export function registerDeadLetters(program: Command, io: CliIo): void {
  const group = program
    .command('dead-letters')
    .description('Tasks that used up their retries (DEAD_LETTER): list them, requeue them as new tasks, or purge them.')
    .addHelpText('after', examples('autoglm dead-letters list', 'autoglm dead-letters requeue 3f1c9a2e-...', 'autoglm dead-letters purge --all --older-than 7d'));

  group
    .command('list')
    .description('List dead letters not requeued yet, newest submission first, with why they ended.')
    .option('--limit <n>', 'at most this many', parseInteger(1, 100_000), 20)
    .option('--include-requeued', 'also those already requeued (with the new task id)')
    .action(async (options: { limit: number; includeRequeued?: boolean }, command: Command) => {
      const ctx = commandContext(io, command);
      const tasks = await ctx.withClient((client) =>
        listTasks(client, { tenant: ctx.globals.tenant ?? '', states: [TaskState.DEAD_LETTER], limit: options.limit, keep: (t) => options.includeRequeued === true || !t.requeuedAs }),
      );
      if (ctx.globals.json) {
        for (const task of tasks) ctx.printJson(taskJson(task));
        return;
      }
      const now = Date.now();
      const header = ['ID', 'FAILURES', 'ATTEMPTS', 'ENDED', ...(options.includeRequeued ? ['REQUEUED AS'] : []), 'REASON'];
      const rows = tasks.map((t) => [
        t.id,
        String(t.failures),
        String(t.attempt),
        age(t.finishedAt, now),
        ...(options.includeRequeued ? [t.requeuedAs || '-'] : []),
        truncate(t.reason, 80),
      ]);
      println(io.stdout, tasks.length === 0 ? 'no dead letters' : table(header, rows, [false, true, true, true]));
    });

  group
    .command('requeue')
    .description('Submit a new task in place of each dead letter: the same spec, a fresh retry budget, the label autoglm.requeued_from.')
    .argument('[ids...]', 'dead letters to requeue')
    .option('--all', "every dead letter of the tenant (at most 10,000 per call)")
    .option('--older-than <duration>', 'with --all: only those that ended this long ago or more (30s, 5m, 7d)', parseDurationMs)
    .action(async (ids: string[], options: SelectOptions, command: Command) => {
      const ctx = commandContext(io, command);
      const select = selector(ids, options, command);
      const { requeued } = await ctx.withClient((client) => client.requeueDeadLetters(select));
      for (const r of requeued) {
        if (ctx.globals.json) ctx.printJson({ deadLetterId: r.deadLetterId, task: r.task ? taskJson(r.task) : null });
        else println(io.stdout, `${r.deadLetterId} -> ${r.task?.id ?? '?'}`);
      }
      if (!ctx.globals.json) println(io.stderr, `requeued ${requeued.length} dead letter${requeued.length === 1 ? '' : 's'}`);
    });

  group
    .command('purge')
    .description('Delete dead letters and their events for good.')
    .argument('[ids...]', 'dead letters to delete')
    .option('--all', 'every dead letter of the tenant (at most 10,000 per call)')
    .option('--older-than <duration>', 'with --all: only those that ended this long ago or more (30s, 5m, 7d)', parseDurationMs)
    .action(async (ids: string[], options: SelectOptions, command: Command) => {
      const ctx = commandContext(io, command);
      const select = selector(ids, options, command);
      const { purged } = await ctx.withClient((client) => client.purgeDeadLetters(select));
      if (ctx.globals.json) ctx.printJson({ purged });
      else println(io.stdout, `purged ${purged} dead letter${purged === 1 ? '' : 's'}`);
    });
}
