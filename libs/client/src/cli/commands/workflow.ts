import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { Command } from 'commander';
import * as protobuf from 'protobufjs';
import { PROTO_ROOT, SubmitWorkflowRequest } from '@autoglm/proto';
import { AutoglmError } from '../../sdk/errors';
import { commandContext } from '../context';
import { table } from '../format';
import { examples } from '../help';
import { type CliIo, println } from '../io';
import { taskJson } from '../json';
import { stateName } from '../names';
import { readAll } from '../read-stdin';

/** `autoglm workflow`: submits a DAG of tasks from a JSON file in one call. */
export function registerWorkflow(program: Command, io: CliIo): void {
  program
    .command('workflow')
    .description(
      'Submit a workflow: a JSON SubmitWorkflowRequest (proto3 JSON) whose steps name the steps they wait for in "after". Every step becomes durable together, or none does; a cycle is refused.',
    )
    .argument('<file>', 'the workflow as JSON ("-" reads it from stdin)')
    .option('--request-id <id>', 'idempotency key for the whole workflow (default: the file\'s, else a new one)')
    .addHelpText(
      'after',
      examples(
        `autoglm workflow pipeline.json`,
        `echo '{"steps":[{"name":"prep","task":{"batch":{"command":["true"]}}},{"name":"train","after":["prep"],"task":{"batch":{"command":["true"]},"priorityClass":"PRIORITY_CLASS_URGENT"}}]}' | autoglm workflow -`,
      ),
    )
    .action(async (file: string, options: { requestId?: string }, command: Command) => {
      const ctx = commandContext(io, command);
      const text = file === '-' ? await readAll(io.stdin) : await readFile(file, 'utf8');
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (err) {
        throw new AutoglmError('INVALID_ARGUMENT', `${file === '-' ? 'stdin' : file} is not JSON: ${(err as Error).message}`);
      }
      const request = workflowFromJson(json, file === '-' ? 'stdin' : file);
      if (options.requestId) request.requestId = options.requestId;
      const { tasks, created } = await ctx.withClient((client) => client.submitWorkflow(request));
      if (ctx.globals.json) {
        tasks.forEach((task, i) => ctx.printJson({ step: request.steps[i]?.name ?? '', ...(taskJson(task) as object) }));
        return;
      }
      const rows = tasks.map((task, i) => [request.steps[i]?.name ?? '', task.id, stateName(task.state)]);
      println(io.stdout, table(['STEP', 'TASK', 'STATE'], rows));
      if (!created) println(io.stdout, '(submitted before under this request id: these are the tasks it made)');
    });
}

/**
 * A SubmitWorkflowRequest from its proto3 JSON form (lowerCamelCase fields,
 * enums by name, a deadline as {"seconds": ...}), through the .proto sources.
 */
function workflowFromJson(json: unknown, source: string): SubmitWorkflowRequest {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (target.startsWith('google/') ? target : path.join(PROTO_ROOT, target));
  root.loadSync('autoglm/v1/task.proto');
  const type = root.lookupType('autoglm.v1.SubmitWorkflowRequest');
  try {
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('expected an object with "steps"');
    return SubmitWorkflowRequest.decode(type.encode(type.fromObject(json)).finish());
  } catch (err) {
    throw new AutoglmError('INVALID_ARGUMENT', `${source} is not a SubmitWorkflowRequest: ${(err as Error).message}`);
  }
}
