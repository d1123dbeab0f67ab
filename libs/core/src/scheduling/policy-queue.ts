import { PriorityClass } from '@autoglm/proto';
import type { Policy, Weights } from '../policy/policy';
import { ageValue, businessValue, classValue, deadlineValue, dependencyValue, explainPriority, sizeValue, type FactorContribution } from '../policy/priority';

/** What the queue needs to know of a runnable task. */
export interface QueuedTaskInit {
  id: string;
  tenant: string;
  priorityClass: PriorityClass;
  /** The submission's priority within its class, -1000..1000. */
  priority: number;
  /** When it last became runnable (epoch ms): age counts from here. */
  readySinceMs: number;
  /** Deadline (epoch ms), if any. */
  deadlineMs?: number;
  /** Predicted run time (ms), for the deadline's slack. */
  predictedRunMs?: number;
  /** Tasks waiting (directly or not) on this one. */
  dependents?: number;
  /** A higher class lent by a waiting dependent (priority inheritance). */
  inheritedClass?: PriorityClass;
  /** Its share of one node (0..1): the cost penalty. */
  resourceShare?: number;
  /** Whether it may be preempted once running (kept for the dispatcher). */
  preemptible?: boolean;
  /** Its policy experiment variant (index into setVariants' overlays); none: the policy's own weights. */
  variant?: number;
  /** How many times it was preempted before (it is preempted at most MAX_PREEMPTIONS times). */
  preemptions?: number;
}

/** A queued task, as the queue holds it. */
export interface QueuedTask extends Readonly<Required<Omit<QueuedTaskInit, 'deadlineMs' | 'inheritedClass' | 'preemptible' | 'variant' | 'preemptions'>>> {
  readonly preemptions: number;
  readonly preemptible?: boolean;
  readonly variant?: number;
  readonly deadlineMs?: number;
  readonly inheritedClass?: PriorityClass;
  /** Past the age bound. */
  readonly overdue: boolean;
}

/** What can change about a queued task without it being pushed again. */
export type QueuedTaskPatch = Partial<Pick<QueuedTaskInit, 'dependents' | 'inheritedClass' | 'deadlineMs' | 'predictedRunMs' | 'priority'>>;

/*
 * A queue node's small fields, packed into one small integer (a million
 * queued tasks each save four 8-byte slots):
 *   bits 0-2  priority class        bits 3-5  inherited class (7: none)
 *   bits 6-7  preemptible (0: unset, 1: false, 2: true)
 *   bits 8-15 variant (255: none)   bit 16    overdue
 *   bit 17    in the ready order (see PolicyQueue.readyOrder)
 *   bits 18-20 preemptions before (capped at 7)
 */
const CLASS_BITS = 0x7;
const INHERITED_SHIFT = 3;
const NO_CLASS = 0x7;
const PREEMPTIBLE_SHIFT = 6;
const VARIANT_SHIFT = 8;
const NO_VARIANT = 0xff;
const OVERDUE_BIT = 1 << 16;
const READY_ORDER_BIT = 1 << 17;
const PREEMPTIONS_SHIFT = 18;
const PREEMPTIONS_MAX = 0x7;
/** Variants a queue can tell apart (an experiment has a handful). */
const MAX_VARIANTS = NO_VARIANT;

class Node implements QueuedTask {
  readonly id: string;
  readonly tenant: string;
  priority: number;
  readonly readySinceMs: number;
  deadlineMs: number | undefined;
  predictedRunMs: number;
  dependents: number;
  /** Its share of a node in millionths (an integer: no boxed double per node). */
  private readonly shareMicros: number;
  private flags: number;
  /** Priority minus the part every queued task's age shares (see PolicyQueue). */
  key = 0;
  /** Push order: ties go first-come first-served. */
  readonly seq: number;
  /** Index in its tenant's heap; OVERDUE or POPPED when in none. */
  index = OVERDUE;
  /** The deadline tick it is filed under for a refresh, if any. */
  rekeyTick: number | undefined = undefined;

  constructor(init: QueuedTaskInit, seq: number) {
    if (init.variant !== undefined && !(init.variant >= 0 && init.variant < MAX_VARIANTS)) throw new RangeError(`variant ${init.variant}: a queue tells apart at most ${MAX_VARIANTS} variants`);
    for (const c of [init.priorityClass, init.inheritedClass ?? 0]) if (!(c >= 0 && c < NO_CLASS)) throw new RangeError(`priority class ${c} is not one a queue holds`);
    this.id = init.id;
    this.tenant = init.tenant;
    this.priority = init.priority;
    this.readySinceMs = init.readySinceMs;
    this.deadlineMs = init.deadlineMs;
    this.predictedRunMs = init.predictedRunMs ?? 0;
    this.dependents = init.dependents ?? 0;
    this.shareMicros = Math.round(Math.min(1, Math.max(0, init.resourceShare ?? 0)) * 1e6);
    this.flags =
      (init.priorityClass & CLASS_BITS) |
      ((init.preemptible === undefined ? 0 : init.preemptible ? 2 : 1) << PREEMPTIBLE_SHIFT) |
      ((init.variant ?? NO_VARIANT) << VARIANT_SHIFT) |
      (Math.min(PREEMPTIONS_MAX, Math.max(0, Math.floor(init.preemptions ?? 0))) << PREEMPTIONS_SHIFT);
    this.inheritedClass = init.inheritedClass;
    this.seq = seq;
  }

  get priorityClass(): PriorityClass {
    return this.flags & CLASS_BITS;
  }

  get inheritedClass(): PriorityClass | undefined {
    const c = (this.flags >> INHERITED_SHIFT) & CLASS_BITS;
    return c === NO_CLASS ? undefined : c;
  }

  set inheritedClass(c: PriorityClass | undefined) {
    this.flags = (this.flags & ~(CLASS_BITS << INHERITED_SHIFT)) | ((c ?? NO_CLASS) << INHERITED_SHIFT);
  }

  get preemptible(): boolean | undefined {
    const p = (this.flags >> PREEMPTIBLE_SHIFT) & 0x3;
    return p === 0 ? undefined : p === 2;
  }

  get variant(): number | undefined {
    const v = (this.flags >> VARIANT_SHIFT) & NO_VARIANT;
    return v === NO_VARIANT ? undefined : v;
  }

  get preemptions(): number {
    return (this.flags >> PREEMPTIONS_SHIFT) & PREEMPTIONS_MAX;
  }

  get resourceShare(): number {
    return this.shareMicros / 1e6;
  }

  get overdue(): boolean {
    return (this.flags & OVERDUE_BIT) !== 0;
  }

  set overdue(on: boolean) {
    this.flags = on ? this.flags | OVERDUE_BIT : this.flags & ~OVERDUE_BIT;
  }

  get inReadyOrder(): boolean {
    return (this.flags & READY_ORDER_BIT) !== 0;
  }

  set inReadyOrder(on: boolean) {
    this.flags = on ? this.flags | READY_ORDER_BIT : this.flags & ~READY_ORDER_BIT;
  }
}

/** One tenant's queued tasks of one kind: its urgent submissions, or the rest. */
interface TenantQueue {
  /** Its key in PolicyQueue.tenants. */
  name: string;
  tenant: string;
  urgent: boolean;
  heap: Node[];
  /** The tenant's part of every one of its tasks' priority (fair share; 0 for urgent submissions), set by the owner. */
  score: number;
}

const OVERDUE = -1;
const POPPED = -2;

/** Deadline urgency moves with the clock: tasks with deadlines are re-keyed at most this often. */
const DEADLINE_TICK_MS = 250;
/** ...and before their deadline contribution could have moved by more than this fraction of its weight. */
const DEADLINE_DRIFT = 0.01;

/**
 * Runnable tasks in multi-factor priority order (policy/priority.ts), fast
 * enough to order a million tasks.
 *
 * The trick: below the age bound every task ages at the same rate, so the age
 * term `w_age * (now - readySince) / maxAge` splits into a part shared by all
 * (`w_age * now / maxAge`), which never changes the order, and a per-task
 * constant. A heap keyed on priority minus the shared part is therefore exact
 * for age without ever being rebuilt. What still moves is handled where it
 * moves:
 * - fair share is the same for all of a tenant's tasks, so each tenant has its
 *   own heap and the tenant's term is added when heads are compared; urgent
 *   submissions have a heap of their own without it (urgent work goes by
 *   its deadline and age, not by tenant: a first token is due whoever asked);
 * - deadline urgency changes with time: a task with a deadline is re-keyed
 *   before its urgency drifts by 1 % of the weight (every 250 ms near the
 *   deadline, every few minutes far from it);
 * - the age cap: a task that reaches the age bound leaves the heap for the
 *   overdue list (oldest first), which the dispatcher serves with a share of
 *   the placements ahead of priority order (no starvation);
 * - dependents, inherited class and predictions change by `update`.
 *
 * Push, pop, remove and update are O(log n) plus O(tenants) for a pop.
 */
export class PolicyQueue {
  private readonly nodes = new Map<string, Node>();
  private readonly tenants = new Map<string, TenantQueue>();
  /**
   * Heap members in push order, which is the order they became runnable for
   * all but `stragglers`: tasks pushed with a readySince before an earlier
   * push's (a restart's recovered tasks out of order, a clock step back).
   * Together they find the tasks reaching the age bound without a scan.
   * An array from `readyHead` on, not a Map (a slot instead of a hash entry
   * per task): a node that leaves the heap stays in place, unmarked, until
   * the head passes it or the array is compacted.
   */
  private readyOrder: Array<Node | undefined> = [];
  private readyHead = 0;
  /** Unmarked nodes at or after readyHead. */
  private readyGone = 0;
  private readonly stragglers = new Set<Node>();
  private latestReadyMs = -Infinity;
  /** Overdue tasks, oldest first. */
  private readonly overdueNodes = new Map<string, Node>();
  /**
   * Tasks with deadlines, by when their urgency next needs refreshing (in
   * DEADLINE_TICK_MS buckets): soon for a task near its deadline, rarely for
   * one far from it, so a queue full of distant deadlines costs little.
   */
  private readonly rekeyAt = new Map<number, Node[]>();
  /** Ticks up to this one have been refreshed. */
  private rekeyedThrough: number;
  /** Tenants' scores, kept while a tenant's heap is empty so a task pushed back finds its tenant's score. */
  private readonly scores = new Map<string, number>();
  private readonly perClass = new Map<PriorityClass, number>();
  private readonly overduePerClass = new Map<PriorityClass, number>();
  private policy: Policy;
  private overlays: Array<Partial<Weights>> = [];
  /** Each variant's weights: the policy's with its overlay. */
  private variantWeights: Weights[] = [];
  /** Origin of the age term, so keys stay small. */
  private readonly originMs: number;
  private seq = 0;

  constructor(policy: Policy, nowMs: number) {
    this.policy = policy;
    this.originMs = nowMs;
    this.rekeyedThrough = Math.floor(nowMs / DEADLINE_TICK_MS);
  }

  get size(): number {
    return this.nodes.size;
  }

  get overdueCount(): number {
    return this.overdueNodes.size;
  }

  /** Queued tasks of a class (its own class, not one lent to it), and how many of them are overdue. */
  classCounts(priorityClass: PriorityClass): { queued: number; overdue: number } {
    return { queued: this.perClass.get(priorityClass) ?? 0, overdue: this.overduePerClass.get(priorityClass) ?? 0 };
  }

  has(id: string): boolean {
    return this.nodes.has(id);
  }

  get(id: string): QueuedTask | undefined {
    return this.nodes.get(id);
  }

  /** Queued tasks of one tenant (not counting overdue ones). */
  sizeOf(tenant: string): number {
    return (this.tenants.get(queueKey(tenant, false))?.heap.length ?? 0) + (this.tenants.get(queueKey(tenant, true))?.heap.length ?? 0);
  }

  /** Tenants with tasks in the heap (for the owner to set their scores). */
  tenantNames(): IterableIterator<string> {
    const names = new Set<string>();
    for (const q of this.tenants.values()) names.add(q.tenant);
    return names.values();
  }

  /** Adds a runnable task (re-pushing an id replaces it). */
  push(init: QueuedTaskInit, nowMs: number): QueuedTask {
    this.remove(init.id);
    const node = new Node(init, this.seq++);
    this.nodes.set(node.id, node);
    bump(this.perClass, node.priorityClass, 1);
    if (nowMs - node.readySinceMs >= this.policy.maxAgeMs) {
      this.markOverdue(node);
      return node;
    }
    node.key = this.keyOf(node, nowMs);
    this.scheduleRekey(node, nowMs);
    if (node.readySinceMs >= this.latestReadyMs) {
      this.latestReadyMs = node.readySinceMs;
      node.inReadyOrder = true;
      this.readyOrder.push(node);
    } else this.stragglers.add(node);
    this.heapInsert(this.tenantQueue(node), node);
    return node;
  }

  /** Removes a task; returns whether it was queued. */
  remove(id: string): boolean {
    const node = this.nodes.get(id);
    if (!node) return false;
    this.nodes.delete(id);
    bump(this.perClass, node.priorityClass, -1);
    if (node.overdue) bump(this.overduePerClass, node.priorityClass, -1);
    this.detach(node);
    return true;
  }

  /** Changes what a queued task's priority depends on, keeping its place in time. */
  update(id: string, patch: QueuedTaskPatch, nowMs: number): void {
    const node = this.nodes.get(id);
    if (!node) return;
    if (patch.dependents !== undefined) node.dependents = patch.dependents;
    if ('inheritedClass' in patch) node.inheritedClass = patch.inheritedClass;
    if ('deadlineMs' in patch) node.deadlineMs = patch.deadlineMs;
    if (patch.predictedRunMs !== undefined) node.predictedRunMs = patch.predictedRunMs;
    if (patch.priority !== undefined) node.priority = patch.priority;
    if (node.overdue) return;
    this.rekey(node, nowMs);
    this.scheduleRekey(node, nowMs);
  }

  /** Sets a tenant's part of its tasks' priority (weight * fair-share factor). */
  setTenantScore(tenant: string, score: number): void {
    this.scores.set(tenant, score);
    const q = this.tenants.get(queueKey(tenant, false));
    if (q) q.score = score;
  }

  tenantScore(tenant: string): number {
    return this.scores.get(tenant) ?? 0;
  }

  /**
   * A policy experiment's variants: weight overlays over the policy's own
   * (per-task factors only: age and fair share stay the policy's, so the age
   * bound holds for every task and tenants compare on one scale). Keys are
   * recomputed (O(n)).
   */
  setVariants(overlays: ReadonlyArray<Partial<Weights>>, nowMs: number): void {
    this.overlays = overlays.map((o) => ({ ...o }));
    this.setPolicy(this.policy, nowMs);
  }

  /** New weights or shape: every key is recomputed (O(n)). */
  setPolicy(policy: Policy, nowMs: number): void {
    this.policy = policy;
    this.variantWeights = this.overlays.map((o) => ({ ...policy.weights, ...o, age: policy.weights.age, fairshare: policy.weights.fairshare }));
    for (const q of this.tenants.values()) {
      for (const node of q.heap) node.key = this.keyOf(node, nowMs);
      this.heapify(q);
    }
    for (const q of this.tenants.values()) for (const node of q.heap) this.scheduleRekey(node, nowMs);
    this.maintain(nowMs);
  }

  /** Moves tasks past the age bound to the overdue list and refreshes deadline urgency. Call before ordering decisions. */
  maintain(nowMs: number): void {
    const bound = nowMs - this.policy.maxAgeMs;
    const due: Node[] = [];
    const order = this.readyOrder;
    while (this.readyHead < order.length) {
      const node = order[this.readyHead]!;
      if (node.inReadyOrder) {
        if (node.readySinceMs > bound) break;
        node.inReadyOrder = false;
        due.push(node);
      } else this.readyGone -= 1;
      order[this.readyHead++] = undefined;
    }
    this.compactReadyOrder();
    for (const node of this.stragglers) if (node.readySinceMs <= bound) due.push(node);
    // Oldest first, whichever list they came from.
    if (this.stragglers.size > 0) due.sort((a, b) => a.readySinceMs - b.readySinceMs || a.seq - b.seq);
    for (const node of due) {
      if (node.index === POPPED) continue;
      this.detach(node);
      this.markOverdue(node);
    }
    const through = Math.floor(nowMs / DEADLINE_TICK_MS);
    if (through <= this.rekeyedThrough) return;
    // The due ticks in order: walked one by one when few, else taken from the filed ones.
    const ticks =
      through - this.rekeyedThrough <= this.rekeyAt.size
        ? Array.from({ length: through - this.rekeyedThrough }, (_, i) => this.rekeyedThrough + 1 + i)
        : [...this.rekeyAt.keys()].filter((t) => t <= through).sort((a, b) => a - b);
    for (const tick of ticks) {
      const due = this.rekeyAt.get(tick);
      // Refreshed tasks are filed after this tick, never under one already passed.
      this.rekeyedThrough = tick;
      if (!due) continue;
      this.rekeyAt.delete(tick);
      for (const node of due) {
        // Stale: removed, re-pushed or rescheduled since.
        if (node.rekeyTick !== tick || this.nodes.get(node.id) !== node || node.index < 0) continue;
        this.rekey(node, nowMs);
        this.scheduleRekey(node, nowMs);
      }
    }
    this.rekeyedThrough = through;
  }

  /**
   * Takes the highest-priority task that is not overdue out of the order,
   * O(log n + tenants), leaving out the tenants in `skipTenants`. The caller then either `remove`s it (placed) or
   * `restore`s it (not placed), before the next `maintain`.
   */
  popBest(skipTenants?: ReadonlySet<string>): QueuedTask | undefined {
    let best: TenantQueue | undefined;
    let bestScore = -Infinity;
    for (const q of this.tenants.values()) {
      const head = q.heap[0];
      if (!head || (skipTenants !== undefined && skipTenants.has(q.tenant))) continue;
      const score = head.key + q.score;
      if (score > bestScore || (score === bestScore && best && head.seq < best.heap[0]!.seq)) {
        best = q;
        bestScore = score;
      }
    }
    const node = best?.heap[0];
    if (!best || !node) return undefined;
    this.heapRemove(best, node);
    node.index = POPPED;
    return node;
  }

  /** A tenant's highest-priority task that is not overdue. */
  headOf(tenant: string): QueuedTask | undefined {
    const urgent = this.tenants.get(queueKey(tenant, true));
    const rest = this.tenants.get(queueKey(tenant, false));
    const a = urgent?.heap[0];
    const b = rest?.heap[0];
    if (!a || !b) return a ?? b;
    const sa = a.key + urgent.score;
    const sb = b.key + rest!.score;
    return sa > sb || (sa === sb && a.seq < b.seq) ? a : b;
  }

  /** Overdue tasks, longest-waiting first. Removing the yielded task while iterating is safe. */
  overdue(): IterableIterator<QueuedTask> {
    return this.overdueNodes.values();
  }

  /** Puts back tasks popped and not placed, with their original place in the order. */
  restore(tasks: Iterable<QueuedTask>, nowMs: number): void {
    for (const t of tasks) {
      const node = this.nodes.get(t.id);
      if (node !== t || node.index !== POPPED) continue;
      node.key = this.keyOf(node, nowMs);
      this.heapInsert(this.tenantQueue(node), node);
      this.scheduleRekey(node, nowMs);
    }
  }

  /** The task's priority now, as the sum of its factors' contributions (fair share from `usageOverShare`). */
  explain(id: string, nowMs: number, usageOverShare: number | undefined): { priority: number; factors: FactorContribution[] } | undefined {
    const node = this.nodes.get(id);
    if (!node) return undefined;
    return explainPriority(
      {
        priorityClass: this.classOf(node),
        waitMs: nowMs - node.readySinceMs,
        slackMs: node.deadlineMs === undefined ? undefined : node.deadlineMs - nowMs - node.predictedRunMs,
        dependents: node.dependents,
        priority: node.priority,
        // Urgent submissions are ordered without fair share (their queue has no tenant score).
        usageOverShare: node.priorityClass === PriorityClass.URGENT ? undefined : usageOverShare,
        resourceShare: node.resourceShare,
        predictedRunMs: node.predictedRunMs,
      },
      this.weightsOf(node),
      this.policy,
    );
  }

  private weightsOf(node: Node): Weights {
    return (node.variant !== undefined ? this.variantWeights[node.variant] : undefined) ?? this.policy.weights;
  }

  /**
   * 1-based position in the current order (overdue first, oldest first; then
   * by priority), or 0 when not queued. O(n): for explanations.
   */
  positionOf(id: string): number {
    const node = this.nodes.get(id);
    if (!node) return 0;
    if (node.overdue) {
      let i = 0;
      for (const n of this.overdueNodes.values()) {
        i += 1;
        if (n === node) return i;
      }
      return 0;
    }
    const mine = node.key + (this.tenants.get(queueKey(node.tenant, node.priorityClass === PriorityClass.URGENT))?.score ?? 0);
    let ahead = this.overdueNodes.size;
    for (const q of this.tenants.values()) {
      for (const n of q.heap) {
        const score = n.key + q.score;
        if (score > mine || (score === mine && n.seq < node.seq)) ahead += 1;
      }
    }
    return ahead + 1;
  }

  /** Every queued task in the current order. O(n log n): for tests and tools. */
  inOrder(): QueuedTask[] {
    const heaped = [...this.tenants.values()].flatMap((q) => q.heap.map((n) => ({ n, score: n.key + q.score })));
    heaped.sort((a, b) => b.score - a.score || a.n.seq - b.n.seq);
    return [...this.overdueNodes.values(), ...heaped.map((h) => h.n)];
  }

  // ---- internals ---------------------------------------------------------

  private classOf(node: Node): PriorityClass {
    const inherited = node.inheritedClass;
    return inherited !== undefined && classValue(inherited) > classValue(node.priorityClass) ? inherited : node.priorityClass;
  }

  /** The task's priority without fair share and without the age term all tasks share. */
  private keyOf(node: Node, nowMs: number): number {
    const w = this.weightsOf(node);
    const p = this.policy;
    const slack = node.deadlineMs === undefined ? undefined : node.deadlineMs - nowMs - node.predictedRunMs;
    return (
      w.class * classValue(this.classOf(node)) +
      // age = (now - origin)/maxAge (shared) - (readySince - origin)/maxAge (this task's).
      -w.age * ((node.readySinceMs - this.originMs) / p.maxAgeMs) +
      w.deadline * deadlineValue(slack, p.deadlineHorizonMs) +
      w.dependency * dependencyValue(node.dependents, p.dependentsHalf) +
      w.business * businessValue(node.priority) -
      w.size * sizeValue(node.predictedRunMs, p.sizeHorizonMs) -
      w.cost * Math.min(1, Math.max(0, node.resourceShare))
    );
  }

  /** The age value at `nowMs` of a task that became runnable at `readySinceMs` (capped). */
  static ageAt(readySinceMs: number, nowMs: number, maxAgeMs: number): number {
    return ageValue(nowMs - readySinceMs, maxAgeMs);
  }

  private markOverdue(node: Node): void {
    node.overdue = true;
    node.index = OVERDUE;
    this.overdueNodes.set(node.id, node);
    bump(this.overduePerClass, node.priorityClass, 1);
  }

  /** The queue a task goes in: its tenant's urgent submissions, or the rest of its tenant's. */
  private tenantQueue(node: Node): TenantQueue {
    const urgent = node.priorityClass === PriorityClass.URGENT;
    const name = queueKey(node.tenant, urgent);
    let q = this.tenants.get(name);
    if (!q) {
      q = { name, tenant: node.tenant, urgent, heap: [], score: urgent ? 0 : (this.scores.get(node.tenant) ?? 0) };
      this.tenants.set(name, q);
    }
    return q;
  }

  private detach(node: Node): void {
    if (node.overdue) {
      this.overdueNodes.delete(node.id);
      return;
    }
    if (node.inReadyOrder) {
      node.inReadyOrder = false;
      this.readyGone += 1;
      this.compactReadyOrder();
    } else this.stragglers.delete(node);
    node.rekeyTick = undefined;
    const q = this.tenants.get(queueKey(node.tenant, node.priorityClass === PriorityClass.URGENT));
    if (q && node.index >= 0) this.heapRemove(q, node);
    node.index = OVERDUE;
  }

  /** Drops passed and unmarked slots once they are most of the array (amortised O(1) per removal). */
  private compactReadyOrder(): void {
    const slots = this.readyOrder.length;
    if (slots < 1024 || (this.readyHead + this.readyGone) * 2 < slots) return;
    const kept: Node[] = [];
    for (let i = this.readyHead; i < slots; i++) {
      const node = this.readyOrder[i];
      if (node?.inReadyOrder) kept.push(node);
    }
    this.readyOrder = kept;
    this.readyHead = 0;
    this.readyGone = 0;
  }

  /** Files a task with a deadline under the tick when its urgency has drifted enough to matter. */
  private scheduleRekey(node: Node, nowMs: number): void {
    if (node.deadlineMs === undefined) {
      node.rekeyTick = undefined;
      return;
    }
    // urgency = h / (h + slack): it moves by DEADLINE_DRIFT when slack moves by DEADLINE_DRIFT * (h + slack)^2 / h.
    const h = this.policy.deadlineHorizonMs;
    const slack = Math.max(0, node.deadlineMs - nowMs - node.predictedRunMs);
    const afterMs = Math.max(DEADLINE_TICK_MS, Math.min(slack, (DEADLINE_DRIFT * (h + slack) ** 2) / h));
    // Past its deadline it is 1 for good: nothing more to refresh.
    if (slack === 0) {
      node.rekeyTick = undefined;
      return;
    }
    const tick = Math.max(this.rekeyedThrough + 1, Math.ceil((nowMs + afterMs) / DEADLINE_TICK_MS));
    node.rekeyTick = tick;
    const list = this.rekeyAt.get(tick);
    if (list) list.push(node);
    else this.rekeyAt.set(tick, [node]);
  }

  private rekey(node: Node, nowMs: number): void {
    const q = this.tenants.get(queueKey(node.tenant, node.priorityClass === PriorityClass.URGENT));
    if (!q || node.index < 0) return;
    const before = node.key;
    node.key = this.keyOf(node, nowMs);
    if (node.key > before) this.siftUp(q.heap, node.index);
    else if (node.key < before) this.siftDown(q.heap, node.index);
  }

  private heapInsert(q: TenantQueue, node: Node): void {
    node.index = q.heap.length;
    q.heap.push(node);
    this.siftUp(q.heap, node.index);
  }

  private heapRemove(q: TenantQueue, node: Node): void {
    const heap = q.heap;
    const i = node.index;
    const last = heap.pop()!;
    node.index = OVERDUE;
    if (last !== node) {
      heap[i] = last;
      last.index = i;
      this.siftDown(heap, i);
      this.siftUp(heap, last.index);
    }
    if (heap.length === 0) this.tenants.delete(q.name);
  }

  private heapify(q: TenantQueue): void {
    for (let i = (q.heap.length >> 1) - 1; i >= 0; i--) this.siftDown(q.heap, i);
  }

  private siftUp(heap: Node[], i: number): void {
    const node = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (!before(node, p)) break;
      heap[i] = p;
      p.index = i;
      i = parent;
    }
    heap[i] = node;
    node.index = i;
  }

  private siftDown(heap: Node[], i: number): void {
    const node = heap[i]!;
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && before(heap[r]!, heap[l]!) ? r : l;
      const c = heap[child]!;
      if (!before(c, node)) break;
      heap[i] = c;
      c.index = i;
      i = child;
    }
    heap[i] = node;
    node.index = i;
  }
}

/** Heap order: higher key first, then first pushed. */
function before(a: Node, b: Node): boolean {
  return a.key > b.key || (a.key === b.key && a.seq < b.seq);
}

/** A tenant's queue of urgent submissions, or of the rest. */
function queueKey(tenant: string, urgent: boolean): string {
  return urgent ? `${tenant}\u0000urgent` : tenant;
}

function bump<K>(counts: Map<K, number>, key: K, by: number): void {
  const n = (counts.get(key) ?? 0) + by;
  if (n === 0) counts.delete(key);
  else counts.set(key, n);
}
