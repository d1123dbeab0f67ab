import pino from 'pino';
import { PolicyUpdate } from '@autoglm/proto';
import { tempDir } from '../../../test/support/temp-dir';
import { until } from '../../../test/support/until';
import { DecisionConfigSchema } from './config';
import { startDecision, type RunningDecision } from './start';

/**
 * The monitor's feedback against the operators' policy: its factors multiply
 * the operators' boosts instead of overwriting them, each update of its
 * replaces its whole state, and the state lapses unless sent again.
 */
describe("the monitor's feedback in decision's policy", () => {
  const data = tempDir('feedback-policy');
  let decision: RunningDecision;
  beforeAll(async () => {
    decision = await startDecision(DecisionConfigSchema.parse({ listen: '127.0.0.1:0', dataDir: data.dir, feedbackTtlMs: 1000 }), pino({ level: 'silent' }));
  });
  afterAll(async () => {
    await decision?.stop();
    data.remove();
  });

  const operator = (update: Partial<PolicyUpdate>) => decision.scheduler.applyPolicy(PolicyUpdate.fromPartial({ source: 'operator', ...update }));
  const monitor = (update: Partial<PolicyUpdate>) => decision.scheduler.applyPolicy(PolicyUpdate.fromPartial({ source: 'monitor', ...update }), true);

  it("multiplies the operators' boosts, keeps them through its own changes, and lapses when not sent again", async () => {
    operator({ tenantBoosts: { acme: 2 } });
    monitor({ tenantBoosts: { acme: 1.5, beta: 3 }, warmReplicas: { 'glm-4-9b': 2 } });
    expect(decision.scheduler.tenantBoosts()).toEqual({ acme: 3, beta: 3 });
    // An operator's change keeps the loop's factor on it.
    operator({ tenantBoosts: { acme: 4 } });
    expect(decision.scheduler.tenantBoosts()).toEqual({ acme: 6, beta: 3 });
    // The loop's whole state each time: a tenant it no longer names is back to the operators' boost.
    monitor({ tenantBoosts: { beta: 2 } });
    expect(decision.scheduler.tenantBoosts()).toEqual({ acme: 4, beta: 2 });
    // Not sent again within the TTL (1 s here): dropped.
    await until(async () => (decision.scheduler.tenantBoosts().beta === undefined ? true : undefined), 5000, 'the feedback to lapse');
    expect(decision.scheduler.tenantBoosts()).toEqual({ acme: 4 });
  });

  it("refuses from the monitor what is the operators' to set, and factors out of bounds", () => {
    expect(() => monitor({ weights: { age: 5 } })).toThrow("update: the monitor's updates carry tenant_boosts and warm_replicas only");
    expect(() => monitor({ tenantBoosts: { acme: 0 } })).toThrow(/update\.tenant_boosts\["acme"\]: a feedback factor must be above 0/);
  });
});
