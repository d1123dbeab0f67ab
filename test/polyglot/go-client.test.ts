import { execFile, spawnSync } from 'node:child_process';
import path from 'node:path';

// The Go client (clients/go) runs its own tests against a mesh it starts with
// the built CLI (`autoglm up`); this suite runs them as part of the one jest
// run, so CI covers the Go client without a step of its own.
const GO = 'go';
const MODULE_DIR = path.resolve(__dirname, '..', '..', 'clients', 'go');
// The first run downloads and compiles grpc-go and protobuf (a minute or two
// on two cores); later runs take the mesh's start-up and a few seconds.
const GO_TEST_TIMEOUT_MS = 540_000;

const probe = spawnSync(GO, ['version'], { encoding: 'utf8' });
const goReady = probe.status === 0;
const inCi = process.env.CI === 'true';
const missing = `${GO} is not available (${(probe.stderr || probe.error?.message || '').trim().split('\n').pop()}); install Go 1.26 or newer`;

if (!goReady && !inCi) {
  // Not console (lint): a skip has to be visible in the run's output, not only in a count.
  process.stderr.write(`test/polyglot/go-client.test.ts skipped: ${missing}\n`);
}

interface GoRun {
  code: number | string | null;
  output: string;
}

(goReady || inCi ? describe : describe.skip)('Go client against the mesh', () => {
  it('passes go test ./... in clients/go', async () => {
    if (!goReady) throw new Error(`CI=true and ${missing}`);
    // -count=1: the test cache does not know that the tests talk to a mesh they start.
    const run = await goTest(['test', '-count=1', '-v', './...']);
    if (run.code !== 0) throw new Error(`go test ./... in clients/go failed (${run.code}):\n${run.output}`);

    expect(run.output).toMatch(/^ok\s+github\.com\/open-autoglm\/autoglm\/clients\/go\/autoglm\s/m);
    expect(run.output).toMatch(/^ok\s+github\.com\/open-autoglm\/autoglm\/clients\/go\s/m);
    // Outside CI the Go tests skip what lacks node, the built CLI or buf: say so, as a skip here would.
    const skips = run.output.split('\n').filter((line) => /--- SKIP|skip/.test(line));
    if (skips.length > 0) process.stderr.write(`test/polyglot/go-client.test.ts: go test skipped some tests:\n${skips.join('\n')}\n`);
  }, GO_TEST_TIMEOUT_MS + 30_000);
});

/** Runs the go command in clients/go; resolves with its exit code and its output, stdout and stderr together. */
function goTest(args: string[]): Promise<GoRun> {
  return new Promise((resolve) => {
    execFile(GO, args, { cwd: MODULE_DIR, timeout: GO_TEST_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8', env: process.env }, (error, stdout, stderr) => {
      resolve({ code: error ? (error.code ?? error.signal ?? 'failed') : 0, output: `${stdout}${stderr}` });
    });
  });
}
