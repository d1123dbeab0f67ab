import type { Command } from 'commander';
import type { InferDone, PriorityClass } from '@autoglm/proto';
import { AutoglmError } from '../../sdk/errors';
import { commandContext, interruptible } from '../context';
import { durationMs, humanDuration } from '../format';
import { examples } from '../help';
import { type CliIo, println } from '../io';
import { inferJson } from '../json';
import { collect, parseDeadline, parseInteger, parseLabel, parseNonNegative, parsePriorityClass } from '../parse';
import { readAll } from '../read-stdin';

interface InferOptions {
  model?: string;
  maxTokens?: number;
  temperature?: number;
  class?: PriorityClass;
  priority?: number;
  deadline?: string;
  requestId?: string;
  label?: [string, string][];
}

/** `autoglm infer`. */
export function registerInfer(program: Command, io: CliIo): void {
  program
    .command('infer')
    .description('Run an interactive inference, streaming tokens as they arrive; Ctrl-C cancels it.')
    .argument('[prompt]', 'the prompt ("-" or nothing reads it from stdin)')
    .option('--model <name>', 'model from the catalog (env AUTOGLM_MODEL)', process.env.AUTOGLM_MODEL)
    .option('--max-tokens <n>', 'upper bound on generated tokens', parseInteger(1, 10_000_000))
    .option('--temperature <t>', 'sampling temperature, 0..2', parseNonNegative)
    .option('--class <class>', 'priority class: urgent (the default for interactive work), normal or background', parsePriorityClass)
    .option('--priority <n>', 'priority within the class, -1000..1000', parseInteger(-1000, 1000))
    .option('--deadline <time>', 'ISO time, or +30s, +5m from now')
    .option('--request-id <id>', 'idempotency key')
    .option('--label <k=v>', 'a label (repeatable)', collect(parseLabel))
    .addHelpText(
      'after',
      examples(
        'autoglm infer "Write a haiku about GPUs" --model glm-4-9b',
        'cat question.txt | autoglm infer --model glm-4-9b --max-tokens 512',
        'autoglm infer "Hello" --json | jq .usage',
      ),
    )
    .action(async (prompt: string | undefined, options: InferOptions, command: Command) => {
      const ctx = commandContext(io, command);
      const text = prompt === undefined || prompt === '-' ? await readAll(io.stdin) : prompt;
      if (text.trim() === '') throw new AutoglmError('INVALID_ARGUMENT', 'give a prompt as an argument or on stdin');
      const start = {
        requestId: options.requestId ?? '',
        model: options.model ?? '',
        input: { prompt: text, params: { maxTokens: options.maxTokens ?? 0, temperature: options.temperature ?? 0 } },
        priorityClass: options.class,
        priority: options.priority,
        deadline: options.deadline === undefined ? undefined : parseDeadline(options.deadline),
        labels: Object.fromEntries(options.label ?? []),
      };
      let taskId = '';
      let output = '';
      let done: InferDone | undefined;
      const interrupted = await ctx.withClient((client) =>
        interruptible(io, undefined, async (signal) => {
          const stream = client.infer(start, { signal, cancelReason: 'cancelled from the autoglm CLI' });
          for await (const response of stream) {
            const kind = response.kind;
            if (kind?.$case === 'accepted') taskId = kind.accepted.taskId;
            else if (kind?.$case === 'chunk') {
              output += kind.chunk.text;
              if (!ctx.globals.json) io.stdout.write(kind.chunk.text);
            } else if (kind?.$case === 'done') done = kind.done;
          }
          return signal.aborted;
        }),
      );
      if (ctx.globals.json) {
        ctx.printJson(inferJson(taskId, output, done));
      } else {
        if (output !== '' && !output.endsWith('\n')) io.stdout.write('\n');
        println(io.stderr, usageLine(taskId, options.model, done));
      }
      if (interrupted) io.setExitCode(130);
    });
}

function usageLine(taskId: string, model: string | undefined, done: InferDone | undefined): string {
  if (done === undefined) return `[task ${taskId || '?'}: the stream ended without a final message]`;
  const usage = done.usage;
  const parts = [
    `${model || 'model'}${done.nodeId ? ` on ${done.nodeId}` : ''}`,
    done.finishReason || 'done',
  ];
  if (usage !== undefined) {
    parts.push(
      `prompt ${usage.promptTokens} tokens, completion ${usage.completionTokens} tokens`,
      `queue ${humanDuration(durationMs(usage.queueTime))}`,
      `TTFT ${humanDuration(durationMs(usage.timeToFirstToken))}`,
      `total ${humanDuration(durationMs(usage.totalTime))}`,
    );
  }
  parts.push(`task ${taskId || '?'}`);
  return `[${parts.join(' · ')}]`;
}
