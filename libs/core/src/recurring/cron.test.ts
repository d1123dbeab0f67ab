import fc from 'fast-check';
import { InvalidArgumentError } from '../errors';
import { dueFire, fireRequestId } from './catch-up';
import { cronMatchesWallTime, latestFireAtOrBefore, nextFireAfter, parseCron, parseTimeZone, zoneOffsetAt } from './cron';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z');

/** The fire times in (from, to], one after the other. */
function fires(expression: string, timeZone: string, from: string, to: string): string[] {
  const out: string[] = [];
  for (let t = nextFireAfter(expression, at(from), timeZone); t <= at(to); t = nextFireAfter(expression, t, timeZone)) out.push(iso(t));
  return out;
}

/**
 * A fake clock walking minute by minute from `from` to `to`, firing a
 * schedule as decision's timer does (dueFire at each tick): the fire times
 * it submitted.
 */
function runClock(expression: string, timeZone: string, from: string, to: string, tickMs = MINUTE): string[] {
  const cron = parseCron(expression);
  const submitted: string[] = [];
  let next = nextFireAfter(cron, at(from), timeZone);
  for (let now = at(from); now <= at(to); now += tickMs) {
    const due = dueFire(cron, timeZone, next, now);
    if (!due) continue;
    if (!due.tooLate) submitted.push(iso(due.fireAtMs));
    next = due.nextFireAtMs;
  }
  return submitted;
}

describe('parseCron', () => {
  it('reads lists, ranges, steps, names and shorthands', () => {
    // "*/10" starts with a star, so both day fields must match: the 1st, 11th, 21st and 31st that are weekdays.
    const january = fires('0,30 9-17/4 */10 JAN-MAR,dec mon-fri', 'UTC', '2024-01-01T00:00:00Z', '2024-02-01T00:00:00Z');
    expect(january).toHaveLength(18);
    expect(new Set(january.map((fire) => fire.slice(0, 10)))).toEqual(new Set(['2024-01-01', '2024-01-11', '2024-01-31']));
    expect(january.slice(0, 6).map((fire) => fire.slice(11, 16))).toEqual(['09:00', '09:30', '13:00', '13:30', '17:00', '17:30']);
    expect(fires('0,30 9-17/4 */10 JAN-MAR,dec mon-fri', 'UTC', '2024-04-01T00:00:00Z', '2024-11-30T00:00:00Z')).toEqual([]);
    expect(fires('5/20 * * * *', 'UTC', '2024-05-01T10:00:00Z', '2024-05-01T11:00:00Z')).toEqual(['2024-05-01T10:05:00Z', '2024-05-01T10:25:00Z', '2024-05-01T10:45:00Z']);
    // 2024-05-05 is a Sunday: 7 is Sunday too, and "a/n" in day-of-week runs to it.
    expect(fires('0 0 * * 7', 'UTC', '2024-05-01T00:00:00Z', '2024-05-08T00:00:00Z')).toEqual(['2024-05-05T00:00:00Z']);
    expect(fires('0 0 * * 5-7', 'UTC', '2024-05-01T00:00:00Z', '2024-05-08T00:00:00Z')).toEqual(['2024-05-03T00:00:00Z', '2024-05-04T00:00:00Z', '2024-05-05T00:00:00Z']);
    expect(fires('0 0 * * 5/2', 'UTC', '2024-05-01T00:00:00Z', '2024-05-08T00:00:00Z')).toEqual(['2024-05-03T00:00:00Z', '2024-05-05T00:00:00Z']);
    expect(parseCron('@daily')).toMatchObject({ periodic: false, source: '@daily' });
    expect(fires('@daily', 'UTC', '2024-05-01T00:00:00Z', '2024-05-03T00:00:00Z')).toEqual(['2024-05-02T00:00:00Z', '2024-05-03T00:00:00Z']);
    expect(parseCron('@HOURLY')).toMatchObject({ periodic: true });
    expect(parseCron('  */5   *  * * *  ').source).toBe('*/5   *  * * *');
  });

  it('marks periodic expressions: a star or a step in the minute or hour field', () => {
    expect(parseCron('30 2 * * *').periodic).toBe(false);
    expect(parseCron('0,30 2,3 * * *').periodic).toBe(false);
    expect(parseCron('0 9-17 * * *').periodic).toBe(false);
    expect(parseCron('*/5 2 * * *').periodic).toBe(true);
    expect(parseCron('0 */2 * * *').periodic).toBe(true);
    // Vixie cron would call these fixed (neither field starts with a star); croner counts the step.
    expect(parseCron('0-30/10 2 * * *').periodic).toBe(true);
    expect(parseCron('15 1-5/2 * * *').periodic).toBe(true);
  });

  it.each([
    ['', 'is required: 5 fields'],
    ['* * * *', 'has 4 fields; write 5 fields "minute hour day-of-month month day-of-week"'],
    ['0 * * * * *', 'a seconds field is not supported'],
    ['60 * * * *', 'minute 60 is out of range 0-59'],
    ['* 24 * * *', 'hour 24 is out of range 0-23'],
    ['* * 0 * *', 'day-of-month 0 is out of range 1-31'],
    ['* * * 13 *', 'month 13 is out of range 1-12'],
    ['* * * * 8', 'day-of-week 8 is out of range 0-7'],
    ['*/0 * * * *', 'minute "*/0" is not valid (illegal stepping: 0); write a number 0-59'],
    ['*/x * * * *', 'minute "*/x" is not valid (contains illegal characters)'],
    ['5-2 * * * *', 'minute "5-2" is not valid (From value is larger than to value'],
    ['* * * * FRI-MON', 'day-of-week "FRI-MON" is not valid'],
    ['* * * FOO *', 'month "FOO" is not valid (contains illegal characters); write a number 1-12 (or a name: JAN-DEC)'],
    ['* * * * MON/x', 'day-of-week "MON/x" is not valid'],
    ['* * * MON *', 'month "MON" is not valid'],
    ['1,,2 * * * *', 'minute "1,,2" is not valid'],
    ['1-2-3 * * * *', 'minute "1-2-3" is not valid (illegal range'],
    ['1-60 * * * *', 'minute 60 is out of range 0-59'],
    ['* * 30 2 *', '"* * 30 2 *" would never fire'],
    ['* * 31 4,6 *', '"* * 31 4,6 *" would never fire'],
    ['@reboot', '@reboot is not supported'],
    ['@fortnightly', '"@fortnightly" is not a known shorthand'],
  ])('refuses %j, naming the field and the fix', (expression, message) => {
    const err = (() => {
      try {
        parseCron(expression);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).field).toBe('cron');
    expect((err as InvalidArgumentError).message).toContain(message);
  });

  it('accepts 31 February with a day of week: either day matches', () => {
    expect(fires('0 0 31 2 MON', 'UTC', '2024-02-01T00:00:00Z', '2024-02-29T00:00:00Z')).toEqual(['2024-02-05T00:00:00Z', '2024-02-12T00:00:00Z', '2024-02-19T00:00:00Z', '2024-02-26T00:00:00Z']);
  });
});

describe('parseTimeZone', () => {
  it('returns the canonical name', () => {
    expect(parseTimeZone('europe/berlin')).toBe('Europe/Berlin');
    expect(parseTimeZone('utc')).toBe('UTC');
  });

  it('refuses an unknown zone with an example', () => {
    expect(() => parseTimeZone('Mars/Olympus_Mons')).toThrow('time_zone: "Mars/Olympus_Mons" is not a time zone this server knows; use an IANA time zone such as "Europe/Berlin"');
    expect(() => parseTimeZone('', 'tz')).toThrow('tz: is required');
    expect(() => nextFireAfter('* * * * *', 0, 'Not/AZone')).toThrow(InvalidArgumentError);
  });
});

describe('nextFireAfter', () => {
  it('finds the next fire strictly after the given instant', () => {
    expect(iso(nextFireAfter('*/5 * * * *', at('2024-05-01T10:03:00Z'), 'UTC'))).toBe('2024-05-01T10:05:00Z');
    expect(iso(nextFireAfter('*/5 * * * *', at('2024-05-01T10:05:00Z'), 'UTC'))).toBe('2024-05-01T10:10:00Z');
    expect(iso(nextFireAfter('*/5 * * * *', at('2024-05-01T10:04:59.999Z'), 'UTC'))).toBe('2024-05-01T10:05:00Z');
    expect(iso(nextFireAfter('0 9 * * MON-FRI', at('2024-05-03T09:00:00Z'), 'UTC'))).toBe('2024-05-06T09:00:00Z');
    expect(iso(nextFireAfter('@monthly', at('2024-12-15T00:00:00Z'), 'UTC'))).toBe('2025-01-01T00:00:00Z');
    expect(iso(nextFireAfter('@yearly', at('2024-01-01T00:00:00Z'), 'UTC'))).toBe('2025-01-01T00:00:00Z');
    expect(iso(nextFireAfter('0 12 29 2 *', at('2024-03-01T00:00:00Z'), 'UTC'))).toBe('2028-02-29T12:00:00Z');
  });

  it('fires when either restricted day field matches (Vixie cron), and when both match otherwise', () => {
    expect(fires('0 0 13 * FRI', 'UTC', '2024-09-01T00:00:00Z', '2024-09-30T00:00:00Z')).toEqual([
      '2024-09-06T00:00:00Z',
      '2024-09-13T00:00:00Z',
      '2024-09-20T00:00:00Z',
      '2024-09-27T00:00:00Z',
    ]);
    expect(fires('0 0 13 * SUN', 'UTC', '2024-10-01T00:00:00Z', '2024-10-20T00:00:00Z')).toEqual(['2024-10-06T00:00:00Z', '2024-10-13T00:00:00Z', '2024-10-20T00:00:00Z']);
    // "*/2" starts with a star: both fields must match (odd days that are Fridays).
    expect(fires('0 0 */2 * FRI', 'UTC', '2024-09-01T00:00:00Z', '2024-09-30T00:00:00Z')).toEqual(['2024-09-13T00:00:00Z', '2024-09-27T00:00:00Z']);
  });

  it('reads the expression in the time zone', () => {
    expect(iso(nextFireAfter('0 9 * * *', at('2024-01-10T00:00:00Z'), 'Europe/Berlin'))).toBe('2024-01-10T08:00:00Z');
    expect(iso(nextFireAfter('0 9 * * *', at('2024-07-10T00:00:00Z'), 'Europe/Berlin'))).toBe('2024-07-10T07:00:00Z');
    expect(iso(nextFireAfter('@hourly', at('2024-09-01T00:00:00Z'), 'Asia/Kolkata'))).toBe('2024-09-01T00:30:00Z');
    expect(iso(nextFireAfter('0 0 * * *', at('2024-09-01T00:00:00Z'), 'Pacific/Chatham'))).toBe('2024-09-01T11:15:00Z');
  });
});

describe('daylight saving time, with a fake clock ticking every minute', () => {
  it('America/New_York spring-forward: a skipped fixed time fires once at 03:00 EDT', () => {
    // 2024-03-10 02:00 EST (07:00Z) becomes 03:00 EDT.
    expect(runClock('30 2 * * *', 'America/New_York', '2024-03-09T00:00:00Z', '2024-03-12T00:00:00Z')).toEqual([
      '2024-03-09T07:30:00Z',
      '2024-03-10T07:00:00Z',
      '2024-03-11T06:30:00Z',
    ]);
    // Several skipped times, and 03:00 itself: one fire at the transition.
    expect(runClock('0,30 2,3 * * *', 'America/New_York', '2024-03-10T05:00:00Z', '2024-03-10T09:00:00Z')).toEqual([
      '2024-03-10T07:00:00Z',
      '2024-03-10T07:30:00Z',
    ]);
  });

  it('America/New_York spring-forward: a periodic expression keeps its real-time period', () => {
    expect(runClock('*/30 * * * *', 'America/New_York', '2024-03-10T05:45:00Z', '2024-03-10T08:00:00Z')).toEqual([
      '2024-03-10T06:00:00Z',
      '2024-03-10T06:30:00Z',
      '2024-03-10T07:00:00Z',
      '2024-03-10T07:30:00Z',
      '2024-03-10T08:00:00Z',
    ]);
  });

  it('America/New_York fall-back: a repeated fixed time fires once, a periodic one through both passes', () => {
    // 2024-11-03 02:00 EDT (06:00Z) becomes 01:00 EST: 01:00-01:59 happens twice.
    expect(runClock('30 1 * * *', 'America/New_York', '2024-11-02T00:00:00Z', '2024-11-05T00:00:00Z')).toEqual([
      '2024-11-02T05:30:00Z',
      '2024-11-03T05:30:00Z',
      '2024-11-04T06:30:00Z',
    ]);
    expect(runClock('*/30 1 * * *', 'America/New_York', '2024-11-03T04:00:00Z', '2024-11-03T08:00:00Z')).toEqual([
      '2024-11-03T05:00:00Z',
      '2024-11-03T05:30:00Z',
      '2024-11-03T06:00:00Z',
      '2024-11-03T06:30:00Z',
    ]);
  });

  it('Europe/Berlin: both transitions', () => {
    // 2024-03-31 02:00 CET (01:00Z) becomes 03:00 CEST.
    expect(runClock('30 2 * * *', 'Europe/Berlin', '2024-03-30T00:00:00Z', '2024-04-02T00:00:00Z')).toEqual([
      '2024-03-30T01:30:00Z',
      '2024-03-31T01:00:00Z',
      '2024-04-01T00:30:00Z',
    ]);
    // 2024-10-27 03:00 CEST (01:00Z) becomes 02:00 CET: 02:00-02:59 happens twice.
    expect(runClock('30 2 * * *', 'Europe/Berlin', '2024-10-26T00:00:00Z', '2024-10-29T00:00:00Z')).toEqual([
      '2024-10-26T00:30:00Z',
      '2024-10-27T00:30:00Z',
      '2024-10-28T01:30:00Z',
    ]);
    expect(runClock('15 * * * *', 'Europe/Berlin', '2024-10-26T23:30:00Z', '2024-10-27T02:30:00Z')).toEqual([
      '2024-10-27T00:15:00Z',
      '2024-10-27T01:15:00Z',
      '2024-10-27T02:15:00Z',
    ]);
  });

  it('half-hour DST (Australia/Lord_Howe) and transitions at midnight (America/Santiago)', () => {
    // 2024-10-06 02:00 +10:30 becomes 02:30 +11.
    expect(fires('15 2 * * *', 'Australia/Lord_Howe', '2024-10-04T00:00:00Z', '2024-10-07T00:00:00Z')).toEqual([
      '2024-10-04T15:45:00Z',
      '2024-10-05T15:30:00Z',
      '2024-10-06T15:15:00Z',
    ]);
    // 2024-09-08 00:00 -04 becomes 01:00 -03: midnight is skipped.
    expect(fires('0 0 * * *', 'America/Santiago', '2024-09-06T12:00:00Z', '2024-09-09T12:00:00Z')).toEqual([
      '2024-09-07T04:00:00Z',
      '2024-09-08T04:00:00Z',
      '2024-09-09T03:00:00Z',
    ]);
    // 2024-04-07 00:00 -03 becomes 2024-04-06 23:00 -04: 23:xx happens twice.
    expect(fires('30 23 * * *', 'America/Santiago', '2024-04-05T12:00:00Z', '2024-04-08T12:00:00Z')).toEqual([
      '2024-04-06T02:30:00Z',
      '2024-04-07T02:30:00Z',
      '2024-04-08T03:30:00Z',
    ]);
  });
});

describe('catching up', () => {
  it('runs only the latest missed fire time, and nothing when it is past the starting deadline', () => {
    const cron = parseCron('*/5 * * * *');
    const next = at('2024-05-01T10:05:00Z');
    expect(dueFire(cron, 'UTC', next, at('2024-05-01T10:04:59Z'))).toBeUndefined();
    expect(dueFire(cron, 'UTC', next, at('2024-05-01T10:05:00Z'))).toEqual({
      fireAtMs: next,
      missedEarlier: false,
      tooLate: false,
      nextFireAtMs: at('2024-05-01T10:10:00Z'),
    });
    // Down for an hour and a bit: one fire, the latest.
    expect(dueFire(cron, 'UTC', next, at('2024-05-01T11:07:00Z'))).toEqual({
      fireAtMs: at('2024-05-01T11:05:00Z'),
      missedEarlier: true,
      tooLate: false,
      nextFireAtMs: at('2024-05-01T11:10:00Z'),
    });
    expect(dueFire(cron, 'UTC', next, at('2024-05-01T11:07:00Z'), MINUTE)?.tooLate).toBe(true);
    expect(dueFire(cron, 'UTC', next, at('2024-05-01T11:07:00Z'), 3 * MINUTE)?.tooLate).toBe(false);
  });

  it('finds the latest fire time of a long outage', () => {
    expect(iso(latestFireAtOrBefore('* * * 1-10 *', at('2024-12-15T10:07:00Z'), 'UTC', at('2020-01-01T00:00:00Z'))!)).toBe('2024-10-31T23:59:00Z');
    expect(iso(latestFireAtOrBefore('0 12 29 2 *', at('2027-12-15T10:07:00Z'), 'Europe/Berlin', at('2020-01-01T00:00:00Z'))!)).toBe('2024-02-29T11:00:00Z');
    expect(iso(latestFireAtOrBefore('*/5 * * * *', at('2024-05-01T11:05:00Z'), 'UTC', at('2024-05-01T10:05:00Z'))!)).toBe('2024-05-01T11:05:00Z');
    expect(latestFireAtOrBefore('0 0 1 1 *', at('2024-12-15T10:07:00Z'), 'UTC', at('2024-01-01T00:00:01Z'))).toBeUndefined();
  });

  it('names each fire by schedule and fire time', () => {
    expect(fireRequestId('0b7c2a50-0000-4000-8000-000000000000', at('2024-05-01T10:05:00Z'))).toBe('schedule:0b7c2a50-0000-4000-8000-000000000000:1714557900000');
  });
});

// ---- properties -------------------------------------------------------------

const ZONES = ['UTC', 'America/New_York', 'Europe/Berlin', 'Australia/Lord_Howe', 'America/Santiago', 'Asia/Kolkata', 'Pacific/Chatham'] as const;
/** Zones whose offset has not changed since 2000: brute force can use it directly. */
const FIXED_OFFSET: Readonly<Record<string, number>> = { UTC: 0, 'Asia/Kolkata': 5.5 * HOUR };

const value = (min: number, max: number) => fc.integer({ min, max });
function arbField(min: number, max: number, names?: readonly string[]): fc.Arbitrary<string> {
  const single = names ? fc.oneof(value(min, max).map(String), fc.constantFrom(...names)) : value(min, max).map(String);
  return fc.oneof(
    { arbitrary: fc.constant('*'), weight: 3 },
    { arbitrary: value(1, Math.min(15, max - min + 1)).map((step) => `*/${step}`), weight: 2 },
    { arbitrary: single, weight: 2 },
    { arbitrary: fc.tuple(value(min, max), value(min, max)).map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`), weight: 1 },
    { arbitrary: fc.tuple(value(min, max), value(min, max), value(1, 6)).map(([a, b, s]) => `${Math.min(a, b)}-${Math.max(a, b)}/${s}`), weight: 1 },
    { arbitrary: fc.uniqueArray(value(min, max), { minLength: 2, maxLength: 4 }).map((vs) => vs.join(',')), weight: 1 },
  );
}
const arbCron = fc
  .tuple(
    arbField(0, 59),
    arbField(0, 23),
    arbField(1, 31),
    arbField(1, 12, ['JAN', 'MAR', 'JUN', 'OCT', 'NOV']),
    arbField(0, 7, ['SUN', 'MON', 'SAT']),
  )
  .map((fields) => fields.join(' '))
  .filter((expression) => {
    try {
      parseCron(expression);
      return true;
    } catch {
      return false;
    }
  });

/** DST transitions of the zone in 2020-2030: each day's offset compared, then bisected to the second. */
function transitions(zone: string): number[] {
  const out: number[] = [];
  for (let t = at('2020-01-01T00:00:00Z'); t < at('2030-12-31T00:00:00Z'); t += DAY) {
    const before = zoneOffsetAt(zone, t);
    if (zoneOffsetAt(zone, t + DAY) === before) continue;
    let [lo, hi] = [t, t + DAY];
    while (hi - lo > 1000) {
      const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
      if (zoneOffsetAt(zone, mid) === before) lo = mid;
      else hi = mid;
    }
    out.push(hi);
  }
  return out;
}
const TRANSITIONS = ZONES.flatMap((zone) => transitions(zone).map((instant) => ({ zone, instant })));

/** An instant and zone: anywhere in 2000-2040, or within two days of a DST transition. */
const arbMoment = fc.oneof(
  fc.record({ zone: fc.constantFrom(...ZONES), after: fc.integer({ min: at('2000-01-01T00:00:00Z'), max: at('2040-01-01T00:00:00Z') }) }),
  fc.tuple(fc.constantFrom(...TRANSITIONS), fc.integer({ min: -2 * DAY, max: 2 * DAY })).map(([{ zone, instant }, delta]) => ({ zone, after: instant + delta })),
);

/** The instant is one at which the zone's offset changes. */
const isTransition = (zone: string, t: number) => zoneOffsetAt(zone, t - 1000) !== zoneOffsetAt(zone, t);
const wall = (zone: string, t: number) => t + zoneOffsetAt(zone, t);

describe('nextFireAfter properties', () => {
  it('is strictly increasing and monotone, and every fire matches the expression (or is a DST gap fire)', () => {
    fc.assert(
      fc.property(arbCron, arbMoment, value(0, 3 * DAY), (expression, { zone, after }, delta) => {
        const cron = parseCron(expression);
        const first = nextFireAfter(cron, after, zone);
        const second = nextFireAfter(cron, first, zone);
        expect(first).toBeGreaterThan(after);
        expect(second).toBeGreaterThan(first);
        expect(nextFireAfter(cron, after + delta, zone)).toBeGreaterThanOrEqual(first);
        for (const fire of [first, second]) {
          const matches = cronMatchesWallTime(cron, wall(zone, fire));
          // A fixed time skipped by a spring-forward fires at the transition instead.
          if (!matches) expect({ expression, zone, fire: iso(fire), gapFire: !cron.periodic && isTransition(zone, fire) }).toMatchObject({ gapFire: true });
        }
      }),
      { numRuns: 400 },
    );
  });

  it('misses no matching minute (brute force, zones without DST)', () => {
    fc.assert(
      fc.property(arbCron, fc.constantFrom('UTC', 'Asia/Kolkata'), fc.integer({ min: at('2000-01-01T00:00:00Z'), max: at('2040-01-01T00:00:00Z') }), (expression, zone, after) => {
        const cron = parseCron(expression);
        const next = nextFireAfter(cron, after, zone);
        const offset = FIXED_OFFSET[zone]!;
        const end = Math.min(next, after + 2 * DAY);
        for (let t = Math.floor(after / MINUTE) * MINUTE + MINUTE; t < end; t += MINUTE) {
          if (cronMatchesWallTime(cron, t + offset)) throw new Error(`${expression} in ${zone} after ${iso(after)}: ${iso(t)} matches but the next fire is ${iso(next)}`);
        }
        if (next <= after + 2 * DAY) expect(cronMatchesWallTime(cron, next + offset)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('around DST transitions skips a matching minute only for the second pass of a fixed time', () => {
    fc.assert(
      // Within three hours of the transition, on the minute or between minutes.
      fc.property(arbCron, fc.constantFrom(...TRANSITIONS), fc.integer({ min: -3 * 60, max: 3 * 60 }), fc.constantFrom(0, 1, 30_000), (expression, { zone, instant }, minutes, ms) => {
        const cron = parseCron(expression);
        const after = instant + minutes * MINUTE + ms;
        const next = nextFireAfter(cron, after, zone);
        const end = Math.min(next, after + 6 * HOUR);
        for (let t = Math.floor(after / MINUTE) * MINUTE + MINUTE; t < end; t += MINUTE) {
          const local = wall(zone, t);
          if (!cronMatchesWallTime(cron, local)) continue;
          // The same wall time an hour or so earlier, on the earlier offset: its first pass.
          const earlierOffset = zoneOffsetAt(zone, t - 3 * HOUR);
          const firstPass = local - earlierOffset;
          const secondPass = !cron.periodic && firstPass < t && wall(zone, firstPass) === local;
          if (!secondPass) throw new Error(`${expression} in ${zone} after ${iso(after)}: ${iso(t)} matches but the next fire is ${iso(next)}`);
        }
      }),
      { numRuns: 600 },
    );
  });

  it('fires a fixed expression at most once per wall time across transitions', () => {
    fc.assert(
      fc.property(
        arbCron.filter((e) => !parseCron(e).periodic),
        fc.constantFrom(...TRANSITIONS),
        (expression, { zone, instant }) => {
          const cron = parseCron(expression);
          const seen = new Set<number>();
          for (let t = nextFireAfter(cron, instant - DAY, zone); t < instant + DAY; t = nextFireAfter(cron, t, zone)) {
            const local = wall(zone, t);
            expect(seen.has(local)).toBe(false);
            seen.add(local);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
