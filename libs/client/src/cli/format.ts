import type { Duration, Timestamp } from '@autoglm/proto';

/** Milliseconds of a protobuf Duration. */
export function durationMs(duration: Duration | undefined): number | undefined {
  return duration === undefined ? undefined : duration.seconds * 1000 + duration.nanos / 1e6;
}

/** Milliseconds since the epoch of a protobuf Timestamp. */
export function timestampMs(timestamp: Timestamp | undefined): number | undefined {
  if (timestamp === undefined || (timestamp.seconds === 0 && timestamp.nanos === 0)) return undefined;
  return timestamp.seconds * 1000 + timestamp.nanos / 1e6;
}

/** ISO 8601, or undefined for an unset timestamp. */
export function isoTime(timestamp: Timestamp | undefined): string | undefined {
  const ms = timestampMs(timestamp);
  return ms === undefined ? undefined : new Date(ms).toISOString();
}

/** "850ms", "1.25s", "3m 20s", "2h 5m". */
export function humanDuration(ms: number | undefined): string {
  if (ms === undefined) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s`;
  const totalSeconds = Math.round(ms / 1000);
  if (totalSeconds < 3600) return `${Math.floor(totalSeconds / 60)}m ${totalSeconds % 60}s`;
  return `${Math.floor(totalSeconds / 3600)}h ${Math.floor((totalSeconds % 3600) / 60)}m`;
}

/** Time since a timestamp, for tables: "12s", "5m", "3h", "2d". */
export function age(timestamp: Timestamp | undefined, now: number): string {
  const ms = timestampMs(timestamp);
  if (ms === undefined) return '-';
  const seconds = Math.max(0, Math.round((now - ms) / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

/** Bytes in GiB with one decimal. */
export function gib(bytes: number): string {
  return (bytes / 1024 ** 3).toFixed(1);
}

/** "name  value" lines, the values lined up two spaces after the longest name. */
export function fieldLines(rows: ReadonlyArray<readonly [string, string]>): string[] {
  const width = Math.max(...rows.map(([name]) => name.length));
  return rows.map(([name, value]) => `${name.padEnd(width)}  ${value}`);
}

/** Left-aligned columns separated by two spaces; numbers right-aligned when `numeric` says so. */
export function table(header: string[], rows: string[][], numeric: boolean[] = []): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, column) => {
        const width = widths[column] ?? cell.length;
        return numeric[column] ? cell.padStart(width) : cell.padEnd(width);
      })
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** `text` cut to `max` characters, with an ellipsis when cut. */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}
