// Fit a metric's temperature τ to human labels by maximum likelihood (docs/design.md §5):
//   maximise L(β) = Σ [y log σ(β d) + (1 − y) log σ(−β d)],  β = 1/τ,  d = s_a − s_b,  y = human P(a ≻ b).
// L is concave in β (L'' = −Σ d² σ(1 − σ) ≤ 0) and L' = Σ d (y − σ(β d)) decreases monotonically, so the optimum
// is the single root of L', found by bracketing plus safeguarded Newton. If that root is ≤ 0 the metric
// anti-correlates with humans (or is uninformative): that is reported, never turned into a negative τ.
//
// Newton needs several passes over the data, so the labelled pairs are held in memory: two Float64Array
// (16 bytes per labelled pair; tens of millions of pairs fit). CalibrationSample gathers them batch by batch.
// Pure: no I/O.

import { logSigmoid, sigmoid } from './preference.ts';

export type CalibrationStatus =
  /** A finite optimum β > 0: tau = 1/β. */
  | 'ok'
  /** Optimum β < 0: higher score, less preferred by humans. tau is null. */
  | 'anti-correlated'
  /** Optimum β = 0: the metric carries no information about the labels. tau is null. */
  | 'uncorrelated'
  /** The metric orders every labelled pair as humans do: L grows without bound as τ → 0. tau is null. */
  | 'separable'
  /** No usable labelled pair. */
  | 'no-data';

export interface TemperatureFit {
  readonly status: CalibrationStatus;
  /** Labelled pairs used (null labels and missing scores are skipped). */
  readonly n: number;
  /** Fitted τ when status is 'ok', else null (keep the default). */
  readonly tau: number | null;
  /** Unconstrained maximiser of L over β ∈ ℝ: negative when anti-correlated, ±Infinity when (anti-)separable. */
  readonly beta: number;
  readonly defaultTau: number;
  /** L at β = 1/defaultTau, in nats. */
  readonly logLikDefault: number;
  /** L at the best β ≥ 0 (β = 0, i.e. p = ½ everywhere, when the optimum is negative; the limit when separable). */
  readonly logLikFitted: number;
  /** (logLikFitted − logLikDefault) / n, nats per pair; ≥ 0 since the default is one of the candidates. */
  readonly gainPerPair: number;
}

/** L(β) over the first n pairs (all assumed usable). */
export function logLikelihood(d: Float64Array, y: Float64Array, beta: number, n = d.length): number {
  let ll = 0;
  for (let i = 0; i < n; i++) {
    const x = beta * d[i]!;
    const yi = y[i]!;
    ll += yi * logSigmoid(x) + (1 - yi) * logSigmoid(-x);
  }
  return ll;
}

function assertLabel(y: number): void {
  if (!(y >= 0 && y <= 1)) throw new RangeError(`human label must be in [0, 1] or null, got ${y}`);
}

/**
 * Fit τ from score differences d and human labels y (NaN = null, skipped; pairs whose d is not finite are
 * skipped too). d and y must have the same length.
 */
export function fitTemperature(d: Float64Array, y: Float64Array, defaultTau: number): TemperatureFit {
  if (d.length !== y.length) throw new RangeError(`d has ${d.length} values but y has ${y.length}`);
  let usable = 0;
  for (let i = 0; i < d.length; i++) {
    const yi = y[i]!;
    if (Number.isNaN(yi) || !Number.isFinite(d[i]!)) continue;
    assertLabel(yi);
    usable++;
  }
  if (usable === d.length) return fitUsable(d, y, usable, defaultTau);
  const dc = new Float64Array(usable);
  const yc = new Float64Array(usable);
  let k = 0;
  for (let i = 0; i < d.length; i++) {
    const yi = y[i]!;
    const di = d[i]!;
    if (Number.isNaN(yi) || !Number.isFinite(di)) continue;
    dc[k] = di;
    yc[k] = yi;
    k++;
  }
  return fitUsable(dc, yc, usable, defaultTau);
}

/** Gathers (d, y) batch by batch, skipping null labels and missing scores, for one fitTemperature at the end. */
export class CalibrationSample {
  private d = new Float64Array(1024);
  private y = new Float64Array(1024);
  private n = 0;

  get size(): number {
    return this.n;
  }

  /** Add score differences d = s_a − s_b with their human labels (NaN = null). */
  add(d: ArrayLike<number>, y: ArrayLike<number>): void {
    if (d.length !== y.length) throw new RangeError(`d has ${d.length} values but y has ${y.length}`);
    for (let i = 0; i < d.length; i++) this.push(d[i]!, y[i]!);
  }

  /** Add one score difference with its human label (NaN = null). */
  addOne(d: number, y: number): void {
    this.push(d, y);
  }

  /** Add the scores of both images of each pair with their human labels (NaN = null). */
  addScores(scoreA: ArrayLike<number>, scoreB: ArrayLike<number>, y: ArrayLike<number>): void {
    if (scoreA.length !== y.length || scoreB.length !== y.length) {
      throw new RangeError(`scores (${scoreA.length}, ${scoreB.length}) and labels (${y.length}) differ in length`);
    }
    for (let i = 0; i < y.length; i++) this.push(scoreA[i]! - scoreB[i]!, y[i]!);
  }

  fit(defaultTau: number): TemperatureFit {
    return fitUsable(this.d, this.y, this.n, defaultTau);
  }

  private push(di: number, yi: number): void {
    if (Number.isNaN(yi) || !Number.isFinite(di)) return;
    assertLabel(yi);
    if (this.n === this.d.length) {
      const d = new Float64Array(this.n * 2);
      const y = new Float64Array(this.n * 2);
      d.set(this.d);
      y.set(this.y);
      this.d = d;
      this.y = y;
    }
    this.d[this.n] = di;
    this.y[this.n] = yi;
    this.n++;
  }
}

function fitUsable(d: Float64Array, y: Float64Array, n: number, defaultTau: number): TemperatureFit {
  if (!(Number.isFinite(defaultTau) && defaultTau > 0)) {
    throw new RangeError(`default temperature must be a finite number > 0, got ${defaultTau}`);
  }
  if (n === 0) {
    return {
      status: 'no-data',
      n,
      tau: null,
      beta: Number.NaN,
      defaultTau,
      logLikDefault: Number.NaN,
      logLikFitted: Number.NaN,
      gainPerPair: Number.NaN,
    };
  }
  // L'(0) and the limits of L' as β → ±∞ (σ saturates to 0/1); each limit is 0 only when the data are separable.
  let g0 = 0;
  let gPlusInf = 0;
  let gMinusInf = 0;
  let absSum = 0;
  let nonZero = 0;
  let zeroDiffs = 0;
  for (let i = 0; i < n; i++) {
    const di = d[i]!;
    const yi = y[i]!;
    g0 += di * (yi - 0.5);
    if (di > 0) {
      gPlusInf += di * (yi - 1);
      gMinusInf += di * yi;
    } else if (di < 0) {
      gPlusInf += di * yi;
      gMinusInf += di * (yi - 1);
    } else {
      zeroDiffs++;
    }
    if (di !== 0) {
      absSum += Math.abs(di);
      nonZero++;
    }
  }
  const logLikDefault = logLikelihood(d, y, 1 / defaultTau, n);
  const atZero = n * Math.log(0.5);

  let status: CalibrationStatus;
  let beta: number;
  let logLikFitted: number;
  if (g0 > 0 && gPlusInf === 0) {
    status = 'separable';
    beta = Number.POSITIVE_INFINITY;
    // Every pair with d ≠ 0 contributes log 1 in the limit; pairs with d = 0 always contribute log ½.
    logLikFitted = zeroDiffs * Math.log(0.5);
  } else if (g0 > 0) {
    status = 'ok';
    beta = rootOfScore(d, y, n, 1, nonZero / absSum);
    logLikFitted = logLikelihood(d, y, beta, n);
  } else if (g0 < 0) {
    status = 'anti-correlated';
    beta = gMinusInf === 0 ? Number.NEGATIVE_INFINITY : -rootOfScore(d, y, n, -1, nonZero / absSum);
    logLikFitted = atZero;
  } else {
    status = 'uncorrelated';
    beta = 0;
    logLikFitted = atZero;
  }
  return {
    status,
    n,
    tau: status === 'ok' ? 1 / beta : null,
    beta,
    defaultTau,
    logLikDefault,
    logLikFitted,
    // The fitted β maximises L over β ≥ 0, so a negative gain can only be rounding when the default is optimal.
    gainPerPair: Math.max(0, (logLikFitted - logLikDefault) / n),
  };
}

/**
 * The t > 0 with L'(sign · t) = 0, given that sign · L'(0) > 0 and the root is finite. G(t) = sign · L'(sign · t)
 * falls monotonically from positive to negative; bracket it by doubling from 1/mean|d|, then Newton steps that
 * fall back to bisection whenever they leave the bracket.
 */
function rootOfScore(d: Float64Array, y: Float64Array, n: number, sign: 1 | -1, start: number): number {
  // G(t) and G'(t) in one pass.
  let g = 0;
  let dg = 0;
  const evaluate = (t: number): void => {
    const beta = sign * t;
    let s = 0;
    let h = 0;
    for (let i = 0; i < n; i++) {
      const di = d[i]!;
      const p = sigmoid(beta * di);
      s += di * (y[i]! - p);
      h += di * di * p * (1 - p);
    }
    g = sign * s;
    dg = -h;
  };

  let lo = 0;
  let hi = start;
  // Terminates: once σ saturates for every pair, G equals its (negative) limit exactly.
  for (let k = 0; k < 4096; k++) {
    evaluate(hi);
    if (g <= 0) break;
    lo = hi;
    hi *= 2;
  }
  if (g === 0) return hi;

  let t = 0.5 * (lo + hi);
  for (let iter = 0; iter < 200; iter++) {
    evaluate(t);
    if (g === 0) return t;
    if (g > 0) lo = t;
    else hi = t;
    const newton = dg < 0 ? t - g / dg : Number.NaN;
    const next = newton > lo && newton < hi ? newton : 0.5 * (lo + hi);
    if (Math.abs(next - t) <= 1e-14 * next || hi - lo <= 1e-15 * hi) return next;
    t = next;
  }
  return t;
}

/**
 * The τ that consensus takes from a fit: the fitted τ when the fit is 'ok', else null (the metric keeps its own
 * τ). The one definition of "the fitted τ is used", shared by consensus and by what calibrate records and prints.
 */
export function usedTau(fit: Pick<TemperatureFit, 'status' | 'tau'>): number | null {
  return fit.status === 'ok' && fit.tau !== null ? fit.tau : null;
}

/** A fit as calibration.json records it: the likelihood gain only where the fitted τ is used, else why not. */
export interface CalibrationRecord extends Omit<TemperatureFit, 'gainPerPair'> {
  /** gainPerPair of the fit when its τ is used, else null: a gain of a τ nobody uses is no gain. */
  readonly gainPerPair: number | null;
  readonly tauUsed: boolean;
  /** Why the fitted τ is not used (null when it is). */
  readonly note: string | null;
}

const UNUSED_BECAUSE: Record<Exclude<CalibrationStatus, 'ok'>, string> = {
  'anti-correlated': 'the metric prefers what humans do not (best β < 0)',
  uncorrelated: 'the metric carries no information about the human labels (best β = 0)',
  separable: 'the metric orders every labelled pair as humans do, so the best τ is 0 (no finite fit)',
  'no-data': 'no labelled pair has both scores',
};

export function calibrationRecord(fit: TemperatureFit): CalibrationRecord {
  const used = usedTau(fit) !== null;
  return {
    ...fit,
    gainPerPair: used ? fit.gainPerPair : null,
    tauUsed: used,
    note: used || fit.status === 'ok' ? null : `fitted τ not used: ${UNUSED_BECAUSE[fit.status]}; consensus keeps τ = ${fit.defaultTau}`,
  };
}
