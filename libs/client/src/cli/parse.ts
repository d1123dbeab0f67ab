import { toDuration, toTimestamp } from '@autoglm/core';
import { hostPort } from '@autoglm/runtime';
import { InvalidArgumentError } from 'commander';
import { type Duration, PriorityClass, TaskState, type Timestamp } from '@autoglm/proto';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "500ms", "2s", "1.5m", "1h", "7d" → milliseconds. */
export function parseDurationMs(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  const unit = match?.[2];
  if (match?.[1] === undefined || unit === undefined) {
    throw new InvalidArgumentError(`"${text}" is not a duration; use a number and a unit: 500ms, 2s, 5m, 1h, 7d`);
  }
  return Number(match[1]) * (UNIT_MS[unit] ?? 1);
}

/** Milliseconds as a protobuf Duration. */
export function durationFromMs(ms: number): Duration {
  return toDuration(ms);
}

/** "+30s", "+5m" (from `now`) or an ISO 8601 time → a protobuf Timestamp. */
export function parseDeadline(text: string, now: number = Date.now()): Timestamp {
  const ms = text.startsWith('+') ? now + parseDurationMs(text.slice(1)) : Date.parse(text);
  if (Number.isNaN(ms)) {
    throw new InvalidArgumentError(`"${text}" is neither an ISO time (2025-01-31T18:00:00Z) nor a relative one (+30s, +5m)`);
  }
  return toTimestamp(ms);
}

/** A listen address: `host:port`, or `off`. */
export function parseListen(text: string): string {
  if (text === 'off' || hostPort.safeParse(text).success) return text;
  throw new InvalidArgumentError(`"${text}" is not host:port (for example 127.0.0.1:8001) or off`);
}

/** An integer within bounds. */
export function parseInteger(min: number, max: number): (text: string) => number {
  return (text) => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new InvalidArgumentError(`"${text}" is not an integer in ${min}..${max}`);
    }
    return value;
  };
}

/** A finite number ≥ 0. */
export function parseNonNegative(text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) throw new InvalidArgumentError(`"${text}" is not a number ≥ 0`);
  return value;
}

/** A finite number > 0. */
export function parsePositive(text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new InvalidArgumentError(`"${text}" is not a number > 0`);
  return value;
}

/** A bare K, M, G or T is binary, as Slurm's --mem and Docker's --memory read it; KB, MB, GB and TB are decimal. */
const BYTE_UNITS: Record<string, number> = {
  b: 1,
  k: 2 ** 10,
  m: 2 ** 20,
  g: 2 ** 30,
  t: 2 ** 40,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
};

/** A size in bytes: a number with an optional unit, e.g. 512MiB, 4GiB (or 4G), 2GB, 1048576. */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = BYTE_UNITS[(m?.[2] ?? '').toLowerCase() || 'b'];
  if (!m || unit === undefined) throw new InvalidArgumentError(`"${text}" is not a size: a number with an optional unit (B; K, M, G, T or KiB, MiB, GiB, TiB: powers of 1024; KB, MB, GB, TB: of 1000), e.g. 4GiB`);
  return Math.round(Number(m[1]) * unit);
}

/** One of a fixed set of words. */
export function parseChoice<T extends string>(choices: readonly T[]): (text: string) => T {
  return (text) => {
    const choice = choices.find((c) => c === text);
    if (choice === undefined) throw new InvalidArgumentError(`"${text}" is not one of ${choices.join(', ')}`);
    return choice;
  };
}

const CLASSES: Record<string, PriorityClass> = {
  urgent: PriorityClass.URGENT,
  normal: PriorityClass.NORMAL,
  background: PriorityClass.BACKGROUND,
};

/** urgent | normal | background. */
export function parsePriorityClass(text: string): PriorityClass {
  const value = CLASSES[text.toLowerCase()];
  if (value === undefined) throw new InvalidArgumentError(`"${text}" is not a class; use urgent, normal or background`);
  return value;
}

/** A task state by name, any case: "queued", "DEAD_LETTER", "dead-letter". */
export function parseTaskState(text: string): TaskState {
  const name = text.trim().toUpperCase().replace(/-/g, '_');
  const value: unknown = (TaskState as unknown as Record<string, unknown>)[name];
  if (typeof value !== 'number' || value <= 0) {
    const known = Object.keys(TaskState).filter((k) => Number.isNaN(Number(k)) && !['UNSPECIFIED', 'UNRECOGNIZED'].includes(k));
    throw new InvalidArgumentError(`"${text}" is not a task state; known: ${known.join(', ').toLowerCase()}`);
  }
  return value as TaskState;
}

/** For repeatable options: collects every value. */
export function collect<T>(parse: (text: string) => T): (text: string, previous: T[] | undefined) => T[] {
  return (text, previous) => [...(previous ?? []), parse(text)];
}

/** For repeatable options whose values may also be comma-separated. */
export function collectList<T>(parse: (text: string) => T): (text: string, previous: T[] | undefined) => T[] {
  return (text, previous) => [
    ...(previous ?? []),
    ...text
      .split(',')
      .map((part) => part.trim())
      .filter((part) => part !== '')
      .map(parse),
  ];
}

/** "k=v" → [k, v]. */
export function parseLabel(text: string): [string, string] {
  const at = text.indexOf('=');
  if (at <= 0) throw new InvalidArgumentError(`"${text}" is not key=value`);
  return [text.slice(0, at), text.slice(at + 1)];
}

/** A command line given as one string → argv, split on whitespace. */
export function splitCommand(text: string): string[] {
  return text.split(/\s+/).filter((part) => part !== '');
}

/**
 * Task ids from text: one or more per line, whitespace-separated, or JSON lines
 * as `autoglm submit --json` prints them (`{"id": ...}` or `{"task": {"id": ...}}`).
 */
export function idsFromText(text: string): string[] {
  const ids: string[] = [];
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '') continue;
    if (trimmed.startsWith('{')) {
      const id = idOfJson(trimmed);
      if (id !== undefined) ids.push(id);
      continue;
    }
    ids.push(...trimmed.split(/\s+/));
  }
  return ids;
}

function idOfJson(line: string): string | undefined {
  try {
    const value = JSON.parse(line) as { id?: unknown; task?: { id?: unknown } };
    const id = value.id ?? value.task?.id;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}
