import { parentPort, workerData } from 'node:worker_threads';
import { loadAzureTrace } from './azure-trace';
import type { TraceSource } from './quality-pool';
import { runCell, type CellJob } from './quality-run';

// A worker thread of quality-pool.ts: reads the trace once, then runs the cells it is sent.
const source = workerData as TraceSource;
const trace = loadAzureTrace(source.path, source.limit);
parentPort!.on('message', (job: CellJob) => parentPort!.postMessage(runCell(trace, job)));
