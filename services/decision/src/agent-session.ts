import type { Assignment, ConnectRequest, ConnectResponse, Register as ConnectRegister } from '@autoglm/proto';
import { InvalidArgumentError, PermissionDeniedError } from '@autoglm/core';
import type { CallContext, Logger, StreamSink } from '@autoglm/runtime';
import type { AgentLink, Scheduler } from './scheduler';

/**
 * One agent's Connect stream: the first message registers, then telemetry and
 * task updates flow in and assignments, revocations and heartbeats flow out.
 * When the stream ends the node is disconnected: it gets no new work, and its
 * leases stand until they expire (Scheduler.sweepSilentAgents), so an agent
 * that reconnects in time keeps its running work.
 */
export async function serveAgentSession(
  requests: AsyncIterable<ConnectRequest>,
  sink: StreamSink<ConnectResponse>,
  ctx: CallContext,
  scheduler: Scheduler,
  logger: Logger,
): Promise<void> {
  const iterator = requests[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done) return;
  const kind = first.value.kind;
  if (kind?.$case !== 'register') throw new InvalidArgumentError('kind', 'the first message on Connect must be register');
  const register = kind.register;
  checkRegister(register);
  // An agent's certificate names its node: it registers as that node and no other.
  if (ctx.mutualTls && ctx.identity?.name !== register.nodeId) {
    throw new PermissionDeniedError(`register.node_id: this agent's certificate is for node "${ctx.identity?.name ?? ''}", not "${register.nodeId.slice(0, 128)}"`);
  }
  if (!/^[^:]+:\d+$/.test(register.address) && !register.address.startsWith('[')) {
    throw new InvalidArgumentError('register.address', `"${register.address}" is not host:port`);
  }
  const nodeId = register.nodeId;
  let closed: ((reason: string) => void) | undefined;
  const closedByDecision = new Promise<string>((resolve) => (closed = resolve));
  const write = (message: ConnectResponse) =>
    sink.write(message).catch(() => {
      // The stream is gone; the session's end handles the node.
    });
  // Assignments made in one dispatch pass go out as one message.
  let batch: Assignment[] = [];
  const flush = () => {
    const assignments = batch;
    batch = [];
    if (assignments.length === 1) void write({ kind: { $case: 'assignment', assignment: assignments[0]! } });
    else if (assignments.length > 1) void write({ kind: { $case: 'assignments', assignments: { assignments } } });
  };
  const link: AgentLink = {
    send: (message) => {
      if (message.kind?.$case === 'assignment') {
        if (batch.push(message.kind.assignment) === 1) setImmediate(flush);
        return;
      }
      flush();
      void write(message);
    },
    close: (reason) => closed?.(reason),
  };
  const registered = scheduler.agentRegistered(register, link);
  try {
    await sink.write({ kind: { $case: 'registered', registered } });
    const pump = (async () => {
      for (;;) {
        const next = await iterator.next();
        if (next.done) return 'agent closed the stream';
        const message = next.value.kind;
        if (!message) continue;
        if (message.$case === 'telemetry') scheduler.agentTelemetry(nodeId, link, message.telemetry);
        else if (message.$case === 'update' || message.$case === 'updates') {
          const updates = message.$case === 'update' ? [message.update] : message.updates.updates;
          for (const update of updates) scheduler.agentUpdate(nodeId, link, update).catch((err: unknown) => logger.error({ err, nodeId }, 'task update failed'));
        } else throw new InvalidArgumentError('kind', 'register may only be sent once per Connect stream');
      }
    })();
    const reason = await Promise.race([pump, closedByDecision]);
    if (ctx.signal.aborted) return;
    logger.info({ nodeId, reason }, 'agent session ended');
  } finally {
    scheduler.agentDisconnected(nodeId, link, ctx.signal.aborted ? 'stream cancelled' : 'session ended');
  }
}

/** Most GPUs one host may register (the largest hosts today have 16; NVL72 racks register per tray). */
export const MAX_GPUS_PER_NODE = 64;
const MAX_MODELS_PER_NODE = 1024;
const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/**
 * Refuses a registration no real host sends: it would become fleet capacity,
 * fair-share denominators and monitor series, so its sizes are bounded here.
 */
function checkRegister(register: ConnectRegister): void {
  if (!register.nodeId) throw new InvalidArgumentError('register.node_id', 'is required');
  if (!NODE_ID.test(register.nodeId)) throw new InvalidArgumentError('register.node_id', 'use 1-128 characters of A-Z a-z 0-9 . _ : -, starting with a letter or digit');
  if (register.gpus.length > MAX_GPUS_PER_NODE) throw new InvalidArgumentError('register.gpus', `lists ${register.gpus.length} GPUs; a host has at most ${MAX_GPUS_PER_NODE}`);
  const indices = new Set<number>();
  for (const [i, g] of register.gpus.entries()) {
    if (g.index >= MAX_GPUS_PER_NODE || indices.has(g.index)) throw new InvalidArgumentError(`register.gpus[${i}].index`, `${g.index} is repeated or not below ${MAX_GPUS_PER_NODE}`);
    indices.add(g.index);
  }
  if (register.models.length + register.servedModels.length > MAX_MODELS_PER_NODE) throw new InvalidArgumentError('register.models', `more than ${MAX_MODELS_PER_NODE} models`);
}
