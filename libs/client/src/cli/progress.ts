import { TaskState } from '@autoglm/proto';
import { humanDuration } from './format';
import type { OutputStream } from './io';
import { FINAL_STATES, stateName } from './names';

const BAR_WIDTH = 24;
/** Redraws at most this often on a terminal, and this much less often into a file or pipe. */
const TTY_INTERVAL_MS = 100;
const PIPE_INTERVAL_MS = 2000;

/**
 * One progress line over many tasks: done/total, counts per state, rate.
 * Redrawn in place on a terminal; on a pipe, a line every couple of seconds.
 */
export class ProgressBar {
  private readonly states = new Map<string, TaskState>();
  /** Tasks that have ended (see endsTask). */
  private readonly over = new Set<string>();
  private readonly startedAt: number;
  private lastDrawn = 0;
  private drawTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly stream: OutputStream,
    taskIds: readonly string[],
    private readonly now: () => number = Date.now,
  ) {
    for (const id of taskIds) this.states.set(id, TaskState.UNSPECIFIED);
    this.startedAt = now();
  }

  /** Records a task's state and schedules a redraw. */
  update(taskId: string, state: TaskState, over = FINAL_STATES.has(state)): void {
    this.states.set(taskId, state);
    if (over) this.over.add(taskId);
    else this.over.delete(taskId);
    this.scheduleDraw();
  }

  /** Tasks in a final state. */
  get done(): number {
    return this.over.size;
  }

  /** Count per state name; tasks not heard from yet count as "WAITING". */
  counts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const state of this.states.values()) {
      const name = state === TaskState.UNSPECIFIED ? 'WAITING' : stateName(state);
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    return counts;
  }

  /** The progress line. */
  render(): string {
    const total = this.states.size;
    const done = this.done;
    const filled = total === 0 ? BAR_WIDTH : Math.round((done / total) * BAR_WIDTH);
    const elapsedMs = Math.max(1, this.now() - this.startedAt);
    const rate = done / (elapsedMs / 1000);
    const counts = [...this.counts()]
      .sort(([a], [b]) => stateOrder(a) - stateOrder(b))
      .map(([name, count]) => `${name} ${count}`)
      .join(' · ');
    const eta = done > 0 && done < total ? `  eta ${humanDuration(((total - done) / rate) * 1000)}` : '';
    return `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${done}/${total}  ${counts}  ${rate.toFixed(1)}/s${eta}`;
  }

  /** Draws the final line and ends it. */
  finish(): void {
    clearTimeout(this.drawTimer);
    this.drawTimer = undefined;
    this.draw();
    if (this.stream.isTTY) this.stream.write('\n');
  }

  private scheduleDraw(): void {
    if (this.drawTimer !== undefined) return;
    const interval = this.stream.isTTY ? TTY_INTERVAL_MS : PIPE_INTERVAL_MS;
    const wait = Math.max(0, this.lastDrawn + interval - this.now());
    this.drawTimer = setTimeout(() => {
      this.drawTimer = undefined;
      this.draw();
    }, wait);
  }

  private draw(): void {
    this.lastDrawn = this.now();
    if (this.stream.isTTY) this.stream.write(`\r${this.render()}\x1b[K`);
    else this.stream.write(`${this.render()}\n`);
  }
}

function stateOrder(name: string): number {
  if (name === 'WAITING') return -1;
  const value: unknown = (TaskState as unknown as Record<string, unknown>)[name];
  return typeof value === 'number' ? value : 100;
}
