import type { TraceRequest } from './azure-trace';
import { EasyBackfill, StrictFifo } from './quality-baselines';
import { DispatcherScheduler } from './quality-dispatcher';
import { measureRun, type RunMetrics } from './quality-metrics';
import { simulate, type PolicyName, type SchedulerFactory, type SimOptions } from './quality-sim';
import { buildWorkload, type Workload } from './quality-workload';

export const POLICIES: readonly PolicyName[] = ['fifo', 'fifo-easy', 'static', 'dynamic'];

const FACTORIES: Record<PolicyName, SchedulerFactory> = {
  fifo: (fleet) => new StrictFifo(fleet),
  'fifo-easy': (fleet, running) => new EasyBackfill(fleet, running),
  static: (fleet, _running, o) => new DispatcherScheduler(fleet, 'static', o),
  dynamic: (fleet, _running, o) => new DispatcherScheduler(fleet, 'dynamic', o),
};

/** Everything one (load, seed) needs besides the trace: plain data, so a worker thread can take it. */
export interface CellJob {
  load: number;
  seed: number;
  batchWorkFraction: number;
  policies: PolicyName[];
  sim: SimOptions;
  windowMs: number;
}

export interface CellResult {
  load: number;
  seed: number;
  workload: Omit<Workload, 'work'>;
  runs: RunMetrics[];
}

/** One (load, seed): the workload built once, every policy replayed on it. */
export function runCell(trace: TraceRequest[], job: CellJob): CellResult {
  const workload = buildWorkload(trace, { fleet: job.sim.fleet, offeredLoad: job.load, batchWorkFraction: job.batchWorkFraction, seed: job.seed });
  const runs = job.policies.map((p) => measureRun(simulate(workload, p, FACTORIES[p], job.sim), workload, job.sim.tenants, job.sim.sloTtftMs, job.windowMs));
  const { work: _work, ...summary } = workload;
  return { load: job.load, seed: job.seed, workload: summary, runs };
}
