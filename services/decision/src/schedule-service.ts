import type { DecisionScheduleServiceService } from '@autoglm/proto';
import type { ServiceHandlers } from '@autoglm/runtime';
import type { RecurringTasks } from './recurring';

/** DecisionScheduleService: the parser's calls, answered by the recurring tasks. */
export function scheduleHandlers(recurring: RecurringTasks): ServiceHandlers<typeof DecisionScheduleServiceService> {
  return {
    storeSchedule: async (req) => recurring.create(req),
    getSchedule: async (req) => recurring.get(req.scheduleId),
    listSchedules: async (req) => recurring.list(req),
    pauseSchedule: async (req) => recurring.pause(req.scheduleId),
    resumeSchedule: async (req) => recurring.resume(req.scheduleId),
    deleteSchedule: async (req) => recurring.delete(req.scheduleId),
  };
}
