import { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import { loadAzureTrace } from './azure-trace';
import { runCell, type CellJob, type CellResult } from './quality-run';

/** Where the trace comes from: each worker reads it itself (cheaper than copying it over). */
export interface TraceSource {
  path: string;
  limit: number;
}

/**
 * Runs the cells on `workers` worker threads (in this thread when 1), each
 * taking the next cell when it is done with one; results come back in the
 * jobs' order. Every cell is seeded, so the thread that runs it changes
 * nothing in it.
 */
export async function runCells(jobs: readonly CellJob[], source: TraceSource, workers: number, done: (r: CellResult) => void): Promise<CellResult[]> {
  if (workers <= 1) {
    const trace = loadAzureTrace(source.path, source.limit);
    return jobs.map((job) => {
      const r = runCell(trace, job);
      done(r);
      return r;
    });
  }
  const results: CellResult[] = new Array<CellResult>(jobs.length);
  let next = 0;
  const file = path.join(__dirname, 'quality-worker');
  // Under tsx (the benchmarks' runner) a worker must register the TypeScript loader itself.
  const bootstrap = __filename.endsWith('.ts') ? `require('tsx/cjs'); require(${JSON.stringify(`${file}.ts`)});` : `require(${JSON.stringify(`${file}.js`)});`;
  const pool = Array.from({ length: Math.min(workers, jobs.length) }, () => new Worker(bootstrap, { eval: true, workerData: source }));
  try {
    await Promise.all(
      pool.map(
        (worker) =>
          new Promise<void>((resolve, reject) => {
            let current = -1;
            const feed = () => {
              if (next >= jobs.length) return resolve();
              current = next++;
              worker.postMessage(jobs[current]);
            };
            worker.on('message', (r: CellResult) => {
              results[current] = r;
              done(r);
              feed();
            });
            worker.on('error', reject);
            worker.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`a quality worker exited with ${code}`))));
            feed();
          }),
      ),
    );
  } finally {
    await Promise.all(pool.map((w) => w.terminate()));
  }
  return results;
}
