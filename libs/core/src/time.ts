import type { Duration, Timestamp } from '@autoglm/proto';

/** A source of the current time in epoch milliseconds; injected so tests can drive time. */
export type Clock = () => number;

/** The system clock. */
export const systemClock: Clock = () => Date.now();

/** Epoch milliseconds to a protobuf Timestamp. */
export function toTimestamp(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

/** A protobuf Timestamp to epoch milliseconds. */
export function timestampToMillis(ts: Timestamp): number {
  return ts.seconds * 1000 + ts.nanos / 1e6;
}

/** Milliseconds to a protobuf Duration. */
export function toDuration(ms: number): Duration {
  const sign = ms < 0 ? -1 : 1;
  const abs = Math.abs(ms);
  const seconds = Math.floor(abs / 1000);
  return { seconds: sign * seconds, nanos: sign * Math.round((abs - seconds * 1000) * 1e6) };
}

/** A protobuf Duration to milliseconds. */
export function durationToMillis(d: Duration): number {
  return d.seconds * 1000 + d.nanos / 1e6;
}
