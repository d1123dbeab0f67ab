import { DecisionServiceClient, NodeState, PriorityClass, TaskState, type Node, type SetNodeQuarantineRequest } from '@autoglm/proto';
import { callUnary, createClient, loadTls } from '@autoglm/runtime';
import { startInProcessMesh, type InProcessMesh } from '../support/in-process-mesh';
import { until as untilCondition, untilFinished } from '../support/until';

describe('quarantine through decision (the monitor or an admin)', () => {
  let mesh: InProcessMesh;
  const clients: DecisionServiceClient[] = [];

  beforeAll(async () => {
    mesh = await startInProcessMesh({ tls: true });
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await mesh?.stop();
  });

  const as = (name: string): DecisionServiceClient => {
    const f = mesh.tlsFiles.get(name)!;
    const client = createClient(DecisionServiceClient, mesh.decision.grpcAddress, { tls: loadTls({ tlsCa: f.ca, tlsCert: f.cert, tlsKey: f.key }) });
    clients.push(client);
    return client;
  };
  const quarantine = (client: DecisionServiceClient, req: Partial<SetNodeQuarantineRequest>): Promise<Node> =>
    callUnary(client.setNodeQuarantine.bind(client), { nodeId: '', quarantined: false, reason: '', until: undefined, source: '', ...req }, { deadlineMs: 5000 });

  it('takes a node out of placement, says why, and places again once it is readmitted', async () => {
    const monitor = as('monitor');
    const node = await quarantine(monitor, { nodeId: 'contract-node', quarantined: true, reason: 'failed 9 of its last 10 attempts', source: 'monitor' });
    expect(node).toMatchObject({ state: NodeState.QUARANTINED, stateReason: 'failed 9 of its last 10 attempts (monitor)' });
    const listed = (await mesh.client.listNodes()).nodes[0]!;
    expect(listed).toMatchObject({ state: NodeState.QUARANTINED, stateReason: expect.stringContaining('failed 9') });
    const { task } = await mesh.client.submit({ payload: { $case: 'batch', batch: { expectedDuration: { seconds: 1, nanos: 0 } } }, priorityClass: PriorityClass.URGENT, resources: { gpuCount: 1 } });
    // Nothing is placed on it: the job waits.
    await untilCondition(async () => ((await mesh.client.explain(task!.id)).waitingReason !== '' ? true : undefined), 5000, 'the job to be explained as waiting');
    expect((await mesh.client.get(task!.id)).state).toBe(TaskState.QUEUED);
    const back = await quarantine(monitor, { nodeId: 'contract-node', quarantined: false, reason: 'probation over', source: 'monitor' });
    expect(back).toMatchObject({ state: NodeState.READY, stateReason: '' });
    expect((await untilFinished(mesh.client, task!.id)).state).toBe(TaskState.SUCCEEDED);
  });

  it('lifts a quarantine itself when its until passes, though no one readmits the node', async () => {
    const until = Date.now() + 300;
    const node = await quarantine(as('monitor'), { nodeId: 'contract-node', quarantined: true, reason: 'slow', until: { seconds: Math.floor(until / 1000), nanos: (until % 1000) * 1e6 } });
    expect(node.state).toBe(NodeState.QUARANTINED);
    await untilCondition(async () => ((await mesh.client.listNodes()).nodes[0]!.state === NodeState.READY ? true : undefined), 5000, 'the quarantine to expire');
  });

  it("leaves an operator's quarantine to the operator: the monitor may neither replace nor lift it", async () => {
    const monitor = as('monitor');
    const admin = as('admin');
    await quarantine(admin, { nodeId: 'contract-node', quarantined: true, reason: 'replacing a fan', source: 'operator' });
    // The monitor's own certificate decides, whatever source it names.
    await expect(quarantine(monitor, { nodeId: 'contract-node', quarantined: false, reason: 'probation over', source: 'operator' })).rejects.toMatchObject({
      code: 9,
      details: expect.stringContaining('quarantined by an operator (replacing a fan (operator)); the monitor leaves it to them'),
    });
    const until = Date.now() + 60_000;
    await expect(quarantine(monitor, { nodeId: 'contract-node', quarantined: true, reason: 'failed 9 of 10', until: { seconds: Math.floor(until / 1000), nanos: 0 }, source: 'monitor' })).rejects.toMatchObject({ code: 9 });
    expect((await mesh.client.listNodes()).nodes[0]).toMatchObject({ state: NodeState.QUARANTINED, stateReason: 'replacing a fan (operator)' });
    expect(await quarantine(admin, { nodeId: 'contract-node', quarantined: false, reason: 'fan replaced', source: 'operator' })).toMatchObject({ state: NodeState.READY });
  });

  it('refuses a caller without the role, a node it does not know and a quarantine without a reason', async () => {
    await expect(quarantine(as('parser'), { nodeId: 'contract-node', quarantined: true, reason: 'x' })).rejects.toMatchObject({ code: 7 });
    await expect(quarantine(as('admin'), { nodeId: 'nowhere', quarantined: true, reason: 'x' })).rejects.toMatchObject({ code: 5, details: expect.stringContaining('node nowhere is not known') });
    await expect(quarantine(as('admin'), { nodeId: 'contract-node', quarantined: true })).rejects.toMatchObject({ code: 3, details: expect.stringMatching(/^reason: is required/) });
    const monitor = as('monitor');
    await expect(callUnary(monitor.reportAlerts.bind(monitor), { alerts: [{ name: 'X', labels: {}, state: 0, severity: '', summary: '', value: 0, activeSince: undefined, firedAt: undefined, resolvedAt: undefined }] }, { deadlineMs: 5000 })).rejects.toMatchObject({
      code: 3,
      details: expect.stringContaining('alerts[0].state'),
    });
    await expect(callUnary(as('admin').reportAlerts.bind(as('admin')), { alerts: [] }, { deadlineMs: 5000 })).rejects.toMatchObject({ code: 7 });
  });
});
