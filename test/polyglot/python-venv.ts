import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** A finished run of a child process: its status and output, whatever they are. */
export interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** A virtualenv with a Python package and its `test` extra installed. */
export interface PythonVenv {
  dir: string;
  /** The venv's interpreter. */
  python: string;
  /** False when an earlier run made it and this one reused it. */
  created: boolean;
}

const READY_MARKER = '.autoglm-ready';

/**
 * The virtualenv under `cacheRoot` with `packageDir[test]` installed (editable),
 * made on first use and reused while the package's pyproject.toml, the base
 * interpreter and the package's place stay the same: they make its key. Other
 * keys' venvs are removed. A venv whose setup did not finish has no marker and
 * is made again.
 */
export async function ensurePythonVenv(basePython: string, packageDir: string, cacheRoot: string): Promise<PythonVenv> {
  const version = await runProcess(basePython, ['-c', 'import sys; print(sys.executable, sys.version)'], { timeoutMs: 30_000 });
  if (version.code !== 0) throw new Error(`${basePython} does not run:\n${version.output}`);
  const key = createHash('sha256')
    .update(readFileSync(path.join(packageDir, 'pyproject.toml')))
    .update(version.output)
    .update(packageDir)
    .digest('hex')
    .slice(0, 16);
  const dir = path.join(cacheRoot, key);
  const python = path.join(dir, 'bin', 'python');
  if (existsSync(path.join(dir, READY_MARKER))) return { dir, python, created: false };

  if (existsSync(cacheRoot)) for (const stale of readdirSync(cacheRoot)) rmSync(path.join(cacheRoot, stale), { recursive: true, force: true });
  const steps: Array<[string, string[]]> = [
    [basePython, ['-m', 'venv', dir]],
    [python, ['-m', 'pip', 'install', '--disable-pip-version-check', '--quiet', '--editable', `${packageDir}[test]`]],
  ];
  for (const [command, args] of steps) {
    // pip downloads grpcio, grpcio-tools and the build backend on a cold cache.
    const result = await runProcess(command, args, { timeoutMs: 480_000 });
    if (result.code !== 0) throw new Error(`${[command, ...args].join(' ')} failed (${result.code ?? result.signal}):\n${result.output}`);
  }
  writeFileSync(path.join(dir, READY_MARKER), `${new Date().toISOString()}\n`);
  return { dir, python, created: true };
}

/** Runs a command to its end; resolves with its exit status and interleaved output, never rejects. */
export function runProcess(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<ProcessResult> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { cwd: options.cwd, env: options.env, timeout: options.timeoutMs, killSignal: 'SIGINT', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        const failure = error as (Error & { code?: number | string; signal?: NodeJS.Signals | null }) | null;
        const code = failure === null ? 0 : typeof failure.code === 'number' ? failure.code : null;
        const spawnError = failure !== null && typeof failure.code === 'string' ? `${failure.message}\n` : '';
        resolve({ code, signal: failure?.signal ?? null, output: `${spawnError}${stdout}${stderr}` });
      },
    );
  });
}
