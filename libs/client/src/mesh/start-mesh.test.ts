import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { type Mesh, startMesh } from './start-mesh';
import { MAX_AGENTS, type MeshOptions, portPlan } from './mesh-options';

// A stand-in for every service, following the service process contract: it
// finds its LISTEN variable, binds it, says ready over IPC, exits 0 on SIGTERM.
// FAKE_<NAME> (NAME as DECISION, AGENT_1, ...) picks a misbehaviour.
const FAKE_SERVICE = `
const net = require('node:net');
const http = require('node:http');
const fs = require('node:fs');
const key = Object.keys(process.env).find((k) => /^AUTOGLM_(DECISION|MONITOR|AGENT|PARSER)_LISTEN$/.test(k));
const service = { DECISION: 'decision', MONITOR: 'monitor', AGENT: 'executor-agent', PARSER: 'parser' }[key.split('_')[1]];
const name = process.env.AUTOGLM_AGENT_NODE_ID || service;
const behaviour = process.env['FAKE_' + name.toUpperCase().replace('-', '_')] || 'normal';
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('AUTOGLM_') || k.startsWith('OTEL_')));
console.log(JSON.stringify({ msg: 'starting', name, pid: process.pid, env }));
if (process.env.FAKE_PID_LOG) fs.appendFileSync(process.env.FAKE_PID_LOG, process.pid + '\\n');
if (behaviour === 'crash-on-restart' && fs.existsSync(process.env.FAKE_MARKER)) process.exit(4);
if (behaviour === 'crash-on-restart') fs.writeFileSync(process.env.FAKE_MARKER, 'started');
if (behaviour === 'crash') {
  console.error('boom: cannot open ' + name + ' data');
  process.exit(3);
}
const split = (a) => [a.slice(0, a.lastIndexOf(':')), Number(a.slice(a.lastIndexOf(':') + 1))];
const [host, port] = split(process.env[key]);
const grpc = net.createServer((socket) => socket.end()).listen(port, host, () => {
  const grpcAddress = host + ':' + grpc.address().port;
  if (behaviour === 'silent') return console.log('listening on ' + grpcAddress + ' but never saying so');
  const httpListen = { monitor: process.env.AUTOGLM_MONITOR_HTTP_LISTEN, parser: process.env.AUTOGLM_OPENAI_LISTEN }[service];
  if (!httpListen || httpListen === 'off') return process.send({ type: 'ready', service, grpcAddress });
  const [httpHost, httpPort] = split(httpListen);
  const web = http.createServer((req, res) => res.end('ok')).listen(httpPort, httpHost, () =>
    process.send({ type: 'ready', service, grpcAddress, httpAddress: httpHost + ':' + web.address().port }),
  );
});
process.on('SIGTERM', () => {
  if (behaviour === 'ignore-term') return console.log('ignoring SIGTERM');
  if (process.env.FAKE_STOP_LOG) fs.appendFileSync(process.env.FAKE_STOP_LOG, name + '\\n');
  process.exit(0);
});
`;

interface LoggedStart {
  msg: string;
  name: string;
  pid: number;
  env: Record<string, string>;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * For processes that are not our children: a killed orphan is reaped by init
 * some time after the kill, and until then signal 0 still reaches it.
 */
async function waitUntilGone(pid: number, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

function canConnect(address: string): Promise<boolean> {
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function startsIn(logFile: string): LoggedStart[] {
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((line) => line.includes('"msg":"starting"'))
    .map((line) => JSON.parse(line) as LoggedStart);
}

describe('startMesh', () => {
  let dir: string;
  let entry: string;
  let mesh: Mesh | undefined;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'autoglm-mesh-'));
    entry = path.join(dir, 'fake-service.js');
    writeFileSync(entry, FAKE_SERVICE);
  });

  afterEach(async () => {
    await mesh?.stop();
    mesh = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  const start = (options: MeshOptions = {}): Promise<Mesh> =>
    startMesh({ dataDir: path.join(dir, 'data'), ports: 'ephemeral', agents: 2, entry: () => entry, ...options });

  it('starts every service, waits for the ready handshake and wires the addresses through the environment', async () => {
    const lines: string[] = [];
    mesh = await start({
      env: { OTEL_SERVICE_NAME: 'autoglm-test' },
      gpusPerAgent: 4,
      timeScale: 20,
      logLevel: 'debug',
      onLog: (service, line) => lines.push(`${service}: ${line}`),
    });

    expect(Object.keys(mesh.processes).sort()).toEqual(['agent-1', 'agent-2', 'decision', 'monitor', 'parser']);
    for (const address of [mesh.publicAddress, mesh.decisionAddress, mesh.monitorAddress]) {
      expect(address).toMatch(/^127\.0\.0\.1:[1-9]\d*$/);
      await expect(canConnect(address)).resolves.toBe(true);
    }
    expect(mesh.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:[1-9]\d*\/metrics$/);
    expect(mesh.dashboardUrl).toBe(mesh.metricsUrl.replace(/metrics$/, ''));
    const metrics = await fetch(mesh.metricsUrl);
    expect(await metrics.text()).toBe('ok');
    // The parser's OpenAI-compatible API, on the port it reported (HTTPS: the mesh has TLS).
    expect(mesh.openaiUrl).toMatch(/^https:\/\/127\.0\.0\.1:[1-9]\d*\/v1$/);
    await expect(canConnect(new URL(mesh.openaiUrl!).host)).resolves.toBe(true);

    const logs = path.join(mesh.dataDir, 'logs');
    const [agent] = startsIn(path.join(logs, 'agent-2.log'));
    expect(agent?.env).toMatchObject({
      AUTOGLM_AGENT_LISTEN: '127.0.0.1:0',
      AUTOGLM_DECISION_ADDRESS: mesh.decisionAddress,
      AUTOGLM_AGENT_NODE_ID: 'agent-2',
      AUTOGLM_AGENT_BACKEND: 'sim',
      AUTOGLM_SIM_GPUS: '4',
      AUTOGLM_SIM_GPU_MEMORY_GB: '80',
      AUTOGLM_SIM_TIME_SCALE: '20',
      AUTOGLM_LOG_LEVEL: 'debug',
      OTEL_SERVICE_NAME: 'autoglm-test',
    });
    const [decision] = startsIn(path.join(logs, 'decision.log'));
    expect(decision?.env.AUTOGLM_DATA_DIR).toBe(path.join(mesh.dataDir, 'decision'));
    // decision makes the first admin token there; the data directory is the owner's alone.
    expect(decision?.env.AUTOGLM_BOOTSTRAP_TOKEN_FILE).toBe(path.join(mesh.dataDir, 'admin-token'));
    expect(statSync(mesh.dataDir).mode & 0o777).toBe(0o700);
    const [parser] = startsIn(path.join(logs, 'parser.log'));
    expect(parser?.env).toMatchObject({ AUTOGLM_DECISION_ADDRESS: mesh.decisionAddress, AUTOGLM_OPENAI_LISTEN: '127.0.0.1:0' });
    const [monitor] = startsIn(path.join(logs, 'monitor.log'));
    expect(monitor?.env).toMatchObject({ AUTOGLM_MONITOR_HTTP_LISTEN: '127.0.0.1:0', AUTOGLM_DECISION_ADDRESS: mesh.decisionAddress });
    expect(lines.some((line) => line.startsWith('parser: {"msg":"starting"'))).toBe(true);
    expect(lines.some((line) => line.startsWith('mesh: ') && line.includes('mesh ready'))).toBe(true);
  });

  it('moves the OpenAI-compatible API where it is told, or serves none, and refuses an address that is not one', async () => {
    mesh = await start({ openaiListen: 'off' });
    expect(mesh.openaiUrl).toBeUndefined();
    expect(startsIn(path.join(mesh.dataDir, 'logs', 'parser.log'))[0]?.env.AUTOGLM_OPENAI_LISTEN).toBe('off');
    await mesh.stop();
    mesh = await start({ openaiListen: '127.0.0.1:0' });
    expect(mesh.openaiUrl).toMatch(/^https:\/\/127\.0\.0\.1:[1-9]\d*\/v1$/);
    await expect(start({ openaiListen: '8001' })).rejects.toThrow('openaiListen: "8001" is not host:port (for example 127.0.0.1:8001) or off');
  });

  it('restarts a process killed with SIGKILL on the same address', async () => {
    mesh = await start();
    const decision = mesh.processes.decision;
    const address = decision?.address;
    const oldPid = decision?.pid;
    if (decision === undefined || oldPid === undefined || address === undefined) throw new Error('no decision process');

    expect(decision.kill('SIGKILL')).toBe(true);
    const newPid = await decision.waitForRestart(oldPid);

    expect(newPid).not.toBe(oldPid);
    expect(isAlive(oldPid)).toBe(false);
    expect(decision.address).toBe(address);
    expect(decision.restarts).toBe(1);
    await expect(canConnect(address)).resolves.toBe(true);
    const starts = startsIn(path.join(mesh.dataDir, 'logs', 'decision.log'));
    expect(starts.map((s) => s.env.AUTOGLM_DECISION_LISTEN)).toEqual(['127.0.0.1:0', address]);
    expect(readFileSync(path.join(mesh.dataDir, 'logs', 'mesh.log'), 'utf8')).toMatch(/decision \(pid \d+\) exited with signal SIGKILL .* restarting in 200 ms/);
  });

  it('stops parser first and decision last, and leaves no process alive', async () => {
    const stopLog = path.join(dir, 'stopped.txt');
    mesh = await start({ env: { FAKE_STOP_LOG: stopLog } });
    const pids = Object.values(mesh.processes).map((p) => p.pid);
    expect(pids.every((pid) => pid !== undefined && isAlive(pid))).toBe(true);

    await mesh.stop();

    for (const pid of pids) expect(isAlive(pid as number)).toBe(false);
    const order = readFileSync(stopLog, 'utf8').trim().split('\n');
    expect(order[0]).toBe('parser');
    expect(order[order.length - 1]).toBe('decision');
    expect(order.slice(1, -1).sort()).toEqual(['agent-1', 'agent-2', 'monitor']);
    mesh = undefined;
  });

  it('sends SIGKILL to a process that ignores SIGTERM', async () => {
    mesh = await start({ env: { FAKE_AGENT_1: 'ignore-term' }, stopTimeoutMs: 300 });
    const pid = mesh.processes['agent-1']?.pid as number;
    await mesh.stop();
    expect(isAlive(pid)).toBe(false);
    expect(readFileSync(path.join(mesh.dataDir, 'logs', 'agent-1.log'), 'utf8')).toContain('ignoring SIGTERM');
    mesh = undefined;
  });

  it('rejects with the log tail when a process dies before it is ready, and stops the others', async () => {
    const pidLog = path.join(dir, 'pids.txt');
    await expect(start({ env: { FAKE_PARSER: 'crash', FAKE_PID_LOG: pidLog } })).rejects.toThrow(
      /parser exited with code 3 before it was ready; last lines of .*parser\.log:\n[\s\S]*boom: cannot open parser data/,
    );
    const pids = readFileSync(pidLog, 'utf8').trim().split('\n').map(Number);
    expect(pids).toHaveLength(5);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
  });

  it('rejects with the log tail when a process does not become ready in time', async () => {
    const pidLog = path.join(dir, 'pids.txt');
    await expect(start({ env: { FAKE_DECISION: 'silent', FAKE_PID_LOG: pidLog }, readyTimeoutMs: 3000 })).rejects.toThrow(
      /decision did not become ready within 3000 ms; last lines of .*decision\.log:\n[\s\S]*never saying so/,
    );
    const pids = readFileSync(pidLog, 'utf8').trim().split('\n').map(Number);
    expect(pids).toHaveLength(1);
    expect(isAlive(pids[0] as number)).toBe(false);
  });

  it('backs off exponentially while a process keeps crashing', async () => {
    const delays: number[] = [];
    let sawFourRestarts: () => void = () => undefined;
    const fourRestarts = new Promise<void>((resolve) => (sawFourRestarts = resolve));
    mesh = await start({
      env: { FAKE_MONITOR: 'crash-on-restart', FAKE_MARKER: path.join(dir, 'monitor-started') },
      restartBackoff: { initialMs: 10, maxMs: 40 },
      onLog: (service, line) => {
        const delay = /monitor .* restarting in (\d+) ms/.exec(line)?.[1];
        if (service !== 'mesh' || delay === undefined) return;
        delays.push(Number(delay));
        if (delays.length === 4) sawFourRestarts();
      },
    });
    mesh.processes.monitor?.kill('SIGKILL');
    await fourRestarts;
    expect(delays).toEqual([10, 20, 40, 40]);
  });

  it('does not restart when restarts are off', async () => {
    mesh = await start({ restart: false });
    const monitor = mesh.processes.monitor;
    const pid = monitor?.pid as number;
    monitor?.kill('SIGKILL');
    await expect(monitor?.waitForRestart(pid)).rejects.toThrow(/restarts are off/);
    expect(monitor?.pid).toBeUndefined();
  });

  it('kills its processes when the supervising process exits without stop()', async () => {
    const supervisor = path.join(dir, 'supervisor.ts');
    writeFileSync(
      supervisor,
      `import { startMesh } from ${JSON.stringify(path.join(__dirname, 'start-mesh'))};
startMesh({ dataDir: ${JSON.stringify(path.join(dir, 'data'))}, ports: 'ephemeral', agents: 1, entry: () => ${JSON.stringify(entry)} }).then((mesh) => {
  console.log(JSON.stringify(Object.values(mesh.processes).map((p) => p.pid)));
  process.exit(0);
});
`,
    );
    const tsx = path.resolve(__dirname, '..', '..', '..', '..', 'node_modules', '.bin', 'tsx');
    const { stdout } = await promisify(execFile)(tsx, [supervisor]);
    const pids = JSON.parse(stdout) as number[];
    expect(pids).toHaveLength(4);
    for (const pid of pids) await expect(waitUntilGone(pid)).resolves.toBe(true);
  });

  it('fails fast when a service is not built', async () => {
    await expect(startMesh({ dataDir: path.join(dir, 'data'), entry: (s) => path.join(dir, s, 'main.js') })).rejects.toThrow(
      /service entry not found: .*decision[/\\]main\.js/,
    );
  });

  it('gives every process of the largest mesh its own default port', () => {
    const plan = portPlan('default', '127.0.0.1');
    const ports = [plan.parser, plan.openai, plan.decision, plan.monitor, plan.monitorHttp, plan.keda, ...Array.from({ length: MAX_AGENTS }, (_, i) => plan.agent(i)), ...[0, 1, 2].map((i) => plan.commandAgent(i))];
    expect(new Set(ports).size).toBe(ports.length);
  });
});
