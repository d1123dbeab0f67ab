import { AlertState, Node, NodeState, PriorityClass, QueueStats, ReplicaState } from '@autoglm/proto';
import { heatStrip, renderTopFrame, type TopSnapshot } from './top-frame';

const NOW = Date.UTC(2025, 0, 31, 18, 0, 0);
const seconds = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: 0 });

function gpuNode(nodeId: string, utilizations: number[], extra: Partial<Node> = {}): Node {
  return Node.fromPartial({
    nodeId,
    state: NodeState.READY,
    gpus: utilizations.map((utilization, index) => ({ index, name: 'sim', utilization, memoryTotalBytes: 80 * 1024 ** 3 })),
    gpuClaims: utilizations.map((_, gpuIndex) => ({ gpuIndex })),
    ...extra,
  });
}

function snapshot(extra: Partial<TopSnapshot> = {}): TopSnapshot {
  return {
    time: NOW,
    nodes: [
      gpuNode('agent-1', [0, 0.5, 1], {
        gpuClaims: [{ gpuIndex: 0, taskId: '', replicaId: '', heldFor: 'task-9' }, { gpuIndex: 1, taskId: 'task-1', replicaId: '', heldFor: '' }, { gpuIndex: 2, taskId: '', replicaId: 'r-1', heldFor: '' }],
        replicas: [
          { replicaId: 'r-1', model: 'glm-4-9b', state: ReplicaState.READY },
          { replicaId: 'r-2', model: 'glm-4-9b', state: ReplicaState.LOADING },
        ].map((r) => ({ ...r, gpuIndices: [], external: false, capacityTokens: 0, numRequestsRunning: 0, numRequestsWaiting: 0, kvCacheUsagePerc: 0, sequences: 0, claimedTokens: 0, contextLength: 0 })),
        runningTasks: 4,
      }),
      gpuNode('agent-2', [0.1, 0.1], { state: NodeState.QUARANTINED, stateReason: 'failed 6 of its last 8 attempts' }),
    ],
    stats: QueueStats.fromPartial({
      queued: 12,
      running: 5,
      classes: [
        { priorityClass: PriorityClass.URGENT, queued: 2, running: 3, oldestWaitSeconds: 4.2 },
        { priorityClass: PriorityClass.BACKGROUND, queued: 10, running: 2, oldestWaitSeconds: 60 },
      ],
      tenants: [
        { tenant: 'beta', queued: 1, running: 0 },
        { tenant: 'acme', queued: 11, running: 5 },
      ],
    }),
    alerts: [
      { name: 'SloMissed', labels: { slo: 'queue-time', tenant: 'acme' }, state: AlertState.FIRING, severity: 'page', summary: 'queue-time at 91.0% < 99.0%', value: 0.91, activeSince: undefined, firedAt: undefined, resolvedAt: undefined },
      { name: 'QueueBacklog', labels: { class: 'BACKGROUND' }, state: AlertState.PENDING, severity: 'ticket', summary: '10 queued for 60s', value: 10, activeSince: undefined, firedAt: undefined, resolvedAt: undefined },
    ],
    slos: [
      { slo: 'queue-time', indicator: 'queue_time', tenant: 'acme', priorityClass: '*', good: 91, total: 100, attainment: 0.91, objective: 0.99, status: 'missed', burnRate: 9 },
      { slo: 'ttft', indicator: 'ttft', tenant: '*', priorityClass: 'URGENT', good: 993, total: 1000, attainment: 0.993, objective: 0.99, status: 'met', burnRate: 0.7 },
      { slo: 'success', indicator: 'success', tenant: '*', priorityClass: '*', good: 1000, total: 1000, attainment: 1, objective: 0.99, status: 'met', burnRate: 0 },
    ],
    scale: [{ kind: 'model', name: 'glm-4-9b', current: 1, desired: 3, reason: 'queue' }],
    feedback: Array.from({ length: 7 }, (_, i) => ({ time: seconds(NOW - (i + 1) * 10_000), kind: 'tenant-boost', target: `tenant-${i}`, from: 1, to: 1.5, reason: `slow ${i}`, applied: true })),
    feedbackEnabled: true,
    ...extra,
  };
}

const plain = (s: TopSnapshot = snapshot(), width = 200): string => renderTopFrame(s, { width, color: false });

describe('heatStrip', () => {
  it('draws one character per GPU: a dot when idle, then eight levels up to full', () => {
    expect(heatStrip([0, 0.01, 0.13, 0.25, 0.4, 0.5, 0.7, 0.8, 0.99, 1, 1.5])).toBe('·▁▂▃▄▅▆▇███');
    expect(heatStrip([])).toBe('');
  });
});

describe('renderTopFrame', () => {
  it('heads the frame with nodes ready, GPUs held (a job or a replica, not a hold for a task), mean utilisation and queue counts', () => {
    const [header] = plain().split('\n');
    expect(header).toMatch(/^autoglm top {2}\d\d:\d\d:\d\d {2}nodes 1\/2 ready {2}GPUs 2\/5 busy {2}util 34% {2}queued 12 {2}running 5$/);
  });

  it('draws a heat strip, state, replicas and running tasks per node, with why a node takes no work', () => {
    const frame = plain();
    expect(frame).toMatch(/^NODE +GPUS +UTIL +STATE +REPLICAS +RUNNING +WHY$/m);
    expect(frame).toMatch(/^agent-1 +·▅█ +50% +READY +glm-4-9b×2 +4$/m);
    expect(frame).toMatch(/^agent-2 +▁▁ +10% +QUARANTINED +- +0 +failed 6 of its last 8 attempts$/m);
  });

  it('shows queues by class, the busiest tenants first, and the scale recommendations', () => {
    const frame = plain();
    expect(frame).toMatch(/^queues .*URGENT 2\/3 \(oldest 4s\) {2}BACKGROUND 10\/2 \(oldest 60s\)$/m);
    expect(frame).toMatch(/^tenants {2}acme 11\/5 {2}beta 1\/0$/m);
    expect(frame).toMatch(/^scale {4}glm-4-9b 1→3$/m);
  });

  it('lists alerts firing and pending, SLO series missed or near (not the comfortable ones), and the last 5 feedback changes', () => {
    const frame = plain();
    expect(frame).toMatch(/^ {2}FIRING +SloMissed +slo=queue-time tenant=acme +queue-time at 91\.0% < 99\.0%$/m);
    expect(frame).toMatch(/^ {2}pending +QueueBacklog +class=BACKGROUND +10 queued for 60s$/m);
    expect(frame).toMatch(/^ {2}MISSED +queue-time +acme +91\.0% vs 99\.0% +burn 9\.0$/m);
    expect(frame).toMatch(/^ {2}near +ttft +URGENT +99\.3% vs 99\.0% +burn 0\.7$/m);
    expect(frame).not.toMatch(/success/);
    expect(frame).toMatch(/^ {2}10s +tenant-boost +tenant-0 +1→1\.50 +slow 0$/m);
    expect(frame).toMatch(/tenant-4/);
    expect(frame).not.toMatch(/tenant-5/);
  });

  it('cuts every line to the width', () => {
    const frame = plain(snapshot(), 40);
    for (const line of frame.split('\n')) expect(line.length).toBeLessThanOrEqual(40);
    expect(frame).toMatch(/^agent-2 .*…$/m);
  });

  it('colours firing and missed red, pending and near yellow, only when asked', () => {
    const coloured = renderTopFrame(snapshot(), { width: 200, color: true });
    expect(coloured).toMatch(/\x1b\[31m {2}FIRING +SloMissed.*\x1b\[0m/);
    expect(coloured).toMatch(/\x1b\[33m {2}pending +QueueBacklog.*\x1b\[0m/);
    expect(coloured).toMatch(/\x1b\[31m {2}MISSED +queue-time.*\x1b\[0m/);
    expect(coloured).toMatch(/\x1b\[33m {2}near +ttft.*\x1b\[0m/);
    expect(plain()).not.toMatch(/\x1b/);
  });

  it('cuts colour-free text to the width before colouring, so escapes never count against it', () => {
    const coloured = renderTopFrame(snapshot(), { width: 30, color: true });
    for (const line of coloured.split('\n')) expect(line.replace(/\x1b\[\d+m/g, '').length).toBeLessThanOrEqual(30);
  });

  it('draws the rest with a one-line note when the monitor is unavailable', () => {
    const frame = plain(snapshot({ alerts: undefined, slos: undefined, scale: undefined, feedback: undefined, feedbackEnabled: undefined, monitorError: 'monitor at 127.0.0.1:50054: connection refused' }));
    expect(frame).toMatch(/^monitor unavailable: monitor at 127\.0\.0\.1:50054: connection refused$/m);
    expect(frame).toMatch(/^agent-1 /m);
    expect(frame).toMatch(/^queues /m);
    expect(frame).not.toMatch(/^(alerts|SLOs|scale|feedback)/m);
  });

  it('says so when nothing is wrong, and when no node has registered', () => {
    const frame = plain(snapshot({ nodes: [], alerts: [], slos: [], scale: [], feedback: [], feedbackEnabled: false }));
    expect(frame).toMatch(/^autoglm top .* nodes 0\/0 ready {2}GPUs 0\/0 busy {2}util - /m);
    expect(frame).toMatch(/^no nodes have registered$/m);
    expect(frame).toMatch(/^alerts {3}none firing or pending$/m);
    expect(frame).toMatch(/^SLOs {5}no events in their windows yet$/m);
    expect(frame).toMatch(/^feedback none yet \(loop off: not applied\)$/m);
  });

  it('cuts the node list to fit the height, saying how many are hidden', () => {
    const nodes = Array.from({ length: 30 }, (_, i) => gpuNode(`agent-${i + 1}`, [0.5]));
    const frame = renderTopFrame(snapshot({ nodes }), { width: 200, height: 24, color: false });
    expect(frame.split('\n')).toHaveLength(24);
    expect(frame).toMatch(/^… \d+ more nodes \(autoglm nodes lists them all\)$/m);
    expect(frame).toMatch(/^agent-1 /m);
  });
});
