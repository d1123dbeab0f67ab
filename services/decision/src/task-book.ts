import { type Task, TaskKind, TaskState, type TaskSpec } from '@autoglm/proto';
import type { Demand, DemandKind } from '@autoglm/core';
import { Live } from './live';

const S = TaskState;

/** Distinct task sizes whose Demand is shared before the cache starts over. */
const MAX_SHARED_DEMANDS = 10_000;

/**
 * Decision's unfinished tasks in memory, and what keeps a million of them
 * small: tenant names and demands shared between tasks, and tasks that stay
 * queued or waiting put back to rest (encoded) once this turn's dispatch
 * pass has run (see Live).
 */
export class TaskBook {
  /** Every unfinished task. */
  readonly live = new Map<string, Live>();
  /** Tasks whose final transition is being committed: over, but readable until the store has them. */
  readonly finishing = new Map<string, Live>();
  /** Tenant names, one string each however many tasks name them. */
  private readonly tenantNames = new Map<string, string>();
  /** Demands by size, shared by the tasks that need the same. */
  private readonly demands = new Map<string, Readonly<Demand>>();
  /** Entries to put at rest after this turn's dispatch pass. */
  private readonly resting: Live[] = [];
  private restScheduled = false;

  /** A live or finishing task's entry. */
  entry(id: string): Live | undefined {
    return this.live.get(id) ?? this.finishing.get(id);
  }

  /** A decision-side record of a task, sharing its tenant name and demand with the tasks that have the same. */
  newLive(task: Task, readySinceMs: number, traceContext?: Record<string, string>): Live {
    let tenant = this.tenantNames.get(task.tenant);
    if (tenant === undefined) this.tenantNames.set(task.tenant, (tenant = task.tenant));
    return new Live(task, this.demandOf(task.spec!), readySinceMs, tenant, traceContext);
  }

  /** An entry's task; one at rest is put back to rest after this turn. */
  read(entry: Live): Task {
    if (entry.atRest) this.restLater(entry);
    return entry.task;
  }

  /** Lets a task that stays queued (or waiting) drop its decoded form once this turn's dispatch pass has run. */
  restLater(entry: Live): void {
    this.resting.push(entry);
    if (this.restScheduled) return;
    this.restScheduled = true;
    // After the dispatch pass scheduled with it (setImmediate runs in order): what that pass places never rests.
    setImmediate(() => {
      this.restScheduled = false;
      const resting = this.resting.splice(0);
      for (const e of resting) {
        if (!e.atRest && this.live.get(e.id) === e && (e.state === S.QUEUED || e.state === S.WAITING_DEPS || e.state === S.PENDING)) e.rest();
      }
    });
  }

  /**
   * What a task asks of the claim model: a sequence in a replica of its model
   * (inference), whole GPUs (a batch job), or host cores and memory (a batch
   * job with gpu_count 0).
   */
  demandOf(spec: TaskSpec): Demand {
    const kind: DemandKind = spec.kind === TaskKind.INFERENCE || spec.payload?.$case === 'inference' ? 'sequence' : spec.gpuCount === 0 ? 'cpu' : 'gpus';
    const gpuCount = kind === 'cpu' ? 0 : Math.max(1, spec.gpuCount);
    const gpuMemoryBytes = kind === 'gpus' ? spec.gpuMemoryBytes : 0;
    const tokens = kind === 'sequence' ? spec.inputTokens + spec.maxOutputTokens : 0;
    // A job with an argv runs as a process where agents can; one with only a duration is simulated.
    const program = spec.payload?.$case === 'batch' && spec.payload.batch.command.length > 0;
    const key = `${kind}/${spec.model}/${gpuCount}/${gpuMemoryBytes}/${tokens}/${spec.cpuMillis}/${spec.memoryBytes}/${program}`;
    let demand = this.demands.get(key);
    if (!demand) {
      // Sizes are free-form: the cache is a cache, not a registry of every size ever seen.
      if (this.demands.size >= MAX_SHARED_DEMANDS) this.demands.clear();
      demand = Object.freeze({ kind, model: spec.model, gpuCount, gpuMemoryBytes, tokens, cpuMillis: spec.cpuMillis, memoryBytes: spec.memoryBytes, program });
      this.demands.set(key, demand);
    }
    return demand;
  }
}
