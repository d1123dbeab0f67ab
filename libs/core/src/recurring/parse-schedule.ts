/**
 * Turns a CreateSchedule request into the schedule decision stores, or
 * rejects it with an InvalidArgumentError naming the field. The template is
 * parsed by parseSubmission, as SubmitTask parses a task, with its errors
 * named under `template.`.
 */
import { DeadlinePolicy, type CreateScheduleRequest, type Duration, type StoreScheduleRequest } from '@autoglm/proto';
import { parseSubmission, type ParseContext } from '../catalog/parse-submission';
import { parseDuration, parseRequestId, parseTenant } from '../catalog/submission-fields';
import { InvalidArgumentError } from '../errors';
import { durationToMillis, toTimestamp } from '../time';
import { parseCron, parseTimeZone } from './cron';

/** The time zone of a schedule that names none. */
export const DEFAULT_TIME_ZONE = 'UTC';
/** Longest deadline_after and starting_deadline. */
export const MAX_SCHEDULE_DURATION_MS = 366 * 24 * 60 * 60 * 1000;
const MAX_DESCRIPTION_CHARS = 256;

/** Parses and validates a CreateSchedule request whose tenant is already resolved (from the request, the template or metadata). */
export function parseScheduleRequest(request: CreateScheduleRequest, ctx: ParseContext): StoreScheduleRequest {
  const tenant = parseTenant(request.tenant || request.template?.tenant || '');
  const requestId = parseRequestId(request.requestId);
  const cron = parseCron(request.cron, 'cron');
  const timeZone = request.timeZone.trim() === '' ? DEFAULT_TIME_ZONE : parseTimeZone(request.timeZone, 'time_zone');
  const deadlineAfterMs = parseScheduleDuration(request.deadlineAfter, 'deadline_after');
  const startingDeadlineMs = parseScheduleDuration(request.startingDeadline, 'starting_deadline');
  if ([...request.description].length > MAX_DESCRIPTION_CHARS) {
    throw new InvalidArgumentError('description', `is ${[...request.description].length} characters; at most ${MAX_DESCRIPTION_CHARS}`);
  }
  const template = request.template;
  if (template === undefined) {
    throw new InvalidArgumentError('template', 'required: the task to submit at each fire time, as for SubmitTask (a prompt and model, or a batch job)');
  }
  if (template.tenant !== '' && template.tenant !== tenant) {
    throw new InvalidArgumentError('template.tenant', `"${template.tenant.slice(0, 80)}" differs from the schedule's tenant "${tenant}"; leave it empty`);
  }
  if (template.requestId !== '') {
    throw new InvalidArgumentError('template.request_id', 'must be empty: each fire time submits its task under its own request id, schedule:<id>:<fire time ms>; set request_id on the CreateSchedule request instead');
  }
  if (template.deadline !== undefined) {
    throw new InvalidArgumentError('template.deadline', 'must be empty: a fixed deadline would pass after the first fire; set deadline_after (e.g. 10m) to give each task a deadline after its fire time');
  }
  // parseSubmission would say "set deadline", which a template may not: each fire's deadline comes from deadline_after.
  if (template.deadlinePolicy === DeadlinePolicy.REFUSE_UNMEETABLE && deadlineAfterMs === 0) {
    throw new InvalidArgumentError(
      'template.deadline_policy',
      'REFUSE_UNMEETABLE needs a deadline: set deadline_after (e.g. 10m) to give each fire\'s task a deadline after its fire time, or leave deadline_policy unset',
    );
  }
  if (template.dependsOn.length > 0) {
    throw new InvalidArgumentError('template.depends_on', 'must be empty: every fire would wait on the same tasks; submit a workflow from a job the schedule runs instead');
  }
  let spec;
  try {
    // Checked as a task submitted now with the deadline its first fire would get.
    const deadline = deadlineAfterMs > 0 ? toTimestamp(ctx.now.getTime() + deadlineAfterMs) : undefined;
    spec = parseSubmission({ ...template, tenant, deadline }, ctx).spec;
  } catch (err) {
    throw err instanceof InvalidArgumentError ? new InvalidArgumentError(`template.${err.field}`, err.message.slice(err.field.length + 2)) : err;
  }
  return {
    requestId,
    tenant,
    cron: cron.source,
    timeZone,
    // Each fire sets its own deadline (fire time + deadline_after).
    spec: { ...spec, deadline: undefined },
    deadlineAfter: request.deadlineAfter && deadlineAfterMs > 0 ? request.deadlineAfter : undefined,
    startingDeadline: request.startingDeadline && startingDeadlineMs > 0 ? request.startingDeadline : undefined,
    description: request.description,
    paused: request.paused,
  };
}

/** A non-negative duration of at most 366 days, in ms; 0 when unset. */
function parseScheduleDuration(duration: Duration | undefined, field: string): number {
  const parsed = parseDuration(duration, field, MAX_SCHEDULE_DURATION_MS / 1000, {
    negative: 'is negative; give how long after the fire time, e.g. 10m',
    tooLong: () => 'is more than 366 days',
  });
  return parsed ? durationToMillis(parsed) : 0;
}
