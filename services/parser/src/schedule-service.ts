import { type DecisionScheduleServiceClient, type ScheduleServiceService } from '@autoglm/proto';
import { parseScheduleRequest } from '@autoglm/core';
import { callUnary, type ServiceHandlers } from '@autoglm/runtime';
import { admitRate } from './admit-rate';
import type { ParserDeps } from './task-service';
import { tenantOf } from './tenant';

export interface ScheduleDeps extends Pick<ParserDeps, 'parseContext' | 'knowModels' | 'decisionTimeoutMs' | 'rateLimiter'> {
  /** Decision's side of recurring tasks. */
  schedules: DecisionScheduleServiceClient;
}

/**
 * The public ScheduleService. A schedule's template is parsed here, by the
 * same parseSubmission as SubmitTask, and stored by decision, which fires it.
 */
export function scheduleHandlers(deps: ScheduleDeps): ServiceHandlers<typeof ScheduleServiceService> {
  const { schedules } = deps;
  const opts = (signal?: AbortSignal) => ({ deadlineMs: deps.decisionTimeoutMs, signal });
  return {
    createSchedule: async (req, ctx) => {
      await deps.knowModels([req.template?.model ?? '']);
      const stored = parseScheduleRequest({ ...req, tenant: tenantOf(req.tenant || req.template?.tenant || '', ctx.metadata) }, deps.parseContext());
      // A schedule makes work at every fire time: creating one takes a token as a submission does.
      admitRate(deps.rateLimiter, stored.tenant);
      return callUnary(schedules.storeSchedule.bind(schedules), stored, opts(ctx.signal));
    },
    getSchedule: async (req, ctx) => callUnary(schedules.getSchedule.bind(schedules), req, opts(ctx.signal)),
    listSchedules: async (req, ctx) => callUnary(schedules.listSchedules.bind(schedules), { ...req, tenant: tenantOf(req.tenant, ctx.metadata) }, opts(ctx.signal)),
    pauseSchedule: async (req, ctx) => callUnary(schedules.pauseSchedule.bind(schedules), req, opts(ctx.signal)),
    resumeSchedule: async (req, ctx) => callUnary(schedules.resumeSchedule.bind(schedules), req, opts(ctx.signal)),
    deleteSchedule: async (req, ctx) => callUnary(schedules.deleteSchedule.bind(schedules), req, opts(ctx.signal)),
  };
}
