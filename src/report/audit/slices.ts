// The audit's per-slice accumulators: one per slice (all pairs, each split, each prompt category), fed pair by pair
// while the consensus files stream past, each turned into a SliceReport at the end.
import { AgreementMatrix, FleissKappa, MeanKendallTau, TieAwareAccuracy, VotePatterns, type Vote } from '../agreement.ts';
import type { PatternRow, SliceReport } from '../model.ts';

export interface PairVotes {
  metricVotes: (Vote | null)[];
  consensus: Vote | null;
  human: Vote | null;
  missing: boolean;
  tie: boolean;
  /** The consensus label is the human label (a tie resolved by --ties human). */
  byHuman: boolean;
}

export class SliceAccumulator {
  pairs = 0;
  humanLabelled = 0;
  consensusTies = 0;
  voted = 0;
  private readonly raters: string[];
  private readonly agreement: AgreementMatrix;
  private readonly fleiss: FleissKappa | null;
  private readonly accuracy: TieAwareAccuracy[];
  private readonly votes: Float64Array;
  private readonly ties: Float64Array;
  private readonly patterns: VotePatterns;
  /** The same patterns split by what the humans said: with the left coalition, the right one, a tie. */
  private readonly humanSides: [VotePatterns, VotePatterns, VotePatterns];
  private kendall: MeanKendallTau[] | null = null;
  /** Every rater's vote of the pair being added (metrics, consensus, human), refilled by each add. */
  private readonly allVotes: (Vote | null)[];

  constructor(
    readonly kind: SliceReport['kind'],
    readonly name: string,
    private readonly metrics: readonly string[],
  ) {
    this.raters = [...metrics, 'consensus', 'human'];
    this.allVotes = new Array(this.raters.length).fill(null);
    this.agreement = new AgreementMatrix(this.raters);
    this.fleiss = metrics.length >= 2 ? new FleissKappa() : null;
    this.accuracy = [...metrics, 'consensus'].map(() => new TieAwareAccuracy());
    this.votes = new Float64Array(this.raters.length);
    this.ties = new Float64Array(this.raters.length);
    const fold = { foldSides: true };
    this.patterns = new VotePatterns(metrics, fold);
    this.humanSides = [new VotePatterns(metrics, fold), new VotePatterns(metrics, fold), new VotePatterns(metrics, fold)];
  }

  add(v: PairVotes, humanPref: number | null): void {
    this.pairs++;
    if (v.human !== null) this.humanLabelled++;
    if (!v.missing) this.voted++;
    if (v.tie) this.consensusTies++;
    const M = this.metrics.length;
    const all = this.allVotes;
    for (let m = 0; m < M; m++) all[m] = v.metricVotes[m]!;
    all[M] = v.consensus;
    all[M + 1] = v.human;
    this.agreement.add(all);
    for (let r = 0; r < all.length; r++) {
      const vote = all[r];
      if (vote === null) continue;
      this.votes[r]! += 1;
      if (vote === 0) this.ties[r]! += 1;
    }
    this.fleiss?.addVotes(v.metricVotes);
    for (let m = 0; m < M; m++) this.accuracy[m]!.add(v.metricVotes[m]!, humanPref);
    this.accuracy[M]!.add(v.byHuman ? null : v.consensus, humanPref);
    this.patterns.add(v.metricVotes);
    if (v.human !== null) {
      // The left coalition is the side of the first metric that voted (VotePatterns' folding); a when none did.
      const first = v.metricVotes.find((x) => x === 1 || x === -1) ?? 1;
      const side = v.human === 0 ? 2 : v.human === first ? 0 : 1;
      this.humanSides[side]!.add(v.metricVotes);
    }
  }

  addGroup(scores: readonly (readonly (number | null)[])[], ranks: readonly number[]): void {
    this.kendall ??= this.metrics.map(() => new MeanKendallTau());
    scores.forEach((s, m) => this.kendall![m]!.add(s, ranks));
  }

  result(): SliceReport {
    const sideCounts = this.humanSides.map((p) => new Map(p.top().map((row) => [row.key, row.count])));
    const patterns: PatternRow[] = this.patterns.top().map((p) => {
      const [left, right, tie] = sideCounts.map((m) => m.get(p.key) ?? 0) as [number, number, number];
      const labelled = left + right + tie;
      return {
        key: p.key,
        left: p.a,
        right: p.b,
        tie: p.tie,
        missing: p.missing,
        count: p.count,
        fraction: p.fraction,
        human: { left, right, tie, unlabelled: p.count - labelled },
        humanSidesWithLeft: labelled > 0 ? left / labelled : NaN,
      };
    });
    const agreement = this.agreement.result().pairs;
    const humanKappas = agreement
      .filter((p) => p.y === 'human' && this.metrics.includes(p.x) && Number.isFinite(p.kappa))
      .map((p) => p.kappa);
    return {
      kind: this.kind,
      name: this.name,
      pairs: this.pairs,
      humanLabelled: this.humanLabelled,
      consensusTies: this.consensusTies,
      voted: this.voted,
      tieRate: this.voted > 0 ? this.consensusTies / this.voted : NaN,
      raters: [...this.raters],
      agreement,
      meanKappaVsHuman: humanKappas.length > 0 ? humanKappas.reduce((x, y) => x + y, 0) / humanKappas.length : Number.NaN,
      fleiss: this.fleiss?.result() ?? null,
      accuracy: [...this.metrics, 'consensus'].map((rater, i) => ({ rater, ...this.accuracy[i]!.result() })),
      tieRates: this.raters.map((rater, r) => ({
        rater,
        votes: this.votes[r]!,
        ties: this.ties[r]!,
        tieRate: this.votes[r]! > 0 ? this.ties[r]! / this.votes[r]! : NaN,
      })),
      kendall: this.kendall === null ? null : this.kendall.map((k, m) => ({ metric: this.metrics[m]!, ...k.result() })),
      patterns,
      distinctPatterns: patterns.length,
    };
  }
}

/** Slices keyed by name, created on first use; sorted by name with "(none)" last. */
export class SliceSet {
  private readonly slices = new Map<string, SliceAccumulator>();
  constructor(
    private readonly kind: 'split' | 'category',
    private readonly metrics: readonly string[],
  ) {}

  get(name: string | null): SliceAccumulator {
    const key = name ?? NONE;
    let slice = this.slices.get(key);
    if (!slice) {
      slice = new SliceAccumulator(this.kind, key, this.metrics);
      this.slices.set(key, slice);
    }
    return slice;
  }

  /** Empty when every pair fell into "(none)": a dataset without splits / categories has no such slices. */
  results(): SliceReport[] {
    if (this.slices.size === 0 || (this.slices.size === 1 && this.slices.has(NONE))) return [];
    return [...this.slices.keys()]
      .sort((x, y) => (x === NONE ? 1 : y === NONE ? -1 : x < y ? -1 : x > y ? 1 : 0))
      .map((key) => this.slices.get(key)!.result());
  }
}

const NONE = '(none)';
