import { credentials, Metadata } from '@grpc/grpc-js';
import { ConnectRequest, DecisionServiceClient, NodeState, TaskServiceClient, type ConnectResponse, type Event, type InferResponse, type Node } from '@autoglm/proto';
import { createClient } from '@autoglm/runtime';
import { startInProcessMesh, type InProcessMesh } from '../support/in-process-mesh';

/** How a stream ended: its status code and details, or "ok". */
function ending(call: { on(event: 'error', f: (e: { code: number; details: string }) => void): unknown; on(event: 'end' | 'close', f: () => void): unknown }): Promise<{ code: number; details: string } | 'ok'> {
  return new Promise((resolve) => {
    call.on('error', (e) => resolve({ code: e.code, details: e.details }));
    call.on('end', () => resolve('ok'));
  });
}

describe('bounds against clients that misbehave', () => {
  let mesh: InProcessMesh;
  beforeAll(async () => {
    mesh = await startInProcessMesh({ parser: { streamStartTimeoutMs: 500 }, decision: { leaseMs: 1500 } });
  }, 60_000);
  afterEach(() => mesh.expectNoLeakedStreams());
  afterAll(() => mesh?.stop(), 30_000);

  const auth = () => {
    const md = new Metadata();
    md.set('authorization', `Bearer ${mesh.adminToken}`);
    return md;
  };

  it('ends an Infer stream that never sends its start with DEADLINE_EXCEEDED', async () => {
    const tasks = new TaskServiceClient(mesh.parser.grpcAddress, credentials.createInsecure());
    const call = tasks.infer(auth());
    call.on('data', (_m: InferResponse) => undefined);
    const ended = await ending(call);
    expect(ended).toEqual({ code: 4, details: 'Infer: no start message within 0.5 s of opening the stream; send start first' });
    tasks.close();
  });

  it('accepts large submissions that arrive together, in calls to decision under its message limit', async () => {
    // 10 × ~440 KB prompts: 4.4 MB, over a 4 MiB message if coalesced into one call.
    const prompt = 'scheduling '.repeat(40_000);
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () => mesh.client.submit({ model: 'glm-4-9b-chat', payload: { $case: 'inference', inference: { prompt, params: { maxTokens: 1 } } } })),
    );
    expect(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
  }, 60_000);

  it('refuses an agent registration with an absurd number of GPUs, and adds nothing to the fleet', async () => {
    const decision = createClient(DecisionServiceClient, mesh.decision.grpcAddress);
    const call = decision.connect(new Metadata());
    call.on('data', (_m: ConnectResponse) => undefined);
    const gpus = Array.from({ length: 100_000 }, (_, index) => ({ index, memoryTotalBytes: 80e9, name: 'fake' }));
    call.write(ConnectRequest.fromPartial({ kind: { $case: 'register', register: { nodeId: 'fake-node', address: '127.0.0.1:1', gpus, models: ['*'], backends: ['sim'] } } }));
    const ended = await ending(call);
    expect(ended).toEqual({ code: 3, details: 'register.gpus: lists 100000 GPUs; a host has at most 64' });
    expect((await mesh.client.listNodes()).nodes.map((n) => n.nodeId)).toEqual(['contract-node']);
    decision.close();
  });

  it('tells subscribers a node that went silent is lost, so they drop what they keep for it', async () => {
    const decision = createClient(DecisionServiceClient, mesh.decision.grpcAddress);
    const events = decision.subscribe({ taskEvents: false, nodeEvents: true, taskId: '', afterSequence: 0, states: [], batched: false, snapshot: false }, new Metadata());
    const lost = new Promise<Node>((resolve) =>
      events.on('data', (e: Event) => {
        if (e.kind?.$case === 'node' && e.kind.node.nodeId === 'silent-node' && e.kind.node.state === NodeState.LOST) resolve(e.kind.node);
      }),
    );
    events.on('error', () => undefined);
    const agent = decision.connect(new Metadata());
    agent.on('data', () => undefined);
    agent.on('error', () => undefined);
    const gpus = [0, 1].map((index) => ({ index, memoryTotalBytes: 80e9, name: 'fake' }));
    agent.write(ConnectRequest.fromPartial({ kind: { $case: 'register', register: { nodeId: 'silent-node', address: '127.0.0.1:1', gpus, models: ['*'], backends: ['sim'] } } }));
    // It registers, then says nothing: past its lease (1.5 s here) it is lost.
    expect((await lost).gpus).toEqual([]);
    expect((await mesh.client.listNodes()).nodes.map((n) => n.nodeId)).toEqual(['contract-node']);
    events.cancel();
    agent.cancel();
    decision.close();
  }, 20_000);
});
