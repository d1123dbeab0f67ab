import { DEFAULT_MODEL_CATALOG, InvalidArgumentError, UnavailableError } from '@autoglm/core';
import type { ScaleRecommendation as ScaleRecommendationMessage } from '@autoglm/proto';
import { modelMetricName, type ScaleRecommendation, type ScaleSource } from './keda-scaler';

/** What the adapter reads of the feedback driver: its latest recommendations. */
export interface ScaleAdvice {
  /** `computedAt` is undefined until the first evaluation. */
  recommendations(): { recommendations: readonly ScaleRecommendationMessage[]; computedAt: number | undefined };
}

/** The models the monitor knows without having seen them (a ModelCatalog). */
export interface KnownModels {
  has(name: string): boolean;
  names(): readonly string[];
}

const POOL = 'default';
const POOL_METRIC = 'autoglm-pool-default';
/** How many known names an unknown-model error lists when none is close. */
const LISTED_NAMES = 12;

type Reference = { readonly kind: 'model' | 'pool'; readonly name: string };

/**
 * KEDA's view of the scale advisor: a ScaledObject names `model: <name>`
 * (replicas of that model's inference Deployment) or `pool: default` (the
 * executor agents). A model is known when the catalog has it or the advisor
 * recommends for it (it saw demand for it or a replica of it); a known model
 * without a recommendation has no demand: 0. An unknown one is refused rather
 * than answered 0, which would pin its Deployment at minReplicaCount. Until
 * the first evaluation nothing is answered: a 0 then could scale to zero.
 */
export function adviceScaleSource(advice: ScaleAdvice, catalog: KnownModels = DEFAULT_MODEL_CATALOG): ScaleSource {
  return {
    metricName(metadata) {
      const ref = reference(metadata);
      if (ref.kind === 'pool') return POOL_METRIC;
      checkModel(ref.name, advice.recommendations(), catalog);
      return modelMetricName(ref.name);
    },
    recommend(metadata) {
      const ref = reference(metadata);
      const latest = advice.recommendations();
      if (ref.kind === 'model') checkModel(ref.name, latest, catalog);
      const { recommendations, computedAt } = latest;
      if (computedAt === undefined) throw notYet();
      const desired = recommendations.find((r) => r.kind === ref.kind && r.name === ref.name)?.desired ?? 0;
      return { desired, active: desired > 0 } satisfies ScaleRecommendation;
    },
  };
}

function reference(metadata: Readonly<Record<string, string>>): Reference {
  const { model, pool } = metadata;
  if (model) return { kind: 'model', name: model };
  if (pool) {
    if (pool !== POOL) throw new InvalidArgumentError('scalerMetadata.pool', `pool "${pool}" is not known; the monitor recommends agents for pool "${POOL}"`);
    return { kind: 'pool', name: pool };
  }
  throw new InvalidArgumentError('scalerMetadata', `the trigger metadata names neither "model" nor "pool"; set model: <model name> or pool: ${POOL}`);
}

/** Throws unless `model` is known; while nothing is computed yet an uncatalogued name may still turn out known. */
function checkModel(model: string, latest: ReturnType<ScaleAdvice['recommendations']>, catalog: KnownModels): void {
  if (catalog.has(model)) return;
  const { recommendations, computedAt } = latest;
  const seen = recommendations.filter((r) => r.kind === 'model').map((r) => r.name);
  if (seen.includes(model)) return;
  if (computedAt === undefined) throw notYet();
  // The fleet's own names first: those are the ones a ScaledObject most likely meant.
  throw unknownModel(model, [...new Set([...seen, ...catalog.names()])]);
}

function notYet(): UnavailableError {
  return new UnavailableError('no recommendation computed yet; retry (the monitor computes its first within one evaluation interval of starting)');
}

function unknownModel(model: string, known: readonly string[]): InvalidArgumentError {
  const close = closeMatches(model, known);
  const hint =
    close.length > 0
      ? `did you mean ${close.map((n) => `"${n}"`).join(' or ')}? Names are compared exactly, case included`
      : `known: ${known.slice(0, LISTED_NAMES).join(', ')}${known.length > LISTED_NAMES ? ', …' : ''}`;
  return new InvalidArgumentError(
    'scalerMetadata.model',
    `model "${model}" is not one the monitor knows (not in its catalog, and no demand for it or replica of it seen); ${hint}`,
  );
}

/**
 * Known names a slip away from `model`: the same but for case, else within a
 * couple of edits ("llama-3-8b" for "llama-3.1-8b"). Short names get no
 * edit-distance matches, or every short name would be one.
 */
export function closeMatches(model: string, known: readonly string[]): string[] {
  const wanted = model.toLowerCase();
  const sameButCase = known.filter((n) => n.toLowerCase() === wanted);
  if (sameButCase.length > 0) return sameButCase;
  const maxEdits = Math.min(2, Math.floor(wanted.length / 4));
  return known.filter((n) => editDistance(n.toLowerCase(), wanted) <= maxEdits);
}

/** Levenshtein distance, one row at a time. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row.push(Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    previous = row;
  }
  return previous[b.length]!;
}
