import { PriorityClass } from '@autoglm/proto';
import { InvalidArgumentError } from '../errors';
import {
  parseDeadline,
  parseDependsOn,
  parseExpectedDuration,
  parseLabels,
  parseMaxRetries,
  parsePriority,
  parsePriorityClass,
  parseRequestId,
  parseTenant,
} from './submission-fields';

const NOW = new Date('2026-03-01T12:00:00.000Z');
const NOW_SECONDS = NOW.getTime() / 1000;
const UUID_A = '123e4567-e89b-12d3-a456-426614174000';
const UUID_B = '9b2f6c1e-4d3a-4f5b-8c7d-0e1f2a3b4c5d';

/** The InvalidArgumentError `fn` throws. */
function rejection(fn: () => unknown): InvalidArgumentError {
  try {
    fn();
  } catch (error: unknown) {
    if (error instanceof InvalidArgumentError) return error;
    throw error;
  }
  throw new Error('expected an InvalidArgumentError, nothing was thrown');
}

describe('parseTenant', () => {
  it('accepts 1-64 characters of letters, digits, dot, underscore and dash', () => {
    expect(parseTenant('team-a.prod_1')).toBe('team-a.prod_1');
    expect(parseTenant('x'.repeat(64))).toBe('x'.repeat(64));
  });

  it('rejects a missing, too long or oddly spelled tenant, naming the field', () => {
    expect(rejection(() => parseTenant('')).message).toMatch(/^tenant: required/);
    expect(rejection(() => parseTenant('x'.repeat(65))).field).toBe('tenant');
    expect(rejection(() => parseTenant('team a')).message).toBe('tenant: "team a" is not a tenant name: use 1-64 characters of A-Z a-z 0-9 . _ -');
    expect(rejection(() => parseTenant('équipe')).field).toBe('tenant');
  });
});

describe('parseRequestId', () => {
  it('allows up to 128 characters, empty included', () => {
    expect(parseRequestId('')).toBe('');
    expect(parseRequestId('r'.repeat(128))).toBe('r'.repeat(128));
    expect(rejection(() => parseRequestId('r'.repeat(129))).message).toBe('request_id: is 129 characters; at most 128');
    expect(rejection(() => parseRequestId('job\u00001')).message).toBe('request_id: must not contain NUL characters');
  });

  it('refuses the schedule: prefix, which names the tasks schedules submit', () => {
    const err = rejection(() => parseRequestId('schedule:6f1d2c1e-0000-4000-8000-000000000000:1714557900000'));
    expect(err.field).toBe('request_id');
    expect(err.message).toBe(
      'request_id: must not start with "schedule:": it is reserved for the tasks schedules submit (schedule:<schedule id>:<fire time ms>); choose another',
    );
    expect(parseRequestId('my-schedule:1')).toBe('my-schedule:1');
    expect(parseRequestId('Schedule-1')).toBe('Schedule-1');
  });
});

describe('parsePriorityClass', () => {
  it('turns UNSPECIFIED into the given default and keeps the others', () => {
    expect(parsePriorityClass(PriorityClass.UNSPECIFIED, PriorityClass.NORMAL)).toBe(PriorityClass.NORMAL);
    expect(parsePriorityClass(PriorityClass.UNSPECIFIED, PriorityClass.URGENT)).toBe(PriorityClass.URGENT);
    expect(parsePriorityClass(PriorityClass.BACKGROUND, PriorityClass.NORMAL)).toBe(PriorityClass.BACKGROUND);
  });

  it('rejects an unknown value and lists the known ones', () => {
    const error = rejection(() => parsePriorityClass(7 as PriorityClass, PriorityClass.NORMAL));
    expect(error.field).toBe('priority_class');
    expect(error.message).toBe(
      'priority_class: 7 is not a known value; known: PRIORITY_CLASS_UNSPECIFIED (0), PRIORITY_CLASS_URGENT (1), PRIORITY_CLASS_NORMAL (2), PRIORITY_CLASS_BACKGROUND (3)',
    );
    expect(rejection(() => parsePriorityClass(PriorityClass.UNRECOGNIZED, PriorityClass.NORMAL)).field).toBe('priority_class');
  });
});

describe('parsePriority', () => {
  it('accepts -1000..1000', () => {
    expect(parsePriority(-1000)).toBe(-1000);
    expect(parsePriority(1000)).toBe(1000);
    expect(rejection(() => parsePriority(1001)).message).toBe('priority: 1001 is outside -1000..1000 (negative means sheddable)');
    expect(rejection(() => parsePriority(-1001)).field).toBe('priority');
  });
});

describe('parseDeadline', () => {
  it('passes no deadline through and copies one in the future', () => {
    expect(parseDeadline(undefined, NOW)).toBeUndefined();
    expect(parseDeadline({ seconds: NOW_SECONDS + 60, nanos: 5 }, NOW)).toEqual({ seconds: NOW_SECONDS + 60, nanos: 5 });
  });

  it('rejects a deadline that is not in the future, saying when now is', () => {
    expect(rejection(() => parseDeadline({ seconds: NOW_SECONDS - 1, nanos: 0 }, NOW)).message).toBe(
      'deadline: 2026-03-01T11:59:59.000Z is not in the future (now is 2026-03-01T12:00:00.000Z)',
    );
    expect(rejection(() => parseDeadline({ seconds: NOW_SECONDS, nanos: 0 }, NOW)).field).toBe('deadline');
  });

  it('rejects malformed nanos', () => {
    expect(rejection(() => parseDeadline({ seconds: NOW_SECONDS + 60, nanos: 1e9 }, NOW)).message).toMatch(/^deadline: nanos 1000000000 is outside/);
    expect(rejection(() => parseDeadline({ seconds: NOW_SECONDS + 60, nanos: -1 }, NOW)).field).toBe('deadline');
  });
});

describe('parseDependsOn', () => {
  it('accepts UUIDs and lower-cases them', () => {
    expect(parseDependsOn([UUID_A, UUID_B.toUpperCase()])).toEqual([UUID_A, UUID_B]);
  });

  it('names the entry that is not a UUID', () => {
    const error = rejection(() => parseDependsOn([UUID_A, UUID_B, 'task-42']));
    expect(error.field).toBe('depends_on[2]');
    expect(error.message).toMatch(/^depends_on\[2\]: "task-42" is not a task id/);
  });

  it('names a duplicate and the entry it repeats', () => {
    expect(rejection(() => parseDependsOn([UUID_A, UUID_B, UUID_A.toUpperCase()])).message).toBe(
      `depends_on[2]: ${UUID_A.toUpperCase()} repeats depends_on[0]; list each dependency once`,
    );
  });

  it('allows at most 1000 dependencies', () => {
    const ids = Array.from({ length: 1001 }, (_, i) => `00000000-0000-4000-8000-${i.toString().padStart(12, '0')}`);
    expect(parseDependsOn(ids.slice(0, 1000))).toHaveLength(1000);
    expect(rejection(() => parseDependsOn(ids)).message).toBe('depends_on: has 1001 entries; at most 1000');
  });
});

describe('parseMaxRetries', () => {
  it('uses the default when unset and allows 0..20', () => {
    expect(parseMaxRetries(undefined, 3)).toBe(3);
    expect(parseMaxRetries(0, 3)).toBe(0);
    expect(parseMaxRetries(20, 3)).toBe(20);
    expect(rejection(() => parseMaxRetries(21, 3)).message).toBe('max_retries: 21 is outside 0..20');
  });
});

describe('parseLabels', () => {
  it('copies acceptable labels', () => {
    const labels = { 'app.kubernetes.io/name': 'demo', team: '' };
    const parsed = parseLabels(labels);
    expect(parsed).toEqual(labels);
    expect(parsed).not.toBe(labels);
  });

  it('rejects more than 64 labels', () => {
    const labels = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v']));
    expect(rejection(() => parseLabels(labels)).message).toBe('labels: has 65 entries; at most 64');
  });

  it('names the label whose key or value is wrong', () => {
    expect(rejection(() => parseLabels({ 'bad key': 'v' })).message).toBe('labels["bad key"]: key must be 1-63 characters of a-z A-Z 0-9 . _ / -');
    expect(rejection(() => parseLabels({ ['k'.repeat(64)]: 'v' })).field).toMatch(/^labels\[/);
    expect(rejection(() => parseLabels({ note: 'v'.repeat(257) })).message).toBe('labels["note"]: value is 257 characters; at most 256');
  });
});

describe('parseExpectedDuration', () => {
  const field = 'batch.expected_duration';

  it('accepts zero up to seven days', () => {
    expect(parseExpectedDuration(undefined, field)).toBeUndefined();
    expect(parseExpectedDuration({ seconds: 0, nanos: 0 }, field)).toEqual({ seconds: 0, nanos: 0 });
    expect(parseExpectedDuration({ seconds: 604_800, nanos: 0 }, field)).toEqual({ seconds: 604_800, nanos: 0 });
  });

  it('rejects negative, malformed and over-long durations, naming the field', () => {
    expect(rejection(() => parseExpectedDuration({ seconds: -5, nanos: 0 }, field)).message).toMatch(/^batch\.expected_duration: is negative/);
    expect(rejection(() => parseExpectedDuration({ seconds: 0, nanos: -1 }, field)).message).toMatch(/is negative/);
    expect(rejection(() => parseExpectedDuration({ seconds: 1, nanos: 1e9 }, field)).message).toMatch(/is malformed/);
    expect(rejection(() => parseExpectedDuration({ seconds: 1, nanos: -1 }, field)).message).toMatch(/opposite signs/);
    expect(rejection(() => parseExpectedDuration({ seconds: 604_800, nanos: 1 }, field)).message).toMatch(/over the limit of 7 days/);
  });
});
