import type { Command } from 'commander';
import { TaskState } from '@autoglm/proto';
import { AutoglmError } from '../../sdk/errors';
import { mapConcurrent } from '../concurrency';
import { commandContext, interruptible } from '../context';
import { followTask, WATCH_CONCURRENCY } from '../follow';
import { humanDuration } from '../format';
import { examples } from '../help';
import { type CliIo, println } from '../io';
import { eventJson } from '../json';
import { endsTask, stateName } from '../names';
import { idsFromText } from '../parse';
import { ProgressBar } from '../progress';
import { readAll } from '../read-stdin';

/** Tasks that did not succeed, listed by name at the end. */
const LISTED = 10;

/** `autoglm watch`. */
export function registerWatch(program: Command, io: CliIo): void {
  program
    .command('watch')
    .description('Follow tasks to their end with one progress bar; exits 1 when a task did not succeed.')
    .argument('<ids...>', 'task ids; "-" reads ids from stdin (as `autoglm submit` prints them, plain or --json)')
    .addHelpText(
      'after',
      examples(
        'autoglm watch 3f1c9a2e-... 8d0b7c11-...',
        'autoglm submit --duration 2s --count 500 | autoglm watch -',
        'autoglm watch 3f1c9a2e-... --json    # one JSON event per line',
      ),
    )
    .action(async (args: string[], _options: object, command: Command) => {
      const ctx = commandContext(io, command);
      const ids: string[] = [];
      for (const arg of args) ids.push(...(arg === '-' ? idsFromText(await readAll(io.stdin)) : [arg]));
      const unique = [...new Set(ids)];
      if (unique.length === 0) throw new AutoglmError('INVALID_ARGUMENT', 'no task ids given');

      const started = Date.now();
      const progress = ctx.globals.json ? undefined : new ProgressBar(io.stderr, unique);
      const reasons = new Map<string, string>();
      const outcomes = await ctx.withClient((client) =>
        interruptible(io, undefined, async (signal) => {
          const results = await mapConcurrent(unique, WATCH_CONCURRENCY, async (id) => {
            try {
              const state = await followTask(
                client,
                id,
                (event) => {
                  reasons.set(id, event.reason);
                  progress?.update(id, event.state, endsTask(event));
                  if (ctx.globals.json) ctx.printJson(eventJson(event));
                },
                signal,
              );
              return { id, state };
            } catch (error) {
              return { id, error: AutoglmError.from(error) };
            }
          });
          return { results, interrupted: signal.aborted };
        }),
      );
      progress?.finish();

      const failures = outcomes.results.flatMap((r) => (r.error === undefined ? [] : [r]));
      const first = failures[0];
      if (first?.error !== undefined) {
        const message =
          unique.length === 1 ? first.error.details : `${failures.length} of ${unique.length} watches failed; first, ${first.id}: ${first.error.details}`;
        throw new AutoglmError(first.error.code, message, { cause: first.error });
      }
      if (outcomes.interrupted) {
        if (!ctx.globals.json) println(io.stderr, 'stopped watching; the tasks keep running');
        io.setExitCode(130);
        return;
      }
      const unsuccessful = outcomes.results.filter((r) => r.state !== TaskState.SUCCEEDED);
      if (!ctx.globals.json) {
        println(io.stderr, `${unique.length} task${unique.length === 1 ? '' : 's'} finished in ${humanDuration(Date.now() - started)}`);
        for (const r of unsuccessful.slice(0, LISTED)) {
          println(io.stderr, `  ${r.id}  ${r.state === undefined ? 'UNKNOWN' : stateName(r.state)}  ${reasons.get(r.id) ?? ''}`.trimEnd());
        }
        if (unsuccessful.length > LISTED) println(io.stderr, `  ... and ${unsuccessful.length - LISTED} more that did not succeed`);
      }
      if (unsuccessful.length > 0) io.setExitCode(1);
    });
}
