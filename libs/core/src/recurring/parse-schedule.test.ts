import { CreateScheduleRequest, DeadlinePolicy, PriorityClass, TaskKind } from '@autoglm/proto';
import { DEFAULT_MODEL_CATALOG } from '../catalog/models';
import { parseSubmission, type ParseContext } from '../catalog/parse-submission';
import { InvalidArgumentError } from '../errors';
import { parseScheduleRequest } from './parse-schedule';

type Builtin = string | number | boolean | undefined;
/** A message with every field optional, as fromPartial takes it. */
type Init<T> = T extends Builtin
  ? T
  : T extends Array<infer U>
    ? Array<Init<U>>
    : T extends { $case: string }
      ? { [K in keyof Omit<T, '$case'>]?: Init<T[K]> } & { $case: T['$case'] }
      : T extends object
        ? { [K in keyof T]?: Init<T[K]> }
        : T;

const CTX: ParseContext = { catalog: DEFAULT_MODEL_CATALOG, now: new Date('2026-03-01T12:00:00.000Z'), defaultMaxRetries: 3 };

const request = (overrides: Init<CreateScheduleRequest> = {}) =>
  CreateScheduleRequest.fromPartial({
    requestId: 'nightly',
    tenant: 'team-a',
    cron: '0 2 * * *',
    timeZone: 'europe/berlin',
    template: { model: 'glm-4-9b', priorityClass: PriorityClass.BACKGROUND, labels: { job: 'digest' }, payload: { $case: 'inference', inference: { prompt: 'Summarise the day.' } } },
    ...overrides,
  });

function rejection(fn: () => unknown): InvalidArgumentError {
  try {
    fn();
  } catch (error: unknown) {
    if (error instanceof InvalidArgumentError) return error;
    throw error;
  }
  throw new Error('expected an InvalidArgumentError, nothing was thrown');
}

describe('parseScheduleRequest', () => {
  it('parses the template exactly as SubmitTask would', () => {
    const parsed = parseScheduleRequest(request(), CTX);
    const asTask = parseSubmission({ ...request().template!, tenant: 'team-a' }, CTX).spec;
    expect(parsed).toMatchObject({ requestId: 'nightly', tenant: 'team-a', cron: '0 2 * * *', timeZone: 'Europe/Berlin', paused: false });
    expect(parsed.spec).toEqual(asTask);
    expect(parsed.spec).toMatchObject({ kind: TaskKind.INFERENCE, model: 'glm-4-9b', maxRetries: 3 });
  });

  it('defaults the time zone to UTC and takes the tenant from the template', () => {
    const parsed = parseScheduleRequest(request({ tenant: '', timeZone: '', template: { tenant: 'team-b', payload: { $case: 'batch', batch: {} } } }), CTX);
    expect(parsed).toMatchObject({ tenant: 'team-b', timeZone: 'UTC' });
  });

  it('checks a deadline_after template as a task with that deadline, and leaves each fire to set it', () => {
    const parsed = parseScheduleRequest(
      request({ deadlineAfter: { seconds: 1800, nanos: 0 }, template: { payload: { $case: 'batch', batch: {} }, deadlinePolicy: DeadlinePolicy.REFUSE_UNMEETABLE } }),
      CTX,
    );
    expect(parsed.spec!.deadline).toBeUndefined();
    expect(parsed.deadlineAfter).toEqual({ seconds: 1800, nanos: 0 });
  });

  it.each<[string, Init<CreateScheduleRequest>, string, string]>([
    ['a bad cron', { cron: '0 25 * * *' }, 'cron', 'hour 25 is out of range 0-23'],
    ['an unknown zone', { timeZone: 'Europe/Atlantis' }, 'time_zone', '"Europe/Atlantis" is not a time zone this server knows'],
    ['no template', { template: undefined }, 'template', 'required: the task to submit at each fire time'],
    ['no tenant', { tenant: '', template: { payload: { $case: 'batch', batch: {} } } }, 'tenant', 'required'],
    ['a template of another tenant', { template: { tenant: 'team-b', payload: { $case: 'batch', batch: {} } } }, 'template.tenant', 'differs from the schedule\'s tenant "team-a"'],
    ['a template request id', { template: { requestId: 'x', payload: { $case: 'batch', batch: {} } } }, 'template.request_id', 'schedule:<id>:<fire time ms>'],
    ['a fixed deadline', { template: { deadline: { seconds: 1_900_000_000, nanos: 0 }, payload: { $case: 'batch', batch: {} } } }, 'template.deadline', 'set deadline_after'],
    ['REFUSE_UNMEETABLE without deadline_after', { template: { deadlinePolicy: DeadlinePolicy.REFUSE_UNMEETABLE, payload: { $case: 'batch', batch: {} } } }, 'template.deadline_policy', 'needs a deadline: set deadline_after (e.g. 10m)'],
    ['a reserved request id', { requestId: 'schedule:nightly' }, 'request_id', 'must not start with "schedule:"'],
    ['dependencies', { template: { dependsOn: ['123e4567-e89b-12d3-a456-426614174000'], payload: { $case: 'batch', batch: {} } } }, 'template.depends_on', 'must be empty'],
    ['an unknown model', { template: { model: 'gpt-5', payload: { $case: 'inference', inference: { prompt: 'hi' } } } }, 'template.model', '"gpt-5" is not in the catalog'],
    ['no payload', { template: { model: 'glm-4-9b' } }, 'template.payload', 'required'],
    ['a negative deadline_after', { deadlineAfter: { seconds: -1, nanos: 0 } }, 'deadline_after', 'is negative'],
    ['a starting deadline over a year', { startingDeadline: { seconds: 400 * 86_400, nanos: 0 } }, 'starting_deadline', 'more than 366 days'],
    ['a long description', { description: 'x'.repeat(300) }, 'description', 'at most 256'],
  ])('refuses %s, naming the field', (_, overrides, field, message) => {
    const err = rejection(() => parseScheduleRequest(request(overrides), CTX));
    expect(err.field).toBe(field);
    expect(err.message).toContain(`${field}: `);
    expect(err.message).toContain(message);
  });
});
