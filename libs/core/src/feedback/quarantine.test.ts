import { binomialTail, DEFAULT_QUARANTINE_CONFIG, NodeWatch } from './quarantine';
import type { TaskOutcome } from './slo';

/** An attempt: 0.2 s to the first token, then 100 tokens at `perToken` seconds each. */
function attempt(atMs: number, nodeId: string, succeeded: boolean, perToken = 0.02, ttftSeconds = 0.2): TaskOutcome {
  return { atMs, tenant: 't', priorityClass: 'normal', model: 'm', nodeId, succeeded, stopped: false, queueSeconds: 0, ttftSeconds: succeeded ? ttftSeconds : undefined, runSeconds: ttftSeconds + 99 * perToken, tokens: 110, outputTokens: 100, deadlineMet: undefined };
}

const NODES = ['n1', 'n2', 'n3', 'n4', 'n5'];

describe('NodeWatch', () => {
  it('quarantines a node failing a share of its work before it fails 20 attempts, and readmits it after probation', () => {
    const w = new NodeWatch();
    let failed = 0;
    let verdict;
    for (let i = 0; i < 400 && verdict === undefined; i++) {
      const t = i * 1000;
      for (const n of NODES) w.record(attempt(t, n, n !== 'n3' || i % 3 !== 0));
      if (i % 3 === 0) failed += 1;
      verdict = w.judge(t, NODES).find((v) => v.kind === 'quarantine');
    }
    expect(verdict).toMatchObject({ kind: 'quarantine', nodeId: 'n3' });
    expect(failed).toBeLessThan(20);
    expect(w.isQuarantined('n3')).toBe(true);
    const until = (verdict as { untilMs: number }).untilMs;
    expect(w.judge(until - 1, NODES)).toEqual([]);
    expect(w.judge(until, NODES)).toEqual([expect.objectContaining({ kind: 'readmit', nodeId: 'n3' })]);
    expect(w.isQuarantined('n3')).toBe(false);
  });

  it('a long healthy history does not hide a node that has just started failing', () => {
    const w = new NodeWatch();
    // Ten healthy minutes, then n3 fails every third attempt.
    for (let i = 0; i < 600; i++) for (const n of NODES) w.record(attempt(i * 1000, n, true));
    let failed = 0;
    let verdict;
    for (let i = 600; i < 1200 && verdict === undefined; i++) {
      for (const n of NODES) w.record(attempt(i * 1000, n, n !== 'n3' || i % 3 !== 0));
      if (i % 3 === 0) failed += 1;
      verdict = w.judge(i * 1000, NODES).find((v) => v.kind === 'quarantine');
    }
    expect(verdict).toMatchObject({ nodeId: 'n3' });
    expect(failed).toBeLessThan(20);
  });

  it('requests that waited for a cold start or a busy engine do not make a node slow', () => {
    const w = new NodeWatch();
    // n2's requests all waited 40 s for their first token (a replica loading), then decoded at a full batch's pace.
    for (let i = 0; i < 30; i++) for (const n of NODES) w.record(attempt(i, n, true, n === 'n2' ? 0.05 : 0.02, n === 'n2' ? 40 : 0.2));
    expect(w.judge(30, NODES)).toEqual([]);
  });

  it('doubles the probation of a node that fails again after readmission', () => {
    const w = new NodeWatch({ ...DEFAULT_QUARANTINE_CONFIG, minAttempts: 4 });
    const fail = (from: number) => {
      for (let i = 0; i < 10; i++) for (const n of NODES) w.record(attempt(from + i, n, n !== 'n1'));
      return w.judge(from + 10, NODES).find((v) => v.kind === 'quarantine') as { untilMs: number } | undefined;
    };
    const first = fail(0)!;
    expect(first.untilMs - 10).toBe(DEFAULT_QUARANTINE_CONFIG.probationMs);
    w.judge(first.untilMs, NODES);
    const second = fail(first.untilMs)!;
    expect(second.untilMs - (first.untilMs + 10)).toBe(2 * DEFAULT_QUARANTINE_CONFIG.probationMs);
  });

  it('puts a node readmitted after failing on trial: still failing, it goes back within a few failures; mended, it is cleared', () => {
    /** Quarantines n3 for failing every third attempt, readmits it, and returns the time of readmission. */
    const quarantineAndReadmit = (w: NodeWatch): number => {
      for (let i = 0; i < 400; i++) {
        for (const n of NODES) w.record(attempt(i * 1000, n, n !== 'n3' || i % 3 !== 0));
        const v = w.judge(i * 1000, NODES).find((x) => x.kind === 'quarantine') as { untilMs: number } | undefined;
        if (v) {
          expect(w.judge(v.untilMs, NODES)).toEqual([expect.objectContaining({ kind: 'readmit', reason: expect.stringMatching(/on trial/) })]);
          return v.untilMs;
        }
      }
      throw new Error('n3 was never quarantined');
    };
    const broken = new NodeWatch();
    const readmitted = quarantineAndReadmit(broken);
    let failedSince = 0;
    let back;
    for (let i = 1; i < 100 && back === undefined; i++) {
      const t = readmitted + i * 1000;
      for (const n of NODES) broken.record(attempt(t, n, n !== 'n3' || i % 3 !== 0));
      if (i % 3 === 0) failedSince += 1;
      back = broken.judge(t, NODES).find((v) => v.kind === 'quarantine');
    }
    // A fresh judgement would wait for 8 attempts with 4 failures; the trial sends it back sooner.
    expect(back).toMatchObject({ nodeId: 'n3', reason: expect.stringMatching(/since its readmission: still failing as before/) });
    expect(failedSince).toBeLessThanOrEqual(3);

    const mended = new NodeWatch();
    const again = quarantineAndReadmit(mended);
    // Mended: a run of successes clears the trial, after which one failure among its next attempts is no cause.
    for (let i = 1; i <= 12; i++) for (const n of NODES) mended.record(attempt(again + i * 1000, n, true));
    for (let i = 13; i <= 30; i++) {
      for (const n of NODES) mended.record(attempt(again + i * 1000, n, n !== 'n3' || i !== 13));
      expect(mended.judge(again + i * 1000, NODES)).toEqual([]);
    }
  });

  it('quarantines nobody when the whole fleet fails alike, nor more than its cap, nor while off', () => {
    const w = new NodeWatch();
    for (let i = 0; i < 100; i++) for (const n of NODES) w.record(attempt(i, n, i % 2 === 0));
    expect(w.judge(100, NODES)).toEqual([]);
    const bad = new NodeWatch();
    for (let i = 0; i < 100; i++) for (const n of NODES) bad.record(attempt(i, n, n === 'n5'));
    // Four stand out; a quarter of five nodes is one.
    expect(bad.judge(100, NODES).filter((v) => v.kind === 'quarantine')).toHaveLength(1);
    const off = new NodeWatch({ ...DEFAULT_QUARANTINE_CONFIG, enabled: false });
    for (let i = 0; i < 100; i++) for (const n of NODES) off.record(attempt(i, n, n !== 'n1'));
    expect(off.judge(100, NODES)).toEqual([]);
  });

  it('counts nodes already out of placement (an operator quarantine, a drain) against its cap, and never takes the last node serving', () => {
    const w = new NodeWatch({ ...DEFAULT_QUARANTINE_CONFIG, maxQuarantinedFraction: 0.5 });
    for (let i = 0; i < 100; i++) for (const n of ['n1', 'n2', 'n3', 'n4']) w.record(attempt(i, n, n !== 'n1'));
    // Half of four may be out, and two are already: n1 stays in, however it fails.
    expect(w.judge(100, ['n1', 'n2', 'n3', 'n4'], ['n3', 'n4'])).toEqual([]);
    expect(w.judge(101, ['n1', 'n2', 'n3', 'n4'], ['n4'])).toEqual([expect.objectContaining({ kind: 'quarantine', nodeId: 'n1' })]);
  });

  it('does not bring back a node that left the fleet when outcomes of its lost tasks arrive after', () => {
    const w = new NodeWatch();
    for (let i = 0; i < 10; i++) for (const n of NODES) w.record(attempt(i, n, true));
    w.forget('n5');
    // Its tasks are reported lost after the node: failures on a node that is gone.
    for (let i = 0; i < 20; i++) w.record(attempt(10 + i, 'n5', false));
    expect(w.judge(40, NODES.filter((n) => n !== 'n5'))).toEqual([]);
    // Back in the fleet: judged afresh on what it does now.
    expect(w.judge(41, NODES)).toEqual([]);
    for (let i = 0; i < 20; i++) w.record(attempt(50 + i, 'n5', false));
    expect(w.judge(80, NODES)).toEqual([expect.objectContaining({ kind: 'quarantine', nodeId: 'n5' })]);
  });

  it('quarantines a node whose engine decodes far slower than its peers for the same model', () => {
    const w = new NodeWatch();
    for (let i = 0; i < 20; i++) for (const n of NODES) w.record(attempt(i, n, true, n === 'n2' ? 0.2 : 0.02));
    expect(w.judge(20, NODES)).toEqual([expect.objectContaining({ kind: 'quarantine', nodeId: 'n2', reason: expect.stringMatching(/200\.0 ms per token .*10\.0× the rest/) })]);
  });

  it('binomialTail matches exact values', () => {
    expect(binomialTail(10, 0, 0.3)).toBe(1);
    expect(binomialTail(3, 3, 0.5)).toBeCloseTo(0.125);
    expect(binomialTail(4, 2, 0.5)).toBeCloseTo(11 / 16);
    expect(binomialTail(1000, 300, 0.02)).toBeLessThan(1e-100);
  });
});
