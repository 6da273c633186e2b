/**
 * Distributions of per-pair numbers for the audit report: histograms that fill in one streaming pass,
 * sample quantiles, and the reliability (calibration) curve of a metric's preference probability p_m against
 * human labels, with its expected calibration error and Brier score. Pure: no I/O.
 */

/** Smallest and largest finite value seen; the first pass of a two-pass histogram over a stream. */
export class MinMax {
  min = Infinity;
  max = -Infinity;
  count = 0;
  /** Values that are NaN or ±Infinity: counted, never folded into the range. */
  nonFinite = 0;

  add(x: number): void {
    if (!Number.isFinite(x)) {
      this.nonFinite++;
      return;
    }
    if (x < this.min) this.min = x;
    if (x > this.max) this.max = x;
    this.count++;
  }

  merge(other: MinMax): this {
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
    this.count += other.count;
    this.nonFinite += other.nonFinite;
    return this;
  }
}

export interface HistogramResult {
  /** bins + 1 edges; bin i is [edges[i], edges[i+1]), the last bin also holds x = hi. */
  edges: number[];
  counts: number[];
  /** counts[i] / inRange (NaN when nothing fell in range). */
  fractions: number[];
  inRange: number;
  underflow: number;
  overflow: number;
  nonFinite: number;
}

/**
 * Fixed-bin histogram over [lo, hi]. Values outside the range are counted as under/overflow rather than clamped
 * into the end bins, so a badly chosen range shows up instead of piling mass into the edges.
 */
export class Histogram {
  readonly lo: number;
  readonly hi: number;
  readonly bins: number;
  private readonly counts: Float64Array;
  private underflow = 0;
  private overflow = 0;
  private nonFinite = 0;

  constructor(lo: number, hi: number, bins: number) {
    if (!Number.isFinite(lo) || !Number.isFinite(hi) || !(hi > lo)) {
      throw new RangeError(`Histogram: need finite lo < hi, got [${lo}, ${hi}]`);
    }
    if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`Histogram: bins must be a positive integer, got ${bins}`);
    this.lo = lo;
    this.hi = hi;
    this.bins = bins;
    this.counts = new Float64Array(bins);
  }

  add(x: number): void {
    if (!Number.isFinite(x)) this.nonFinite++;
    else if (x < this.lo) this.underflow++;
    else if (x > this.hi) this.overflow++;
    else {
      const i = Math.min(Math.floor(((x - this.lo) / (this.hi - this.lo)) * this.bins), this.bins - 1);
      this.counts[i]! += 1;
    }
  }

  merge(other: Histogram): this {
    if (other.lo !== this.lo || other.hi !== this.hi || other.bins !== this.bins) {
      throw new RangeError('Histogram.merge: histograms have different bins');
    }
    for (let i = 0; i < this.bins; i++) this.counts[i]! += other.counts[i]!;
    this.underflow += other.underflow;
    this.overflow += other.overflow;
    this.nonFinite += other.nonFinite;
    return this;
  }

  result(): HistogramResult {
    const counts = Array.from(this.counts);
    const inRange = counts.reduce((s, c) => s + c, 0);
    const width = (this.hi - this.lo) / this.bins;
    const edges = Array.from({ length: this.bins + 1 }, (_, i) => (i === this.bins ? this.hi : this.lo + i * width));
    return {
      edges,
      counts,
      fractions: counts.map((c) => (inRange > 0 ? c / inRange : NaN)),
      inRange,
      underflow: this.underflow,
      overflow: this.overflow,
      nonFinite: this.nonFinite,
    };
  }
}

/**
 * Two passes over a re-iterable source: the range first, then the counts. A constant sample gets the range
 * [x − ½, x + ½] so that it still has a bin; an empty one gets [0, 1].
 */
export function histogramOf(source: () => Iterable<number>, bins: number): HistogramResult {
  const range = new MinMax();
  for (const x of source()) range.add(x);
  let lo = range.min;
  let hi = range.max;
  if (range.count === 0) [lo, hi] = [0, 1];
  else if (lo === hi) [lo, hi] = [lo - 0.5, hi + 0.5];
  const histogram = new Histogram(lo, hi, bins);
  for (const x of source()) histogram.add(x);
  return histogram.result();
}

/**
 * Quantile q ∈ [0, 1] of an ascending sorted sample by linear interpolation between order statistics
 * (Hyndman–Fan type 7, the default of numpy.quantile and R): position q·(n − 1).
 */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile: q must be in [0, 1], got ${q}`);
  if (n === 0) return NaN;
  const h = q * (n - 1);
  const i = Math.floor(h);
  const lo = sorted[i]!;
  if (i + 1 >= n) return lo;
  return lo + (h - i) * (sorted[i + 1]! - lo);
}

/** Quantiles of an unsorted sample (non-finite values are dropped); the input is not modified. */
export function quantiles(values: Iterable<number>, qs: readonly number[]): number[] {
  const finite: number[] = [];
  for (const x of values) if (Number.isFinite(x)) finite.push(x);
  const sorted = Float64Array.from(finite).sort();
  return qs.map((q) => quantileSorted(sorted, q));
}

export interface ReliabilityBin {
  lo: number;
  hi: number;
  count: number;
  /** Mean predicted P(a ≻ b) in the bin (NaN when empty). */
  meanPredicted: number;
  /** Mean human P(a ≻ b) in the bin: the frequency of "a preferred" with ties counted ½ (NaN when empty). */
  observed: number;
}

export interface ReliabilityResult {
  bins: ReliabilityBin[];
  count: number;
  /** Pairs without a human label or with a non-finite prediction: counted here, left out of every number. */
  skipped: number;
  /** Σ_bins (count_b / count) · |meanPredicted_b − observed_b|. */
  ece: number;
  /** Largest |meanPredicted_b − observed_b| over non-empty bins. */
  mce: number;
  /** mean (p − y)² with y the human P(a ≻ b) (ties y = ½), over the individual pairs. */
  brier: number;
}

/**
 * Reliability curve of predicted P(a ≻ b) against human labels. Bin b of B holds p ∈ [b/B, (b+1)/B), and
 * p = 1 falls into the last bin. Human labels are P(a ≻ b) ∈ {1, 0, ½}; any value in [0, 1] is taken as is.
 */
export class Reliability {
  readonly binCount: number;
  private readonly counts: Float64Array;
  private readonly sumPredicted: Float64Array;
  private readonly sumObserved: Float64Array;
  private sumSquaredError = 0;
  private skipped = 0;

  constructor(bins = 10) {
    if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`Reliability: bins must be a positive integer, got ${bins}`);
    this.binCount = bins;
    this.counts = new Float64Array(bins);
    this.sumPredicted = new Float64Array(bins);
    this.sumObserved = new Float64Array(bins);
  }

  add(predicted: number | null, humanPref: number | null): void {
    if (predicted === null || humanPref === null || !Number.isFinite(predicted) || Number.isNaN(humanPref)) {
      this.skipped++;
      return;
    }
    if (predicted < 0 || predicted > 1) throw new RangeError(`Reliability: predicted probability ${predicted} is outside [0, 1]`);
    if (humanPref < 0 || humanPref > 1) throw new RangeError(`Reliability: human label ${humanPref} is outside [0, 1]`);
    const b = Math.min(Math.floor(predicted * this.binCount), this.binCount - 1);
    this.counts[b]! += 1;
    this.sumPredicted[b]! += predicted;
    this.sumObserved[b]! += humanPref;
    this.sumSquaredError += (predicted - humanPref) ** 2;
  }

  merge(other: Reliability): this {
    if (other.binCount !== this.binCount) throw new RangeError('Reliability.merge: different bin counts');
    for (let b = 0; b < this.binCount; b++) {
      this.counts[b]! += other.counts[b]!;
      this.sumPredicted[b]! += other.sumPredicted[b]!;
      this.sumObserved[b]! += other.sumObserved[b]!;
    }
    this.sumSquaredError += other.sumSquaredError;
    this.skipped += other.skipped;
    return this;
  }

  result(): ReliabilityResult {
    const count = this.counts.reduce((s, c) => s + c, 0);
    let ece = 0;
    let mce = count > 0 ? 0 : NaN;
    const bins: ReliabilityBin[] = [];
    for (let b = 0; b < this.binCount; b++) {
      const n = this.counts[b]!;
      const meanPredicted = n > 0 ? this.sumPredicted[b]! / n : NaN;
      const observed = n > 0 ? this.sumObserved[b]! / n : NaN;
      if (n > 0) {
        const gap = Math.abs(meanPredicted - observed);
        ece += (n / count) * gap;
        mce = Math.max(mce, gap);
      }
      bins.push({ lo: b / this.binCount, hi: (b + 1) / this.binCount, count: n, meanPredicted, observed });
    }
    return {
      bins,
      count,
      skipped: this.skipped,
      ece: count > 0 ? ece : NaN,
      mce,
      brier: count > 0 ? this.sumSquaredError / count : NaN,
    };
  }
}
