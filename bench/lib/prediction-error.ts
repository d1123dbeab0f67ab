import { median } from './stats';

/** How far predictions were from the truth: mean |ln(predicted / actual)| and the median ratio. */
export interface PredictionError {
  count: number;
  /** Mean absolute log error: 0.69 is a factor of 2 either way on average. */
  meanAbsLog: number;
  medianRatio: number;
}

/** Predictions made at submission, paired with the truth once known. */
export class PredictionLedger {
  private readonly pairs = new Map<string, Array<[number, number]>>();

  add(measure: string, predicted: number, actual: number): void {
    if (!(predicted > 0 && actual > 0)) return;
    let list = this.pairs.get(measure);
    if (!list) this.pairs.set(measure, (list = []));
    list.push([predicted, actual]);
  }

  summary(): Record<string, PredictionError> {
    const out: Record<string, PredictionError> = {};
    for (const [measure, list] of this.pairs) {
      const logs = list.map(([p, a]) => Math.log(p / a));
      out[measure] = {
        count: list.length,
        meanAbsLog: logs.reduce((s, x) => s + Math.abs(x), 0) / Math.max(1, logs.length),
        medianRatio: Math.exp(median(logs)),
      };
    }
    return out;
  }
}
