import { type Task, TaskKind, type TaskSpec } from '@autoglm/proto';
import { durationMs, fieldLines, gib, humanDuration, isoTime } from './format';
import { className, kindName, stateName } from './names';

/** A task as `autoglm get` shows it: one "field  value" line each, output last. */
export function describeTask(task: Task): string {
  const spec = task.spec;
  const result = task.result;
  const rows: [string, string | undefined][] = [
    ['id', task.id],
    ['state', `${stateName(task.state)}  (attempt ${task.attempt}, sequence ${task.sequence})`],
    ['tenant', task.tenant],
    ['request id', task.requestId || undefined],
    ['kind', spec === undefined ? undefined : `${kindName(spec.kind)}${spec.model ? `  ${spec.model}` : ''}`],
    ['class', spec === undefined ? undefined : `${className(spec.priorityClass)}  priority ${spec.priority}`],
    ['resources', spec === undefined ? undefined : describeResources(spec)],
    ['tokens', spec === undefined || spec.inputTokens === 0 ? undefined : `${spec.inputTokens} in, up to ${spec.maxOutputTokens} out`],
    ['deadline', isoTime(spec?.deadline)],
    ['depends on', spec?.dependsOn.length ? spec.dependsOn.join(', ') : undefined],
    ['labels', spec && Object.keys(spec.labels).length > 0 ? Object.entries(spec.labels).map(([k, v]) => `${k}=${v}`).join(' ') : undefined],
    ['policy variant', spec?.policyVariant || undefined],
    ['node', task.nodeId || undefined],
    ['created', isoTime(task.createdAt)],
    ['started', isoTime(task.startedAt)],
    ['finished', isoTime(task.finishedAt)],
    ['reason', task.reason || undefined],
  ];
  if (result !== undefined) {
    const batch = spec?.kind === TaskKind.BATCH;
    const ttft = batch ? '' : `, ttft ${humanDuration(durationMs(result.timeToFirstToken))}`;
    rows.push(
      ['timings', `queue ${humanDuration(durationMs(result.queueTime))}, run ${humanDuration(durationMs(result.runTime))}${ttft}`],
      ['usage', batch ? undefined : `prompt ${result.promptTokens} tokens, completion ${result.completionTokens} tokens`],
      ['finish', [result.finishReason, batch ? `exit code ${result.exitCode}` : ''].filter(Boolean).join(', ') || undefined],
    );
  }
  const lines = fieldLines(rows.filter((row): row is [string, string] => row[1] !== undefined && row[1] !== ''));
  if (result !== undefined && result.output !== '') lines.push('output:', result.output.replace(/\n$/, ''));
  return lines.join('\n');
}

/** "2 GPUs, 40.0 GiB per GPU", "no GPU, 4 cores, 8.0 GiB": what the task holds while it runs. */
function describeResources(spec: TaskSpec): string {
  const parts = [spec.gpuCount === 0 ? 'no GPU' : `${spec.gpuCount} GPU${spec.gpuCount === 1 ? '' : 's'}`];
  if (spec.gpuMemoryBytes > 0) parts.push(`${gib(spec.gpuMemoryBytes)} GiB per GPU`);
  if (spec.cpuMillis > 0) parts.push(`${spec.cpuMillis / 1000} core${spec.cpuMillis === 1000 ? '' : 's'}`);
  if (spec.memoryBytes > 0) parts.push(`${gib(spec.memoryBytes)} GiB of host memory`);
  return parts.join(', ');
}
