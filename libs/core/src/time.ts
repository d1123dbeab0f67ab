import type { Duration, Timestamp } from '@autoglm/proto';

/** A source of the current time in epoch milliseconds; injected so tests can drive time. */
export type Clock = () => number;

/** The system clock. */
export const systemClock: Clock = () => Date.now();

/** Epoch milliseconds to a protobuf Timestamp. */
export function toTimestamp(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.round((ms - seconds * 1000) * 1e6);
  // Rounding can reach a whole second: carry it, as Timestamp wants nanos below 1e9.
  return nanos >= 1e9 ? { seconds: seconds + 1, nanos: nanos - 1e9 } : { seconds, nanos };
}

/** A protobuf Timestamp to epoch milliseconds. */
export function timestampToMillis(ts: Timestamp): number {
  return ts.seconds * 1000 + ts.nanos / 1e6;
}

/** Milliseconds to a protobuf Duration. */
export function toDuration(ms: number): Duration {
  const sign = ms < 0 ? -1 : 1;
  const abs = Math.abs(ms);
  let seconds = Math.floor(abs / 1000);
  let nanos = Math.round((abs - seconds * 1000) * 1e6);
  if (nanos >= 1e9) {
    seconds += 1;
    nanos -= 1e9;
  }
  return { seconds: sign * seconds, nanos: sign * nanos };
}

/** A protobuf Duration to milliseconds. */
export function durationToMillis(d: Duration): number {
  return d.seconds * 1000 + d.nanos / 1e6;
}
