import { seededRandom } from '../random';

/**
 * Deterministic stand-in text for simulated generation. Each sequence gets its
 * own generator seeded from its id, so a re-run (or a retried attempt with the
 * same id) produces the same words: tests and demos can compare outputs.
 */

const WORDS = [
  'the', 'model', 'schedules', 'a', 'batch', 'of', 'tokens', 'on', 'every', 'GPU',
  'and', 'queue', 'waits', 'for', 'memory', 'to', 'free', 'while', 'prefill', 'runs',
  'decode', 'steps', 'are', 'short', 'cache', 'grows', 'with', 'context', 'so', 'each',
  'request', 'shares', 'one', 'engine', 'fairly', 'under', 'load', 'latency', 'stays', 'low',
  'when', 'placement', 'spreads', 'work', 'across', 'hosts', 'that', 'report', 'their', 'state',
  'time', 'scale', 'makes', 'tests', 'fast', 'yet', 'results', 'remain', 'exact', 'here',
  'data', 'flows', 'through', 'streams',
] as const;

/** 32-bit FNV-1a: a stable, dependency-free hash of the id for seeding. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** Produces one pseudo-word per call; the first has no leading space so the text reads naturally. */
export class PseudoWords {
  private readonly random: () => number;
  private count = 0;

  constructor(seed: string) {
    this.random = seededRandom(fnv1a(seed));
  }

  next(): string {
    const r = this.random();
    const word = WORDS[Math.floor(r * WORDS.length)] as string;
    return this.count++ === 0 ? word : ` ${word}`;
  }
}
