import fc from 'fast-check';
import { durationToMillis, systemClock, timestampToMillis, toDuration, toTimestamp } from './time';

const NANOS_PER_SECOND = 1_000_000_000;
/** Epoch ms of 0001-01-01 and 9999-12-31, the range a protobuf Timestamp may hold. */
const MIN_EPOCH_MS = -62_135_596_800_000;
const MAX_EPOCH_MS = 253_402_300_799_999;

describe('toTimestamp / timestampToMillis', () => {
  it('splits epoch milliseconds into seconds and nanos', () => {
    expect(toTimestamp(0)).toEqual({ seconds: 0, nanos: 0 });
    expect(toTimestamp(1_700_000_000_123)).toEqual({ seconds: 1_700_000_000, nanos: 123_000_000 });
    expect(toTimestamp(1.5)).toEqual({ seconds: 0, nanos: 1_500_000 });
  });

  it('keeps nanos non-negative before 1970, as the proto requires', () => {
    expect(toTimestamp(-1)).toEqual({ seconds: -1, nanos: 999_000_000 });
    expect(toTimestamp(-1500)).toEqual({ seconds: -2, nanos: 500_000_000 });
    expect(toTimestamp(-2000)).toEqual({ seconds: -2, nanos: 0 });
  });

  it('reads a timestamp back', () => {
    expect(timestampToMillis({ seconds: 1_700_000_000, nanos: 123_456_789 })).toBeCloseTo(1_700_000_000_123.456789, 3);
    expect(timestampToMillis({ seconds: -2, nanos: 500_000_000 })).toBe(-1500);
  });

  it('round-trips every whole millisecond a Timestamp can hold, exactly', () => {
    fc.assert(
      fc.property(fc.integer({ min: MIN_EPOCH_MS, max: MAX_EPOCH_MS }), (ms) => {
        const ts = toTimestamp(ms);
        return Number.isInteger(ts.seconds) && Number.isInteger(ts.nanos) && ts.nanos >= 0 && ts.nanos < NANOS_PER_SECOND && timestampToMillis(ts) === ms;
      }),
      { numRuns: 1000 },
    );
  });

  it('round-trips fractional milliseconds to the nanosecond', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1e9, max: 1e9 }), fc.integer({ min: 0, max: 999_999 }), (whole, micros) => {
        const ms = whole + micros / 1e6;
        const ts = toTimestamp(ms);
        return ts.nanos >= 0 && ts.nanos < NANOS_PER_SECOND && Number.isInteger(ts.nanos) && Math.abs(timestampToMillis(ts) - ms) < 1e-6;
      }),
      { numRuns: 1000 },
    );
  });

  // Regression test (found in review, fixed).
  it('never produces nanos of a whole second, even just below a second boundary', () => {
    const ts = toTimestamp(999.9999999);
    expect(ts.nanos).toBeLessThan(NANOS_PER_SECOND);
    expect(ts).toEqual({ seconds: 1, nanos: 0 });
  });
});

describe('toDuration / durationToMillis', () => {
  it('splits milliseconds into seconds and nanos', () => {
    expect(toDuration(0)).toEqual({ seconds: 0, nanos: 0 });
    expect(toDuration(1500)).toEqual({ seconds: 1, nanos: 500_000_000 });
    expect(toDuration(250)).toEqual({ seconds: 0, nanos: 250_000_000 });
    expect(toDuration(3_600_000)).toEqual({ seconds: 3600, nanos: 0 });
  });

  it('gives a negative duration the same sign in seconds and nanos', () => {
    expect(toDuration(-1500)).toEqual({ seconds: -1, nanos: -500_000_000 });
    const whole = toDuration(-3000);
    expect(whole.seconds === -3 && whole.nanos === 0).toBe(true);
    const sub = toDuration(-250);
    expect(sub.seconds === 0 && sub.nanos === -250_000_000).toBe(true);
    expect(durationToMillis(sub)).toBe(-250);
  });

  it('round-trips whole milliseconds of either sign, exactly', () => {
    fc.assert(
      fc.property(fc.integer({ min: -315_576_000_000_000, max: 315_576_000_000_000 }), (ms) => {
        const d = toDuration(ms);
        const sameSign = d.seconds === 0 || d.nanos === 0 || Math.sign(d.seconds) === Math.sign(d.nanos);
        return sameSign && Math.abs(d.nanos) < NANOS_PER_SECOND && Number.isInteger(d.nanos) && durationToMillis(d) === ms;
      }),
      { numRuns: 1000 },
    );
  });

  it('negates with its argument', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1e12 }), fc.integer({ min: 0, max: 999_999 }), (whole, micros) => {
        const ms = whole + micros / 1e6;
        const pos = toDuration(ms);
        const neg = toDuration(-ms);
        return neg.seconds === -pos.seconds && neg.nanos === -pos.nanos;
      }),
      { numRuns: 500 },
    );
  });

  // Same rounding without carry as toTimestamp (time.ts:158): {seconds: 1, nanos: 1e9}.
  it('never produces nanos of a whole second, even just below a second boundary', () => {
    expect(toDuration(1999.9999999)).toEqual({ seconds: 2, nanos: 0 });
  });
});

describe('systemClock', () => {
  it('reads epoch milliseconds', () => {
    const before = Date.now();
    const now = systemClock();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
  });
});
