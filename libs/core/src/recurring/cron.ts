/**
 * Cron expressions and their fire times in an IANA time zone, computed by
 * croner. What we add to it:
 * - Five fields (or a shorthand such as @daily): no seconds or year field.
 * - Vixie cron's day rule: when both day fields are restricted (neither
 *   starts with `*`), a day matches when either does; otherwise both must
 *   (`*\/2` counts as unrestricted, as in crontab). Croner alone only treats a
 *   bare `*` as unrestricted.
 * - Errors that name the cron field at fault and how to write it.
 *
 * Daylight saving time, as croner (after Vixie cron) handles it with
 * `fixedTimeRule: 'no-wildcard'`:
 * - A fixed time (no `*` or step in the minute and hour fields: `30 2 * * *`,
 *   `0,30 2,3 * * *`) that a spring-forward skips fires once, at the first
 *   instant after the gap; one that a fall-back repeats fires once, at its
 *   first occurrence.
 * - A periodic expression (`*\/5 * * * *`, `@hourly`, `0-30/10 2 * * *`) keeps
 *   its period in real time: it fires in both passes of a repeated hour and
 *   not at all in a skipped one.
 */
import { Cron, CronPattern, type CronOptions } from 'croner';
import { InvalidArgumentError } from '../errors';

/** A parsed cron expression. */
export interface CronExpression {
  /** The expression as given (trimmed). */
  readonly source: string;
  /** The minute or hour field has a `*` or a step: the period holds through DST changes (see above). */
  readonly periodic: boolean;
}

/** What croner reads for an expression: the pattern and the options that give it our semantics. */
interface CronerInput {
  readonly pattern: string;
  readonly options: CronOptions;
  /** One Cron per time zone it was asked about. */
  readonly byZone: Map<string, Cron>;
}

const inputs = new WeakMap<CronExpression, CronerInput>();

const FIELDS = [
  { name: 'minute', min: 0, max: 59, example: '0, 30, */15 or 0-29' },
  { name: 'hour', min: 0, max: 23, example: '9, 9-17, */2 or 8,12,18' },
  { name: 'day-of-month', min: 1, max: 31, example: '1, 15, 1-7 or */2' },
  { name: 'month', min: 1, max: 12, names: 'JAN-DEC', example: '1, JAN, JAN-MAR or */3' },
  { name: 'day-of-week', min: 0, max: 7, names: 'SUN-SAT', example: '1, MON, MON-FRI or 0,6 (0 and 7 are Sunday)' },
] as const;

const SHAPE = '5 fields "minute hour day-of-month month day-of-week" (e.g. "*/5 * * * *" or "0 9 * * MON-FRI"), or one of @hourly, @daily, @weekly, @monthly, @yearly';
const MAX_EXPRESSION_CHARS = 256;
/** Any date that a satisfiable expression fires after: expressions have no year, so which one does not matter. */
const EPOCH_2000 = new Date(Date.UTC(2000, 0, 1));

/**
 * Parses a cron expression, or throws an InvalidArgumentError on `field`
 * that names the cron field at fault and how to write it.
 */
export function parseCron(expression: string, field = 'cron'): CronExpression {
  const source = expression.trim();
  const fail = (message: string): never => {
    throw new InvalidArgumentError(field, message);
  };
  if (source === '') fail(`is required: ${SHAPE}`);
  if (source.length > MAX_EXPRESSION_CHARS) fail(`is ${source.length} characters; at most ${MAX_EXPRESSION_CHARS}`);
  const parts = source.split(/\s+/);
  if (!source.startsWith('@') && parts.length !== 5) {
    const seconds = parts.length === 6 ? ' (a seconds field is not supported: the finest period is one minute)' : '';
    fail(`${JSON.stringify(source)} has ${parts.length} field${parts.length === 1 ? '' : 's'}${seconds}; write ${SHAPE}`);
  }
  // "a/n" in day-of-week runs to 7 (Sunday), as in the other fields to their maximum; croner stops it at 6.
  const pattern = parts.map((part, i) => (i === 4 ? part.replace(/(^|,)([^,*/-]+)\/(\d+)/g, '$1$2-7/$3') : part)).join(' ');
  const unrestricted = (dayField: string | undefined) => dayField === undefined || /^[*?]/.test(dayField);
  const options: CronOptions = {
    paused: true,
    mode: '5-part',
    sloppyRanges: true,
    fixedTimeRule: 'no-wildcard',
    domAndDow: unrestricted(parts[2]) || unrestricted(parts[4]),
  };
  let parsed: CronPattern;
  try {
    parsed = new CronPattern(pattern, undefined, options);
  } catch (err) {
    return fail(explain(source, parts, err));
  }
  const cron: CronExpression = { source, periodic: !parsed.isFixedTime };
  inputs.set(cron, { pattern, options, byZone: new Map() });
  if (cronIn(cron, 'UTC').nextRun(EPOCH_2000) === null) {
    fail(`${JSON.stringify(source)} would never fire: no date has the day-of-month, month and day-of-week it names; choose days that exist in those months`);
  }
  return cron;
}

/** Croner's reason for refusing an expression, told in our terms: the field at fault, and how to write it. */
function explain(source: string, parts: readonly string[], err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  // "CronPattern: configuration entry 1 (*/x) contains illegal characters." says "contains illegal characters".
  const reason = message.replace(/^CronPattern: (Syntax error, )?(configuration entry \S+ \([^)]*\) )?/, '').replace(/\.$/, '');
  if (source.startsWith('@')) {
    const why = source.toLowerCase() === '@reboot' ? '@reboot is not supported (a schedule fires at times, not at start-up)' : `${JSON.stringify(source)} is not a known shorthand`;
    return `${why}; use ${SHAPE}`;
  }
  // The first field croner refuses on its own, the others left `*`.
  const at = parts.findIndex((_, i) => {
    try {
      new CronPattern(parts.map((part, j) => (j === i ? part : '*')).join(' '), undefined, { mode: '5-part', sloppyRanges: true });
      return false;
    } catch {
      return true;
    }
  });
  const spec = FIELDS[at];
  const text = parts[at];
  if (spec === undefined || text === undefined) return `${JSON.stringify(source)}: ${reason}; write ${SHAPE}`;
  const named = 'names' in spec ? ` (or a name: ${spec.names})` : '';
  const hint = `write a number ${spec.min}-${spec.max}${named}, a range, a list or a step, e.g. ${spec.example}`;
  // Croner names the value out of range as it stores it (month 13 as 12): name it as written, steps aside.
  const outOfRange = (text.replace(/\/\d+/g, '').match(/\d+/g) ?? []).map(Number).find((n) => n < spec.min || n > spec.max);
  if (err instanceof RangeError && outOfRange !== undefined) return `${spec.name} ${outOfRange} is out of range ${spec.min}-${spec.max}; ${hint}`;
  return `${spec.name} ${JSON.stringify(text)} is not valid (${reason}); ${hint}`;
}

/** The croner job that computes `cron`'s fire times in `timeZone`. */
function cronIn(cron: CronExpression, timeZone: string): Cron {
  const input = inputs.get(cron) ?? inputs.get(parseCron(cron.source))!;
  let job = input.byZone.get(timeZone);
  if (job === undefined) {
    // A fixed offset spares croner the Intl lookups a zone takes: several times faster, for the default zone.
    const zone: CronOptions = timeZone === 'UTC' ? { utcOffset: 0 } : { timezone: parseTimeZone(timeZone) };
    job = new Cron(input.pattern, { ...input.options, ...zone });
    input.byZone.set(timeZone, job);
  }
  return job;
}

/**
 * Checks an IANA time zone name and returns its canonical spelling
 * ("europe/berlin" becomes "Europe/Berlin"), or throws an
 * InvalidArgumentError on `field`.
 */
export function parseTimeZone(timeZone: string, field = 'time_zone'): string {
  const example = 'an IANA time zone such as "Europe/Berlin", "America/New_York" or "UTC"';
  if (timeZone.trim() === '') throw new InvalidArgumentError(field, `is required: ${example}`);
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: timeZone.trim() }).resolvedOptions().timeZone;
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    const shown = timeZone.length > 64 ? `${timeZone.slice(0, 64)}…` : timeZone;
    throw new InvalidArgumentError(field, `${JSON.stringify(shown)} is not a time zone this server knows; use ${example}`);
  }
}

const offsetFormats = new Map<string, Intl.DateTimeFormat>();

/** The zone's offset from UTC at an instant, in ms (local wall time = instant + offset). */
export function zoneOffsetAt(timeZone: string, instantMs: number): number {
  let format = offsetFormats.get(timeZone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat('en-US', { timeZone: parseTimeZone(timeZone), timeZoneName: 'longOffset' });
    offsetFormats.set(timeZone, format);
  }
  // "GMT" for UTC itself, else "GMT+05:30" (or "GMT-04:56:02" for old local mean times).
  const name = format.formatToParts(instantMs).find((part) => part.type === 'timeZoneName')?.value ?? 'GMT';
  const [, sign, h = '0', m = '0', s = '0'] = /^GMT([+-])(\d+):(\d+)(?::(\d+))?$/.exec(name) ?? [];
  return (sign === '-' ? -1 : 1) * ((Number(h) * 60 + Number(m)) * 60 + Number(s)) * 1000;
}

/**
 * The first fire time of `expression` in `timeZone` strictly after
 * `afterMs` (epoch ms). Throws an InvalidArgumentError for a bad expression
 * (field `cron`) or time zone (field `time_zone`).
 */
export function nextFireAfter(expression: string | CronExpression, afterMs: number, timeZone: string): number {
  const cron = typeof expression === 'string' ? parseCron(expression) : expression;
  const next = cronIn(cron, timeZone).nextRun(new Date(afterMs));
  if (next === null) throw new InvalidArgumentError('cron', `${JSON.stringify(cron.source)} has no fire time after ${new Date(afterMs).toISOString()}`);
  return next.getTime();
}

/**
 * The latest fire time in [notBeforeMs, atOrBeforeMs], or undefined when
 * there is none: what a schedule that missed fire times should run now.
 */
export function latestFireAtOrBefore(expression: string | CronExpression, atOrBeforeMs: number, timeZone: string, notBeforeMs: number): number | undefined {
  const cron = typeof expression === 'string' ? parseCron(expression) : expression;
  const [latest] = cronIn(cron, timeZone).previousRuns(1, new Date(Math.floor(atOrBeforeMs) + 1));
  return latest !== undefined && latest.getTime() >= notBeforeMs ? latest.getTime() : undefined;
}

/** Whether the local wall time (ms, read as UTC) is one the expression names. For tests and tools. */
export function cronMatchesWallTime(cron: CronExpression, wallMs: number): boolean {
  return wallMs % 60_000 === 0 && cronIn(cron, 'UTC').match(new Date(wallMs));
}
