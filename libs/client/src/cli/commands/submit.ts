import type { Command } from 'commander';
import { DeadlinePolicy, type PriorityClass, type SubmitTaskRequest, type Task, TaskState } from '@autoglm/proto';
import type { AutoglmClient } from '../../sdk/client';
import { AutoglmError } from '../../sdk/errors';
import type { MessageInit } from '../../sdk/message-init';
import { mapConcurrent } from '../concurrency';
import { commandContext, type CommandContext, interruptible } from '../context';
import { followTask, WATCH_CONCURRENCY } from '../follow';
import { durationMs, humanDuration } from '../format';
import { examples } from '../help';
import type { CliIo } from '../io';
import { println } from '../io';
import { taskJson } from '../json';
import { endsTask, stateName } from '../names';
import {
  collect,
  collectList,
  durationFromMs,
  parseDeadline,
  parseDurationMs,
  parseBytes,
  parseInteger,
  parseLabel,
  parseNonNegative,
  parsePriorityClass,
  splitCommand,
} from '../parse';
import { ProgressBar } from '../progress';
import { readAll } from '../read-stdin';

/** Options of `submit`; `schedule create` reads the task flags it shares. */
export interface SubmitOptions {
  model?: string;
  class?: PriorityClass;
  priority?: number;
  maxTokens?: number;
  temperature?: number;
  deadline?: string;
  refuseLate?: boolean;
  dependsOn?: string[];
  gpus?: number;
  cpus?: number;
  memory?: number;
  command?: string;
  arg?: string[];
  duration?: number;
  timeLimit?: number;
  env?: [string, string][];
  count: number;
  wait?: boolean;
  requestId?: string;
  label?: [string, string][];
  preemptible?: boolean;
  maxRetries?: number;
}

/** Submissions in flight at once with --count. */
const SUBMIT_CONCURRENCY = 64;

/**
 * The options that shape a task (model, class, resources, the batch job, labels,
 * retries), shared by `submit` and `schedule create`; buildRequest reads them.
 */
export function addTaskOptions(command: Command): Command {
  return command
    .option('--model <name>', 'model from the catalog (env AUTOGLM_MODEL)', process.env.AUTOGLM_MODEL)
    .option('--class <class>', 'priority class: urgent, normal or background', parsePriorityClass)
    .option('--priority <n>', 'priority within the class, -1000..1000; negative is sheddable', parseInteger(-1000, 1000))
    .option('--max-tokens <n>', 'upper bound on generated tokens', parseInteger(1, 10_000_000))
    .option('--temperature <t>', 'sampling temperature, 0..2', parseNonNegative)
    .option('--gpus <n>', 'whole GPUs on one host; 0 for a batch job without GPUs (it holds cores instead)', parseInteger(0, 1024))
    .option('--cpus <n>', 'batch job: host cores it holds, fractions allowed (default 1 with --gpus 0, else none)', parseNonNegative)
    .option('--memory <size>', 'batch job: host memory it holds, e.g. 4GiB (4G is the same; 4GB is 10^9 bytes each) (default 1GiB with --gpus 0, else none)', parseBytes)
    .option('--command <cmd>', 'batch job: the command line, split on spaces')
    .option('--arg <arg>', 'batch job: one argv element (repeatable; for arguments with spaces)', collect((arg: string) => arg))
    .option('--duration <d>', 'batch job: expected duration (the sim backend runs this long), e.g. 2s', parseDurationMs)
    .option('--time-limit <d>', 'batch job: killed after this long on the command backend (default twice --duration plus 1m)', parseDurationMs)
    .option('--env <k=v>', 'batch job: an environment variable (repeatable); AUTOGLM_SIM_FAIL=retryable|permanent makes a simulated job fail', collect(parseLabel))
    .option('--label <k=v>', 'a label (repeatable)', collect(parseLabel))
    .option('--preemptible', 'let the scheduler stop it for more urgent work')
    .option('--max-retries <n>', 'attempts after the first', parseInteger(0, 1000));
}

/** `autoglm submit`. */
export function registerSubmit(program: Command, io: CliIo): void {
  const submit = program
    .command('submit')
    .description('Submit an inference request or a batch job; prints the task id.')
    .argument('[prompt]', 'prompt of an inference task ("-" reads it from stdin)');
  addTaskOptions(submit)
    .option('--deadline <time>', 'when the result stops being useful: ISO time, or +30s, +5m from now')
    .option('--refuse-late', 'with --deadline: refuse the submission if the deadline is predicted to be missed (deadline_policy REFUSE_UNMEETABLE)')
    .option('--depends-on <id>', 'a task that must succeed first (repeatable, or comma-separated)', collectList((id: string) => id))
    .option('--count <n>', 'submit N copies concurrently', parseInteger(1, 1_000_000), 1)
    .option('--wait', 'wait for the final state and print the output; exits 1 when a task did not succeed')
    .option('--request-id <id>', 'idempotency key; with --count, copies get <id>-1, <id>-2, ...')
    .addHelpText(
      'after',
      examples(
        'autoglm submit "Explain KV caching in two sentences" --model glm-4-9b --class urgent --wait',
        'autoglm submit --command "python train.py --epochs 3" --gpus 2 --duration 30s',
        'autoglm submit --command "python preprocess.py" --gpus 0 --cpus 4 --memory 8GiB',
        'autoglm submit --duration 2s --count 100 --class background | autoglm watch -',
        'autoglm submit "Summarise the report" --depends-on 3f1c... --deadline +5m --label team=search',
      ),
    )
    .action(async (prompt: string | undefined, options: SubmitOptions, command: Command) => {
      const ctx = commandContext(io, command);
      const request = await buildRequest(prompt, options, io.stdin);
      await ctx.withClient(async (client) => {
        const started = Date.now();
        const outcomes = await mapConcurrent(Array.from({ length: options.count }), SUBMIT_CONCURRENCY, async (_, index) => {
          const requestId = options.requestId === undefined ? undefined : options.count === 1 ? options.requestId : `${options.requestId}-${index + 1}`;
          try {
            const response = await client.submit({ ...request, requestId });
            return { task: response.task, created: response.created };
          } catch (error) {
            return { error: AutoglmError.from(error) };
          }
        });
        const tasks: Task[] = [];
        for (const outcome of outcomes) {
          if (!('task' in outcome) || outcome.task === undefined) continue;
          tasks.push(outcome.task);
          if (!options.wait) {
            if (ctx.globals.json) ctx.printJson(taskJson(outcome.task));
            else println(io.stdout, outcome.task.id);
          }
          if (options.count === 1 && !outcome.created && !ctx.globals.json) {
            println(io.stderr, `request id ${outcome.task.requestId} was seen before: this is the existing task`);
          }
        }
        if (options.count > 1 && !ctx.globals.json) {
          const seconds = (Date.now() - started) / 1000;
          println(io.stderr, `submitted ${tasks.length} tasks in ${seconds.toFixed(2)}s (${(tasks.length / seconds).toFixed(0)}/s)`);
        }
        const failures = outcomes.flatMap((outcome) => ('error' in outcome && outcome.error ? [outcome.error] : []));
        const first = failures[0];
        if (first !== undefined) {
          const message = options.count === 1 ? first.details : `${failures.length} of ${options.count} submissions failed; first: ${first.details}`;
          throw new AutoglmError(first.code, message, { cause: first });
        }
        if (options.wait) await waitForAll(ctx, client, tasks);
      });
    });
}

/** The SubmitTask request the task flags describe. */
export async function buildRequest(prompt: string | undefined, options: SubmitOptions, stdin: NodeJS.ReadableStream): Promise<MessageInit<SubmitTaskRequest>> {
  const argv = [...(options.command === undefined ? [] : splitCommand(options.command)), ...(options.arg ?? [])];
  const batch = argv.length > 0 || options.duration !== undefined || options.timeLimit !== undefined;
  if (options.env !== undefined && !batch) throw new AutoglmError('INVALID_ARGUMENT', '--env goes with a batch job (--command, --arg or --duration)');
  if (batch && prompt !== undefined) {
    throw new AutoglmError('INVALID_ARGUMENT', 'give either a prompt (inference) or --command/--arg/--duration (batch job), not both');
  }
  const text = prompt === '-' ? await readAll(stdin) : prompt;
  if (!batch && (text === undefined || text.trim() === '')) {
    throw new AutoglmError('INVALID_ARGUMENT', 'give a prompt for an inference task, or --command/--duration for a batch job');
  }
  return {
    model: options.model ?? '',
    payload: batch
      ? {
          $case: 'batch',
          batch: {
            command: argv,
            env: Object.fromEntries(options.env ?? []),
            expectedDuration: options.duration === undefined ? undefined : durationFromMs(options.duration),
            timeLimit: options.timeLimit === undefined ? undefined : durationFromMs(options.timeLimit),
          },
        }
      : {
          $case: 'inference',
          inference: { prompt: text ?? '', params: { maxTokens: options.maxTokens ?? 0, temperature: options.temperature ?? 0 } },
        },
    priorityClass: options.class,
    priority: options.priority,
    deadline: options.deadline === undefined ? undefined : parseDeadline(options.deadline),
    deadlinePolicy: options.refuseLate ? DeadlinePolicy.REFUSE_UNMEETABLE : DeadlinePolicy.UNSPECIFIED,
    dependsOn: options.dependsOn ?? [],
    resources:
      options.gpus === undefined && options.cpus === undefined && options.memory === undefined
        ? undefined
        : { gpuCount: options.gpus, cpuCores: options.cpus ?? 0, memoryBytes: options.memory ?? 0 },
    preemptible: options.preemptible ?? false,
    maxRetries: options.maxRetries,
    labels: Object.fromEntries(options.label ?? []),
  };
}

/** --wait: follows every task to its end, then prints each with its output. */
async function waitForAll(ctx: CommandContext, client: AutoglmClient, submitted: Task[]): Promise<void> {
  const { io } = ctx;
  const progress = submitted.length > 1 && !ctx.globals.json ? new ProgressBar(io.stderr, submitted.map((t) => t.id)) : undefined;
  const finished = await interruptible(io, 'stopped waiting; the tasks keep running (autoglm cancel <id> stops one)', (signal) =>
    mapConcurrent(submitted, WATCH_CONCURRENCY, async (task) => {
      // One task's failed watch must not stop the others (they would run on, unreported).
      try {
        await followTask(client, task.id, (event) => progress?.update(task.id, event.state, endsTask(event)), signal);
        return signal.aborted ? task : await client.get(task.id);
      } catch (error) {
        return { ...task, reason: `could not follow: ${AutoglmError.from(error).details}` };
      }
    }),
  );
  progress?.finish();
  let unsuccessful = 0;
  for (const task of finished) {
    if (task.state !== TaskState.SUCCEEDED) unsuccessful++;
    if (ctx.globals.json) {
      ctx.printJson(taskJson(task));
    } else if (finished.length === 1) {
      const output = task.result?.output ?? '';
      if (output !== '') io.stdout.write(output.endsWith('\n') ? output : `${output}\n`);
      println(io.stderr, summaryLine(task));
    } else {
      const firstLine = (task.result?.output ?? '').split('\n')[0] ?? '';
      println(io.stdout, `${task.id}  ${stateName(task.state)}  ${task.reason || firstLine}`.trimEnd());
    }
  }
  if (unsuccessful > 0) {
    if (finished.length > 1 && !ctx.globals.json) println(io.stderr, `${unsuccessful} of ${finished.length} tasks did not succeed`);
    io.setExitCode(1);
  }
}

function summaryLine(task: Task): string {
  const parts = [`task ${task.id} ${stateName(task.state)}`];
  if (task.nodeId) parts.push(`on ${task.nodeId}`);
  const result = task.result;
  if (result !== undefined) {
    parts.push(`(queue ${humanDuration(durationMs(result.queueTime))}, run ${humanDuration(durationMs(result.runTime))})`);
  }
  if (task.reason) parts.push(`: ${task.reason}`);
  return parts.join(' ');
}
