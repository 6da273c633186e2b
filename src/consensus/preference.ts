// Per-metric preference math (docs/design.md §5): p_m = σ((s_a − s_b) / τ_m), the vote it casts with an abstention
// margin δ, and the entropies used to describe how much the votes disagree. Pure: no I/O.

/** A vote for image a, for image b, or an abstention. */
export type Vote = 1 | -1 | 0;
export const VOTE_A = 1;
export const VOTE_B = -1;
export const ABSTAIN = 0;

/**
 * Logistic function, never overflowing. For x < 0 it returns exactly 1 − σ(−x) (the subtraction is exact because
 * σ(−x) ∈ [½, 1]), so σ(x) + σ(−x) === 1 and p − ½ is exactly antisymmetric: swapping a and b mirrors every
 * probability, vote and tie bit for bit. The price is that probabilities below ~1e-17 round to 0, which no label
 * cares about; use logSigmoid where log-probabilities matter.
 */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  if (x < 0) return 1 - 1 / (1 + Math.exp(x));
  return Number.NaN;
}

/** log σ(x) = −softplus(−x), accurate for large |x| in both directions. */
export function logSigmoid(x: number): number {
  if (x >= 0) return -Math.log1p(Math.exp(-x));
  return x - Math.log1p(Math.exp(x));
}

/**
 * P(a ≻ b) under metric temperature τ. A score that is not a finite number means "not scored": the result is
 * NaN, which every consumer treats as missing (an abstaining vote, a null p column).
 */
export function preferenceProbability(scoreA: number, scoreB: number, tau: number): number {
  const diff = scoreA - scoreB;
  if (!Number.isFinite(diff)) return Number.NaN;
  return sigmoid(diff / tau);
}

/**
 * +1 if p > ½ + δ, −1 if p < ½ − δ, otherwise abstain (|p − ½| ≤ δ, so exactly ½ always abstains; NaN abstains).
 * p − ½ is exact for every p the sigmoid above returns, so the band is applied without rounding surprises.
 */
export function vote(p: number, margin: number): Vote {
  const c = p - 0.5;
  if (c > margin) return 1;
  if (c < -margin) return -1;
  return 0;
}

/** Binary entropy in bits; 0 at p ∈ {0, 1}, 1 at p = ½, NaN outside [0, 1]. */
export function binaryEntropy(p: number): number {
  if (!(p >= 0 && p <= 1)) return Number.NaN;
  if (p === 0 || p === 1) return 0;
  return -(p * Math.log2(p) + (1 - p) * Math.log2(1 - p));
}

/** Shannon entropy in bits of the distribution given by non-negative counts; NaN when they sum to 0. */
export function entropyBits(counts: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] as number;
    if (!(c >= 0)) return Number.NaN;
    total += c;
  }
  if (total === 0) return Number.NaN;
  let h = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] as number;
    if (c > 0) {
      const q = c / total;
      h -= q * Math.log2(q);
    }
  }
  // −Σ q log q can land a hair below 0 for a single category; entropy is never negative.
  return h > 0 ? h : 0;
}

/**
 * Entropy in bits of the a-vs-b split of the votes that were cast (abstentions are not an opinion, so they are
 * left out): 4–0 → 0, 3–1 → 0.811, 2–2 → 1. NaN (null) when nobody voted.
 */
export function voteEntropy(votesA: number, votesB: number): number {
  const cast = votesA + votesB;
  if (cast === 0) return Number.NaN;
  return binaryEntropy(votesA / cast);
}

/** Throws unless τ is a usable temperature. */
export function assertTemperature(tau: number, metric: string): void {
  if (!(Number.isFinite(tau) && tau > 0)) {
    throw new RangeError(`temperature of metric '${metric}' must be a finite number > 0, got ${tau}`);
  }
}

/** Throws unless δ ∈ [0, ½): at ½ or above every vote would abstain. */
export function assertMargin(margin: number): void {
  if (!(Number.isFinite(margin) && margin >= 0 && margin < 0.5)) {
    throw new RangeError(`margin must be a number in [0, 0.5), got ${margin}`);
  }
}
