import fc from 'fast-check';
import { heartbeatIntervalMs, selfFenceAfterMs } from './lease';

describe('lease timing', () => {
  it('sends a heartbeat every second, or three per lease when the lease is short', () => {
    expect(heartbeatIntervalMs(3000)).toBe(1000);
    expect(heartbeatIntervalMs(60_000)).toBe(1000);
    expect(heartbeatIntervalMs(900)).toBe(300);
  });

  it('fences an agent before decision can give its work away, with at least one heartbeat to spare', () => {
    fc.assert(
      fc.property(fc.integer({ min: 500, max: 600_000 }), (leaseMs) => {
        const heartbeat = heartbeatIntervalMs(leaseMs);
        const fenceAfter = selfFenceAfterMs(leaseMs, heartbeat);
        // The agent's last heartbeat may be one interval older than decision's last word from it.
        expect(fenceAfter + heartbeat).toBeLessThanOrEqual(leaseMs);
        // And a healthy agent, hearing one every interval, never fences.
        expect(fenceAfter).toBeGreaterThanOrEqual(heartbeat);
      }),
    );
  });
});
