// JSON for `--json`: camelCase field names as in the SDK, enums by name,
// timestamps as ISO 8601, durations in milliseconds (`...Ms`). Unset values are null.
import type { InferDone, Node, PriorityExplanation, QueueStats, Schedule, Task, TaskEvent, TaskResult } from '@autoglm/proto';
import { durationMs, isoTime } from './format';
import { className, kindName, nodeStateName, replicaStateName, scheduleStateName, stateName, waitingCauseName } from './names';

/** A JSON value. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

const orNull = <T extends Json>(value: T | undefined): T | null => (value === undefined ? null : value);

function resultJson(result: TaskResult | undefined): Json {
  if (result === undefined) return null;
  return {
    output: result.output,
    finishReason: result.finishReason,
    promptTokens: result.promptTokens,
    completionTokens: result.completionTokens,
    exitCode: result.exitCode,
    queueTimeMs: orNull(durationMs(result.queueTime)),
    runTimeMs: orNull(durationMs(result.runTime)),
    timeToFirstTokenMs: orNull(durationMs(result.timeToFirstToken)),
  };
}

/** A task. */
export function taskJson(task: Task): Json {
  const spec = task.spec;
  return {
    id: task.id,
    requestId: task.requestId,
    tenant: task.tenant,
    state: stateName(task.state),
    attempt: task.attempt,
    failures: task.failures,
    sequence: task.sequence,
    kind: spec === undefined ? null : kindName(spec.kind),
    model: spec?.model ?? null,
    priorityClass: spec === undefined ? null : className(spec.priorityClass),
    priority: spec?.priority ?? null,
    inputTokens: spec?.inputTokens ?? null,
    maxOutputTokens: spec?.maxOutputTokens ?? null,
    gpuCount: spec?.gpuCount ?? null,
    gpuMemoryBytes: spec?.gpuMemoryBytes ?? null,
    deadline: orNull(isoTime(spec?.deadline)),
    dependsOn: spec?.dependsOn ?? [],
    preemptible: spec?.preemptible ?? null,
    maxRetries: spec?.maxRetries ?? null,
    labels: spec?.labels ?? {},
    policyVariant: spec?.policyVariant ?? '',
    createdAt: orNull(isoTime(task.createdAt)),
    updatedAt: orNull(isoTime(task.updatedAt)),
    startedAt: orNull(isoTime(task.startedAt)),
    finishedAt: orNull(isoTime(task.finishedAt)),
    nodeId: task.nodeId,
    gpuIndices: task.gpuIndices,
    reason: task.reason,
    requeuedAs: orNull(task.requeuedAs || undefined),
    result: resultJson(task.result),
  };
}

/** A task event; the task is included when the server sent it. */
export function eventJson(event: TaskEvent): Json {
  return {
    taskId: event.taskId,
    sequence: event.sequence,
    state: stateName(event.state),
    previousState: stateName(event.previousState),
    time: orNull(isoTime(event.time)),
    reason: event.reason,
    task: event.task === undefined ? null : taskJson(event.task),
  };
}

/** A node with its GPUs. */
export function nodeJson(node: Node): Json {
  return {
    nodeId: node.nodeId,
    address: node.address,
    state: nodeStateName(node.state),
    stateReason: node.stateReason,
    quarantinedUntil: orNull(isoTime(node.quarantinedUntil)),
    models: node.models,
    backends: node.backends,
    runningTasks: node.runningTasks,
    lastSeen: orNull(isoTime(node.lastSeen)),
    gpus: node.gpus.map((gpu) => ({
      index: gpu.index,
      name: gpu.name,
      utilization: gpu.utilization,
      memoryUsedBytes: gpu.memoryUsedBytes,
      memoryTotalBytes: gpu.memoryTotalBytes,
      temperatureC: gpu.temperatureC,
      powerWatts: gpu.powerWatts,
    })),
    load:
      node.load === undefined
        ? null
        : {
            numRequestsRunning: node.load.numRequestsRunning,
            numRequestsWaiting: node.load.numRequestsWaiting,
            kvCacheUsagePerc: node.load.kvCacheUsagePerc,
          },
    gpuClaims: node.gpuClaims.map((c) => ({ gpuIndex: c.gpuIndex, taskId: orNull(c.taskId || undefined), replicaId: orNull(c.replicaId || undefined), heldFor: orNull(c.heldFor || undefined) })),
    replicas: node.replicas.map((r) => ({
      replicaId: r.replicaId,
      model: r.model,
      gpuIndices: r.gpuIndices,
      state: replicaStateName(r.state),
      external: r.external,
      capacityTokens: r.capacityTokens,
      sequences: r.sequences,
      claimedTokens: r.claimedTokens,
      numRequestsRunning: r.numRequestsRunning,
      numRequestsWaiting: r.numRequestsWaiting,
      kvCacheUsagePerc: r.kvCacheUsagePerc,
    })),
    cpuMillis: node.cpuMillis,
    cpuClaimedMillis: node.cpuClaimedMillis,
    memoryBytes: node.memoryBytes,
    memoryClaimedBytes: node.memoryClaimedBytes,
    servedModels: node.servedModels.map((m) => ({ name: m.name, contextLength: m.contextLength })),
  };
}

/** A priority explanation. */
export function explanationJson(explanation: PriorityExplanation): Json {
  return {
    taskId: explanation.taskId,
    state: stateName(explanation.state),
    priority: explanation.priority,
    queuePosition: explanation.queuePosition,
    tasksAhead: explanation.tasksAhead,
    waitingCause: waitingCauseName(explanation.waitingCause),
    waitingReason: explanation.waitingReason,
    overdue: explanation.overdue,
    tenantUsageOverShare: explanation.tenantUsageOverShare,
    reservedNode: explanation.reservedNode,
    reservedStart: orNull(isoTime(explanation.reservedStart)),
    preempting: explanation.preempting,
    factors: explanation.factors.map((f) => ({ name: f.name, value: f.value, weight: f.weight, contribution: f.contribution })),
  };
}

/** Queue counts. */
export function queueStatsJson(stats: QueueStats): Json {
  return {
    waitingDeps: stats.waitingDeps,
    queued: stats.queued,
    running: stats.running,
    retrying: stats.retrying,
    succeeded: stats.succeeded,
    failed: stats.failed,
    deadLetters: stats.deadLetters,
    lostAttempts: stats.lostAttempts,
    rejectedReports: stats.rejectedReports,
    preempted: stats.preempted,
    classes: stats.classes.map((c) => ({
      priorityClass: className(c.priorityClass),
      queued: c.queued,
      running: c.running,
      oldestWaitSeconds: c.oldestWaitSeconds,
    })),
    tenants: stats.tenants.map((t) => ({ tenant: t.tenant, queued: t.queued, running: t.running })),
    variants: stats.variants.map((v) => ({
      experiment: v.experiment,
      variant: v.variant,
      percent: v.percent,
      submitted: v.submitted,
      placed: v.placed,
      meanQueueSeconds: v.meanQueueSeconds,
      deadlinesMet: v.deadlinesMet,
      deadlinesMissed: v.deadlinesMissed,
    })),
    deadlines: stats.deadlines.map((d) => ({ tenant: d.tenant, priorityClass: className(d.priorityClass), met: d.met, missed: d.missed, refused: d.refused })),
  };
}

/** The end of an inference, with its text. */
export function inferJson(taskId: string, text: string, done: InferDone | undefined): Json {
  const usage = done?.usage;
  return {
    taskId,
    text,
    finishReason: done?.finishReason ?? null,
    nodeId: done?.nodeId ?? null,
    usage:
      usage === undefined
        ? null
        : {
            promptTokens: usage.promptTokens,
            completionTokens: usage.completionTokens,
            queueTimeMs: orNull(durationMs(usage.queueTime)),
            timeToFirstTokenMs: orNull(durationMs(usage.timeToFirstToken)),
            totalTimeMs: orNull(durationMs(usage.totalTime)),
          },
  };
}

/** A schedule; its task template as the parser sized it. */
export function scheduleJson(schedule: Schedule): Json {
  const spec = schedule.spec;
  return {
    id: schedule.id,
    requestId: schedule.requestId,
    tenant: schedule.tenant,
    state: scheduleStateName(schedule.state),
    cron: schedule.cron,
    timeZone: schedule.timeZone,
    description: schedule.description,
    kind: spec === undefined ? null : kindName(spec.kind),
    model: spec?.model ?? null,
    priorityClass: spec === undefined ? null : className(spec.priorityClass),
    gpuCount: spec?.gpuCount ?? null,
    labels: spec?.labels ?? {},
    deadlineAfterMs: orNull(durationMs(schedule.deadlineAfter)),
    startingDeadlineMs: orNull(durationMs(schedule.startingDeadline)),
    createdAt: orNull(isoTime(schedule.createdAt)),
    updatedAt: orNull(isoTime(schedule.updatedAt)),
    nextFireAt: orNull(isoTime(schedule.nextFireAt)),
    lastFireAt: orNull(isoTime(schedule.lastFireAt)),
    lastTaskId: orNull(schedule.lastTaskId || undefined),
    lastError: schedule.lastError,
    fireCount: schedule.fireCount,
  };
}
