import { Metadata, type ClientReadableStream } from '@grpc/grpc-js';
import type { DecisionServiceClient, Event } from '@autoglm/proto';
import type { Logger } from '@autoglm/runtime';

/**
 * Follows decision's event stream for as long as it runs, resubscribing with
 * backoff when decision restarts, and hands every event to `observe`. Events
 * missed while away are not replayed: each subscription asks for a snapshot
 * of the current tasks and nodes first, and `resync` runs just before it, for
 * observers to forget what they hold of tasks and nodes.
 */
export function followDecisionEvents(decision: DecisionServiceClient, observe: (event: Event) => void, resync: () => void, logger: Logger): { stop(): void } {
  let stopped = false;
  let call: ClientReadableStream<Event> | undefined;
  let backoffMs = 100;
  let timer: NodeJS.Timeout | undefined;
  const connect = () => {
    if (stopped) return;
    const startedAt = Date.now();
    resync();
    const mine = decision.subscribe({ taskEvents: true, nodeEvents: true, taskId: '', afterSequence: 0, states: [], batched: true, snapshot: true }, new Metadata());
    call = mine;
    mine.on('data', (event: Event) => {
      backoffMs = 100;
      if (event.kind?.$case === 'batch') for (const e of event.kind.batch.events) observe(e);
      else observe(event);
    });
    const retry = (why: string) => {
      // Only the current subscription may resubscribe (an old one's late 'end' must not).
      if (stopped || call !== mine) return;
      call = undefined;
      if (Date.now() - startedAt > 30_000) backoffMs = 100;
      logger.warn({ why, retryInMs: backoffMs }, 'decision event stream ended; resubscribing');
      timer = setTimeout(connect, backoffMs);
      backoffMs = Math.min(5_000, backoffMs * 2);
    };
    mine.on('error', (err: Error) => retry(err.message));
    mine.on('end', () => retry('stream ended'));
  };
  connect();
  return {
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      call?.cancel();
    },
  };
}
