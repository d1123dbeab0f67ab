import { Readable } from 'node:stream';
import { type sendUnaryData, status } from '@grpc/grpc-js';
import { AlertState, type ClusterServiceServer, NodeState, PriorityClass } from '@autoglm/proto';
import { startTestServer, type TestServer } from '../../sdk/test-server';
import type { CliIo } from '../io';
import { run } from '../main';

interface CapturedIo extends CliIo {
  out: string;
  err: string;
}

/** An in-process io; `onStdout` sees each write (a test presses Ctrl-C from there). */
function captureIo(options: { tty?: boolean; onStdout?: (text: string, interrupt: () => void) => void } = {}): CapturedIo {
  const handlers = new Set<() => void>();
  const interrupt = () => {
    for (const handler of [...handlers]) handler();
  };
  const io: CapturedIo = {
    out: '',
    err: '',
    stdout: {
      isTTY: options.tty,
      write: (text: string) => {
        io.out += text;
        options.onStdout?.(text, interrupt);
        return true;
      },
    },
    stderr: {
      write: (text: string) => {
        io.err += text;
        return true;
      },
    },
    stdin: Readable.from([]),
    onInterrupt(handler) {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
    exit: (code) => {
      throw new Error(`exit ${code}`);
    },
    setExitCode: () => undefined,
  };
  return io;
}

const unavailable = (what: string) => (_call: unknown, callback: sendUnaryData<never>) => callback({ code: status.UNAVAILABLE, details: `${what}: connection refused` });

/** The parser's half of ClusterService: nodes and queue counts. */
const parserHandlers: Partial<ClusterServiceServer> = {
  listNodes: (_call, callback) =>
    callback(null, {
      nodes: [
        {
          nodeId: 'agent-1', address: '', state: NodeState.READY, models: [], backends: [], host: undefined, load: undefined, lastSeen: undefined,
          gpus: [
            { index: 0, name: 'sim', utilization: 0.9, memoryUsedBytes: 0, memoryTotalBytes: 0, temperatureC: 0, powerWatts: 0 },
            { index: 1, name: 'sim', utilization: 0, memoryUsedBytes: 0, memoryTotalBytes: 0, temperatureC: 0, powerWatts: 0 },
          ],
          gpuClaims: [{ gpuIndex: 0, taskId: 'task-1', replicaId: '', heldFor: '' }, { gpuIndex: 1, taskId: '', replicaId: '', heldFor: '' }],
          runningTasks: 1, replicas: [], cpuMillis: 0, cpuClaimedMillis: 0, memoryBytes: 0, memoryClaimedBytes: 0, servedModels: [], stateReason: '', quarantinedUntil: undefined,
        },
      ],
    }),
  getQueueStats: (_call, callback) =>
    callback(null, {
      waitingDeps: 0, queued: 3, running: 1, succeeded: 0, failed: 0, rejectedReports: 0, lostAttempts: 0, deadLetters: 0, retrying: 0, preempted: 0, telemetryReceived: 0, deadlines: [], variants: [],
      classes: [{ priorityClass: PriorityClass.NORMAL, queued: 3, running: 1, oldestWaitSeconds: 2 }],
      tenants: [{ tenant: 'default', queued: 3, running: 1 }],
    }),
};

/** The monitor's half, as the parser forwards it. */
const monitorHandlers: Partial<ClusterServiceServer> = {
  listAlerts: (_call, callback) =>
    callback(null, { alerts: [{ name: 'QueueBacklog', labels: { class: 'NORMAL' }, state: AlertState.FIRING, severity: 'page', summary: '3 queued for 5m', value: 3, activeSince: undefined, firedAt: undefined, resolvedAt: undefined }] }),
  getSloStatus: (_call, callback) => callback(null, { slos: [] }),
  getScaleRecommendations: (_call, callback) => callback(null, { recommendations: [{ kind: 'model', name: 'glm-4-9b', current: 1, desired: 2, reason: '' }], computedAt: undefined }),
  listFeedbackActions: (_call, callback) => callback(null, { actions: [], enabled: true }),
};

describe('autoglm top', () => {
  const servers: TestServer[] = [];
  const serve = async (cluster: Partial<ClusterServiceServer>): Promise<string> => {
    const server = await startTestServer({}, cluster);
    servers.push(server);
    return server.address;
  };
  afterEach(async () => {
    // Shutdown rejects when a call or connection is left open: top must close its client.
    await Promise.all(servers.splice(0).map((s) => s.shutdown()));
  });

  it('--once prints one uncoloured frame and exits 0', async () => {
    const address = await serve({ ...parserHandlers, ...monitorHandlers });
    const io = captureIo();
    await expect(run(['node', 'autoglm', '--address', address, 'top', '--once'], io)).resolves.toBe(0);
    expect(io.err).toBe('');
    expect(io.out).toMatch(/^autoglm top {2}\d\d:\d\d:\d\d {2}nodes 1\/1 ready {2}GPUs 1\/2 busy {2}util 45% {2}queued 3 {2}running 1\n/);
    expect(io.out).toMatch(/^agent-1 +█· +45% +READY +- +1$/m);
    expect(io.out).toMatch(/^ {2}FIRING +QueueBacklog +class=NORMAL +3 queued for 5m$/m);
    expect(io.out).toMatch(/^scale {4}glm-4-9b 1→2$/m);
    expect(io.out).not.toMatch(/\x1b/);
  });

  it('draws the rest with a note when the monitor is unavailable', async () => {
    const address = await serve({
      ...parserHandlers,
      listAlerts: unavailable('monitor'),
      getSloStatus: unavailable('monitor'),
      getScaleRecommendations: unavailable('monitor'),
      listFeedbackActions: unavailable('monitor'),
    });
    const io = captureIo();
    await expect(run(['node', 'autoglm', '--address', address, 'top'], io)).resolves.toBe(0);
    expect(io.out).toMatch(/^monitor unavailable: monitor: connection refused$/m);
    expect(io.out).toMatch(/^agent-1 /m);
  });

  it('fails as every command does when the parser cannot list the nodes', async () => {
    const address = await serve({ ...parserHandlers, ...monitorHandlers, listNodes: unavailable('decision') });
    const io = captureIo();
    await expect(run(['node', 'autoglm', '--address', address, 'top', '--once'], io)).resolves.toBe(1);
    expect(io.out).toBe('');
    expect(io.err).toBe('error: UNAVAILABLE: decision: connection refused\n');
  });

  it('on a terminal, redraws in the alternate screen until Ctrl-C, then restores the screen and cursor and exits 0', async () => {
    const address = await serve({ ...parserHandlers, ...monitorHandlers });
    let frames = 0;
    const io = captureIo({
      tty: true,
      onStdout: (text, interrupt) => {
        if (text.startsWith('\x1b[H\x1b[2J') && ++frames === 2) interrupt();
      },
    });
    await expect(run(['node', 'autoglm', '--address', address, 'top', '--interval', '200ms'], io)).resolves.toBe(0);
    expect(frames).toBe(2);
    expect(io.out.startsWith('\x1b[?1049h\x1b[?25l')).toBe(true);
    expect(io.out.endsWith('\x1b[?25h\x1b[?1049l')).toBe(true);
    expect(io.out).toMatch(/\x1b\[31m {2}FIRING +QueueBacklog/);
  });

  it('refuses --json and an interval too short to be useful', async () => {
    const io = captureIo();
    await expect(run(['node', 'autoglm', '--address', '127.0.0.1:1', '--json', 'top'], io)).resolves.toBe(1);
    expect(io.err).toMatch(/^error: INVALID_ARGUMENT: top draws for people/);
    const fast = captureIo();
    await expect(run(['node', 'autoglm', '--address', '127.0.0.1:1', 'top', '--interval', '10ms'], fast)).resolves.toBe(1);
    expect(fast.err).toMatch(/--interval: at least 200ms/);
  });
});
