import { ResourceExhaustedError, type TenantRateLimiter } from '@autoglm/core';

/**
 * Takes `submissions` tokens from the tenant's bucket, or refuses with
 * RESOURCE_EXHAUSTED and when to retry. Every call that makes work for the
 * fleet goes through it: SubmitTask, SubmitWorkflow (a token per step), Infer
 * starts and CreateSchedule.
 */
export function admitRate(limiter: TenantRateLimiter | undefined, tenant: string, submissions = 1): void {
  const waitMs = limiter?.take(tenant, Date.now(), submissions) ?? 0;
  if (waitMs === 0) return;
  throw new ResourceExhaustedError(`tenant ${tenant} is over its submission rate limit; retry after ${Math.ceil(waitMs)} ms`, waitMs);
}
