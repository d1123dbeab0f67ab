import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Metadata } from '@grpc/grpc-js';
import { ensureMeshPki } from '@autoglm/client';
import { ApplyPolicyRequest, ConnectRequest, DecisionServiceClient, EnqueueRequest, ExecutorServiceClient, ExecuteRequest, type ConnectResponse, type ExecuteResponse } from '@autoglm/proto';
import { callUnary, createClient, loadTls } from '@autoglm/runtime';
import { startInProcessMesh, type InProcessMesh } from '../support/in-process-mesh';

/** How a stream ended: its status code and details, or "ok". */
function ending(call: { on(event: 'error', f: (e: { code: number; details: string }) => void): unknown; on(event: 'end', f: () => void): unknown }): Promise<{ code: number; details: string } | 'ok'> {
  return new Promise((resolve) => {
    call.on('error', (e) => resolve({ code: e.code, details: e.details }));
    call.on('end', () => resolve('ok'));
  });
}

const PERMISSION_DENIED = 7;
const UNAVAILABLE = 14;

describe('services prove who they are (mutual TLS)', () => {
  let mesh: InProcessMesh;
  const clients: Array<{ close(): void }> = [];
  /** A client of decision (or an agent) presenting the certificate of `name`. */
  const as = <C extends { close(): void }>(Ctor: new (...args: never[]) => C, address: string, name: string): C => {
    const f = mesh.tlsFiles.get(name)!;
    const client = createClient(Ctor as never, address, { tls: loadTls({ tlsCa: f.ca, tlsCert: f.cert, tlsKey: f.key }) }) as unknown as C;
    clients.push(client);
    return client;
  };
  const agentAddress = async () => (await mesh.client.listNodes()).nodes[0]!.address;

  beforeAll(async () => {
    mesh = await startInProcessMesh({ tls: true });
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await mesh?.stop();
  }, 30_000);

  it('serves the public API over TLS with the mesh CA, tokens on top', async () => {
    const { task } = await mesh.client.submit({ payload: { $case: 'batch', batch: { expectedDuration: { seconds: 0, nanos: 0 } } } });
    expect(task!.tenant).toBe('contract');
  });

  it('refuses a caller without a certificate, or with one of another CA, at the handshake', async () => {
    const plain = createClient(DecisionServiceClient, mesh.decision.grpcAddress);
    clients.push(plain);
    await expect(callUnary(plain.listNodes.bind(plain), {}, { deadlineMs: 5000 })).rejects.toMatchObject({ code: UNAVAILABLE });
    const elsewhere = mkdtempSync(path.join(tmpdir(), 'autoglm-other-ca-'));
    try {
      const other = (await ensureMeshPki(elsewhere, [{ role: 'parser', name: 'parser' }])).get('parser')!;
      const forged = createClient(DecisionServiceClient, mesh.decision.grpcAddress, { tls: loadTls({ tlsCa: other.ca, tlsCert: other.cert, tlsKey: other.key }) });
      clients.push(forged);
      await expect(callUnary(forged.listNodes.bind(forged), {}, { deadlineMs: 5000 })).rejects.toMatchObject({ code: UNAVAILABLE });
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  it('lets each role call only its own RPCs', async () => {
    const agent = as(DecisionServiceClient, mesh.decision.grpcAddress, 'other-node');
    await expect(callUnary(agent.enqueue.bind(agent), EnqueueRequest.fromPartial({ tenant: 'x' }), { deadlineMs: 5000 })).rejects.toMatchObject({
      code: PERMISSION_DENIED,
      details: 'DecisionService.Enqueue is for parser; the caller\'s certificate is agent "other-node"',
    });
    const parser = as(DecisionServiceClient, mesh.decision.grpcAddress, 'parser');
    await expect(callUnary(parser.applyPolicy.bind(parser), ApplyPolicyRequest.fromPartial({ update: { preset: 'batch' } }), { deadlineMs: 5000 })).rejects.toMatchObject({ code: PERMISSION_DENIED });
    const admin = as(DecisionServiceClient, mesh.decision.grpcAddress, 'admin');
    expect((await callUnary(admin.applyPolicy.bind(admin), ApplyPolicyRequest.fromPartial({ update: { preset: 'balanced' } }), { deadlineMs: 5000 })).version).toBeGreaterThan(1);
    const monitor = as(DecisionServiceClient, mesh.decision.grpcAddress, 'monitor');
    expect((await callUnary(monitor.listNodes.bind(monitor), {}, { deadlineMs: 5000 })).nodes.map((n) => n.nodeId)).toEqual(['contract-node']);
  });

  it('lets an agent register only as the node its certificate names, and nobody else register at all', async () => {
    const register = (nodeId: string) => ConnectRequest.fromPartial({ kind: { $case: 'register', register: { nodeId, address: '127.0.0.1:1', gpus: [{ index: 0, memoryTotalBytes: 80e9 }], models: ['*'], backends: ['sim'] } } });
    const impostor = as(DecisionServiceClient, mesh.decision.grpcAddress, 'other-node').connect(new Metadata());
    impostor.on('data', (_m: ConnectResponse) => undefined);
    impostor.write(register('contract-node'));
    expect(await ending(impostor)).toEqual({ code: PERMISSION_DENIED, details: 'register.node_id: this agent\'s certificate is for node "other-node", not "contract-node"' });
    const parser = as(DecisionServiceClient, mesh.decision.grpcAddress, 'parser').connect(new Metadata());
    parser.on('data', (_m: ConnectResponse) => undefined);
    parser.write(register('parser-as-agent'));
    expect(await ending(parser)).toMatchObject({ code: PERMISSION_DENIED, details: expect.stringContaining('DecisionService.Connect is for agent') });
    expect((await mesh.client.listNodes()).nodes.map((n) => n.nodeId)).toEqual(['contract-node']);
  });

  it("accepts an agent's Execute only from the parser: a lease shown by anyone else is refused", async () => {
    const monitor = as(ExecutorServiceClient, await agentAddress(), 'monitor');
    const call = monitor.execute(new Metadata());
    call.on('data', (_m: ExecuteResponse) => undefined);
    call.write(ExecuteRequest.fromPartial({ kind: { $case: 'start', start: { lease: { taskId: '6f1d2c1e-0000-4000-8000-000000000000', attempt: 1, leaseEpoch: 1 } } } }));
    expect(await ending(call)).toMatchObject({ code: PERMISSION_DENIED, details: expect.stringContaining('ExecutorService.Execute is for parser') });
  });
});
