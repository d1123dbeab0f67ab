import { InvalidArgumentError } from 'commander';
import { PriorityClass, TaskState } from '@autoglm/proto';
import { durationFromMs, idsFromText, parseBytes, parseDeadline, parseDurationMs, parseLabel, parseListen, parsePriorityClass, parseTaskState, splitCommand } from './parse';

describe('CLI argument parsing', () => {
  it('reads sizes: a bare K, M, G or T is binary (as Slurm and Docker read it), KB to TB decimal', () => {
    expect(parseBytes('4G')).toBe(4 * 2 ** 30);
    expect(parseBytes('4GiB')).toBe(4 * 2 ** 30);
    expect(parseBytes('512m')).toBe(512 * 2 ** 20);
    expect(parseBytes('2GB')).toBe(2e9);
    expect(parseBytes('1048576')).toBe(2 ** 20);
    expect(() => parseBytes('4 gigs')).toThrow(/not a size.*powers of 1024/);
  });

  it('reads durations with a unit', () => {
    expect(parseDurationMs('500ms')).toBe(500);
    expect(parseDurationMs('2s')).toBe(2000);
    expect(parseDurationMs('1.5m')).toBe(90_000);
    expect(parseDurationMs('1h')).toBe(3_600_000);
    expect(() => parseDurationMs('2')).toThrow(InvalidArgumentError);
    expect(() => parseDurationMs('soon')).toThrow(/not a duration/);
    expect(durationFromMs(2500)).toEqual({ seconds: 2, nanos: 500_000_000 });
  });

  it('reads listen addresses: host:port or off', () => {
    expect(parseListen('127.0.0.1:8001')).toBe('127.0.0.1:8001');
    expect(parseListen('[::1]:8001')).toBe('[::1]:8001');
    expect(parseListen('off')).toBe('off');
    expect(() => parseListen('8001')).toThrow('"8001" is not host:port (for example 127.0.0.1:8001) or off');
    expect(() => parseListen('127.0.0.1:70000')).toThrow(InvalidArgumentError);
  });

  it('reads deadlines relative to now or as ISO times', () => {
    const now = Date.parse('2025-01-31T18:00:00.000Z');
    expect(parseDeadline('+30s', now)).toEqual({ seconds: now / 1000 + 30, nanos: 0 });
    expect(parseDeadline('+5m', now)).toEqual({ seconds: now / 1000 + 300, nanos: 0 });
    expect(parseDeadline('2025-01-31T18:00:01.250Z', now)).toEqual({ seconds: now / 1000 + 1, nanos: 250_000_000 });
    expect(() => parseDeadline('tomorrow', now)).toThrow(/neither an ISO time/);
  });

  it('reads classes, states, labels and commands', () => {
    expect(parsePriorityClass('URGENT')).toBe(PriorityClass.URGENT);
    expect(parsePriorityClass('background')).toBe(PriorityClass.BACKGROUND);
    expect(() => parsePriorityClass('high')).toThrow(/urgent, normal or background/);
    expect(parseTaskState('dead-letter')).toBe(TaskState.DEAD_LETTER);
    expect(parseTaskState('queued')).toBe(TaskState.QUEUED);
    expect(() => parseTaskState('unspecified')).toThrow(/known: pending/);
    expect(parseLabel('team=search=x')).toEqual(['team', 'search=x']);
    expect(() => parseLabel('=x')).toThrow(/key=value/);
    expect(splitCommand(' python  train.py --epochs 3 ')).toEqual(['python', 'train.py', '--epochs', '3']);
  });

  it('finds task ids in plain lines and in submit --json lines', () => {
    expect(idsFromText('a b\n\n{"id":"c","state":"QUEUED"}\n{"task":{"id":"d"}}\n{not json\n  e  \n')).toEqual(['a', 'b', 'c', 'd', 'e']);
  });
});
