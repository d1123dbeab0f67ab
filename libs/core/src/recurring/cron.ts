/**
 * Cron expressions, as crontab(5) of Vixie cron writes them, and their fire
 * times in an IANA time zone, computed with Intl alone.
 *
 * Daylight saving time, as Vixie cron (and cronie) handle it:
 * - A local time that a spring-forward skips fires once, at the first instant
 *   after the gap (the transition itself: 02:30 on the day New York moves
 *   from 02:00 to 03:00 fires at 03:00 EDT). Several skipped times fire once.
 * - A local time that a fall-back repeats fires once, at its first
 *   occurrence.
 * - Except for periodic expressions: one whose minute or hour field starts
 *   with `*` (`*\/5 * * * *`, `0 * * * *`, `@hourly`) keeps its period in
 *   real time. It fires in both passes of a repeated hour, and not at all in
 *   a skipped one, so an every-5-minutes job neither stops for an hour nor
 *   runs twelve times at once.
 */
import { InvalidArgumentError } from '../errors';

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;
/**
 * How far ahead a fire time is looked for. Every satisfiable expression fires
 * within 28 years (29 February on a given weekday, the rarest date one can
 * name, recurs within that).
 */
const SEARCH_DAYS = 30 * 366;

/** A parsed cron expression. */
export interface CronExpression {
  /** The expression as given (trimmed). */
  readonly source: string;
  /** Minutes 0-59 it fires at, ascending. */
  readonly minutes: readonly number[];
  /** Hours 0-23, ascending. */
  readonly hours: readonly number[];
  /** Whether day-of-month d (1-31) is named: index d. */
  readonly daysOfMonth: readonly boolean[];
  /** Whether month m (1-12) is named: index m. */
  readonly months: readonly boolean[];
  /** Whether weekday w (0 Sunday - 6 Saturday) is named: index w. */
  readonly daysOfWeek: readonly boolean[];
  /**
   * Both day fields are restricted (neither starts with `*`), so a day matches
   * when either does. Otherwise both must (Vixie cron's rule: `*\/2` counts as
   * unrestricted here, as in crontab).
   */
  readonly eitherDay: boolean;
  /** The minute or hour field starts with `*`: the period holds through DST changes (see above). */
  readonly periodic: boolean;
}

interface FieldSpec {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  /** Names for min, min+1, ... (JAN for 1, SUN for 0). */
  readonly names?: readonly string[];
  readonly example: string;
}

const FIELDS: readonly FieldSpec[] = [
  { name: 'minute', min: 0, max: 59, example: '0, 30, */15 or 0-29' },
  { name: 'hour', min: 0, max: 23, example: '9, 9-17, */2 or 8,12,18' },
  { name: 'day-of-month', min: 1, max: 31, example: '1, 15, 1-7 or */2' },
  { name: 'month', min: 1, max: 12, names: ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'], example: '1, JAN, JAN-MAR or */3' },
  { name: 'day-of-week', min: 0, max: 7, names: ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'], example: '1, MON, MON-FRI or 0,6 (0 and 7 are Sunday)' },
];

const MACROS: Readonly<Record<string, string>> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

const SHAPE = '5 fields "minute hour day-of-month month day-of-week" (e.g. "*/5 * * * *" or "0 9 * * MON-FRI"), or one of @hourly, @daily, @weekly, @monthly, @yearly';
const MAX_EXPRESSION_CHARS = 256;
/** Longest month, by month number; February counts its leap day. */
const DAYS_IN_MONTH = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

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
  let text = source;
  if (source.startsWith('@')) {
    const macro = MACROS[source.toLowerCase()];
    if (macro === undefined) {
      const why = source.toLowerCase() === '@reboot' ? '@reboot is not supported (a schedule fires at times, not at start-up)' : `${JSON.stringify(source)} is not a known shorthand`;
      fail(`${why}; use ${SHAPE}`);
    }
    text = macro!;
  }
  const parts = text.split(/\s+/);
  if (parts.length !== 5) {
    const seconds = parts.length === 6 ? ' (a seconds field is not supported: the finest period is one minute)' : '';
    fail(`${JSON.stringify(source)} has ${parts.length} field${parts.length === 1 ? '' : 's'}${seconds}; write ${SHAPE}`);
  }
  const [minute, hour, dayOfMonth, month, dayOfWeek] = parts.map((part, i) => parseField(part, FIELDS[i]!, fail)) as [
    boolean[],
    boolean[],
    boolean[],
    boolean[],
    boolean[],
  ];
  // 7 is Sunday too.
  if (dayOfWeek[7]) dayOfWeek[0] = true;
  dayOfWeek.length = 7;
  const cron: CronExpression = {
    source,
    minutes: indices(minute),
    hours: indices(hour),
    daysOfMonth: dayOfMonth,
    months: month,
    daysOfWeek: dayOfWeek,
    eitherDay: !parts[2]!.startsWith('*') && !parts[4]!.startsWith('*'),
    periodic: parts[0]!.startsWith('*') || parts[1]!.startsWith('*'),
  };
  if (!cron.eitherDay && !someDateExists(cron)) {
    const days = indices(dayOfMonth).join(',');
    const names = indices(month).map((m) => FIELDS[3]!.names![m - 1]).join(',');
    fail(`day-of-month ${days} never occurs in month ${names}, so ${JSON.stringify(source)} would never fire; choose days that exist in those months`);
  }
  return cron;
}

/** One field: a comma-separated list of `*`, `n`, `a-b`, each optionally `/step`; names where the field has them. */
function parseField(text: string, spec: FieldSpec, fail: (message: string) => never): boolean[] {
  const named = spec.names ? ` (or a name: ${spec.names[0]}-${spec.names[spec.names.length - 1]})` : '';
  const hint = `write a number ${spec.min}-${spec.max}${named}, a range, a list or a step, e.g. ${spec.example}`;
  const set = new Array<boolean>(spec.max + 1).fill(false);
  for (const item of text.split(',')) {
    if (item === '') fail(`${spec.name} ${JSON.stringify(text)} has an empty list item; separate values with single commas, e.g. 1,15`);
    const pieces = item.split('/');
    if (pieces.length > 2) fail(`${spec.name} ${JSON.stringify(item)} has more than one "/"; ${hint}`);
    const [range, stepText] = pieces as [string, string | undefined];
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText)) fail(`${spec.name} step ${JSON.stringify(item)}: after "/" comes a whole number, e.g. */5`);
      step = Number(stepText);
      const span = spec.max - spec.min + 1;
      if (step < 1 || step > span) fail(`${spec.name} step ${JSON.stringify(item)}: the step must be 1-${span}`);
    }
    let low: number;
    let high: number;
    if (range === '*') {
      low = spec.min;
      high = spec.name === 'day-of-week' ? 6 : spec.max;
    } else if (range.includes('-')) {
      const ends = range.split('-');
      if (ends.length !== 2) fail(`${spec.name} range ${JSON.stringify(range)} is not two values joined by "-"; ${hint}`);
      low = valueOf(ends[0]!, spec, hint, fail);
      high = valueOf(ends[1]!, spec, hint, fail);
      if (low > high) {
        const wrapped =
          spec.name === 'day-of-week' && high === 0 ? `${low}-7` : high === spec.min ? `${low}-${spec.max},${spec.min}` : `${low}-${spec.max},${spec.min}-${high}`;
        fail(`${spec.name} range ${JSON.stringify(range)} runs backwards, and ranges do not wrap around: write it low-high, or the wrap-around as the list ${wrapped}`);
      }
    } else {
      low = valueOf(range, spec, hint, fail);
      // "a/n" steps from a to the end of the field, as "a-max/n".
      high = stepText === undefined ? low : spec.max;
    }
    for (let v = low; v <= high; v += step) set[v] = true;
  }
  return set;
}

function valueOf(token: string, spec: FieldSpec, hint: string, fail: (message: string) => never): number {
  if (/^\d+$/.test(token)) {
    const n = Number(token);
    if (n < spec.min || n > spec.max) fail(`${spec.name} ${n} is out of range ${spec.min}-${spec.max}; ${hint}`);
    return n;
  }
  const index = spec.names?.indexOf(token.toUpperCase()) ?? -1;
  if (index < 0) fail(`${spec.name} ${JSON.stringify(token)} is not a value; ${hint}`);
  return spec.min + index;
}

function indices(set: readonly boolean[]): number[] {
  const out: number[] = [];
  set.forEach((on, i) => {
    if (on) out.push(i);
  });
  return out;
}

function someDateExists(cron: CronExpression): boolean {
  for (let m = 1; m <= 12; m++) {
    if (!cron.months[m]) continue;
    for (let d = 1; d <= DAYS_IN_MONTH[m]!; d++) if (cron.daysOfMonth[d]) return true;
  }
  return false;
}

// ---- time zones -----------------------------------------------------------

const formatters = new Map<string, Intl.DateTimeFormat>();

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

function formatterOf(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (f === undefined) {
    parseTimeZone(timeZone);
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** The zone's offset from UTC at an instant, in ms (local wall time = instant + offset). */
export function zoneOffsetAt(timeZone: string, instantMs: number): number {
  return offsetAt(formatterOf(timeZone), instantMs);
}

function offsetAt(format: Intl.DateTimeFormat, instantMs: number): number {
  const second = Math.floor(instantMs / 1000) * 1000;
  let year = 0;
  let month = 0;
  let day = 0;
  let hour = 0;
  let minute = 0;
  let sec = 0;
  for (const part of format.formatToParts(second)) {
    switch (part.type) {
      case 'year':
        year = Number(part.value);
        break;
      case 'month':
        month = Number(part.value);
        break;
      case 'day':
        day = Number(part.value);
        break;
      case 'hour':
        hour = Number(part.value);
        break;
      case 'minute':
        minute = Number(part.value);
        break;
      case 'second':
        sec = Number(part.value);
        break;
      default:
        break;
    }
  }
  return Date.UTC(year, month - 1, day, hour, minute, sec) - second;
}

/**
 * What one local day looks like in a zone: its offset, or the two offsets
 * and the instant it changes when a transition falls near it (at most one
 * is assumed within a day and a half).
 */
interface ZoneDay {
  readonly before: number;
  readonly after: number;
  /** The first instant on the `after` offset; irrelevant when the offsets are equal. */
  readonly transition: number;
}

/** `dayStart` is local midnight as wall-clock ms (the wall time read as if it were UTC). */
function zoneDay(format: Intl.DateTimeFormat, dayStart: number): ZoneDay {
  // Offsets lie within -12 h..+14 h, so these instants bracket the local day.
  const lo = dayStart - 15 * HOUR_MS;
  const hi = dayStart + DAY_MS + 13 * HOUR_MS;
  const before = offsetAt(format, lo);
  const after = offsetAt(format, hi);
  if (before === after) return { before, after, transition: hi };
  // Offsets change on whole seconds: bisect to one.
  let a = lo;
  let b = hi;
  while (b - a > 1000) {
    const mid = a + Math.floor((b - a) / 2000) * 1000;
    if (offsetAt(format, mid) === before) a = mid;
    else b = mid;
  }
  return { before, after, transition: b };
}

/**
 * The instants a local wall time (ms, read as UTC) stands for, by the DST
 * rules above; empty when it is skipped.
 */
function instantsOf(wall: number, day: ZoneDay, periodic: boolean): number[] {
  if (day.before === day.after) return [wall - day.before];
  const first = wall - day.before;
  const second = wall - day.after;
  const firstValid = first < day.transition;
  const secondValid = second >= day.transition;
  if (firstValid && secondValid) return periodic ? [first, second] : [first];
  if (firstValid) return [first];
  if (secondValid) return [second];
  return periodic ? [] : [day.transition];
}

function dayMatches(cron: CronExpression, date: Date): boolean {
  const dom = cron.daysOfMonth[date.getUTCDate()] === true;
  const dow = cron.daysOfWeek[date.getUTCDay()] === true;
  return cron.eitherDay ? dom || dow : dom && dow;
}

/** The earliest fire instant of one local day that is after `afterMs`. */
function earliestInDay(cron: CronExpression, dayStart: number, day: ZoneDay, afterMs: number): number | undefined {
  const steady = day.before === day.after;
  let best: number | undefined;
  for (const hour of cron.hours) {
    const hourStart = dayStart + hour * HOUR_MS;
    // A steady day maps wall time to instants in order: skip whole hours that are past.
    if (steady && hourStart + 59 * MINUTE_MS - day.before <= afterMs) continue;
    for (const minute of cron.minutes) {
      for (const instant of instantsOf(hourStart + minute * MINUTE_MS, day, cron.periodic)) {
        if (instant > afterMs && (best === undefined || instant < best)) best = instant;
      }
      if (steady && best !== undefined) return best;
    }
  }
  return best;
}

/**
 * The first fire time of `expression` in `timeZone` strictly after
 * `afterMs` (epoch ms). Throws an InvalidArgumentError for a bad expression
 * (field `cron`) or time zone (field `time_zone`).
 */
export function nextFireAfter(expression: string | CronExpression, afterMs: number, timeZone: string): number {
  const cron = typeof expression === 'string' ? parseCron(expression) : expression;
  const format = formatterOf(timeZone);
  const localNow = afterMs + offsetAt(format, afterMs);
  // From the local day before: the second pass of a repeated hour can follow a later wall time.
  let dayStart = Math.floor(localNow / DAY_MS) * DAY_MS - DAY_MS;
  const end = dayStart + SEARCH_DAYS * DAY_MS;
  while (dayStart <= end) {
    const date = new Date(dayStart);
    if (!cron.months[date.getUTCMonth() + 1]) {
      dayStart = Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1);
      continue;
    }
    if (dayMatches(cron, date)) {
      const day = zoneDay(format, dayStart);
      const found = earliestInDay(cron, dayStart, day, afterMs);
      if (found !== undefined) {
        if (day.before === day.after) return found;
        // Near a transition the next local day may hold an earlier instant.
        const nextStart = dayStart + DAY_MS;
        const nextDate = new Date(nextStart);
        if (!cron.months[nextDate.getUTCMonth() + 1] || !dayMatches(cron, nextDate)) return found;
        const next = earliestInDay(cron, nextStart, zoneDay(format, nextStart), afterMs);
        return next !== undefined && next < found ? next : found;
      }
    }
    dayStart += DAY_MS;
  }
  throw new InvalidArgumentError('cron', `${JSON.stringify(cron.source)} has no fire time within ${Math.round(SEARCH_DAYS / 366)} years`);
}

/**
 * The latest fire time in [notBeforeMs, atOrBeforeMs], or undefined when
 * there is none: what a schedule that missed fire times should run now.
 */
export function latestFireAtOrBefore(expression: string | CronExpression, atOrBeforeMs: number, timeZone: string, notBeforeMs: number): number | undefined {
  const cron = typeof expression === 'string' ? parseCron(expression) : expression;
  // nextFireAfter is monotone: bisect for the last instant whose next fire is
  // still in range (about 40 steps for years), rather than walk every fire.
  let lo = Math.floor(notBeforeMs) - 1;
  let hi = Math.floor(atOrBeforeMs);
  if (lo >= hi || nextFireAfter(cron, lo, timeZone) > atOrBeforeMs) return undefined;
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (nextFireAfter(cron, mid, timeZone) <= atOrBeforeMs) lo = mid;
    else hi = mid;
  }
  return nextFireAfter(cron, lo, timeZone);
}

/** Whether the local wall time (ms, read as UTC) is one the expression names. For tests and tools. */
export function cronMatchesWallTime(cron: CronExpression, wallMs: number): boolean {
  const date = new Date(wallMs);
  return (
    date.getUTCSeconds() === 0 &&
    date.getUTCMilliseconds() === 0 &&
    cron.minutes.includes(date.getUTCMinutes()) &&
    cron.hours.includes(date.getUTCHours()) &&
    cron.months[date.getUTCMonth() + 1] === true &&
    dayMatches(cron, date)
  );
}
