import { InvalidArgumentError } from '../errors';
import { DEFAULT_SLOS, SloTracker, validateSlos, type SloSpec, type TaskOutcome } from './slo';

const spec: SloSpec = { name: 'urgent-queue', indicator: 'queue_time', tenant: '*', priorityClass: 'urgent', thresholdSeconds: 1, objective: 0.9, windowMs: 60_000, minEvents: 5, alertForMs: 0 };

function outcome(atMs: number, tenant: string, queueSeconds: number, extra: Partial<TaskOutcome> = {}): TaskOutcome {
  return { atMs, tenant, priorityClass: 'urgent', model: 'm', nodeId: 'n1', succeeded: true, stopped: false, queueSeconds, ttftSeconds: 0.1, runSeconds: 1, tokens: 100, deadlineMet: undefined, ...extra };
}

describe('SloTracker', () => {
  it('judges each tenant on its own series over the rolling window', () => {
    const t = new SloTracker([spec]);
    for (let i = 0; i < 10; i++) t.record(outcome(i * 1000, 'acme', i < 8 ? 0.5 : 5));
    for (let i = 0; i < 10; i++) t.record(outcome(i * 1000, 'globex', 0.2));
    const r = t.readings(10_000);
    expect(r.map((x) => [x.tenant, x.good, x.total, x.met])).toEqual([
      ['acme', 8, 10, false],
      ['globex', 10, 10, true],
    ]);
    expect(r[0]!.burnRate).toBeCloseTo(2);
    // The window slides past the bad ones.
    for (let i = 0; i < 10; i++) t.record(outcome(65_000 + i * 100, 'acme', 0.5));
    expect(t.readings(70_000).find((x) => x.tenant === 'acme')).toMatchObject({ good: 10, total: 10, met: true });
    // And past everything: the series is gone.
    expect(t.readings(500_000)).toEqual([]);
  });

  it('does not judge a series with fewer events than minEvents, and ignores other classes', () => {
    const t = new SloTracker([spec]);
    t.record(outcome(0, 'acme', 9));
    t.record(outcome(0, 'acme', 9, { priorityClass: 'normal' }));
    expect(t.readings(1000)).toEqual([expect.objectContaining({ total: 1, met: undefined })]);
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
  });

  it('validates what a configuration shape cannot', () => {
    expect(validateSlos(DEFAULT_SLOS)).toBe(DEFAULT_SLOS);
    expect(() => validateSlos([spec, spec])).toThrow(/slos\[1\]\.name: "urgent-queue" is used twice/);
    expect(() => validateSlos([{ ...spec, thresholdSeconds: 0 }])).toThrow(InvalidArgumentError);
    expect(() => validateSlos([{ ...spec, objective: 1 }])).toThrow(/slos\[0\]\.objective/);
    expect(() => validateSlos([{ ...spec, name: 'Bad Name' }])).toThrow(/slos\[0\]\.name/);
  });
});
