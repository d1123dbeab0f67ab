import type { DecisionServiceClient, ListNodesResponse } from '@autoglm/proto';
import type { ServedModelInfo } from '@autoglm/core';
import { callUnary } from '@autoglm/runtime';

/** A model name's last lookup that found nothing is not tried again for this long (a client hammering a typo). */
const MISS_RETRY_MS = 1000;

/**
 * The models agents' servers list (OpenAI-compatible servers' /v1/models),
 * as decision's ListNodes reports them: the parser accepts those beside its
 * catalog. Read every `refreshMs`, and at once (at most once a second) when
 * a submission names a model neither knows, so a server that just came up
 * is usable without waiting for the next read.
 */
export class ServedModels {
  private models = new Map<string, ServedModelInfo>();
  private readAtMs = -Infinity;
  private reading: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly decision: DecisionServiceClient,
    private readonly timeoutMs: number,
    private readonly refreshMs = 5000,
  ) {}

  start(): void {
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  get(model: string): ServedModelInfo | undefined {
    return this.models.get(model);
  }

  /** Every model some agent's server lists, as last read. */
  names(): string[] {
    return [...this.models.keys()];
  }

  /** Reads decision again when `model` is unknown here and the last read is over a second old. */
  async lookUp(model: string, inCatalog: boolean): Promise<void> {
    if (model === '' || inCatalog || this.models.has(model) || performance.now() - this.readAtMs < MISS_RETRY_MS) return;
    await this.refresh();
  }

  private refresh(): Promise<void> {
    this.reading ??= callUnary(this.decision.listNodes.bind(this.decision), {}, { deadlineMs: this.timeoutMs })
      .then(
        (res: ListNodesResponse) => {
          // A request may run on any server of its model: it must fit the smallest window any reports (0: unknown).
          const models = new Map<string, ServedModelInfo>();
          for (const node of res.nodes) {
            for (const m of node.servedModels) {
              const known = models.get(m.name)?.contextLength ?? 0;
              models.set(m.name, { contextLength: known === 0 ? m.contextLength : m.contextLength === 0 ? known : Math.min(known, m.contextLength) });
            }
          }
          this.models = models;
        },
        // Decision away: the last view stands.
        () => undefined,
      )
      .finally(() => {
        this.readAtMs = performance.now();
        this.reading = undefined;
      });
    return this.reading;
  }
}
