import type { Duration, Timestamp } from '@autoglm/proto';

/** A protobuf Duration in seconds (fractional). */
export function durationSeconds(duration: Duration): number {
  return duration.seconds + duration.nanos / 1e9;
}

/**
 * Seconds from one Timestamp to another. Subtracts the parts separately: an
 * epoch time as one double keeps only about a quarter of a microsecond, which
 * would show as noise in millisecond latencies.
 */
export function secondsBetween(from: Timestamp, to: Timestamp): number {
  return to.seconds - from.seconds + (to.nanos - from.nanos) / 1e9;
}

/** Milliseconds since the Unix epoch as a protobuf Timestamp. */
export function timestampFromMillis(millis: number): Timestamp {
  const seconds = Math.floor(millis / 1000);
  return { seconds, nanos: Math.round((millis - seconds * 1000) * 1e6) };
}
