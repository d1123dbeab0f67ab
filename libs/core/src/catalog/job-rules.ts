import type { BatchPayload } from '@autoglm/proto';
import { durationToMillis } from '../time';

/**
 * Rules a batch job's process is run under, shared by the parser (which
 * refuses a submission that breaks them) and the command backend (which
 * enforces them again, whoever enqueued the job).
 */

/**
 * Variables a job may not set: they change which program runs (PATH), what
 * it loads into itself (LD_PRELOAD and the rest of LD_*, DYLD_*, GCONV_PATH,
 * NODE_OPTIONS, PERL5OPT, ...) or what a shell does before the command
 * (BASH_ENV, ENV, IFS), so an allow-listed program could be made to run
 * something else. The agent sets PATH itself; AUTOGLM_* and
 * CUDA_VISIBLE_DEVICES are the agent's own.
 */
const FORBIDDEN_ENV = new Set([
  'PATH',
  'IFS',
  'ENV',
  'BASH_ENV',
  'SHELLOPTS',
  'BASHOPTS',
  'PS4',
  'GCONV_PATH',
  'NODE_OPTIONS',
  'NODE_PATH',
  'PYTHONSTARTUP',
  'PYTHONINSPECT',
  'PERL5OPT',
  'PERL5LIB',
  'PERLLIB',
  'RUBYOPT',
  'RUBYLIB',
  'JAVA_TOOL_OPTIONS',
  '_JAVA_OPTIONS',
  'CUDA_VISIBLE_DEVICES',
]);
const FORBIDDEN_ENV_PREFIXES = ['LD_', 'DYLD_', 'MALLOC_', 'AUTOGLM_'];

/** Why a job may not set this variable, or undefined when it may. */
export function forbiddenJobEnv(name: string): string | undefined {
  if (name.startsWith(SIM_ENV_PREFIX)) return undefined;
  if (FORBIDDEN_ENV.has(name) || FORBIDDEN_ENV_PREFIXES.some((p) => name.startsWith(p))) {
    return name === 'CUDA_VISIBLE_DEVICES' || name.startsWith('AUTOGLM_')
      ? 'is set by the agent (the job runs on the GPUs it was given)'
      : 'may not be set by a job: it changes which program runs or what it loads';
  }
  return undefined;
}

/** The simulator's own knob (AUTOGLM_SIM_FAIL): a test aid only the sim backend reads, so a job may set it. */
const SIM_ENV_PREFIX = 'AUTOGLM_SIM_';

/** Unset time_limit: the job is killed after twice its expected duration plus this. */
export const TIME_LIMIT_SLACK_MS = 60_000;

/**
 * How long the command backend lets a job run before it kills it: its
 * time_limit, else twice its expected duration plus a minute (estimates are
 * often optimistic), else no limit (undefined).
 */
export function jobTimeLimitMs(batch: BatchPayload): number | undefined {
  if (batch.timeLimit) {
    const ms = durationToMillis(batch.timeLimit);
    if (ms > 0) return ms;
  }
  if (batch.expectedDuration) {
    const ms = durationToMillis(batch.expectedDuration);
    if (ms > 0) return 2 * ms + TIME_LIMIT_SLACK_MS;
  }
  return undefined;
}
