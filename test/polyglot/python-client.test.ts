import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Mesh, startMesh } from '@autoglm/client';

// A real Python client (grpcio, stubs generated from proto/ at test time)
// against the whole mesh started as separate processes. Python is the system
// one: CI installs python3-grpcio and python3-grpc-tools from Debian.
const PYTHON = '/usr/bin/python3';
const REPO_ROOT = path.resolve(__dirname, '..', '..');
const PROTO_DIR = path.join(REPO_ROOT, 'proto');
const CLIENT = path.join(__dirname, 'client.py');
// Debian's python3-grpc-tools bundles protoc 3.5.1, which refuses proto3
// `optional` (task.proto uses it); protobuf-compiler-grpc brings protoc 3.21
// and the gRPC Python plugin, used when the bundled protoc fails.
const SYSTEM_PROTOC = '/usr/bin/protoc';
const SYSTEM_GRPC_PYTHON_PLUGIN = '/usr/bin/grpc_python_plugin';

interface Summary {
  submit: { task_id: string; state: string; states: string[]; output: string; completion_tokens: number };
  infer: { task_id: string; chunks: number; chunk_tokens: number; completion_tokens: number; finish_reason: string };
  error: { code: string; message: string };
}

const probe = spawnSync(PYTHON, ['-c', 'import grpc, grpc_tools'], { encoding: 'utf8' });
const pythonReady = probe.status === 0;
const inCi = process.env.CI === 'true';
const missing = `${PYTHON} cannot import grpc, grpc_tools (${(probe.stderr || probe.error?.message || '').trim().split('\n').pop()}); ` +
  'install them with: apt-get install -y python3-grpcio python3-grpc-tools';

if (!pythonReady && !inCi) {
  // Not console (lint): a skip has to be visible in the run's output, not only in a count.
  process.stderr.write(`test/polyglot/python-client.test.ts skipped: ${missing}\n`);
}

(pythonReady || inCi ? describe : describe.skip)('Python client against the mesh', () => {
  let workDir: string;
  let mesh: Mesh | undefined;
  let stubDir: string;

  beforeAll(async () => {
    if (!pythonReady) throw new Error(`CI=true and ${missing}`);
    workDir = mkdtempSync(path.join(tmpdir(), 'autoglm-polyglot-'));
    stubDir = path.join(workDir, 'stubs');
    mkdirSync(stubDir);
    generatePythonStubs(stubDir);
    // decision's embedded store takes seconds to open, more while other suites start meshes too.
    mesh = await startMesh({ dataDir: path.join(workDir, 'mesh'), ports: 'ephemeral', agents: 2, timeScale: 50, readyTimeoutMs: 60_000 });
  }, 120_000);

  afterAll(async () => {
    await mesh?.stop();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  }, 30_000);

  it('submits, watches, streams Infer and gets INVALID_ARGUMENT for an unknown model', async () => {
    if (!mesh) throw new Error('the mesh did not start');
    const summary = await runClient(mesh, stubDir);

    expect(summary.submit.task_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(summary.submit.state).toBe('TASK_STATE_SUCCEEDED');
    expect(summary.submit.output.length).toBeGreaterThan(0);

    expect(summary.infer.task_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(summary.infer.task_id).not.toBe(summary.submit.task_id);
    expect(summary.infer.chunks).toBeGreaterThan(0);
    expect(summary.infer.completion_tokens).toBeGreaterThan(0);
    expect(summary.infer.completion_tokens).toBe(summary.infer.chunk_tokens);
    expect(['stop', 'length']).toContain(summary.infer.finish_reason);

    expect(summary.error.code).toBe('INVALID_ARGUMENT');
    expect(summary.error.message).toContain('model');
    expect(summary.error.message).toContain('glm-9');
  }, 90_000);
});

/** Generates autoglm/v1/*_pb2.py and *_pb2_grpc.py under outDir from the contract. */
function generatePythonStubs(outDir: string): void {
  const wellKnown = spawnSync(PYTHON, ['-c', 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))'], {
    encoding: 'utf8',
  }).stdout.trim();
  const protos = readdirSync(path.join(PROTO_DIR, 'autoglm', 'v1'))
    .filter((name) => name.endsWith('.proto'))
    .map((name) => path.join('proto', 'autoglm', 'v1', name));
  const common = ['-I', 'proto', '-I', wellKnown, `--python_out=${outDir}`, `--grpc_python_out=${outDir}`, ...protos];

  const bundled = spawnSync(PYTHON, ['-m', 'grpc_tools.protoc', ...common], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (bundled.status === 0) return;

  const failures = [`${PYTHON} -m grpc_tools.protoc: ${bundled.stderr.trim()}`];
  if (existsSync(SYSTEM_PROTOC) && existsSync(SYSTEM_GRPC_PYTHON_PLUGIN)) {
    const system = spawnSync(SYSTEM_PROTOC, [`--plugin=protoc-gen-grpc_python=${SYSTEM_GRPC_PYTHON_PLUGIN}`, ...common], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    });
    if (system.status === 0) return;
    failures.push(`${SYSTEM_PROTOC}: ${system.stderr.trim()}`);
  } else {
    failures.push(`${SYSTEM_PROTOC} with ${SYSTEM_GRPC_PYTHON_PLUGIN}: not installed (apt-get install -y protobuf-compiler-grpc)`);
  }
  throw new Error(`cannot generate the Python stubs:\n${failures.join('\n')}`);
}

/** Runs client.py; resolves with its JSON summary, rejects with its stderr and the mesh's log tails. */
function runClient(mesh: Mesh, stubDir: string): Promise<Summary> {
  return new Promise((resolve, reject) => {
    execFile(PYTHON, [CLIENT, mesh.publicAddress, stubDir], { cwd: REPO_ROOT, timeout: 80_000, encoding: 'utf8', env: { ...process.env, AUTOGLM_TOKEN: mesh.adminToken, AUTOGLM_CA: mesh.caFile ?? '' } }, (error, stdout, stderr) => {
      const lastLine = stdout.trim().split('\n').pop() ?? '';
      if (error) {
        reject(new Error(`client.py failed (${error.code ?? error.signal}): ${stderr.trim()}\n${stdout.trim()}\n${logTails(mesh.dataDir)}`));
        return;
      }
      try {
        resolve(JSON.parse(lastLine) as Summary);
      } catch {
        reject(new Error(`client.py printed no JSON summary: ${stdout}`));
      }
    });
  });
}

/** The last lines of every mesh log, for a failure message (the data directory is removed afterwards). */
function logTails(dataDir: string): string {
  const logDir = path.join(dataDir, 'logs');
  if (!existsSync(logDir)) return '';
  return readdirSync(logDir)
    .map((name) => `--- ${name}\n${readFileSync(path.join(logDir, name), 'utf8').trim().split('\n').slice(-10).join('\n')}`)
    .join('\n');
}
