import { type DecisionScheduleServiceClient, type ScheduleServiceService } from '@autoglm/proto';
import { actingTenant, listingTenant, parseScheduleRequest, requireVisible, type Principal } from '@autoglm/core';
import { callUnary, type ServiceHandlers } from '@autoglm/runtime';
import { admitRate } from './admit-rate';
import type { ParserDeps } from './task-service';
import { tenantOf } from './tenant';

export interface ScheduleDeps extends Pick<ParserDeps, 'auth' | 'parseContext' | 'knowModels' | 'decisionTimeoutMs' | 'rateLimiter'> {
  /** Decision's side of recurring tasks. */
  schedules: DecisionScheduleServiceClient;
}

/**
 * The public ScheduleService. A schedule's template is parsed here, by the
 * same parseSubmission as SubmitTask, and stored by decision, which fires it.
 * A caller sees and changes its own tenant's schedules (an admin: any).
 */
export function scheduleHandlers(deps: ScheduleDeps): ServiceHandlers<typeof ScheduleServiceService> {
  const { schedules, auth } = deps;
  const opts = (signal?: AbortSignal) => ({ deadlineMs: deps.decisionTimeoutMs, signal });
  /** Checks the schedule is the caller's to see: another tenant's is "not found", as one that does not exist. */
  const visible = async (who: Principal, scheduleId: string, signal: AbortSignal) => {
    const schedule = await callUnary(schedules.getSchedule.bind(schedules), { scheduleId }, opts(signal));
    requireVisible(who, schedule.tenant, `schedule ${scheduleId} does not exist`);
    return schedule;
  };
  return {
    createSchedule: async (req, ctx) => {
      const who = await auth.authorize(ctx.metadata, 'submit', 'CreateSchedule');
      const tenant = actingTenant(who, tenantOf(req.tenant || req.template?.tenant || '', ctx.metadata));
      await deps.knowModels([req.template?.model ?? '']);
      const stored = parseScheduleRequest({ ...req, tenant }, deps.parseContext());
      // A schedule makes work at every fire time: creating one takes a token as a submission does.
      admitRate(deps.rateLimiter, stored.tenant);
      return callUnary(schedules.storeSchedule.bind(schedules), stored, opts(ctx.signal));
    },
    getSchedule: async (req, ctx) => {
      const who = await auth.authorize(ctx.metadata, 'read', 'GetSchedule');
      return visible(who, req.scheduleId, ctx.signal);
    },
    listSchedules: async (req, ctx) => {
      const who = await auth.authorize(ctx.metadata, 'read', 'ListSchedules');
      return callUnary(schedules.listSchedules.bind(schedules), { ...req, tenant: listingTenant(who, tenantOf(req.tenant, ctx.metadata)) }, opts(ctx.signal));
    },
    pauseSchedule: async (req, ctx) => {
      const who = await auth.authorize(ctx.metadata, 'submit', 'PauseSchedule');
      await visible(who, req.scheduleId, ctx.signal);
      return callUnary(schedules.pauseSchedule.bind(schedules), req, opts(ctx.signal));
    },
    resumeSchedule: async (req, ctx) => {
      const who = await auth.authorize(ctx.metadata, 'submit', 'ResumeSchedule');
      await visible(who, req.scheduleId, ctx.signal);
      return callUnary(schedules.resumeSchedule.bind(schedules), req, opts(ctx.signal));
    },
    deleteSchedule: async (req, ctx) => {
      const who = await auth.authorize(ctx.metadata, 'submit', 'DeleteSchedule');
      await visible(who, req.scheduleId, ctx.signal);
      return callUnary(schedules.deleteSchedule.bind(schedules), req, opts(ctx.signal));
    },
  };
}
