import { crc32 } from 'node:zlib';
import { InvalidArgumentError } from '../errors';
import { FACTORS, type FactorName, type Weights } from './policy';

/** Factors a variant may change: per-task ones (age and fair share stay fleet-wide; see PolicyQueue.setVariants). */
const VARIANT_FACTORS: readonly FactorName[] = FACTORS.filter((f) => f !== 'age' && f !== 'fairshare');

export interface PolicyVariant {
  name: string;
  /** Percent of the traffic, 0..100; the variants' percents add up to 100. */
  percent: number;
  /** Weights over the policy's own. */
  weights: Partial<Weights>;
}

/**
 * A traffic split between policy variants: each submission is put in a
 * variant by the CRC32 of its tenant (every task of a tenant in one variant)
 * or of its request id (a tenant's tasks spread over the variants), and the
 * variant is recorded on the task, so results can be compared per variant.
 */
export interface PolicyExperiment {
  name: string;
  splitBy: 'tenant' | 'request_id';
  variants: PolicyVariant[];
}

const NAME = /^[A-Za-z0-9._-]{1,64}$/;

/** Parses AUTOGLM_POLICY_EXPERIMENT's JSON, naming the field at fault. */
export function parseExperiment(text: string): PolicyExperiment | undefined {
  if (text.trim() === '') return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError('experiment', `is not JSON (${(err as Error).message}); e.g. {"name":"fs","splitBy":"tenant","variants":[{"name":"control","percent":50},{"name":"heavy-deadlines","percent":50,"weights":{"deadline":8000}}]}`);
  }
  const o = raw as Partial<Record<keyof PolicyExperiment, unknown>>;
  if (typeof o !== 'object' || o === null) throw new InvalidArgumentError('experiment', 'must be an object with name, splitBy and variants');
  if (typeof o.name !== 'string' || !NAME.test(o.name)) throw new InvalidArgumentError('experiment.name', 'required: 1-64 characters of A-Z a-z 0-9 . _ -');
  const splitBy = o.splitBy ?? 'tenant';
  if (splitBy !== 'tenant' && splitBy !== 'request_id') throw new InvalidArgumentError('experiment.splitBy', `"${String(splitBy)}" is not a split; use "tenant" or "request_id"`);
  if (!Array.isArray(o.variants) || o.variants.length < 2 || o.variants.length > 16) {
    throw new InvalidArgumentError('experiment.variants', 'required: 2 to 16 variants, each {"name", "percent", "weights"}');
  }
  const seen = new Set<string>();
  let total = 0;
  const variants = o.variants.map((v: Partial<Record<keyof PolicyVariant, unknown>>, i): PolicyVariant => {
    const at = `experiment.variants[${i}]`;
    if (typeof v?.name !== 'string' || !NAME.test(v.name)) throw new InvalidArgumentError(`${at}.name`, 'required: 1-64 characters of A-Z a-z 0-9 . _ -');
    if (seen.has(v.name)) throw new InvalidArgumentError(`${at}.name`, `"${v.name}" names another variant too; names must be unique`);
    seen.add(v.name);
    if (typeof v.percent !== 'number' || !Number.isInteger(v.percent) || v.percent < 0 || v.percent > 100) {
      throw new InvalidArgumentError(`${at}.percent`, 'required: a whole percent of the traffic, 0..100');
    }
    total += v.percent;
    const weights: Partial<Weights> = {};
    for (const [factor, w] of Object.entries((v.weights ?? {}) as Record<string, unknown>)) {
      if (!VARIANT_FACTORS.includes(factor as FactorName)) {
        throw new InvalidArgumentError(
          `${at}.weights.${factor}`,
          factor === 'age' || factor === 'fairshare'
            ? `${factor} is fleet-wide and cannot differ by variant (the age bound and tenants' fair share hold for every task); vary ${VARIANT_FACTORS.join(', ')}`
            : `unknown factor; variants may set ${VARIANT_FACTORS.join(', ')}`,
        );
      }
      if (typeof w !== 'number' || !Number.isFinite(w) || w < 0 || w > 100_000) throw new InvalidArgumentError(`${at}.weights.${factor}`, 'must be a weight between 0 and 100000');
      weights[factor as FactorName] = w;
    }
    return { name: v.name, percent: v.percent, weights };
  });
  if (total !== 100) throw new InvalidArgumentError('experiment.variants', `percents add up to ${total}; make them add up to 100`);
  return { name: o.name, splitBy, variants };
}

/**
 * The variant (index) of a submission: CRC32 of its tenant or request id
 * (the task id when it has none), mod 100, against the variants' cumulative
 * percents. Stable: the same key always lands in the same variant.
 */
export function variantOf(experiment: PolicyExperiment, tenant: string, requestId: string, taskId: string): number {
  const key = experiment.splitBy === 'tenant' ? tenant : requestId || taskId;
  // The experiment's name salts the hash: two experiments split the same keys independently.
  const bucket = crc32(`${experiment.name}\u0000${key}`) % 100;
  let upTo = 0;
  for (let i = 0; i < experiment.variants.length; i++) {
    upTo += experiment.variants[i]!.percent;
    if (bucket < upTo) return i;
  }
  return experiment.variants.length - 1;
}
