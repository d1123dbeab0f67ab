/**
 * Checks of the submission fields that do not depend on the model: each
 * returns the value the task spec carries, or throws an
 * InvalidArgumentError naming the field as the proto spells it.
 */
import type { Duration, Timestamp } from '@autoglm/proto';
import { DeadlinePolicy, PriorityClass } from '@autoglm/proto';
import { InvalidArgumentError } from '../errors';
import { SCHEDULE_REQUEST_ID_PREFIX } from '../recurring/catch-up';

const TENANT_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const MAX_REQUEST_ID_CHARS = 128;
export const MIN_PRIORITY = -1000;
export const MAX_PRIORITY = 1000;
export const MAX_DEPENDENCIES = 1000;
export const MAX_RETRIES_LIMIT = 20;
export const MAX_LABELS = 64;
const LABEL_KEY_PATTERN = /^[a-zA-Z0-9._/-]{1,63}$/;
const MAX_LABEL_VALUE_CHARS = 256;
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NANOS_PER_SECOND = 1_000_000_000;
export const MAX_EXPECTED_DURATION_SECONDS = 7 * 24 * 60 * 60;
// google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
const MIN_TIMESTAMP_SECONDS = -62_135_596_800;
const MAX_TIMESTAMP_SECONDS = 253_402_300_799;

const PRIORITY_CLASS_NAMES: ReadonlyMap<PriorityClass, string> = new Map([
  [PriorityClass.UNSPECIFIED, 'PRIORITY_CLASS_UNSPECIFIED'],
  [PriorityClass.URGENT, 'PRIORITY_CLASS_URGENT'],
  [PriorityClass.NORMAL, 'PRIORITY_CLASS_NORMAL'],
  [PriorityClass.BACKGROUND, 'PRIORITY_CLASS_BACKGROUND'],
]);

/** Characters as a person counts them (code points), not UTF-16 units. */
function charCount(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

export function parseTenant(tenant: string): string {
  if (tenant.length === 0) {
    throw new InvalidArgumentError('tenant', 'required: name the tenant the work is billed to (1-64 characters of A-Z a-z 0-9 . _ -)');
  }
  if (!TENANT_PATTERN.test(tenant)) {
    throw new InvalidArgumentError('tenant', `${JSON.stringify(truncate(tenant))} is not a tenant name: use 1-64 characters of A-Z a-z 0-9 . _ -`);
  }
  return tenant;
}

export function parseRequestId(requestId: string): string {
  const chars = charCount(requestId);
  if (chars > MAX_REQUEST_ID_CHARS) {
    throw new InvalidArgumentError('request_id', `is ${chars} characters; at most ${MAX_REQUEST_ID_CHARS}`);
  }
  if (requestId.includes('\u0000')) throw new InvalidArgumentError('request_id', 'must not contain NUL characters');
  // Reserved: a client task under a fire's request id would be taken for that fire's task.
  if (requestId.startsWith(SCHEDULE_REQUEST_ID_PREFIX)) {
    throw new InvalidArgumentError('request_id', `must not start with "${SCHEDULE_REQUEST_ID_PREFIX}": it is reserved for the tasks schedules submit (${SCHEDULE_REQUEST_ID_PREFIX}<schedule id>:<fire time ms>); choose another`);
  }
  return requestId;
}

/** BEST_EFFORT unless the submission asks to be refused when its deadline cannot be met (which needs a deadline). */
export function parseDeadlinePolicy(value: DeadlinePolicy, hasDeadline: boolean): DeadlinePolicy {
  if (value === DeadlinePolicy.UNSPECIFIED || value === DeadlinePolicy.BEST_EFFORT) return DeadlinePolicy.BEST_EFFORT;
  if (value !== DeadlinePolicy.REFUSE_UNMEETABLE) {
    throw new InvalidArgumentError('deadline_policy', `${String(value)} is not a known value; known: BEST_EFFORT (1), REFUSE_UNMEETABLE (2)`);
  }
  if (!hasDeadline) throw new InvalidArgumentError('deadline_policy', 'REFUSE_UNMEETABLE needs a deadline: set deadline, or leave deadline_policy unset');
  return value;
}

/** `value` when it is a known class; UNSPECIFIED becomes `unspecifiedMeans`. */
export function parsePriorityClass(value: PriorityClass, unspecifiedMeans: PriorityClass): PriorityClass {
  if (!PRIORITY_CLASS_NAMES.has(value)) {
    const known = [...PRIORITY_CLASS_NAMES].map(([number, name]) => `${name} (${number})`).join(', ');
    throw new InvalidArgumentError('priority_class', `${String(value)} is not a known value; known: ${known}`);
  }
  return value === PriorityClass.UNSPECIFIED ? unspecifiedMeans : value;
}

export function parsePriority(priority: number): number {
  if (!Number.isInteger(priority) || priority < MIN_PRIORITY || priority > MAX_PRIORITY) {
    throw new InvalidArgumentError('priority', `${priority} is outside ${MIN_PRIORITY}..${MAX_PRIORITY} (negative means sheddable)`);
  }
  return priority;
}

/** A copy of `deadline` when it is well-formed and after `now`; undefined when absent. */
export function parseDeadline(deadline: Timestamp | undefined, now: Date): Timestamp | undefined {
  if (deadline === undefined) return undefined;
  const { seconds, nanos } = deadline;
  if (!Number.isInteger(nanos) || nanos < 0 || nanos >= NANOS_PER_SECOND) {
    throw new InvalidArgumentError('deadline', `nanos ${nanos} is outside [0, 999999999]`);
  }
  if (!Number.isInteger(seconds) || seconds < MIN_TIMESTAMP_SECONDS || seconds > MAX_TIMESTAMP_SECONDS) {
    throw new InvalidArgumentError('deadline', `seconds ${seconds} is outside the years 0001-9999`);
  }
  const at = new Date(seconds * 1000 + Math.floor(nanos / 1_000_000));
  if (seconds * 1000 + nanos / 1_000_000 <= now.getTime()) {
    throw new InvalidArgumentError('deadline', `${at.toISOString()} is not in the future (now is ${now.toISOString()})`);
  }
  return { seconds, nanos };
}

/** Task ids, lower-cased; each must be a UUID and appear once. */
export function parseDependsOn(ids: readonly string[]): string[] {
  if (ids.length > MAX_DEPENDENCIES) {
    throw new InvalidArgumentError('depends_on', `has ${ids.length} entries; at most ${MAX_DEPENDENCIES}`);
  }
  const seen = new Map<string, number>();
  return ids.map((id, index) => {
    if (!UUID_PATTERN.test(id)) {
      throw new InvalidArgumentError(`depends_on[${index}]`, `${JSON.stringify(truncate(id))} is not a task id (a UUID such as 123e4567-e89b-12d3-a456-426614174000)`);
    }
    const normalised = id.toLowerCase();
    const first = seen.get(normalised);
    if (first !== undefined) {
      throw new InvalidArgumentError(`depends_on[${index}]`, `${id} repeats depends_on[${first}]; list each dependency once`);
    }
    seen.set(normalised, index);
    return normalised;
  });
}

export function parseMaxRetries(maxRetries: number | undefined, defaultMaxRetries: number): number {
  if (maxRetries === undefined) return defaultMaxRetries;
  if (!Number.isInteger(maxRetries) || maxRetries < 0 || maxRetries > MAX_RETRIES_LIMIT) {
    throw new InvalidArgumentError('max_retries', `${maxRetries} is outside 0..${MAX_RETRIES_LIMIT}`);
  }
  return maxRetries;
}

/** A copy of `labels` when every key and value is acceptable. */
export function parseLabels(labels: { readonly [key: string]: string }): { [key: string]: string } {
  const entries = Object.entries(labels);
  if (entries.length > MAX_LABELS) {
    throw new InvalidArgumentError('labels', `has ${entries.length} entries; at most ${MAX_LABELS}`);
  }
  for (const [key, value] of entries) {
    const field = `labels[${JSON.stringify(truncate(key))}]`;
    if (!LABEL_KEY_PATTERN.test(key)) {
      throw new InvalidArgumentError(field, 'key must be 1-63 characters of a-z A-Z 0-9 . _ / -');
    }
    const chars = charCount(value);
    if (chars > MAX_LABEL_VALUE_CHARS) {
      throw new InvalidArgumentError(field, `value is ${chars} characters; at most ${MAX_LABEL_VALUE_CHARS}`);
    }
  }
  return Object.fromEntries(entries);
}

/** A copy of a batch job's expected duration when well-formed, not negative and at most 7 days. */
export function parseExpectedDuration(duration: Duration | undefined, field: string): Duration | undefined {
  return parseDuration(duration, field, MAX_EXPECTED_DURATION_SECONDS, {
    negative: 'is negative; give how long the job is expected to run',
    tooLong: (seconds) => `is ${seconds}s, over the limit of 7 days (${MAX_EXPECTED_DURATION_SECONDS}s); split the job`,
  });
}

/** What parseDuration says of a duration it refuses for its value; `field: ` comes before. */
export interface DurationRefusals {
  /** Of a negative duration, e.g. 'is negative; give how long the job is expected to run'. */
  negative: string;
  /** Of one over the limit, given its whole seconds. */
  tooLong: (seconds: number) => string;
}

/**
 * A copy of `duration` when well-formed (integer seconds and nanos of one
 * sign, nanos within ±999999999), not negative and at most `maxSeconds`;
 * undefined when unset.
 */
export function parseDuration(duration: Duration | undefined, field: string, maxSeconds: number, refusals: DurationRefusals): Duration | undefined {
  if (duration === undefined) return undefined;
  const { seconds, nanos } = duration;
  if (!Number.isInteger(seconds) || !Number.isInteger(nanos) || Math.abs(nanos) >= NANOS_PER_SECOND) {
    throw new InvalidArgumentError(field, `is malformed: seconds ${seconds}, nanos ${nanos} (nanos must be within ±999999999)`);
  }
  if ((seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0)) {
    throw new InvalidArgumentError(field, `is malformed: seconds ${seconds} and nanos ${nanos} have opposite signs`);
  }
  if (seconds < 0 || nanos < 0) throw new InvalidArgumentError(field, refusals.negative);
  if (seconds + nanos / NANOS_PER_SECOND > maxSeconds) throw new InvalidArgumentError(field, refusals.tooLong(seconds));
  return { seconds, nanos };
}

/** Long user input quoted back in a message is cut, so an error stays readable. */
function truncate(text: string, max = 80): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
