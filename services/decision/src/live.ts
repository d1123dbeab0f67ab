import { Task, type PriorityClass, type TaskState } from '@autoglm/proto';
import type { Demand, Reservation } from '@autoglm/core';

/** One attempt's hold on a node. */
export interface HeldLease {
  epoch: number;
  nodeId: string;
  gpuIndices: number[];
  /** Capacity booked in the fleet; absent while decision waits for the node to come back. */
  reservation?: Reservation;
  queueTimeMs: number;
  /** The assignment has gone out to the agent (it is committed first). */
  sent: boolean;
}

/**
 * One unfinished task as decision holds it.
 *
 * A queue can hold a million tasks, and a decoded `Task` costs over a
 * kilobyte of heap (its spec, payload, timestamps and maps are objects of
 * their own). So a task at rest (queued or waiting for dependencies, once a
 * dispatch pass has left it there) keeps only its protobuf encoding, about
 * a tenth of that, plus the few fields decision reads of every task
 * (`id`, `tenant`, `priorityClass`, `state`, `demand`). The first read of
 * `task` decodes it again (placement, explain, a report), and it stays
 * decoded until it rests once more.
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
  /** When it last went back to the queue, for its reported queue time (readySinceMs when unset). */
  queuedAtMs: number | undefined = undefined;
  lease: HeldLease | undefined = undefined;
  /** A failed attempt waiting out its backoff before the next. */
  retryTimer: NodeJS.Timeout | undefined = undefined;
  /** Unfinished dependencies. */
  waitingOn: Set<string> | undefined = undefined;
  /** W3C trace context of the submission (memory only), handed to the agent with the assignment. */
  readonly traceContext: Record<string, string> | undefined;
  /** The highest class among the tasks waiting on it (priority inheritance), when higher than its own. */
  inheritedClass: PriorityClass | undefined = undefined;
  private decoded: Task | undefined;
  /** The task's encoding as a one-byte string (a string costs 16 bytes over its length; a Uint8Array over 100). */
  private encoded: string | undefined = undefined;

  constructor(task: Task, demand: Demand, readySinceMs: number, tenant: string, traceContext?: Record<string, string>) {
    this.id = task.id;
    this.tenant = tenant;
    this.priorityClass = task.spec!.priorityClass;
    this.demand = demand;
    this.state = task.state;
    this.readySinceMs = readySinceMs;
    this.traceContext = traceContext && Object.keys(traceContext).length > 0 ? traceContext : undefined;
    this.decoded = task;
  }

  /** The task as last committed (decoded again if it was at rest). Treat as immutable: change it through the setter. */
  get task(): Task {
    if (!this.decoded) {
      const task = Task.decode(Buffer.from(this.encoded!, 'latin1'));
      task.id = this.id;
      task.tenant = this.tenant;
      this.decoded = task;
      this.encoded = undefined;
    }
    return this.decoded;
  }

  set task(task: Task) {
    this.decoded = task;
    this.encoded = undefined;
    this.state = task.state;
  }

  /** Whether only the encoding is held. */
  get atRest(): boolean {
    return this.decoded === undefined;
  }

  /** Drops the decoded task, keeping its encoding, until the next read. */
  rest(): void {
    if (!this.decoded) return;
    // Without the id and tenant, which are held anyway (a third of a small task's encoding).
    const bytes = Task.encode({ ...this.decoded, id: '', tenant: '' }).finish();
    this.encoded = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
    this.decoded = undefined;
  }
}
