// Replays the Azure LLM inference trace 2023 (conversation service), from the
// Azure Public Dataset, published with: Pratyush Patel, Esha Choukse, Chaojie
// Zhang, Aashaka Shah, Íñigo Goiri, Saeed Maleki, Ricardo Bianchini,
// "Splitwise: Efficient generative LLM inference using phase splitting", ISCA
// 2024. License: CC BY 4.0 (see ../shared/traces/azure-llm-2023/README.md).
import * as path from 'node:path';
import { DEFAULT_FEEDBACK_CONFIG, DEFAULT_SLOS, describeSlo, type FeedbackConfig } from '@autoglm/core';
import { AZURE_TRACE_ATTRIBUTION, DEFAULT_AZURE_CONV_TRACE, loadAzureTrace } from './lib/azure-trace';
import { AFTER_MS, HOLD_MS, measure, REVERSAL_MS, watchedOf, type RunMeasures } from './lib/loop-measures';
import { simulateLoop } from './lib/loop-sim';
import { buildLoopWorkload, DEFAULT_SHOCKS, describeLoopWorkload, FAILING, LOOP_TENANTS, loopModels, SCENARIOS, WARMUP_MS, type ScenarioName, type ShockSettings } from './lib/loop-workload';
import { flag, printTable, writeResult } from './lib/report';
import type { FleetShape } from './lib/quality-workload';

const GiB = 2 ** 30;
const TICK_MS = 10_000;
const MAX_RETRIES = 3;
/** Targets: recovered within this long of the first miss; the failing agent quarantined before this many failures. */
const RECOVER_TARGET_S = 120;
const FAILURE_TARGET = 20;

/**
 * The loop on, off (evaluated, nothing applied), and on without the
 * quarantine's latency check (slowRatio ∞), which tells what the latency-based
 * quarantines cost.
 */
const VARIANTS = ['on', 'off', 'on, no latency quarantine'] as const;
type Variant = (typeof VARIANTS)[number];
const NO_LATENCY_QUARANTINE: FeedbackConfig = { ...DEFAULT_FEEDBACK_CONFIG, quarantine: { ...DEFAULT_FEEDBACK_CONFIG.quarantine, slowRatio: Infinity } };

interface Run {
  scenario: ScenarioName;
  seed: number;
  loop: Variant;
  measures: RunMeasures;
  wallMs: number;
  changes: { boosts: unknown[]; warm: unknown[]; verdicts: unknown[] };
}

/**
 * `npm run bench -- loop [--seeds 3] [--seed 1] [--nodes 6] [--gpus-per-node 8]
 * [--engine-start-s 20] [--fail-rate 0.3] [--flood-load 0.6] [--popular-factor 5] [--scenarios burst,popularity,failing-agent] [--trace PATH]`:
 * the monitor's feedback loop (libs/core FeedbackLoop) closed over the
 * simulated fleet. Three shocks, each its own scenario on the same base
 * workload; for every seed the loop on and the loop off replay the same
 * arrivals (off: evaluated alike, its changes not applied). Reports, per
 * scenario, the watched SLO's attainment, when its reading was first missed
 * after the shock and how long until it was met again for a minute, cold
 * starts, failed attempts, and every change the loop made, with a check
 * that no boost or warm floor reverses within two minutes.
 */
export async function loop(args: string[]): Promise<void> {
  const started = Date.now();
  const seedCount = Number(flag(args, '--seeds') ?? 3);
  const firstSeed = Number(flag(args, '--seed') ?? 1);
  const tracePath = path.resolve(flag(args, '--trace') ?? DEFAULT_AZURE_CONV_TRACE);
  const engineStartMs = Number(flag(args, '--engine-start-s') ?? 20) * 1000;
  const failRate = Number(flag(args, '--fail-rate') ?? FAILING.failureRate);
  const shocks: ShockSettings = { floodLoad: Number(flag(args, '--flood-load') ?? DEFAULT_SHOCKS.floodLoad), popularFactor: Number(flag(args, '--popular-factor') ?? DEFAULT_SHOCKS.popularFactor) };
  const scenarios = (flag(args, '--scenarios')?.split(',') ?? [...SCENARIOS]) as ScenarioName[];
  for (const s of scenarios) if (!SCENARIOS.includes(s)) throw new Error(`--scenarios: ${s} is not one of ${SCENARIOS.join(', ')}`);
  const fleet: FleetShape = { nodes: Number(flag(args, '--nodes') ?? 6), gpusPerNode: Number(flag(args, '--gpus-per-node') ?? 8), slotsPerGpu: 4, gpuMemoryBytes: 80 * GiB, memoryFraction: 0.9 };
  if (!(seedCount >= 1) || !(failRate > 0 && failRate <= 1) || !(engineStartMs >= 0) || !(fleet.nodes >= 2)) throw new Error('--seeds, --fail-rate, --engine-start-s or --nodes out of range');
  const models = loopModels(engineStartMs);
  const seeds = Array.from({ length: seedCount }, (_, i) => firstSeed + i);
  const trace = loadAzureTrace(tracePath);

  console.log(`Trace: ${tracePath}\n  ${AZURE_TRACE_ATTRIBUTION}`);
  for (const line of describeLoopWorkload(models, fleet, trace.length, shocks)) console.log(line);
  const c = DEFAULT_FEEDBACK_CONFIG;
  console.log(
    `Loop: DEFAULT_FEEDBACK_CONFIG, evaluated every ${TICK_MS / 1000} s. Boost ×${c.boost.step} per step up to ×${c.boost.max}, one change per ${c.boost.minIntervalMs / 1000} s, lowered after ${c.boost.relaxAfterMs / 1000} s met; ` +
      `warm floors to the forecast's upper bound over ${c.warm.horizonMs / 1000} s at ${c.warm.targetLoad * 100} % load, ≤ ${c.warm.maxPerModel}/model, ≤ ${c.warm.maxGpuFraction * 100} % of GPUs, held ${c.warm.holdMs / 1000} s; ` +
      `quarantine: a node's last ${c.quarantine.recentAttempts} attempts within ${c.quarantine.windowMs / 1000} s (from ${c.quarantine.minAttempts}), failure rate ≥ ${c.quarantine.minFailureRatio * 100} %, binomial p < ${c.quarantine.significance}, or median decode time per token ${c.quarantine.slowRatio}× the fleet's; probation ${c.quarantine.probationMs / 1000} s (doubling).`,
  );
  console.log('SLOs (DEFAULT_SLOS, one series per tenant):');
  for (const s of DEFAULT_SLOS) console.log(`  ${s.name}: ${describeSlo(s)}`);
  console.log(`Seeds ${seeds.join(', ')}; failing attempts retried up to ${MAX_RETRIES} times.`);

  const runs: Run[] = [];
  for (const scenario of scenarios) {
    for (const seed of seeds) {
      const workload = buildLoopWorkload(trace, scenario, seed, fleet, models, shocks);
      for (const variant of VARIANTS) {
        const t = simulateLoop(workload.work, {
          fleet,
          tenants: LOOP_TENANTS.map(({ name, share }) => ({ name, share })),
          models,
          loopOn: variant !== 'off',
          feedback: variant === 'on, no latency quarantine' ? NO_LATENCY_QUARANTINE : DEFAULT_FEEDBACK_CONFIG,
          failure: scenario === 'failing-agent' ? { nodeId: FAILING.nodeId, fromMs: workload.shockMs, rate: failRate } : undefined,
          sloTtftMs: DEFAULT_SLOS.find((s) => s.name === 'urgent-ttft')!.thresholdSeconds * 1000,
          tickMs: TICK_MS,
          attachMs: WARMUP_MS,
          maxRetries: MAX_RETRIES,
          spanMs: workload.spanMs,
          seed,
        });
        const m = measure(t, scenario, { attachMs: WARMUP_MS, shockMs: workload.shockMs, tickMs: TICK_MS });
        runs.push({ scenario, seed, loop: variant, measures: m, wallMs: t.wallMs, changes: { boosts: t.boosts, warm: t.warm, verdicts: t.verdicts } });
        process.stderr.write(
          `  ${scenario} seed ${seed} loop ${variant}: ${(t.wallMs / 1000).toFixed(1)} s; base load ${(workload.baseLoad.inference * 100).toFixed(0)} % requests + ${(workload.baseLoad.batch * 100).toFixed(0)} % batch; ${t.queuedAtEnd} queued at the end\n`,
        );
      }
    }
  }

  const summary = scenarios.map((scenario) => printScenario(scenario, runs.filter((r) => r.scenario === scenario)));
  const targets = printTargets(scenarios, runs);
  console.log(
    `\nReading: the loop's own SLO reading (its ${DEFAULT_SLOS[0]!.windowMs / 60_000}-min window, judged with ≥ ${DEFAULT_SLOS[0]!.minEvents} events); miss: s after the shock the reading was first missed; recover: s from that miss until met and held ${HOLD_MS / 1000} s ("never" within the run, "–" never missed). ` +
      `1-min: the same on the attainment of the last minute's outcomes (outcomes count when an attempt ends). Attainment: judged events of the watched series, whole run and ${AFTER_MS / 60_000} min after the shock. ` +
      `Changes: decided by the loop (with it off, decided and not applied). Reversals: a boost or floor moved back the other way within ${REVERSAL_MS / 1000} s. Per-seed values are listed seed by seed.`,
  );
  const wallSeconds = (Date.now() - started) / 1000;
  const file = writeResult('loop', {
    attribution: AZURE_TRACE_ATTRIBUTION,
    trace: { path: tracePath, requests: trace.length },
    recipe: describeLoopWorkload(models, fleet, trace.length, shocks),
    options: { seeds, scenarios, fleet, engineStartMs, failRate, shocks, tickMs: TICK_MS, maxRetries: MAX_RETRIES, feedback: DEFAULT_FEEDBACK_CONFIG, slos: DEFAULT_SLOS },
    summary,
    targets,
    runs,
    wallSeconds,
  });
  console.log(`\n${runs.length} runs in ${wallSeconds.toFixed(1)} s. Wrote ${file}`);
}

function printScenario(scenario: ScenarioName, runs: Run[]): Record<string, unknown> {
  const w = watchedOf(scenario);
  const rows = VARIANTS.map((loop) => {
    const ms = runs.filter((r) => r.loop === loop).map((r) => r.measures);
    const row: Record<string, string | number> = {
      loop,
      [`${w.slo.name} % run`]: mean(ms.map((m) => 100 * m.attainmentRun)),
      '% 10 min after': mean(ms.map((m) => 100 * m.attainmentAfter)),
      'miss s': list(ms.map((m) => m.firstMissS)),
      'recover s': list(ms.map((m) => m.recoverS)),
      '1-min miss/recover s': ms.map((m) => `${fmt(m.firstMissShortS)}/${fmt(m.recoverShortS)}`).join(' '),
      'min missed pre/post': `${mean(ms.map((m) => m.minutesMissedBefore)).toFixed(1)}/${mean(ms.map((m) => m.minutesMissed)).toFixed(1)}`,
      'cold starts (after)': `${mean(ms.map((m) => m.coldStarts)).toFixed(0)} (${mean(ms.map((m) => m.coldStartsAfter)).toFixed(0)})`,
      'urgent cold waits (post)': mean(ms.map((m) => m.urgentColdWaitsAfter)),
      failed: mean(ms.map((m) => m.failedAttempts)),
      'boosts (max ×)': `${list(ms.map((m) => m.boostChanges))} (${Math.max(...ms.map((m) => m.maxBoost)).toFixed(2)})`,
      'warm (max)': `${list(ms.map((m) => m.warmChanges))} (${Math.max(...ms.map((m) => m.maxWarm))})`,
      'quarantined (false)': ms.map((m) => `${m.quarantines}(${m.falseQuarantines})`).join(' '),
      reversals: list(ms.map((m) => m.reversals)),
    };
    if (scenario === 'failing-agent') {
      row['failed before q.'] = list(ms.map((m) => m.failedBeforeQuarantine));
      row['q. at s'] = list(ms.map((m) => m.quarantineS));
    }
    return row;
  });
  printTable(`${scenario}: watched ${w.slo.name}${w.tenant ? ` of ${w.tenant}` : ' (every tenant)'}; means over seeds, or seed by seed`, rows);
  return { scenario, watched: { slo: w.slo.name, tenant: w.tenant ?? '*' }, rows };
}

function printTargets(scenarios: ScenarioName[], runs: Run[]): Array<Record<string, string>> {
  const out: Array<Record<string, string>> = [];
  const of = (s: ScenarioName, loop: Variant) => runs.filter((r) => r.scenario === s && r.loop === loop).map((r) => r.measures);
  for (const s of scenarios) {
    const on = of(s, 'on');
    const off = of(s, 'off');
    const within = (m: RunMeasures) => m.recoverS === undefined || (m.recoverS !== null && m.recoverS <= RECOVER_TARGET_S);
    out.push({ scenario: s, target: `loop on: recovered within ${RECOVER_TARGET_S} s of the first miss (SLO reading)`, values: list(on.map((m) => m.recoverS)), result: on.every(within) ? 'met' : 'MISSED' });
    out.push({ scenario: s, target: `loop off: for comparison`, values: list(off.map((m) => m.recoverS)), result: off.every(within) ? 'recovers too' : 'does not' });
    out.push({ scenario: s, target: 'loop on: no boost or floor reversed within 2 min', values: list(on.map((m) => m.reversals)), result: on.every((m) => m.reversals === 0) ? 'met' : 'MISSED' });
    if (s === 'popularity') {
      const waits = (ms: RunMeasures[]) => ms.map((m) => m.urgentColdWaitsAfter);
      const fewer = on.every((m, i) => m.urgentColdWaitsAfter <= off[i]!.urgentColdWaitsAfter);
      out.push({ scenario: s, target: 'loop on: fewer urgent requests wait for a cold start than off (on | off)', values: `${list(waits(on))} | ${list(waits(off))}`, result: fewer ? 'met' : 'MISSED' });
    }
    if (s === 'failing-agent') {
      out.push({ scenario: s, target: `loop on: failing agent quarantined before ${FAILURE_TARGET} failed attempts`, values: list(on.map((m) => m.failedBeforeQuarantine)), result: on.every((m) => m.quarantineS !== undefined && m.failedBeforeQuarantine < FAILURE_TARGET) ? 'met' : 'MISSED' });
      out.push({ scenario: s, target: `loop off: it is not (failed attempts on it)`, values: list(off.map((m) => m.failedBeforeQuarantine)), result: off.every((m) => m.failedBeforeQuarantine >= FAILURE_TARGET) ? 'met' : 'MISSED' });
    }
  }
  printTable('Targets (values seed by seed)', out);
  return out;
}

function mean(xs: number[]): number {
  const ok = xs.filter(Number.isFinite);
  return ok.length === 0 ? NaN : ok.reduce((s, x) => s + x, 0) / ok.length;
}

function fmt(x: number | null | undefined): string {
  if (x === undefined) return '–';
  if (x === null) return 'never';
  return Number.isInteger(x) ? String(x) : x.toFixed(1);
}

function list(xs: Array<number | null | undefined>): string {
  return xs.map(fmt).join(', ');
}
