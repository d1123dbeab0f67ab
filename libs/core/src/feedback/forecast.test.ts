import fc from 'fast-check';
import { seededRandom } from '../random';
import { DemandForecaster, HoltWinters, type DemandForecasterOptions } from './forecast';

const INTERVAL = 10_000;

/** Records each value as the amount of one interval (from interval `from`) and returns the time just after them. */
function feed(forecaster: DemandForecaster, key: string, values: number[], from = 0): number {
  values.forEach((v, i) => forecaster.record(key, (from + i) * INTERVAL, v));
  return (from + values.length) * INTERVAL;
}

/** Amount per interval forecast for the next `steps` intervals (the forecaster's rate times the interval). */
function perInterval(forecaster: DemandForecaster, key: string, nowMs: number, steps = 1): { mean: number; upper: number } {
  const f = forecaster.forecast(key, nowMs, steps * INTERVAL)!;
  return { mean: (f.ratePerSecond * INTERVAL) / 1000, upper: (f.upperRatePerSecond * INTERVAL) / 1000 };
}

/** Mean absolute one-step error over the last `scored` intervals, each forecast made before its interval was recorded. */
function oneStepError(options: DemandForecasterOptions, values: number[], scored: number): number {
  const forecaster = new DemandForecaster(options);
  let total = 0;
  values.forEach((v, i) => {
    if (i >= values.length - scored) total += Math.abs(perInterval(forecaster, 's', i * INTERVAL).mean - v);
    forecaster.record('s', i * INTERVAL, v);
  });
  return total / scored;
}

describe('HoltWinters', () => {
  it('forecasts a constant series as that constant, at every step', () => {
    const model = new HoltWinters({ alpha: 0.3, beta: 0.1, gamma: 0, phi: 0.9, seasonLength: 0 });
    for (let i = 0; i < 50; i++) model.update(4);
    expect(model.observations).toBe(50);
    expect(model.forecast(1)).toBeCloseTo(4, 9);
    expect(model.forecast(100)).toBeCloseTo(4, 9);
    expect(model.forecastMean(10)).toBeCloseTo(4, 9);
  });

  it('never forecasts below zero after a fall', () => {
    const model = new HoltWinters({ alpha: 0.9, beta: 0.9, gamma: 0, phi: 1, seasonLength: 0 });
    for (const y of [100, 80, 60, 40, 20, 0]) model.update(y);
    expect(model.forecast(5)).toBe(0);
  });

  it('refuses parameters outside 0..1', () => {
    expect(() => new HoltWinters({ alpha: 1.5, beta: 0, gamma: 0, phi: 1, seasonLength: 0 })).toThrow(/alpha/);
  });
});

describe('DemandForecaster', () => {
  it('forecasts a constant series as its rate, with the bound at or above it', () => {
    const forecaster = new DemandForecaster();
    const now = feed(forecaster, 'm', Array<number>(100).fill(7));
    const f = forecaster.forecast('m', now, 60_000)!;
    expect(f.ratePerSecond).toBeCloseTo(0.7, 9);
    expect(f.observedRatePerSecond).toBeCloseTo(0.7, 9);
    expect(f.upperRatePerSecond).toBeGreaterThanOrEqual(f.ratePerSecond);
  });

  it('forecasts the mean while a key has too few intervals to fit', () => {
    const forecaster = new DemandForecaster();
    const now = feed(forecaster, 'm', [2, 4, 6]);
    const f = perInterval(forecaster, 'm', now);
    expect(f.mean).toBeCloseTo(4, 9);
    expect(f.upper).toBeGreaterThanOrEqual(6);
    expect(forecaster.paramsOf('m')).toBeUndefined();
  });

  it('follows a linear ramp with its damped trend', () => {
    const forecaster = new DemandForecaster();
    const ramp = Array.from({ length: 200 }, (_, i) => 5 + 2 * i);
    const now = feed(forecaster, 'm', ramp);
    expect(perInterval(forecaster, 'm', now).mean).toBeCloseTo(405, -1);
    // The mean of the next 10 intervals is 414; the damped trend falls a little short, not far.
    const ten = perInterval(forecaster, 'm', now, 10).mean;
    expect(ten).toBeGreaterThan(405);
    expect(Math.abs(ten - 414)).toBeLessThan(0.01 * 414);
  });

  it('forecasts a seasonal series better when told its season', () => {
    const random = seededRandom(3);
    const values = Array.from({ length: 240 }, (_, i) => 20 + 10 * Math.sin((2 * Math.PI * i) / 12) + 4 * (random() - 0.5));
    const withSeason = oneStepError({ seasonLength: 12 }, values, 60);
    const without = oneStepError({}, values, 60);
    expect(withSeason).toBeLessThan(0.5 * without);
    expect(withSeason).toBeLessThan(2);
  });

  it('tracks a step up within a few intervals', () => {
    const random = seededRandom(7);
    const before = Array.from({ length: 100 }, () => 10 + 6 * (random() - 0.5));
    const forecaster = new DemandForecaster();
    const now = feed(forecaster, 'm', [...before, 50, 50, 50, 50, 50]);
    expect(Math.abs(perInterval(forecaster, 'm', now).mean - 50)).toBeLessThan(0.1 * 50);
  });

  it('forecasts zero for a series of zeros', () => {
    const forecaster = new DemandForecaster();
    const now = feed(forecaster, 'm', Array<number>(60).fill(0));
    expect(forecaster.forecast('m', now, 300_000)).toEqual({ ratePerSecond: 0, upperRatePerSecond: 0, observedRatePerSecond: 0 });
  });

  it('counts intervals with nothing recorded as empty, and a late record in the open interval', () => {
    const forecaster = new DemandForecaster();
    forecaster.record('m', 1_000, 5);
    forecaster.record('m', 12_000, 3);
    // 25 s: intervals [0, 10 s) and [10 s, 20 s) are closed; the second held 3.
    expect(forecaster.forecast('m', 25_000, 10_000)!.observedRatePerSecond).toBeCloseTo(0.3, 9);
    forecaster.record('m', 5_000, 4);
    expect(forecaster.forecast('m', 30_000, 10_000)!.observedRatePerSecond).toBeCloseTo(0.4, 9);
    expect(forecaster.forecast('m', 40_000, 10_000)!.observedRatePerSecond).toBe(0);
  });

  it('falls towards zero over a gap, and is exactly zero after a gap longer than its history', () => {
    const forecaster = new DemandForecaster({ historyIntervals: 60 });
    const now = feed(forecaster, 'm', Array<number>(100).fill(10));
    expect(perInterval(forecaster, 'm', now + 20 * INTERVAL).mean).toBeLessThan(1);
    const later = forecaster.forecast('m', now + 1e9, 600_000)!;
    expect(later).toEqual({ ratePerSecond: 0, upperRatePerSecond: 0, observedRatePerSecond: 0 });
    // Recording resumes from there.
    const resumed = feed(forecaster, 'm', Array<number>(30).fill(10), Math.ceil((now + 1e9) / INTERVAL));
    expect(perInterval(forecaster, 'm', resumed).mean).toBeCloseTo(10, 0);
  });

  it('keeps at most maxKeys keys, dropping the one idle longest', () => {
    const forecaster = new DemandForecaster({ maxKeys: 3 });
    forecaster.record('a', 0);
    forecaster.record('b', 10_000);
    forecaster.record('c', 20_000);
    forecaster.record('a', 30_000);
    forecaster.record('d', 40_000);
    expect(forecaster.keys().sort()).toEqual(['a', 'c', 'd']);
    expect(forecaster.forecast('b', 50_000, 60_000)).toBeUndefined();
    for (let i = 0; i < 100; i++) forecaster.record(`k${i}`, 50_000 + i);
    expect(forecaster.keys()).toHaveLength(3);
  });

  it('gives the same forecasts for the same records', () => {
    const run = () => {
      const random = seededRandom(11);
      const forecaster = new DemandForecaster({ seasonLength: 6, refitIntervals: 5 });
      const out: unknown[] = [];
      for (let t = 0; t < 3_000_000; t += Math.floor(random() * 4000)) {
        forecaster.record(random() < 0.3 ? 'a' : 'b', t, Math.floor(random() * 100));
        if (t % 7 === 0) out.push(forecaster.forecast('a', t, 300_000));
      }
      return out;
    };
    expect(run()).toEqual(run());
  });

  it('refuses a negative amount', () => {
    expect(() => new DemandForecaster().record('m', 0, -1)).toThrow(/amount/);
  });

  it('forecasts finite, non-negative rates with upper >= mean, whatever non-negative demand it saw', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant(0), fc.nat(20), fc.double({ min: 0, max: 1e9, noNaN: true })), { maxLength: 120 }),
        fc.integer({ min: 0, max: 6 }),
        fc.integer({ min: 1, max: 120 }),
        (values, seasonLength, steps) => {
          const forecaster = new DemandForecaster({ seasonLength, historyIntervals: 40, refitIntervals: 7 });
          const now = feed(forecaster, 'm', values.length > 0 ? values : [0]);
          const f = forecaster.forecast('m', now, steps * INTERVAL)!;
          for (const v of [f.ratePerSecond, f.upperRatePerSecond, f.observedRatePerSecond]) {
            expect(Number.isFinite(v)).toBe(true);
            expect(v).toBeGreaterThanOrEqual(0);
          }
          expect(f.upperRatePerSecond).toBeGreaterThanOrEqual(f.ratePerSecond);
        },
      ),
      { seed: 42, numRuns: 200 },
    );
  });
});
