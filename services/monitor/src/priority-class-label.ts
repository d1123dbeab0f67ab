import { PriorityClass } from '@autoglm/proto';

/** The label value a priority class is reported under. */
export type PriorityClassLabel = 'urgent' | 'normal' | 'background';

/** Every class label, most urgent first: the order tables and series are listed in. */
export const PRIORITY_CLASS_LABELS: readonly PriorityClassLabel[] = ['urgent', 'normal', 'background'];

/**
 * The label value for a task's class. UNSPECIFIED is reported as "normal"
 * because that is how decision orders it; an unrecognised value (a newer peer)
 * is reported as "normal" too rather than minting a new label value.
 */
export function priorityClassLabel(priorityClass: PriorityClass | undefined): PriorityClassLabel {
  switch (priorityClass) {
    case PriorityClass.URGENT:
      return 'urgent';
    case PriorityClass.BACKGROUND:
      return 'background';
    default:
      return 'normal';
  }
}
