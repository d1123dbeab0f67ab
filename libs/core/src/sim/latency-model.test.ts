import { decodeStepSeconds, prefillSeconds } from './latency-model';

describe('latency model', () => {
  it('prefill has a 40 ms floor for short prompts', () => {
    expect(prefillSeconds(0)).toBe(0.04);
    expect(prefillSeconds(100)).toBe(0.04); // 0.01969 + 0.00677 < 0.04
  });

  it('prefill grows linearly with prompt tokens above the floor', () => {
    expect(prefillSeconds(1000)).toBeCloseTo(0.01969 + 0.0677, 12);
    expect(prefillSeconds(2000) - prefillSeconds(1000)).toBeCloseTo(1000 * 6.77e-5, 12);
  });

  it('a decode step costs a base plus per-sequence and per-context-token terms', () => {
    expect(decodeStepSeconds(1, 0)).toBeCloseTo(0.014 + 1.03e-4, 12);
    expect(decodeStepSeconds(64, 64 * 1000)).toBeCloseTo(0.014 + 64 * 1.03e-4 + 64_000 * 5.35e-7, 12);
  });
});
