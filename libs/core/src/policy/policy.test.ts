import { PriorityClass, type PolicyUpdate } from '@autoglm/proto';
import fc from 'fast-check';
import { InvalidArgumentError } from '../errors';
import { applyPolicyUpdate, combinedBoosts, DEFAULT_POLICY, FACTORS, parseFeedback, parseWarmReplicas, type Policy, PRESETS } from './policy';
import { ageValue as ageFactor, classValue as classFactor } from './priority';

function update(partial: Partial<PolicyUpdate>): PolicyUpdate {
  return { preset: '', weights: {}, tenantBoosts: {}, warmReplicas: {}, source: 'operator', reason: 'test', maxAge: undefined, fairShareHalfLife: undefined, preemptAfter: undefined, urgentPreemptAfter: undefined, preemptMaxRun: undefined, reserveAfter: undefined, inferenceHeadroom: undefined, ...partial };
}

/** The InvalidArgumentError an update is refused with. */
function refusal(policy: Policy, u: PolicyUpdate): InvalidArgumentError {
  try {
    applyPolicyUpdate(policy, u);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return err as InvalidArgumentError;
  }
  throw new Error(`update was accepted: ${JSON.stringify(u)}`);
}

const DAY = 24 * 3600 * 1000;

describe('presets', () => {
  it.each(Object.keys(PRESETS))('%s weighs every factor, with integer weights in 0..100000', (preset) => {
    const weights = PRESETS[preset as keyof typeof PRESETS];
    expect(Object.keys(weights).sort()).toEqual([...FACTORS].sort());
    for (const w of Object.values(weights)) {
      expect(Number.isInteger(w)).toBe(true);
      expect(w).toBeGreaterThanOrEqual(0);
      expect(w).toBeLessThanOrEqual(100000);
    }
  });

  it('realtime favours class and deadlines more than batch; batch favours age and fair share more', () => {
    const { realtime, batch, balanced } = PRESETS;
    expect(realtime.class).toBeGreaterThan(balanced.class);
    expect(balanced.class).toBeGreaterThan(batch.class);
    expect(realtime.deadline).toBeGreaterThan(batch.deadline);
    expect(batch.age).toBeGreaterThan(realtime.age);
    expect(batch.fairshare).toBeGreaterThan(realtime.fairshare);
  });

  it('starts from balanced at version 1, with a 10-minute age bound and no tenant boosts', () => {
    expect(DEFAULT_POLICY.version).toBe(1);
    expect(DEFAULT_POLICY.preset).toBe('balanced');
    expect(DEFAULT_POLICY.weights).toEqual(PRESETS.balanced);
    expect(DEFAULT_POLICY.weights).not.toBe(PRESETS.balanced);
    expect(DEFAULT_POLICY.tenantBoosts).toEqual({});
    expect(DEFAULT_POLICY.maxAgeMs).toBe(10 * 60_000);
  });
});

describe('applyPolicyUpdate', () => {
  it('switches preset, replacing every weight', () => {
    const next = applyPolicyUpdate(DEFAULT_POLICY, update({ preset: 'realtime' }));
    expect(next.preset).toBe('realtime');
    expect(next.weights).toEqual(PRESETS.realtime);
  });

  it('applies weights on top of the preset named in the same update', () => {
    const next = applyPolicyUpdate(DEFAULT_POLICY, update({ preset: 'batch', weights: { age: 0, cost: 100000 } }));
    expect(next.weights).toEqual({ ...PRESETS.batch, age: 0, cost: 100000 });
  });

  it('changes only the weights it names and keeps the preset name', () => {
    const next = applyPolicyUpdate(DEFAULT_POLICY, update({ weights: { fairshare: 4000 } }));
    expect(next.preset).toBe('balanced');
    expect(next.weights).toEqual({ ...PRESETS.balanced, fairshare: 4000 });
  });

  it('sets how long work below urgent waits before it preempts, within 0 s .. 1 day', () => {
    expect(DEFAULT_POLICY.preemptAfterMs).toBe(1000);
    expect(applyPolicyUpdate(DEFAULT_POLICY, update({ preemptAfter: { seconds: 0, nanos: 0 } })).preemptAfterMs).toBe(0);
    expect(applyPolicyUpdate(DEFAULT_POLICY, update({ preemptAfter: { seconds: 90, nanos: 0 } })).preemptAfterMs).toBe(90_000);
    expect(refusal(DEFAULT_POLICY, update({ preemptAfter: { seconds: 2 * 86_400, nanos: 0 } })).message).toMatch(/^update\.preempt_after: must be between 0 s and 1 days/);
    expect(DEFAULT_POLICY.urgentPreemptAfterMs).toBe(250);
    expect(applyPolicyUpdate(DEFAULT_POLICY, update({ urgentPreemptAfter: { seconds: 0, nanos: 0 } })).urgentPreemptAfterMs).toBe(0);
  });

  it('sets how young preemption victims must be, when a waiting job gets a reservation, and the inference headroom window', () => {
    expect(applyPolicyUpdate(DEFAULT_POLICY, update({ preemptMaxRun: { seconds: 60, nanos: 0 } })).preemptMaxRunMs).toBe(60_000);
    expect(applyPolicyUpdate(DEFAULT_POLICY, update({ reserveAfter: { seconds: 120, nanos: 0 } })).reserveAfterMs).toBe(120_000);
    expect(refusal(DEFAULT_POLICY, update({ preemptMaxRun: { seconds: 2 * 86_400, nanos: 0 } })).message).toMatch(/^update\.preempt_max_run: must be between 0 s and 1 days/);
    expect(refusal(DEFAULT_POLICY, update({ reserveAfter: { seconds: -1, nanos: 0 } })).message).toMatch(/^update\.reserve_after: must be between 0 s and 7 days/);
    expect(applyPolicyUpdate(DEFAULT_POLICY, update({ inferenceHeadroom: { seconds: 0, nanos: 0 } })).inferenceHeadroomMs).toBe(0);
    expect(refusal(DEFAULT_POLICY, update({ inferenceHeadroom: { seconds: 2 * 86_400, nanos: 0 } })).message).toMatch(/^update\.inference_headroom: must be between 0 s and 1 days/);
  });

  it('adds tenant boosts and keeps the earlier ones', () => {
    const first = applyPolicyUpdate(DEFAULT_POLICY, update({ tenantBoosts: { acme: 2 } }));
    const second = applyPolicyUpdate(first, update({ tenantBoosts: { globex: 0.5, acme: 3 } }));
    expect(second.tenantBoosts).toEqual({ acme: 3, globex: 0.5 });
  });

  it('increments the version by one on every update, even an empty one', () => {
    let policy = DEFAULT_POLICY;
    for (let i = 0; i < 3; i++) policy = applyPolicyUpdate(policy, update({}));
    expect(policy.version).toBe(DEFAULT_POLICY.version + 3);
    expect(policy.weights).toEqual(DEFAULT_POLICY.weights);
  });

  it('never changes the policy it was given, nor the presets', () => {
    const presetsBefore = structuredClone(PRESETS);
    const before = structuredClone(DEFAULT_POLICY);
    applyPolicyUpdate(DEFAULT_POLICY, update({ weights: { class: 1 }, tenantBoosts: { acme: 5 } }));
    const fromPreset = applyPolicyUpdate(DEFAULT_POLICY, update({ preset: 'batch' }));
    fromPreset.weights.class = 7;
    expect(DEFAULT_POLICY).toEqual(before);
    expect(PRESETS).toEqual(presetsBefore);
  });

  it('accepts the bounds themselves', () => {
    const next = applyPolicyUpdate(DEFAULT_POLICY, update({ weights: { class: 0, age: 100000 }, tenantBoosts: { a: 0, b: 100 } }));
    expect([next.weights.class, next.weights.age]).toEqual([0, 100000]);
    expect(next.tenantBoosts).toEqual({ a: 0, b: 100 });
  });

  describe('refuses, naming the field', () => {
    it('an unknown factor', () => {
      const err = refusal(DEFAULT_POLICY, update({ weights: { x: 1 } }));
      expect(err.field).toBe('update.weights["x"]');
      expect(err.code).toBe('INVALID_ARGUMENT');
      expect(err.message).toContain('update.weights["x"]');
      for (const f of FACTORS) expect(err.message).toContain(f);
    });

    it.each([-1, 100001, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])('a weight of %p', (value) => {
      const err = refusal(DEFAULT_POLICY, update({ weights: { age: value } }));
      expect(err.field).toBe('update.weights["age"]');
      expect(err.message).toContain(String(value));
    });

    it.each([-0.5, 100.5, Number.NaN, Number.POSITIVE_INFINITY])('a tenant boost of %p', (value) => {
      const err = refusal(DEFAULT_POLICY, update({ tenantBoosts: { acme: value } }));
      expect(err.field).toBe('update.tenant_boosts["acme"]');
      expect(err.message).toContain(String(value));
    });

    it('an unknown preset, listing the known ones', () => {
      const err = refusal(DEFAULT_POLICY, update({ preset: 'turbo' }));
      expect(err.field).toBe('update.preset');
      expect(err.message).toContain('"turbo"');
      for (const p of Object.keys(PRESETS)) expect(err.message).toContain(p);
    });

    // Regression test (found in review, fixed).
    it.each(['constructor', '__proto__'])('the inherited property name %p as a preset', (preset) => {
      expect(refusal(DEFAULT_POLICY, update({ preset })).field).toBe('update.preset');
    });
  });

  it('applies nothing from an update it refuses', () => {
    const before = structuredClone(DEFAULT_POLICY);
    expect(() => applyPolicyUpdate(DEFAULT_POLICY, update({ preset: 'batch', weights: { class: 1, bogus: 2 } }))).toThrow(InvalidArgumentError);
    expect(DEFAULT_POLICY).toEqual(before);
  });
});

describe('classFactor', () => {
  it('is 1 for urgent, 0.5 for normal, 0 for background', () => {
    expect([classFactor(PriorityClass.URGENT), classFactor(PriorityClass.NORMAL), classFactor(PriorityClass.BACKGROUND)]).toEqual([1, 0.5, 0]);
  });

  it('treats unspecified and unrecognised classes as normal', () => {
    expect(classFactor(PriorityClass.UNSPECIFIED)).toBe(0.5);
    expect(classFactor(PriorityClass.UNRECOGNIZED)).toBe(0.5);
    expect(classFactor(99 as PriorityClass)).toBe(0.5);
  });
});

describe('ageFactor', () => {
  it('grows linearly with the wait and caps at 1', () => {
    expect(ageFactor(0, 7 * DAY)).toBe(0);
    expect(ageFactor(3.5 * DAY, 7 * DAY)).toBe(0.5);
    expect(ageFactor(7 * DAY, 7 * DAY)).toBe(1);
    expect(ageFactor(70 * DAY, 7 * DAY)).toBe(1);
  });

  it('is 0 for a negative wait (a clock step back)', () => {
    expect(ageFactor(-5_000, 7 * DAY)).toBe(0);
  });

  it('stays in [0, 1] and never decreases as the wait grows', () => {
    fc.assert(
      fc.property(
        fc.double({ min: -1e12, max: 1e12, noNaN: true }),
        fc.double({ min: 0, max: 1e12, noNaN: true }),
        fc.double({ min: 1, max: 1e10, noNaN: true }),
        (wait, more, maxAge) => {
          const a = ageFactor(wait, maxAge);
          const b = ageFactor(wait + more, maxAge);
          return a >= 0 && a <= 1 && b >= 0 && b <= 1 && b >= a;
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('warm replicas', () => {
  it('accepts whole counts per model and refuses the rest, naming the field', () => {
    expect(parseWarmReplicas({ chat: 2, code: 0 })).toEqual({ chat: 2, code: 0 });
    expect(() => parseWarmReplicas({ chat: 1.5 })).toThrow(/update.warm_replicas\["chat"\]: must be a whole number from 0 to 64/);
    expect(() => parseWarmReplicas({ chat: 65 })).toThrow(InvalidArgumentError);
    expect(() => parseWarmReplicas({ ' ': 1 })).toThrow(/model name is empty/);
  });
});

describe("the feedback loop's boosts", () => {
  it("multiply the operators' boosts, a tenant without one counting as 1, at most 100", () => {
    expect(combinedBoosts({ acme: 2, globex: 0.5 }, { acme: 1.5, initech: 3 })).toEqual({ acme: 3, globex: 0.5, initech: 3 });
    expect(combinedBoosts({ acme: 50 }, { acme: 4 })).toEqual({ acme: 100 });
  });

  it("are the monitor's whole update: boosts and warm floors, nothing of the operators'", () => {
    expect(parseFeedback(update({ tenantBoosts: { acme: 1.5 }, warmReplicas: { chat: 2 }, source: 'monitor' }))).toEqual({ boosts: { acme: 1.5 }, floors: { chat: 2 } });
    expect(() => parseFeedback(update({ preset: 'batch' }))).toThrow(/^update: the monitor's updates carry tenant_boosts and warm_replicas only/);
    expect(() => parseFeedback(update({ tenantBoosts: { acme: Number.NaN } }))).toThrow(/update\.tenant_boosts\["acme"\]/);
  });
});
