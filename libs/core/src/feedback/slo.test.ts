import { InvalidArgumentError } from '../errors';
import { DEFAULT_SLOS, SloTracker, validateSlos, type SloSpec, type TaskOutcome } from './slo';

const spec: SloSpec = { name: 'urgent-queue', indicator: 'queue_time', tenant: '*', priorityClass: 'urgent', thresholdSeconds: 1, objective: 0.9, windowMs: 60_000, minEvents: 5, alertForMs: 0 };

function outcome(atMs: number, tenant: string, queueSeconds: number, extra: Partial<TaskOutcome> = {}): TaskOutcome {
  return { atMs, tenant, priorityClass: 'urgent', model: 'm', nodeId: 'n1', succeeded: true, stopped: false, queueSeconds, ttftSeconds: 0.1, runSeconds: 1, tokens: 100, deadlineMet: undefined, ...extra };
}

describe('SloTracker', () => {
  /** A wait of `seconds` for the tenant's task, placed at `atMs`. */
  function placedAfter(t: SloTracker, id: string, tenant: string, atMs: number, seconds: number, priorityClass: 'urgent' | 'normal' = 'urgent'): void {
    t.waitStarted(id, tenant, priorityClass, atMs - seconds * 1000);
    t.waitEnded(id, atMs, true, seconds);
  }

  it('judges each tenant on its own series over the rolling window', () => {
    const t = new SloTracker([spec]);
    for (let i = 0; i < 10; i++) placedAfter(t, `a${i}`, 'acme', 10_000 + i * 1000, i < 8 ? 0.5 : 5);
    for (let i = 0; i < 10; i++) placedAfter(t, `g${i}`, 'globex', 10_000 + i * 1000, 0.2);
    const r = t.readings(20_000);
    expect(r.map((x) => [x.tenant, x.good, x.total, x.met])).toEqual([
      ['acme', 8, 10, false],
      ['globex', 10, 10, true],
    ]);
    expect(r[0]!.burnRate).toBeCloseTo(2);
    // The window slides past the bad ones.
    for (let i = 0; i < 10; i++) placedAfter(t, `b${i}`, 'acme', 75_000 + i * 100, 0.5);
    expect(t.readings(80_000).find((x) => x.tenant === 'acme')).toMatchObject({ good: 10, total: 10, met: true });
    // And past everything: the series is gone.
    expect(t.readings(500_000)).toEqual([]);
  });

  it('does not judge a series with fewer events than minEvents, and ignores other classes', () => {
    const t = new SloTracker([spec]);
    placedAfter(t, 'a', 'acme', 10_000, 9);
    placedAfter(t, 'b', 'acme', 10_000, 9, 'normal');
    expect(t.readings(10_000)).toEqual([expect.objectContaining({ total: 1, met: undefined })]);
  });

  it('counts a wait bad as soon as it outlasts the threshold, placed or not, and only once', () => {
    const t = new SloTracker([{ ...spec, minEvents: 1 }]);
    const events: string[] = [];
    t.listen((e) => events.push(`${e.slo.name}:${e.tenant}:${e.good}`));
    // A starved task: never placed, yet the SLO sees it miss.
    t.waitStarted('starved', 'acme', 'urgent', 0);
    t.waitStarted('quick', 'acme', 'urgent', 500);
    expect(t.readings(900)).toEqual([]);
    expect(t.readings(1500)).toEqual([expect.objectContaining({ tenant: 'acme', good: 0, total: 1, met: false })]);
    // Its placement later does not count it again; the quick one counts good.
    t.waitEnded('quick', 1200, true, 0.7);
    t.waitEnded('starved', 30_000, true, 30);
    expect(t.readings(30_000)).toEqual([expect.objectContaining({ good: 1, total: 2 })]);
    // A wait cancelled before its threshold says nothing; one cancelled after it counts bad.
    t.waitStarted('gave-up-early', 'acme', 'urgent', 31_000);
    t.waitEnded('gave-up-early', 31_500, false);
    t.waitStarted('gave-up-late', 'acme', 'urgent', 32_000);
    t.waitEnded('gave-up-late', 34_000, false);
    expect(t.readings(34_000)).toEqual([expect.objectContaining({ good: 1, total: 3 })]);
    expect(events).toEqual(['urgent-queue:acme:false', 'urgent-queue:acme:true', 'urgent-queue:acme:false']);
  });

  it('watches at most maxWaits waits per SLO', () => {
    const t = new SloTracker([{ ...spec, minEvents: 1 }], 200, 2);
    for (const id of ['a', 'b', 'c']) t.waitStarted(id, 'acme', 'urgent', 0);
    expect(t.readings(5000)).toEqual([expect.objectContaining({ good: 0, total: 2 })]);
  });

  it('counts TTFT from submission (queue plus first token), deadlines and failed attempts', () => {
    const slos: SloSpec[] = [
      { ...spec, name: 'ttft', indicator: 'ttft', thresholdSeconds: 2, minEvents: 1 },
      { ...spec, name: 'dl', indicator: 'deadline', priorityClass: '*', minEvents: 1 },
      { ...spec, name: 'ok', indicator: 'success', priorityClass: '*', minEvents: 1 },
    ];
    const t = new SloTracker(slos);
    t.record(outcome(0, 'a', 1.5, { ttftSeconds: 1, deadlineMet: false }));
    t.record(outcome(0, 'a', 0, { succeeded: false, ttftSeconds: undefined }));
    t.record(outcome(0, 'a', 0, { stopped: true, succeeded: false, ttftSeconds: undefined }));
    const byName = Object.fromEntries(t.readings(1).map((r) => [r.slo, [r.good, r.total]]));
    expect(byName).toEqual({ ttft: [0, 1], dl: [0, 1], ok: [1, 2] });
    // Queue time is judged on waits, not on finished attempts.
    const q = new SloTracker([{ ...spec, minEvents: 1 }]);
    q.record(outcome(0, 'a', 9));
    expect(q.readings(1)).toEqual([]);
  });

  it('validates what a configuration shape cannot', () => {
    expect(validateSlos(DEFAULT_SLOS)).toBe(DEFAULT_SLOS);
    expect(() => validateSlos([spec, spec])).toThrow(/slos\[1\]\.name: "urgent-queue" is used twice/);
    expect(() => validateSlos([{ ...spec, thresholdSeconds: 0 }])).toThrow(InvalidArgumentError);
    expect(() => validateSlos([{ ...spec, objective: 1 }])).toThrow(/slos\[0\]\.objective/);
    expect(() => validateSlos([{ ...spec, name: 'Bad Name' }])).toThrow(/slos\[0\]\.name/);
  });
});
