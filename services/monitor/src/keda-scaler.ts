import { setTimeout as delay } from 'node:timers/promises';
import { DomainError, InvalidArgumentError } from '@autoglm/core';
import type { ExternalScalerService, ScaledObjectRef } from '@autoglm/proto';
import type { ServiceHandlers } from '@autoglm/runtime';

/** The scale advisor's answer for one ScaledObject. */
export interface ScaleRecommendation {
  /** Replicas wanted: a whole number, 0 or more. */
  desired: number;
  /** Whether the workload should run at all (normally desired > 0). */
  active: boolean;
}

/**
 * What the scaler asks of the monitor's scale advisor, per ScaledObject whose
 * scaler metadata is `metadata` (e.g. {model: "llama-3.1-8b"} or {pool:
 * "default"}). Both throw an InvalidArgumentError naming the metadata key on
 * a bad reference, and an UnavailableError while they cannot answer yet. Any
 * other error is taken for a bug: KEDA sees INTERNAL, the log has the rest.
 */
export interface ScaleSource {
  /**
   * The HPA metric's name (KEDA prefixes it with the trigger's index). Apart
   * from recommend, so that KEDA can build its HPA while the advisor has not
   * yet computed a recommendation.
   */
  metricName(metadata: Readonly<Record<string, string>>): string;
  /** The recommendation for the ScaledObject. */
  recommend(metadata: Readonly<Record<string, string>>): ScaleRecommendation;
}

export interface KedaScalerOptions {
  /** How often StreamIsActive asks the source again for a change, in ms. @default 1000 */
  pollMs?: number;
}

/**
 * KEDA's externalscaler.ExternalScaler over a ScaleSource. The HPA KEDA builds
 * uses AverageValue (replicas = ceil(metric / target)), so a target of 1 and a
 * metric equal to the desired replicas make the HPA land on exactly that count.
 */
export function kedaScalerHandlers(source: ScaleSource, options: KedaScalerOptions = {}): ServiceHandlers<typeof ExternalScalerService> {
  const pollMs = options.pollMs ?? 1000;
  return {
    isActive: async (ref) => ({ result: recommend(source, ref).active }),

    streamIsActive: async (ref, sink, ctx) => {
      let sent: boolean | undefined;
      // Ends when the client cancels or the server shuts down: both abort
      // ctx.signal, which rejects the pending delay.
      for (;;) {
        const { active } = recommend(source, ref);
        if (active !== sent) {
          await sink.write({ result: active });
          sent = active;
        }
        await delay(pollMs, undefined, { signal: ctx.signal });
      }
    },

    getMetricSpec: async (ref) => {
      const metricName = metricNameOf(source, ref);
      return { metricSpecs: [{ metricName, targetSize: 1, targetSizeFloat: 1 }] };
    },

    // The request's metricName is not checked: KEDA asks for the name
    // GetMetricSpec gave (less its own prefix) and labels the answer itself.
    getMetrics: async (req) => {
      const metricName = metricNameOf(source, req.scaledObjectRef);
      const { desired } = recommend(source, req.scaledObjectRef);
      return { metricValues: [{ metricName, metricValue: desired, metricValueFloat: desired }] };
    },
  };
}

/**
 * The HPA metric's name for a model: Kubernetes wants a lower-case name of
 * letters, digits and dashes, and model names may have others ("Qwen/Qwen2.5-7B").
 */
export function modelMetricName(model: string): string {
  return `autoglm-model-${model.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`;
}

function recommend(source: ScaleSource, ref: ScaledObjectRef | undefined): ScaleRecommendation {
  const object = required(ref);
  const recommendation = ask(object, (metadata) => source.recommend(metadata));
  const { desired } = recommendation;
  if (!Number.isSafeInteger(desired) || desired < 0) throw new Error(`scale source recommended ${desired} replicas for ${object.namespace}/${object.name}; expected a whole number >= 0`);
  return recommendation;
}

function metricNameOf(source: ScaleSource, ref: ScaledObjectRef | undefined): string {
  return ask(required(ref), (metadata) => source.metricName(metadata));
}

function required(ref: ScaledObjectRef | undefined): ScaledObjectRef {
  if (!ref) throw new InvalidArgumentError('scaledObjectRef', 'is required');
  return ref;
}

/** Asks the source about `ref`, naming the ScaledObject in a refusal. */
function ask<T>(ref: ScaledObjectRef, question: (metadata: Readonly<Record<string, string>>) => T): T {
  try {
    return question(ref.scalerMetadata);
  } catch (err) {
    // A DomainError is the source refusing the reference, with its code; it
    // gains the ScaledObject's name. Anything else (a TypeError, a plain
    // Error, ...) is a bug, left to toStatus to log and hide as INTERNAL.
    if (err instanceof DomainError) throw new DomainError(err.code, `${err.message} (ScaledObject ${ref.namespace}/${ref.name})`, { cause: err });
    throw err;
  }
}
