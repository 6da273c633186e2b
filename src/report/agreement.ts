/**
 * Agreement between raters of preference pairs — metrics with each other and with humans: raw agreement and
 * Cohen's κ for two raters, Fleiss' κ across many, PickScore's tie-aware accuracy against human labels,
 * Kendall's τ-b against human rankings, and the distribution of vote patterns (coalitions). Every statistic that
 * runs over pairs is an accumulator (add, merge, result) so a report can stream a dataset part by part, shard by
 * shard. Pure: no I/O.
 *
 * Conventions used throughout:
 * - A vote is +1 (a preferred), −1 (b preferred) or 0 (tie / abstain); null means the rater has no vote for the
 *   item (a metric's score is missing). Category indices in matrices and count vectors: a = 0, b = 1, tie = 2.
 * - A human label is P(a ≻ b): 1, 0, ½ (tie) or null (unlabelled). Note that label 0 means "b preferred" while
 *   vote 0 means "tie": convert labels with `humanVote` before treating a human as a voting rater.
 * - Nulls are never imputed: an item where a needed rater is null is skipped and counted in `skipped`.
 * - A statistic that is undefined (no items; κ when chance agreement is 1; τ when one side is all tied) is NaN.
 */

export type Vote = 1 | -1 | 0;

export const VOTE_CATEGORIES = ['a', 'b', 'tie'] as const;
export type VoteCategory = (typeof VOTE_CATEGORIES)[number];

/** Index of a vote's category (a = 0, b = 1, tie = 2); throws on anything that is not a vote. */
export function voteIndex(vote: Vote): 0 | 1 | 2 {
  if (vote === 1) return 0;
  if (vote === -1) return 1;
  if (vote === 0) return 2;
  throw new RangeError(`not a vote (expected +1, −1 or 0): ${String(vote)}`);
}

/** A human label P(a ≻ b) as a vote: above ½ → +1, below → −1, exactly ½ → 0 (tie), null/NaN → null. */
export function humanVote(pref: number | null | undefined): Vote | null {
  if (pref === null || pref === undefined || Number.isNaN(pref)) return null;
  if (pref < 0 || pref > 1) throw new RangeError(`human label must be P(a ≻ b) in [0, 1], got ${pref}`);
  return pref > 0.5 ? 1 : pref < 0.5 ? -1 : 0;
}

export interface KappaResult {
  n: number;
  /** Observed agreement p_o: the fraction of items on the diagonal. */
  agreement: number;
  /** Chance agreement p_e = Σ_k (row_k / n)(col_k / n). */
  expected: number;
  /** (p_o − p_e) / (1 − p_e). */
  kappa: number;
}

/** Cohen's κ of any square k×k confusion table (rows: rater 1's category, columns: rater 2's). */
export function cohenKappa(table: readonly (readonly number[])[]): KappaResult {
  const k = table.length;
  const rows = new Array<number>(k).fill(0);
  const cols = new Array<number>(k).fill(0);
  let n = 0;
  let diagonal = 0;
  for (let i = 0; i < k; i++) {
    const row = table[i]!;
    if (row.length !== k) throw new RangeError('cohenKappa: the table must be square');
    for (let j = 0; j < k; j++) {
      const c = row[j]!;
      rows[i]! += c;
      cols[j]! += c;
      n += c;
      if (i === j) diagonal += c;
    }
  }
  if (n === 0) return { n, agreement: NaN, expected: NaN, kappa: NaN };
  let expected = 0;
  for (let i = 0; i < k; i++) expected += (rows[i]! / n) * (cols[i]! / n);
  const agreement = diagonal / n;
  // p_e = 1 only when both raters always use one and the same category: κ is 0/0 there.
  const kappa = expected >= 1 ? NaN : (agreement - expected) / (1 - expected);
  return { n, agreement, expected, kappa };
}

export interface PairAgreementResult extends KappaResult {
  /** Items where either rater was null: left out of every number above. */
  skipped: number;
  /** confusion[i][j] = items rater x put in category i and rater y in category j (a, b, tie). */
  confusion: number[][];
  /** Fraction of each rater's compared votes that were ties. */
  tieRateX: number;
  tieRateY: number;
}

/** Raw agreement and Cohen's κ of two raters over the three vote categories. */
export class PairAgreement {
  private readonly counts = new Float64Array(9);
  private skipped = 0;

  add(x: Vote | null, y: Vote | null): void {
    if (x === null || y === null) {
      this.skipped++;
      return;
    }
    this.counts[voteIndex(x) * 3 + voteIndex(y)]! += 1;
  }

  merge(other: PairAgreement): this {
    for (let i = 0; i < 9; i++) this.counts[i]! += other.counts[i]!;
    this.skipped += other.skipped;
    return this;
  }

  result(): PairAgreementResult {
    const confusion = [0, 1, 2].map((i) => [0, 1, 2].map((j) => this.counts[i * 3 + j]!));
    const kappa = cohenKappa(confusion);
    const tiesX = confusion[2]!.reduce((s, c) => s + c, 0);
    const tiesY = confusion.reduce((s, row) => s + row[2]!, 0);
    return {
      ...kappa,
      skipped: this.skipped,
      confusion,
      tieRateX: kappa.n > 0 ? tiesX / kappa.n : NaN,
      tieRateY: kappa.n > 0 ? tiesY / kappa.n : NaN,
    };
  }
}

export interface AgreementMatrixResult {
  raters: string[];
  /** One entry per unordered pair of raters, in the raters' order (0–1, 0–2, …, 1–2, …). */
  pairs: (PairAgreementResult & { x: string; y: string })[];
}

/** Pairwise agreement of every pair among m raters (e.g. four metrics and the human), fed one item at a time. */
export class AgreementMatrix {
  readonly raters: readonly string[];
  private readonly pairs: PairAgreement[] = [];

  constructor(raters: readonly string[]) {
    this.raters = [...raters];
    const m = raters.length;
    for (let i = 0; i < m; i++) for (let j = i + 1; j < m; j++) this.pairs.push(new PairAgreement());
  }

  /** votes[r] is rater r's vote on this item, in the constructor's order. */
  add(votes: readonly (Vote | null)[]): void {
    const m = this.raters.length;
    if (votes.length !== m) throw new RangeError(`AgreementMatrix.add: expected ${m} votes, got ${votes.length}`);
    let p = 0;
    for (let i = 0; i < m; i++) for (let j = i + 1; j < m; j++) this.pairs[p++]!.add(votes[i]!, votes[j]!);
  }

  merge(other: AgreementMatrix): this {
    if (other.raters.join('\u0000') !== this.raters.join('\u0000')) throw new RangeError('AgreementMatrix.merge: different raters');
    this.pairs.forEach((pair, p) => pair.merge(other.pairs[p]!));
    return this;
  }

  result(): AgreementMatrixResult {
    const m = this.raters.length;
    const pairs: AgreementMatrixResult['pairs'] = [];
    let p = 0;
    for (let i = 0; i < m; i++) {
      for (let j = i + 1; j < m; j++) pairs.push({ x: this.raters[i]!, y: this.raters[j]!, ...this.pairs[p++]!.result() });
    }
    return { raters: [...this.raters], pairs };
  }
}

export interface FleissResult {
  /** Items counted (each rated by `raters` raters). */
  items: number;
  raters: number;
  /** Items left out because a rater was null. */
  skipped: number;
  /** P̄: mean over items of the fraction of rater pairs that agree. */
  observed: number;
  /** P̄_e = Σ_j p_j². */
  expected: number;
  kappa: number;
  /** p_j: the share of all ratings in category j. */
  shares: number[];
}

/**
 * Fleiss' κ for a fixed number of raters per item over any number of categories. The statistic needs only the
 * item count, the category totals and Σ_items Σ_j n_ij², so it streams and merges exactly.
 */
export class FleissKappa {
  readonly categories: number;
  private raters = 0;
  private items = 0;
  private skipped = 0;
  private readonly totals: Float64Array;
  private sumSquares = 0;

  constructor(categories: number = VOTE_CATEGORIES.length) {
    if (!Number.isInteger(categories) || categories < 2) throw new RangeError(`FleissKappa: need ≥ 2 categories, got ${categories}`);
    this.categories = categories;
    this.totals = new Float64Array(categories);
  }

  /** counts[j] = how many raters put this item in category j; every item must have the same total (≥ 2). */
  addCounts(counts: readonly number[]): void {
    if (counts.length !== this.categories) {
      throw new RangeError(`FleissKappa.addCounts: expected ${this.categories} category counts, got ${counts.length}`);
    }
    let n = 0;
    let squares = 0;
    for (const c of counts) {
      if (!Number.isInteger(c) || c < 0) throw new RangeError(`FleissKappa.addCounts: counts must be non-negative integers, got ${c}`);
      n += c;
      squares += c * c;
    }
    this.setRaters(n);
    counts.forEach((c, j) => (this.totals[j]! += c));
    this.sumSquares += squares;
    this.items++;
  }

  /** One item's votes (a, b, tie) from every rater; an item with any null vote is skipped and counted. */
  addVotes(votes: readonly (Vote | null)[]): void {
    if (this.categories !== VOTE_CATEGORIES.length) throw new RangeError('FleissKappa.addVotes needs the 3 vote categories');
    const counts = [0, 0, 0];
    for (const v of votes) {
      if (v === null) {
        this.setRaters(votes.length);
        this.skipped++;
        return;
      }
      counts[voteIndex(v)]! += 1;
    }
    this.addCounts(counts);
  }

  merge(other: FleissKappa): this {
    if (other.categories !== this.categories) throw new RangeError('FleissKappa.merge: different category counts');
    if (other.raters !== 0) this.setRaters(other.raters);
    for (let j = 0; j < this.categories; j++) this.totals[j]! += other.totals[j]!;
    this.sumSquares += other.sumSquares;
    this.items += other.items;
    this.skipped += other.skipped;
    return this;
  }

  result(): FleissResult {
    const N = this.items;
    const n = this.raters;
    const ratings = N * n;
    const shares = Array.from(this.totals, (t) => (ratings > 0 ? t / ratings : NaN));
    if (N === 0) return { items: 0, raters: n, skipped: this.skipped, observed: NaN, expected: NaN, kappa: NaN, shares };
    // P_i = (Σ_j n_ij² − n) / (n(n − 1)), averaged over items.
    const observed = (this.sumSquares - ratings) / (ratings * (n - 1));
    const expected = shares.reduce((s, p) => s + p * p, 0);
    const kappa = expected >= 1 ? NaN : (observed - expected) / (1 - expected);
    return { items: N, raters: n, skipped: this.skipped, observed, expected, kappa, shares };
  }

  private setRaters(n: number): void {
    if (this.raters === 0) {
      if (n < 2) throw new RangeError(`FleissKappa: need ≥ 2 raters per item, got ${n}`);
      this.raters = n;
    } else if (n !== this.raters) {
      throw new RangeError(`FleissKappa: every item needs the same number of raters (${this.raters}), got ${n}`);
    }
  }
}

export interface TieAwareAccuracyResult {
  /** Pairs scored (both a prediction and a human label). */
  n: number;
  /** (agree + bothTie + ½·(predictedTie + humanTie)) / n. */
  accuracy: number;
  /** Both decided, same side. */
  agree: number;
  /** Both decided, opposite sides: credit 0. */
  disagree: number;
  /** Prediction tie, human decided: credit ½. */
  predictedTie: number;
  /** Human tie, prediction decided: credit ½. */
  humanTie: number;
  /** Both ties: credit 1. */
  bothTie: number;
  skippedNoPrediction: number;
  skippedNoHuman: number;
}

/**
 * Accuracy against human labels with PickScore's tie convention (its evaluation script scores 1 when prediction
 * and label are equal — ties included —, ½ when exactly one of them is a tie, 0 otherwise). PickScore predicts a
 * tie when |p_a − p_b| ≤ t, i.e. |p − ½| ≤ t/2: that is an abstaining vote with margin δ = t/2.
 */
export class TieAwareAccuracy {
  private agree = 0;
  private disagree = 0;
  private predictedTie = 0;
  private humanTie = 0;
  private bothTie = 0;
  private skippedNoPrediction = 0;
  private skippedNoHuman = 0;

  /** predicted: the metric's vote; humanPref: the human label P(a ≻ b) (1, 0, ½ or null). */
  add(predicted: Vote | null, humanPref: number | null): void {
    if (predicted === null) {
      this.skippedNoPrediction++;
      return;
    }
    const human = humanVote(humanPref);
    if (human === null) {
      this.skippedNoHuman++;
      return;
    }
    voteIndex(predicted);
    if (predicted === 0 && human === 0) this.bothTie++;
    else if (predicted === 0) this.predictedTie++;
    else if (human === 0) this.humanTie++;
    else if (predicted === human) this.agree++;
    else this.disagree++;
  }

  merge(other: TieAwareAccuracy): this {
    this.agree += other.agree;
    this.disagree += other.disagree;
    this.predictedTie += other.predictedTie;
    this.humanTie += other.humanTie;
    this.bothTie += other.bothTie;
    this.skippedNoPrediction += other.skippedNoPrediction;
    this.skippedNoHuman += other.skippedNoHuman;
    return this;
  }

  result(): TieAwareAccuracyResult {
    const n = this.agree + this.disagree + this.predictedTie + this.humanTie + this.bothTie;
    const credit = this.agree + this.bothTie + 0.5 * (this.predictedTie + this.humanTie);
    return {
      n,
      accuracy: n > 0 ? credit / n : NaN,
      agree: this.agree,
      disagree: this.disagree,
      predictedTie: this.predictedTie,
      humanTie: this.humanTie,
      bothTie: this.bothTie,
      skippedNoPrediction: this.skippedNoPrediction,
      skippedNoHuman: this.skippedNoHuman,
    };
  }
}

/**
 * Kendall's τ-b of two equally long samples, with ties:
 * (n_c − n_d) / √((n_0 − n_x)(n_0 − n_y)), n_x / n_y the pairs tied in x / y. O(n²); NaN when n < 2 or one side
 * is constant.
 */
export function kendallTauB(x: readonly number[], y: readonly number[]): number {
  const n = x.length;
  if (y.length !== n) throw new RangeError(`kendallTauB: samples differ in length (${n} vs ${y.length})`);
  let concordantMinusDiscordant = 0;
  let untiedX = 0;
  let untiedY = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const dx = Math.sign(x[j]! - x[i]!);
      const dy = Math.sign(y[j]! - y[i]!);
      concordantMinusDiscordant += dx * dy;
      if (dx !== 0) untiedX++;
      if (dy !== 0) untiedY++;
    }
  }
  const denominator = Math.sqrt(untiedX * untiedY);
  return denominator > 0 ? concordantMinusDiscordant / denominator : NaN;
}

/**
 * τ-b between a metric's scores (higher = better) and human ranks (1 = best) within one group, oriented so that
 * +1 means the metric orders the group exactly as the humans do.
 */
export function rankAgreementTau(scores: readonly number[], humanRanks: readonly number[]): number {
  return kendallTauB(
    scores,
    humanRanks.map((r) => -r),
  );
}

export interface MeanKendallTauResult {
  /** Groups averaged. */
  groups: number;
  /** Groups left out: fewer than 2 complete items, or τ undefined (all scores or all ranks tied). */
  skipped: number;
  mean: number;
  /** Sample standard deviation of the per-group τ (n − 1; NaN below 2 groups). */
  sd: number;
}

/** Mean over ranked groups (e.g. HPD test groups) of `rankAgreementTau`; items with a null score or rank are dropped. */
export class MeanKendallTau {
  private groups = 0;
  private skipped = 0;
  private sum = 0;
  private sumSquares = 0;

  /** Adds one group and returns its τ (NaN if the group was skipped). */
  add(scores: readonly (number | null)[], humanRanks: readonly (number | null)[]): number {
    if (scores.length !== humanRanks.length) throw new RangeError('MeanKendallTau.add: scores and ranks differ in length');
    const s: number[] = [];
    const r: number[] = [];
    scores.forEach((score, i) => {
      const rank = humanRanks[i]!;
      if (score !== null && rank !== null && Number.isFinite(score) && Number.isFinite(rank)) {
        s.push(score);
        r.push(rank);
      }
    });
    const tau = s.length >= 2 ? rankAgreementTau(s, r) : NaN;
    if (Number.isNaN(tau)) this.skipped++;
    else {
      this.groups++;
      this.sum += tau;
      this.sumSquares += tau * tau;
    }
    return tau;
  }

  merge(other: MeanKendallTau): this {
    this.groups += other.groups;
    this.skipped += other.skipped;
    this.sum += other.sum;
    this.sumSquares += other.sumSquares;
    return this;
  }

  result(): MeanKendallTauResult {
    const g = this.groups;
    const mean = g > 0 ? this.sum / g : NaN;
    const sd = g > 1 ? Math.sqrt(Math.max(0, (this.sumSquares - g * mean * mean) / (g - 1))) : NaN;
    return { groups: g, skipped: this.skipped, mean, sd };
  }
}

export interface VotePattern {
  /**
   * Readable key, e.g. "pickscore+hps vs clip+aesthetic", "pickscore+hps+clip vs — (tie: aesthetic)".
   * The left side voted a and the right side b; with `foldSides` the left side is the coalition that holds the
   * first metric (in the constructor's order) that voted at all.
   */
  key: string;
  /** Metrics that voted a (folded: the left coalition). */
  a: string[];
  /** Metrics that voted b (folded: the right coalition). */
  b: string[];
  tie: string[];
  missing: string[];
  count: number;
  /** count / all items added. */
  fraction: number;
}

export interface VotePatternOptions {
  /** Count a pattern and its mirror image (a and b swapped) as one coalition. Default false. */
  foldSides?: boolean;
}

const PATTERN_A = 0;
const PATTERN_B = 1;
const PATTERN_TIE = 2;
const PATTERN_MISSING = 3;

/**
 * Counts of vote patterns over m metrics. A pattern is stored as one base-4 integer (a, b, tie, missing per
 * metric), so memory is bounded by the ≤ 4^m distinct patterns whatever the number of items.
 */
export class VotePatterns {
  readonly metrics: readonly string[];
  readonly foldSides: boolean;
  private readonly counts = new Map<number, number>();
  private total = 0;

  constructor(metrics: readonly string[], options: VotePatternOptions = {}) {
    if (metrics.length === 0 || metrics.length > 20) throw new RangeError(`VotePatterns: need 1–20 metrics, got ${metrics.length}`);
    this.metrics = [...metrics];
    this.foldSides = options.foldSides ?? false;
  }

  add(votes: readonly (Vote | null)[]): void {
    const m = this.metrics.length;
    if (votes.length !== m) throw new RangeError(`VotePatterns.add: expected ${m} votes, got ${votes.length}`);
    let flip = false;
    if (this.foldSides) {
      const first = votes.find((v) => v === 1 || v === -1);
      flip = first === -1;
    }
    let code = 0;
    for (let i = m - 1; i >= 0; i--) {
      const v = votes[i]!;
      let c: number;
      if (v === null) c = PATTERN_MISSING;
      else if (v === 0) c = PATTERN_TIE;
      else if (v === 1) c = flip ? PATTERN_B : PATTERN_A;
      else if (v === -1) c = flip ? PATTERN_A : PATTERN_B;
      else throw new RangeError(`not a vote (expected +1, −1, 0 or null): ${String(v)}`);
      code = code * 4 + c;
    }
    this.counts.set(code, (this.counts.get(code) ?? 0) + 1);
    this.total++;
  }

  merge(other: VotePatterns): this {
    if (other.metrics.join('\u0000') !== this.metrics.join('\u0000') || other.foldSides !== this.foldSides) {
      throw new RangeError('VotePatterns.merge: different metrics or folding');
    }
    for (const [code, c] of other.counts) this.counts.set(code, (this.counts.get(code) ?? 0) + c);
    this.total += other.total;
    return this;
  }

  get items(): number {
    return this.total;
  }

  /** The most frequent patterns, by count and then by key (so equal counts come out in a stable order). */
  top(limit = Infinity): VotePattern[] {
    const patterns = [...this.counts].map(([code, count]) => this.decode(code, count));
    patterns.sort((p, q) => q.count - p.count || (p.key < q.key ? -1 : p.key > q.key ? 1 : 0));
    return patterns.slice(0, limit);
  }

  private decode(code: number, count: number): VotePattern {
    const groups: string[][] = [[], [], [], []];
    for (const name of this.metrics) {
      groups[code % 4]!.push(name);
      code = Math.floor(code / 4);
    }
    const [a, b, tie, missing] = groups as [string[], string[], string[], string[]];
    const side = (names: string[]) => (names.length > 0 ? names.join('+') : '—');
    let key = `${side(a)} vs ${side(b)}`;
    if (tie.length > 0) key += ` (tie: ${tie.join('+')})`;
    if (missing.length > 0) key += ` (missing: ${missing.join('+')})`;
    return { key, a, b, tie, missing, count, fraction: count / this.total };
  }
}
