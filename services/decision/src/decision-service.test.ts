import { Metadata } from '@grpc/grpc-js';
import pino from 'pino';
import { TaskEvent, TaskState, type Event } from '@autoglm/proto';
import type { TaskStore } from '@autoglm/store';
import { decisionHandlers } from './decision-service';
import { EventBus } from './event-bus';
import type { Scheduler } from './scheduler';

describe('Subscribe', () => {
  it('cuts a subscriber that does not read once it is the backlog bound behind, and lets go of its events', async () => {
    const bus = new EventBus();
    const handlers = decisionHandlers({} as Scheduler, {} as TaskStore, bus, pino({ level: 'silent' }), { subscriberBacklog: 100, maxSubscribers: 64 });
    const abort = new AbortController();
    let failure: unknown;
    let written = 0;
    const sink = {
      // A client that never reads: the first write waits for it forever (until the stream ends).
      write: (_event: Event) => {
        written += 1;
        return new Promise<void>((_resolve, reject) => abort.signal.addEventListener('abort', () => reject(new Error('stream closed'))));
      },
      fail: (error: unknown) => {
        failure = error;
        abort.abort();
      },
    };
    const call = handlers.subscribe({ taskEvents: true, nodeEvents: false, taskId: '', afterSequence: 0, states: [], batched: false, snapshot: false }, sink, { signal: abort.signal, metadata: new Metadata(), peer: 'test', identity: undefined, mutualTls: false });
    expect(bus.subscriberCount).toBe(1);
    // The first event is taken and its write waits for the client; the next 100 queue behind it.
    bus.publishTask(TaskEvent.fromPartial({ taskId: 'first', state: TaskState.QUEUED }));
    await new Promise((resolve) => setImmediate(resolve));
    expect(written).toBe(1);
    for (let i = 0; i < 100; i++) bus.publishTask(TaskEvent.fromPartial({ taskId: `t${i}`, state: TaskState.QUEUED }));
    expect(failure).toBeUndefined();
    bus.publishTask(TaskEvent.fromPartial({ taskId: 'one-too-many', state: TaskState.QUEUED }));
    expect(failure).toMatchObject({ code: 'RESOURCE_EXHAUSTED', message: expect.stringContaining('more than 100 events behind') });
    expect(bus.subscriberCount).toBe(0);
    await expect(call).rejects.toThrow('stream closed');
    expect(written).toBe(1);
  });

  it('refuses a Subscribe stream of all events past the cap, and takes one again once a stream ends', async () => {
    const bus = new EventBus();
    const handlers = decisionHandlers({} as Scheduler, {} as TaskStore, bus, pino({ level: 'silent' }), { subscriberBacklog: 100, maxSubscribers: 2 });
    const open = () => {
      const abort = new AbortController();
      const sink = { write: async () => undefined, fail: () => abort.abort() };
      const call = handlers.subscribe({ taskEvents: true, nodeEvents: false, taskId: '', afterSequence: 0, states: [], batched: false, snapshot: false }, sink, { signal: abort.signal, metadata: new Metadata(), peer: 'test', identity: undefined, mutualTls: false });
      return { abort, call };
    };
    const first = open();
    const second = open();
    await expect(open().call).rejects.toMatchObject({ code: 'RESOURCE_EXHAUSTED', message: expect.stringContaining('at most 2 Subscribe streams') });
    first.abort.abort();
    await first.call;
    const third = open();
    second.abort.abort();
    third.abort.abort();
    await Promise.all([second.call, third.call]);
    expect(bus.subscriberCount).toBe(0);
  });
});
