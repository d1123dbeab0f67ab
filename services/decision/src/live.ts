import { Task, type PriorityClass, type TaskState } from '@autoglm/proto';
import type { Claim, Demand } from '@autoglm/core';

/** One attempt's hold on a node. */
export interface HeldLease {
  epoch: number;
  nodeId: string;
  gpuIndices: number[];
  /** What it holds in the fleet; absent while decision waits for the node to come back. */
  claim?: Claim;
  queueTimeMs: number;
  /** The assignment has gone out to the agent (it is committed first). */
  sent: boolean;
  /**
   * Being stopped for higher-ranked work: the agent was told (SIGTERM and the
   * grace period), and the attempt keeps its lease and claim until it reports
   * it has stopped; only then is the task PREEMPTED and queued again.
   */
  preempting?: { reason: string; graceEndsMs: number; timer: NodeJS.Timeout };
}

/** What only some tasks have (a lease, a backoff, dependencies, a lent class): kept out of the common record. */
interface Occasional {
  queuedAtMs?: number;
  lease?: HeldLease;
  retryTimer?: NodeJS.Timeout;
  waitingOn?: Set<string>;
  inheritedClass?: PriorityClass;
}

/**
 * One unfinished task as decision holds it.
 *
 * A queue can hold a million tasks, and a decoded `Task` costs over a
 * kilobyte of heap (its spec, payload, timestamps and maps are objects of
 * their own). So a task at rest (queued or waiting for dependencies, once a
 * dispatch pass has left it there) keeps only its protobuf encoding, about
 * a tenth of that, plus the few fields decision reads of every task
 * (`id`, `tenant`, `priorityClass`, `state`, `demand`, `readySinceMs`). The
 * first read of `task` decodes it again (placement, explain, a report), and
 * it stays decoded until it rests once more.
 */
export class Live {
  readonly id: string;
  readonly tenant: string;
  readonly priorityClass: PriorityClass;
  /** What it needs of a GPU (shared between tasks that need the same). */
  readonly demand: Demand;
  /** The task's state, readable without decoding it. */
  state: TaskState;
  /** When it became runnable (for age; a preempted task keeps it). */
  readySinceMs: number;
  /** W3C trace context of the submission (memory only), handed to the agent with the assignment. */
  readonly traceContext: Record<string, string> | undefined;
  /** The task, decoded, or at rest as its encoding in a one-byte string (16 bytes over its length; a Uint8Array costs over 100). */
  private body: Task | string;
  private occasional: Occasional | undefined = undefined;

  constructor(task: Task, demand: Demand, readySinceMs: number, tenant: string, traceContext?: Record<string, string>) {
    this.id = task.id;
    this.tenant = tenant;
    this.priorityClass = task.spec!.priorityClass;
    this.demand = demand;
    this.state = task.state;
    this.readySinceMs = readySinceMs;
    this.traceContext = traceContext && Object.keys(traceContext).length > 0 ? traceContext : undefined;
    this.body = task;
  }

  /** The task as last committed (decoded again if it was at rest). Treat as immutable: change it through the setter. */
  get task(): Task {
    if (typeof this.body === 'string') {
      const task = Task.decode(Buffer.from(this.body, 'latin1'));
      task.id = this.id;
      task.tenant = this.tenant;
      this.body = task;
    }
    return this.body;
  }

  set task(task: Task) {
    this.body = task;
    this.state = task.state;
  }

  /** Whether only the encoding is held. */
  get atRest(): boolean {
    return typeof this.body === 'string';
  }

  /** Drops the decoded task, keeping its encoding, until the next read. */
  rest(): void {
    if (typeof this.body === 'string') return;
    // Without the id and tenant, which are held anyway (a third of a small task's encoding).
    const bytes = Task.encode({ ...this.body, id: '', tenant: '' }).finish();
    this.body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  }

  /** When it last went back to the queue, for its reported queue time (readySinceMs when unset). */
  get queuedAtMs(): number | undefined {
    return this.occasional?.queuedAtMs;
  }
  set queuedAtMs(value: number | undefined) {
    this.setOccasional('queuedAtMs', value);
  }

  get lease(): HeldLease | undefined {
    return this.occasional?.lease;
  }
  set lease(value: HeldLease | undefined) {
    this.setOccasional('lease', value);
  }

  /** A failed attempt waiting out its backoff before the next. */
  get retryTimer(): NodeJS.Timeout | undefined {
    return this.occasional?.retryTimer;
  }
  set retryTimer(value: NodeJS.Timeout | undefined) {
    this.setOccasional('retryTimer', value);
  }

  /** Unfinished dependencies. */
  get waitingOn(): Set<string> | undefined {
    return this.occasional?.waitingOn;
  }
  set waitingOn(value: Set<string> | undefined) {
    this.setOccasional('waitingOn', value);
  }

  /** The highest class among the tasks waiting on it (priority inheritance), when higher than its own. */
  get inheritedClass(): PriorityClass | undefined {
    return this.occasional?.inheritedClass;
  }
  set inheritedClass(value: PriorityClass | undefined) {
    this.setOccasional('inheritedClass', value);
  }

  private setOccasional<K extends keyof Occasional>(key: K, value: Occasional[K]): void {
    if (value === undefined && this.occasional === undefined) return;
    // One shape for every such record (all keys present), so reads stay monomorphic.
    (this.occasional ??= { queuedAtMs: undefined, lease: undefined, retryTimer: undefined, waitingOn: undefined, inheritedClass: undefined })[key] = value;
  }
}
