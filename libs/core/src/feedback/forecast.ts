import { InvalidArgumentError } from '../errors';

/**
 * Load prediction: how much work (arrivals, or tokens) a key, a model or a
 * model and tenant, will bring over the next minutes, so replicas can be
 * warmed and scaled before the load is there. Pure: the clock is whatever
 * `atMs`/`nowMs` the caller passes, nothing is random, and the same calls give
 * the same forecasts.
 */

export interface HoltWintersParams {
  /** Level smoothing, 0..1: how fast the forecast follows a change of level. */
  alpha: number;
  /** Trend smoothing, 0..1 (0: no trend). */
  beta: number;
  /** Seasonal smoothing, 0..1 (ignored when seasonLength is 0). */
  gamma: number;
  /** Trend damping 0..1: the trend fades by this factor a step, so a ramp is not extrapolated forever. */
  phi: number;
  /** Intervals per season; 0 = no seasonality. */
  seasonLength: number;
}

/**
 * Additive Holt-Winters with a damped trend (Hyndman's ETS(A,Ad,A) in its
 * smoothing form); seasonless when seasonLength is 0. The first season's
 * values initialise the seasonal indices (their mean the level); until then
 * the forecast is the mean so far.
 */
export class HoltWinters {
  readonly params: Readonly<HoltWintersParams>;
  private level = 0;
  private trend = 0;
  private readonly seasonal: Float64Array;
  /** Observations before the level is set: one, or a whole season. */
  private readonly readyAt: number;
  private count = 0;
  private sum = 0;

  constructor(params: HoltWintersParams) {
    for (const name of ['alpha', 'beta', 'gamma', 'phi'] as const) {
      const v = params[name];
      if (!(v >= 0 && v <= 1)) throw new InvalidArgumentError(name, `must be within 0..1, not ${v}`);
    }
    if (!Number.isInteger(params.seasonLength) || params.seasonLength < 0) {
      throw new InvalidArgumentError('seasonLength', `must be a whole number >= 0, not ${params.seasonLength}`);
    }
    this.params = { ...params };
    this.seasonal = new Float64Array(params.seasonLength);
    this.readyAt = Math.max(1, params.seasonLength);
  }

  /** Values seen so far. */
  get observations(): number {
    return this.count;
  }

  /** Whether the level (and seasonal indices) are initialised; before that, forecasts are the mean so far. */
  get ready(): boolean {
    return this.count >= this.readyAt;
  }

  /** One new interval's value. */
  update(y: number): void {
    const { alpha, beta, gamma, phi, seasonLength: m } = this.params;
    this.count += 1;
    this.sum += y;
    if (this.count <= m) this.seasonal[this.count - 1] = y;
    if (this.count < this.readyAt) return;
    if (this.count === this.readyAt) {
      this.level = this.sum / this.count;
      for (let i = 0; i < m; i++) this.seasonal[i]! -= this.level;
      return;
    }
    const slot = m > 0 ? (this.count - 1) % m : 0;
    const season = m > 0 ? this.seasonal[slot]! : 0;
    const previous = this.level;
    const damped = phi * this.trend;
    this.level = alpha * (y - season) + (1 - alpha) * (previous + damped);
    this.trend = beta * (this.level - previous) + (1 - beta) * damped;
    if (m > 0) this.seasonal[slot] = gamma * (y - previous - damped) + (1 - gamma) * season;
  }

  /** The value expected `stepsAhead` intervals on (1: the next one), never below 0. */
  forecast(stepsAhead: number): number {
    if (!this.ready) return this.count > 0 ? nonNegative(this.sum / this.count) : 0;
    const phi = this.params.phi;
    const dampedSteps = phi === 1 ? stepsAhead : (phi * (1 - phi ** stepsAhead)) / (1 - phi);
    return nonNegative(this.level + dampedSteps * this.trend + this.seasonAt(stepsAhead));
  }

  /** The mean of the next `steps` intervals' values, each forecast clamped at 0. O(steps). */
  forecastMean(steps: number): number {
    if (!this.ready) return this.forecast(1);
    const phi = this.params.phi;
    let total = 0;
    let dampedSteps = 0;
    let power = 1;
    for (let k = 1; k <= steps; k++) {
      power *= phi;
      dampedSteps += power;
      total += nonNegative(this.level + dampedSteps * this.trend + this.seasonAt(k));
    }
    return total / steps;
  }

  /**
   * The standard deviation of the error of `forecastMean(steps)`, in units of
   * the one-step error's, as the model has it: each future surprise also moves
   * the level (by alpha), the trend (alpha·beta, damped) and its season's
   * index (gamma) for the rest of the horizon, so errors add up with the
   * horizon rather than averaging out. O(steps).
   */
  meanErrorScale(steps: number): number {
    const { alpha, beta, gamma, phi, seasonLength: m } = this.params;
    // c_j: how much one surprise moves the forecast j steps after it; C_k = c_1 + ... + c_k.
    let sumSquares = 1;
    let cumulative = 0;
    let dampedSteps = 0;
    let power = 1;
    for (let j = 1; j < steps; j++) {
      power *= phi;
      dampedSteps += power;
      cumulative += alpha * (1 + beta * dampedSteps) + (m > 0 && j % m === 0 ? gamma : 0);
      sumSquares += (1 + cumulative) ** 2;
    }
    return Math.sqrt(sumSquares) / steps;
  }

  private seasonAt(stepsAhead: number): number {
    const m = this.params.seasonLength;
    return m > 0 ? this.seasonal[(this.count + stepsAhead - 1) % m]! : 0;
  }
}

/**
 * max(0, x) without Math: under jest's sandbox a call to the host realm's Math
 * is not inlined and made the fit ~50x slower; in the model's loop it counts.
 */
function nonNegative(x: number): number {
  return x > 0 ? x : 0;
}

/** The parameter values the fit tries, all combinations (with beta 0, phi only once). */
export interface FitGrid {
  alpha: number[];
  beta: number[];
  phi: number[];
  /** Tried only when there is a season. */
  gamma: number[];
}

export const DEFAULT_FIT_GRID: Readonly<FitGrid> = {
  alpha: [0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9],
  beta: [0, 0.05, 0.2],
  phi: [0.9, 0.98],
  gamma: [0, 0.05, 0.2],
};

export interface DemandForecasterOptions {
  /**
   * Length of an interval: demand is counted per interval.
   * @default 10_000
   */
  intervalMs?: number;
  /**
   * Intervals per season; 0 = no seasonality. Each key keeps its season's
   * indices and historyIntervals (default 3 seasons) values, so a day of 10 s
   * intervals (8640) costs ~480 KB a key and 25,920 · 106 model updates a refit:
   * for a daily cycle, use a forecaster with a coarser interval (5 min: 288).
   * @default 0
   */
  seasonLength?: number;
  /**
   * Intervals kept per key to refit its parameters on (two floats each), and the
   * window the bound's spread is measured over; at least max(12, 2·seasonLength).
   * @default max(360, 3·seasonLength): an hour of 10 s intervals
   */
  historyIntervals?: number;
  /**
   * Keys kept at most; a new key beyond them drops the one that recorded
   * nothing for longest.
   * @default 1000
   */
  maxKeys?: number;
  /**
   * A key's parameters are refitted every this many intervals (and at once
   * when its forecasts go off three intervals running).
   * @default 30
   */
  refitIntervals?: number;
  /**
   * The upper bound is the mean plus this many standard deviations of the
   * horizon mean's error.
   * @default 2
   */
  upperZ?: number;
  /** The parameter values tried (a narrower grid is a simpler model: beta [0] has no trend). @default DEFAULT_FIT_GRID */
  grid?: Partial<FitGrid>;
}

export interface DemandForecast {
  /** Expected mean rate (amount per second) over the horizon. */
  ratePerSecond: number;
  /** A conservative bound on that mean rate, for pre-warming and scaling: >= ratePerSecond. */
  upperRatePerSecond: number;
  /** The rate over the last whole interval (0 before one has closed). */
  observedRatePerSecond: number;
}

/** Intervals a key needs (with no season) before its model is fitted; the mean is forecast until then. */
const MIN_FIT_INTERVALS = 12;
/** A forecast this many of its own standard deviations off... */
const CHANGE_SIGMAS = 3;
/** ...on the same side this many intervals running means the series has changed: refit now. */
const CHANGE_INTERVALS = 3;

/**
 * A fixed-capacity buffer of the latest values, oldest first, with their
 * running sum of squares (the residuals' is rebuilt at every refit, so
 * rounding does not pile up).
 */
class Ring {
  private readonly values: Float64Array;
  private start = 0;
  length = 0;
  sumSquares = 0;

  constructor(capacity: number) {
    this.values = new Float64Array(capacity);
  }

  push(x: number): void {
    const capacity = this.values.length;
    if (this.length === capacity) {
      const evicted = this.values[this.start]!;
      this.sumSquares -= evicted * evicted;
      this.values[this.start] = x;
      this.start = (this.start + 1) % capacity;
    } else {
      this.values[(this.start + this.length) % capacity] = x;
      this.length += 1;
    }
    this.sumSquares += x * x;
  }

  at(i: number): number {
    return this.values[(this.start + i) % this.values.length]!;
  }

  clear(): void {
    this.start = 0;
    this.length = 0;
    this.sumSquares = 0;
  }
}

interface KeyState {
  /** Amounts of the last closed intervals. */
  history: Ring;
  /** The live model's one-step errors over the same intervals (where it had a forecast). */
  residuals: Ring;
  /** Undefined until the key has enough history to fit one. */
  model: HoltWinters | undefined;
  /** Amount recorded in the open interval. */
  open: number;
  /** Intervals closed since the last refit. */
  sinceFit: number;
  /** Consecutive large errors, signed: above 0 under-forecasts, below 0 over-forecasts. */
  offRun: number;
  /** The open interval when the key last recorded something (for dropping idle keys). */
  lastRecordInterval: number;
}

/**
 * Demand per key (a model, or a model and tenant) counted per interval and
 * forecast with Holt-Winters, its parameters fitted per key.
 *
 * Fitting: every refitIntervals intervals a key's model is chosen by grid
 * search (DEFAULT_FIT_GRID: 35 parameter sets, 105 with a season), each run
 * over the kept history and scored by its one-step-ahead squared error; the
 * best is replayed once more to become the live model, which is then updated
 * an interval at a time. Ties (a constant series) go to the first grid point.
 * A key refits early when its forecasts go off three intervals running, so a
 * step in demand is followed within a few intervals, not after the next refit.
 *
 * Cost: a refit is (grid + 1) · historyIntervals model updates (36 · 360 ≈ 13k
 * by default, about 0.15 ms); amortised over refitIntervals, ~5 µs a key and
 * interval measured, ~36 µs with a season of 360. Keys' refits are spread
 * over the refit cycle, so one interval's close refits about
 * keys / refitIntervals of them (1000 keys: ~33, ~5 ms), not all at once; an
 * all-zero history is not searched.
 * Memory: (2 · historyIntervals + seasonLength) floats a key (~5.8 KB by
 * default), at most maxKeys keys. A forecast is O(horizon intervals).
 *
 * The upper bound: mean + upperZ · σ · meanErrorScale, with σ the RMS of the
 * live model's one-step errors over the kept history: how far off the model
 * has been lately, widened to the horizon as the model propagates errors.
 * Before a key's first fit, the mean and spread of what it has seen.
 *
 * Time: `advance(nowMs)` closes every whole interval before nowMs (empty ones
 * count as 0), for all keys; record and forecast advance first. A record for a
 * closed interval is counted in the open one. A gap of more than
 * historyIntervals empty intervals resets a key to all zeros in one step, so a
 * long gap costs at most one refit.
 */
export class DemandForecaster {
  readonly intervalMs: number;
  readonly seasonLength: number;
  readonly historyIntervals: number;
  readonly maxKeys: number;
  readonly refitIntervals: number;
  /** First fits so far, to spread keys' refit cycles. */
  private fits = 0;
  readonly upperZ: number;
  private readonly candidates: HoltWintersParams[];
  private readonly minFit: number;
  private readonly states = new Map<string, KeyState>();
  /** Absolute index (atMs / intervalMs) of the open interval; undefined before the first call. */
  private openInterval: number | undefined;

  constructor(options: DemandForecasterOptions = {}) {
    this.intervalMs = options.intervalMs ?? 10_000;
    this.seasonLength = options.seasonLength ?? 0;
    this.historyIntervals = options.historyIntervals ?? Math.max(360, 3 * this.seasonLength);
    this.maxKeys = options.maxKeys ?? 1000;
    this.refitIntervals = options.refitIntervals ?? 30;
    this.upperZ = options.upperZ ?? 2;
    this.minFit = Math.max(MIN_FIT_INTERVALS, 2 * this.seasonLength);
    if (!(this.intervalMs > 0) || !Number.isFinite(this.intervalMs)) throw new InvalidArgumentError('intervalMs', 'must be a positive number');
    if (!Number.isInteger(this.seasonLength) || this.seasonLength < 0) throw new InvalidArgumentError('seasonLength', 'must be a whole number >= 0');
    if (!Number.isInteger(this.historyIntervals) || this.historyIntervals < this.minFit) {
      throw new InvalidArgumentError('historyIntervals', `must be a whole number >= ${this.minFit} (12, and two seasons)`);
    }
    if (!Number.isInteger(this.maxKeys) || this.maxKeys < 1) throw new InvalidArgumentError('maxKeys', 'must be a whole number >= 1');
    if (!Number.isInteger(this.refitIntervals) || this.refitIntervals < 1) throw new InvalidArgumentError('refitIntervals', 'must be a whole number >= 1');
    if (!(this.upperZ >= 0)) throw new InvalidArgumentError('upperZ', 'must be >= 0');
    this.candidates = gridOf({ ...DEFAULT_FIT_GRID, ...options.grid }, this.seasonLength);
    // Validates every value once, here, rather than at the first refit.
    for (const params of this.candidates) new HoltWinters(params);
  }

  /** Adds `amount` (default 1: one arrival; or its tokens) to the key's interval at atMs. */
  record(key: string, atMs: number, amount = 1): void {
    if (!(amount >= 0) || !Number.isFinite(amount)) throw new InvalidArgumentError('amount', `must be a finite number >= 0, not ${amount}`);
    this.advance(atMs);
    const open = this.openInterval!;
    let state = this.states.get(key);
    if (state === undefined) {
      state = this.newState(open);
      if (this.states.size >= this.maxKeys) this.states.delete(this.states.keys().next().value!);
    } else if (state.lastRecordInterval !== open) {
      // Map order is recording order: the first key is the one idle longest.
      this.states.delete(key);
    }
    state.lastRecordInterval = open;
    state.open += amount;
    this.states.set(key, state);
  }

  /** Closes the whole intervals before nowMs (a time before the open interval changes nothing). */
  advance(nowMs: number): void {
    if (!Number.isFinite(nowMs)) throw new InvalidArgumentError('nowMs', `must be finite, not ${nowMs}`);
    const target = Math.floor(nowMs / this.intervalMs);
    if (this.openInterval === undefined) {
      this.openInterval = target;
      return;
    }
    const gap = target - this.openInterval;
    if (gap <= 0) return;
    for (const state of this.states.values()) {
      if (gap > this.historyIntervals) {
        this.resetToZero(state);
        continue;
      }
      this.close(state, state.open);
      for (let i = 1; i < gap; i++) this.close(state, 0);
      state.open = 0;
    }
    this.openInterval = target;
  }

  /**
   * The key's mean rate over (nowMs, nowMs + horizonMs], counted in whole
   * intervals from the open one; undefined for a key never recorded (or dropped).
   */
  forecast(key: string, nowMs: number, horizonMs: number): DemandForecast | undefined {
    if (!(horizonMs > 0)) throw new InvalidArgumentError('horizonMs', `must be > 0, not ${horizonMs}`);
    this.advance(nowMs);
    const state = this.states.get(key);
    if (state === undefined) return undefined;
    const perSecond = 1000 / this.intervalMs;
    const steps = Math.max(1, Math.ceil(horizonMs / this.intervalMs));
    const { history, residuals, model } = state;
    const observedRatePerSecond = history.length > 0 ? history.at(history.length - 1) * perSecond : 0;
    if (model === undefined) {
      // Too little to fit: the mean of what there is (the open interval's, before any closed), bounded by its spread and its peak.
      const values = history.length > 0 ? Array.from({ length: history.length }, (_, i) => history.at(i)) : [state.open];
      const mean = values.reduce((s, v) => s + v, 0) / values.length;
      const sd = Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length);
      const upper = values.reduce((peak, v) => Math.max(peak, v), mean + this.upperZ * sd);
      return { ratePerSecond: mean * perSecond, upperRatePerSecond: upper * perSecond, observedRatePerSecond };
    }
    const mean = model.forecastMean(steps);
    const sigma = residuals.length > 0 ? Math.sqrt(Math.max(0, residuals.sumSquares) / residuals.length) : 0;
    const upper = mean + this.upperZ * sigma * model.meanErrorScale(steps);
    return { ratePerSecond: mean * perSecond, upperRatePerSecond: upper * perSecond, observedRatePerSecond };
  }

  /** The keys kept, idle longest first. */
  keys(): string[] {
    return [...this.states.keys()];
  }

  /** The parameters a key's model was last fitted with (undefined before its first fit). */
  paramsOf(key: string): Readonly<HoltWintersParams> | undefined {
    return this.states.get(key)?.model?.params;
  }

  private newState(openInterval: number): KeyState {
    return {
      history: new Ring(this.historyIntervals),
      residuals: new Ring(this.historyIntervals),
      model: undefined,
      open: 0,
      sinceFit: 0,
      offRun: 0,
      lastRecordInterval: openInterval,
    };
  }

  private close(state: KeyState, amount: number): void {
    state.history.push(amount);
    state.sinceFit += 1;
    const model = state.model;
    if (model !== undefined) {
      const n = state.residuals.length;
      const sigma = n > 0 ? Math.sqrt(Math.max(0, state.residuals.sumSquares) / n) : 0;
      const error = amount - model.forecast(1);
      model.update(amount);
      state.residuals.push(error);
      const off = Math.abs(error) > CHANGE_SIGMAS * sigma + 1e-9 * (1 + Math.abs(amount));
      state.offRun = !off ? 0 : Math.sign(error) === Math.sign(state.offRun) ? state.offRun + Math.sign(error) : Math.sign(error);
    }
    const due = model === undefined ? state.history.length >= this.minFit : state.sinceFit >= this.refitIntervals || Math.abs(state.offRun) >= CHANGE_INTERVALS;
    if (due) this.refit(state);
  }

  private resetToZero(state: KeyState): void {
    state.history.clear();
    for (let i = 0; i < this.historyIntervals; i++) state.history.push(0);
    state.open = 0;
    this.refit(state);
  }

  /** Grid search over the kept history; the best is replayed to become the live model, its errors the residuals. */
  private refit(state: KeyState): void {
    const { history } = state;
    const firstFit = state.model === undefined;
    let best = this.candidates[0]!;
    let bestError = Infinity;
    // An all-zero history is forecast exactly by any model: no search.
    for (const params of history.sumSquares === 0 ? [] : this.candidates) {
      const error = replay(params, history, undefined);
      if (error < bestError) {
        best = params;
        bestError = error;
      }
    }
    state.residuals.clear();
    const model = new HoltWinters(best);
    replay(best, history, state.residuals, model);
    state.model = model;
    // Keys that began together would refit together on one interval's close (on the ingest
    // path): the first fit of each starts its refit cycle at a different phase.
    state.sinceFit = firstFit ? this.fits++ % this.refitIntervals : 0;
    state.offRun = 0;
  }
}

/** Runs a model over the history; returns its one-step squared error (pushing each error to `residuals` when given). */
function replay(params: HoltWintersParams, history: Ring, residuals: Ring | undefined, model = new HoltWinters(params)): number {
  let squared = 0;
  for (let i = 0; i < history.length; i++) {
    const y = history.at(i);
    if (model.ready) {
      const error = y - model.forecast(1);
      squared += error * error;
      residuals?.push(error);
    }
    model.update(y);
  }
  return squared;
}

function gridOf(grid: FitGrid, seasonLength: number): HoltWintersParams[] {
  const out: HoltWintersParams[] = [];
  const gammas = seasonLength > 0 ? grid.gamma : [0];
  for (const gamma of gammas) {
    for (const beta of grid.beta) {
      for (const phi of beta === 0 ? grid.phi.slice(0, 1) : grid.phi) {
        for (const alpha of grid.alpha) out.push({ alpha, beta, gamma, phi, seasonLength });
      }
    }
  }
  if (out.length === 0) throw new InvalidArgumentError('grid', 'must hold at least one value of each parameter');
  return out;
}
