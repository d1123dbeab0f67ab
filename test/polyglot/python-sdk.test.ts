import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ensurePythonVenv, type PythonVenv, runProcess } from './python-venv';

// The Python SDK (clients/python) in a virtualenv of its own with grpcio and
// protobuf from PyPI, its pytest suite run against a whole mesh it starts as
// separate processes (`autoglm up`, from the build `npm test` makes first).
const PYTHON = process.env.AUTOGLM_PYTHON ?? 'python3';
const REPO_ROOT = path.resolve(__dirname, '..', '..');
const PACKAGE_DIR = path.join(REPO_ROOT, 'clients', 'python');
// Reused across runs while clients/python/pyproject.toml is unchanged: only the first run installs.
const VENV_CACHE = path.join(REPO_ROOT, 'node_modules', '.cache', 'autoglm-python-venv');

const probe = spawnSync(PYTHON, ['-c', 'import ensurepip, venv'], { encoding: 'utf8' });
const pythonReady = probe.status === 0;
const inCi = process.env.CI === 'true';
const missing =
  `${PYTHON} cannot make a virtualenv (${(probe.stderr || probe.error?.message || '').trim().split('\n').pop()}); ` +
  'install it with: apt-get install -y python3-venv';

if (!pythonReady && !inCi) {
  // Not console (lint): a skip has to be visible in the run's output, not only in a count.
  process.stderr.write(`test/polyglot/python-sdk.test.ts skipped: ${missing}\n`);
}

(pythonReady || inCi ? describe : describe.skip)('Python SDK (clients/python) against the mesh', () => {
  let venv: PythonVenv | undefined;

  beforeAll(async () => {
    if (!pythonReady) throw new Error(`CI=true and ${missing}`);
    venv = await ensurePythonVenv(PYTHON, PACKAGE_DIR, VENV_CACHE);
    // The venv outlives proto changes; the stubs must not.
    const generate = await runProcess(venv.python, [path.join(PACKAGE_DIR, 'scripts', 'generate.py')], { timeoutMs: 60_000 });
    if (generate.code !== 0) throw new Error(`scripts/generate.py failed (${generate.code ?? generate.signal}):\n${generate.output}`);
  }, 600_000);

  it('passes its pytest suite', async () => {
    if (!venv) throw new Error('the virtualenv was not made');
    const result = await runProcess(venv.python, ['-m', 'pytest', '-q', '-p', 'no:cacheprovider'], {
      cwd: PACKAGE_DIR,
      env: pytestEnv(),
      timeoutMs: 240_000,
    });
    if (result.code !== 0) throw new Error(`pytest failed (${result.code ?? result.signal}):\n${result.output}`);
    expect(result.output).toMatch(/\d+ passed/);
    expect(result.output).not.toMatch(/\d+ (failed|error)/);
  }, 300_000);

  it('type-checks with mypy --strict', async () => {
    if (!venv) throw new Error('the virtualenv was not made');
    const result = await runProcess(venv.python, ['-m', 'mypy', '--cache-dir', path.join(venv.dir, 'mypy-cache')], { cwd: PACKAGE_DIR, timeoutMs: 120_000 });
    if (result.code !== 0) throw new Error(`mypy failed (${result.code ?? result.signal}):\n${result.output}`);
  }, 150_000);
});

/** The suite's environment: where the repository and node are, and none of the caller's AUTOGLM_* connection settings. */
function pytestEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, AUTOGLM_REPO_ROOT: REPO_ROOT, AUTOGLM_NODE: process.execPath };
  for (const name of ['AUTOGLM_ADDRESS', 'AUTOGLM_TOKEN', 'AUTOGLM_CA', 'AUTOGLM_TENANT', 'AUTOGLM_DATA_DIR']) delete env[name];
  return env;
}
