/**
 * Alerts as Prometheus runs them: a rule's condition holds → pending; it
 * keeps holding for the rule's `for:` → firing; it stops holding → resolved
 * (from firing) or simply gone (from pending, which never paged anyone).
 */
export type AlertState = 'pending' | 'firing' | 'resolved';

/** One instance of a rule's condition being true now, with its labels. */
export interface AlertCondition {
  /** The rule's name ("SloMissed"). */
  readonly alert: string;
  /** What tells instances of a rule apart (slo, tenant, node, ...). */
  readonly labels: Readonly<Record<string, string>>;
  readonly severity: 'page' | 'ticket';
  /** How long it must hold before it fires. */
  readonly forMs: number;
  /** One line for a person: what is wrong, with the numbers. */
  readonly summary: string;
  /** The measured value that breached (an attainment, a count). */
  readonly value: number;
}

/** An alert as it stands, or as it just changed. */
export interface Alert extends AlertCondition {
  readonly state: AlertState;
  /** When the condition started holding. */
  readonly activeSinceMs: number;
  /** When it fired; undefined while pending. */
  readonly firedAtMs: number | undefined;
  /** When it resolved; undefined until then. */
  readonly resolvedAtMs: number | undefined;
}

/** An alert's identity: its rule and labels. */
export function alertKey(alert: { alert: string; labels: Readonly<Record<string, string>> }): string {
  return JSON.stringify([alert.alert, Object.entries(alert.labels).sort(([a], [b]) => a.localeCompare(b))]);
}

/**
 * Keeps every alert's state between evaluations. Each evaluation hands it the
 * conditions that hold now; it returns the changes (an alert becoming pending,
 * firing or resolved), which is what the event stream and a webhook carry.
 */
export class AlertBook {
  private readonly active = new Map<string, Alert>();
  /** Recently resolved alerts, newest last, for the dashboard and `autoglm alerts --all`. */
  private readonly resolved: Alert[] = [];

  constructor(private readonly keepResolved = 100) {}

  evaluate(nowMs: number, holding: readonly AlertCondition[]): Alert[] {
    const changes: Alert[] = [];
    const seen = new Set<string>();
    for (const c of holding) {
      const key = alertKey(c);
      if (seen.has(key)) continue;
      seen.add(key);
      const was = this.active.get(key);
      if (was === undefined) {
        const pending: Alert = { ...c, state: 'pending', activeSinceMs: nowMs, firedAtMs: undefined, resolvedAtMs: undefined };
        const next = c.forMs <= 0 ? fire(pending, nowMs) : pending;
        this.active.set(key, next);
        changes.push(next);
      } else if (was.state === 'pending' && nowMs - was.activeSinceMs >= c.forMs) {
        const next = fire({ ...was, ...c }, nowMs);
        this.active.set(key, next);
        changes.push(next);
      } else {
        // Still holding: keep its state, refresh what it says.
        this.active.set(key, { ...was, summary: c.summary, value: c.value });
      }
    }
    for (const [key, was] of this.active) {
      if (seen.has(key)) continue;
      this.active.delete(key);
      if (was.state !== 'firing') continue;
      const done: Alert = { ...was, state: 'resolved', resolvedAtMs: nowMs };
      this.resolved.push(done);
      if (this.resolved.length > this.keepResolved) this.resolved.shift();
      changes.push(done);
    }
    return changes;
  }

  /** Pending and firing alerts, firing first, then oldest first. */
  current(): Alert[] {
    return [...this.active.values()].sort((a, b) => (a.state === b.state ? a.activeSinceMs - b.activeSinceMs : a.state === 'firing' ? -1 : 1));
  }

  /** Resolved alerts kept, newest first. */
  recentlyResolved(): Alert[] {
    return [...this.resolved].reverse();
  }
}

function fire(alert: Alert, nowMs: number): Alert {
  return { ...alert, state: 'firing', firedAtMs: nowMs };
}
