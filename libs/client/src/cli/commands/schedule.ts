import type { Command } from 'commander';
import { type Schedule, ScheduleState } from '@autoglm/proto';
import { commandContext, type CommandContext } from '../context';
import { durationMs, fieldLines, humanDuration, table, timestampMs, truncate } from '../format';
import { examples } from '../help';
import { type CliIo, println } from '../io';
import { scheduleJson } from '../json';
import { className, kindName, scheduleStateName } from '../names';
import { collectPages } from '../pages';
import { durationFromMs, parseDurationMs, parseInteger } from '../parse';
import { addTaskOptions, buildRequest, type SubmitOptions } from './submit';

interface CreateOptions extends SubmitOptions {
  cron: string;
  tz: string;
  deadlineAfter?: number;
  startingDeadline?: number;
  description?: string;
  paused?: boolean;
}

/** `autoglm schedule create|list|get|pause|resume|delete`. */
export function registerSchedule(program: Command, io: CliIo): void {
  const group = program
    .command('schedule')
    .description('Recurring tasks: a cron expression in a time zone that submits a task at each fire time.')
    .addHelpText(
      'after',
      examples(
        'autoglm schedule create --cron "*/5 * * * *" --tz Europe/Berlin --duration 30s --class background',
        'autoglm schedule list',
        'autoglm schedule pause 0b7c2a50-...',
      ),
    );

  const create = group
    .command('create')
    .description('Create a schedule; prints its id. The task flags are those of submit.')
    .argument('[prompt]', 'prompt of an inference task ("-" reads it from stdin)')
    .requiredOption('--cron <expr>', 'when: "minute hour day-of-month month day-of-week" (e.g. "0 9 * * MON-FRI"), or @hourly, @daily, @weekly, @monthly, @yearly')
    .option('--tz <zone>', 'IANA time zone the cron expression is read in', 'UTC')
    .option('--deadline-after <d>', "each task's deadline, this long after its fire time (e.g. 10m)", parseDurationMs)
    .option('--refuse-late', 'with --deadline-after: refuse a fire whose deadline is predicted to be missed (deadline_policy REFUSE_UNMEETABLE; the refusal goes to last_error)')
    .option('--starting-deadline <d>', 'skip a fire time missed by more than this (decision was down) instead of running it late', parseDurationMs)
    .option('--description <text>', 'free text shown by schedule list')
    .option('--paused', 'create it paused (schedule resume starts it)')
    .option('--request-id <id>', 'idempotency key: creating again with it returns the same schedule');
  // Each task of a schedule also gets the label autoglm.schedule_id.
  addTaskOptions(create)
    .addHelpText(
      'after',
      examples(
        'autoglm schedule create --cron "*/5 * * * *" --tz Europe/Berlin --duration 30s --class background',
        'autoglm schedule create "Summarise yesterday\'s tickets" --model glm-4-9b --cron "0 7 * * MON-FRI" --tz America/New_York --deadline-after 30m',
        'autoglm schedule create --cron @daily --command "python nightly.py" --gpus 2 --starting-deadline 1h',
      ),
    )
    .action(async (prompt: string | undefined, options: CreateOptions, command: Command) => {
      const ctx = commandContext(io, command);
      const template = await buildRequest(prompt, options, io.stdin);
      const { schedule, created } = await ctx.withClient((client) =>
        client.createSchedule({
          requestId: options.requestId ?? '',
          cron: options.cron,
          timeZone: options.tz,
          template,
          deadlineAfter: options.deadlineAfter === undefined ? undefined : durationFromMs(options.deadlineAfter),
          startingDeadline: options.startingDeadline === undefined ? undefined : durationFromMs(options.startingDeadline),
          description: options.description ?? '',
          paused: options.paused ?? false,
        }),
      );
      if (schedule === undefined) return;
      if (ctx.globals.json) {
        ctx.printJson(scheduleJson(schedule));
        return;
      }
      println(io.stdout, schedule.id);
      if (!created) println(io.stderr, `request id ${schedule.requestId} was seen before: this is the existing schedule`);
      println(io.stderr, schedule.state === ScheduleState.PAUSED ? 'paused: autoglm schedule resume <id> starts it' : `next fire ${zonedTime(schedule.nextFireAt, schedule.timeZone)}`);
    });

  group
    .command('list')
    .description("List the tenant's schedules, newest first, with their next and last fires.")
    .option('--limit <n>', 'at most this many', parseInteger(1, 100_000), 100)
    .addHelpText('after', examples('autoglm schedule list', 'autoglm schedule list --json'))
    .action(async (options: { limit: number }, command: Command) => {
      const ctx = commandContext(io, command);
      const schedules = await ctx.withClient((client) =>
        collectPages(async (pageSize, pageToken) => {
          const page = await client.listSchedules({ tenant: ctx.globals.tenant, pageSize, pageToken });
          return { items: page.schedules, nextPageToken: page.nextPageToken };
        }, options.limit),
      );
      if (ctx.globals.json) {
        for (const schedule of schedules) ctx.printJson(scheduleJson(schedule));
        return;
      }
      if (schedules.length === 0) {
        println(io.stdout, 'no schedules');
        return;
      }
      println(
        io.stdout,
        table(
          ['ID', 'STATE', 'CRON', 'TIME ZONE', 'NEXT FIRE', 'LAST FIRE', 'FIRES', 'LAST TASK OR ERROR'],
          schedules.map((s) => [
            s.id,
            scheduleStateName(s.state),
            s.cron,
            s.timeZone,
            zonedTime(s.nextFireAt, s.timeZone),
            zonedTime(s.lastFireAt, s.timeZone),
            String(s.fireCount),
            truncate(s.lastError || s.lastTaskId || '-', 60),
          ]),
          [false, false, false, false, false, false, true, false],
        ),
      );
    });

  group
    .command('get')
    .description('Show a schedule: its cron, task, and next and last fires.')
    .argument('<id>', 'schedule id')
    .action(async (id: string, _options: object, command: Command) => {
      const ctx = commandContext(io, command);
      const schedule = await ctx.withClient((client) => client.getSchedule(id));
      if (ctx.globals.json) ctx.printJson(scheduleJson(schedule));
      else println(io.stdout, describeSchedule(schedule));
    });

  const change = (
    name: string,
    description: string,
    call: (ctx: CommandContext, id: string) => Promise<Schedule | undefined>,
    describe: (schedule: Schedule) => string,
  ) =>
    group
      .command(name)
      .description(description)
      .argument('<id>', 'schedule id')
      .action(async (id: string, _options: object, command: Command) => {
        const ctx = commandContext(io, command);
        const schedule = await call(ctx, id);
        if (schedule === undefined) return;
        if (ctx.globals.json) ctx.printJson(scheduleJson(schedule));
        else println(io.stdout, describe(schedule));
      });
  change(
    'pause',
    'Stop a schedule from firing (its tasks already submitted are not touched).',
    (ctx, id) => ctx.withClient((client) => client.pauseSchedule(id)),
    (s) => `${s.id}  ${scheduleStateName(s.state)}`,
  );
  change(
    'resume',
    'Let a paused schedule fire again, from its next fire time after now.',
    (ctx, id) => ctx.withClient((client) => client.resumeSchedule(id)),
    (s) => `${s.id}  ${scheduleStateName(s.state)}${s.state === ScheduleState.ACTIVE ? `  next fire ${zonedTime(s.nextFireAt, s.timeZone)}` : ''}`,
  );
  change(
    'delete',
    'Delete a schedule (its tasks already submitted are not touched).',
    (ctx, id) => ctx.withClient(async (client) => (await client.deleteSchedule(id)).schedule),
    (s) => `${s.id}  DELETED`,
  );
}

/** "2024-05-01 12:05 Europe/Berlin" (the wall time where the schedule lives), or "-". */
function zonedTime(timestamp: Schedule['nextFireAt'], timeZone: string): string {
  const ms = timestampMs(timestamp);
  if (ms === undefined) return '-';
  try {
    // sv-SE writes dates as ISO does.
    return `${new Intl.DateTimeFormat('sv-SE', { timeZone, dateStyle: 'short', timeStyle: 'short' }).format(ms)} ${timeZone}`;
  } catch {
    return new Date(ms).toISOString();
  }
}

function describeSchedule(s: Schedule): string {
  const spec = s.spec;
  const lines: Array<[string, string]> = [
    ['id', s.id],
    ['state', scheduleStateName(s.state)],
    ['cron', `${s.cron} (${s.timeZone})`],
    ['task', spec === undefined ? '-' : `${kindName(spec.kind)}${spec.model ? ` ${spec.model}` : ''}, ${className(spec.priorityClass)}, ${spec.gpuCount} GPU${spec.gpuCount === 1 ? '' : 's'}`],
    ['next fire', zonedTime(s.nextFireAt, s.timeZone)],
    ['last fire', zonedTime(s.lastFireAt, s.timeZone)],
    ['last task', s.lastTaskId || '-'],
    ['fires', String(s.fireCount)],
  ];
  if (s.deadlineAfter) lines.push(['deadline after', humanDuration(durationMs(s.deadlineAfter))]);
  if (s.startingDeadline) lines.push(['starting deadline', humanDuration(durationMs(s.startingDeadline))]);
  if (s.description) lines.push(['description', s.description]);
  if (s.lastError) lines.push(['last error', s.lastError]);
  return fieldLines(lines).join('\n');
}
