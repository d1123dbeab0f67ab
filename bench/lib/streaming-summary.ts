import { median } from './streaming-measures';
import type { RoundRecord, StreamPath } from './streaming-rounds';

/** The targets, at 1,000 streams. */
export const TARGETS = { streams: 1000, extraTtftP99Ms: 2, extraGapP99Ms: 1 } as const;

/** One door at one concurrency: both paths' figures and what the mesh adds. */
export interface DoorSummary {
  streams: number;
  door: 'grpc' | 'openai';
  direct: PathFigures;
  mesh: PathFigures;
  /** Through the mesh minus direct, paired by round, median over rounds. */
  extra: { ttftP50: number; ttftP99: number; gapP50: number; gapP99: number };
  /** Cores the parser keeps busy per 1,000 tokens/s delivered: its CPU seconds in the window per token, times 1,000. */
  parserCoresPer1kTokensPerSecond: number;
  failed: number;
}

/** Medians over rounds of one path's percentiles. */
export interface PathFigures {
  ttftP50: number;
  ttftP99: number;
  gapP50: number;
  gapP99: number;
  tokensPerSecond: number;
}

function figures(rs: readonly RoundRecord[]): PathFigures {
  return {
    ttftP50: median(rs.map((r) => r.ttftMs.p50)),
    ttftP99: median(rs.map((r) => r.ttftMs.p99)),
    gapP50: median(rs.map((r) => r.gapMs.p50)),
    gapP99: median(rs.map((r) => r.gapMs.p99)),
    tokensPerSecond: median(rs.map((r) => r.tokensPerSecond)),
  };
}

export function summarizeDoor(records: readonly RoundRecord[], streams: number, door: 'grpc' | 'openai'): DoorSummary {
  const of = (path: StreamPath) => records.filter((r) => r.streams === streams && r.path === path);
  const mesh = of(door);
  const direct = of('direct');
  const paired = (pick: (r: RoundRecord) => number) =>
    median(mesh.map((m) => {
      const d = direct.find((r) => r.round === m.round);
      return d === undefined ? NaN : pick(m) - pick(d);
    }));
  return {
    streams,
    door,
    direct: figures(direct),
    mesh: figures(mesh),
    extra: { ttftP50: paired((r) => r.ttftMs.p50), ttftP99: paired((r) => r.ttftMs.p99), gapP50: paired((r) => r.gapMs.p50), gapP99: paired((r) => r.gapMs.p99) },
    parserCoresPer1kTokensPerSecond: median(mesh.map((r) => (r.cpuSeconds.parser / r.tokens) * 1000)),
    failed: mesh.reduce((sum, r) => sum + r.failed, 0),
  };
}

/** CPU seconds of the mesh's processes and this one in a round's window. */
export function ourCpuSeconds(r: RoundRecord): number {
  return r.cpuSeconds.parser + r.cpuSeconds.decision + r.cpuSeconds.agents + r.cpuSeconds.monitor + r.cpuSeconds.bench;
}

/** Cores that anything else on the machine kept busy in a round's window (0 when within the two clocks' rounding). */
export function otherCores(r: RoundRecord): number {
  return Math.max(0, (r.cpuSeconds.machine - ourCpuSeconds(r)) / r.seconds);
}

/** Time to accepted, and cores busy per process group: medians over a path's rounds at one concurrency. */
export function whereTheTimeGoes(records: readonly RoundRecord[], streams: number, path: StreamPath): Record<string, string | number> {
  const rs = records.filter((r) => r.streams === streams && r.path === path);
  const cores = (pick: (r: RoundRecord) => number) => median(rs.map((r) => pick(r) / r.seconds));
  return {
    streams,
    path,
    'accept p50/p99 ms': path === 'direct' ? '-' : `${fmt(median(rs.map((r) => r.acceptMs.p50)))}/${fmt(median(rs.map((r) => r.acceptMs.p99)))}`,
    'streams measured': median(rs.map((r) => r.measured)),
    parser: cores((r) => r.cpuSeconds.parser),
    decision: cores((r) => r.cpuSeconds.decision),
    agents: cores((r) => r.cpuSeconds.agents),
    monitor: cores((r) => r.cpuSeconds.monitor),
    'bench (clients, direct sim)': cores((r) => r.cpuSeconds.bench),
    'all of them': cores(ourCpuSeconds),
    'other processes': median(rs.map(otherCores)),
  };
}

/** The targets against the figures at their concurrency. */
export function targetsMet(summary: readonly DoorSummary[]): Array<{ door: string; measure: string; measured: number; targetMs: number; met: boolean }> {
  return summary
    .filter((s) => s.streams === TARGETS.streams)
    .flatMap((s) => [
      { door: s.door, measure: 'extra TTFT p99 ms', measured: s.extra.ttftP99, targetMs: TARGETS.extraTtftP99Ms, met: s.extra.ttftP99 < TARGETS.extraTtftP99Ms },
      { door: s.door, measure: 'extra per-token p99 ms', measured: s.extra.gapP99, targetMs: TARGETS.extraGapP99Ms, met: s.extra.gapP99 < TARGETS.extraGapP99Ms },
    ]);
}

/** Milliseconds with one decimal; '-' for none. */
export function fmt(ms: number): string {
  return Number.isNaN(ms) ? '-' : ms.toFixed(1);
}
