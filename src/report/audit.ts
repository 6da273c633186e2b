// `bdpo audit`: where the metrics disagree, with each other and with humans, read from a dataset directory's
// consensus files. One streaming pass over consensus/<rule>/part-*.parquet (row group by row group) feeds
// accumulators per slice (all pairs, each split, each prompt category); memory holds the accumulators, the
// contested-pair heaps, the prompt → category map and the HPD ranked groups (a few pairs each), not the pairs.
// Scores are read again only for the histograms (two passes over the score column) and, when ranked groups exist,
// through the score table for Kendall's τ. The page and the JSON are written from one report object.
import { isMissingFile, readJsonFile } from '../io/json-file.ts';
import { consensusOptionsLocation, readMetaJson } from '../core/dataset-meta.ts';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { listParts, readPart, readRows } from '../io/arrow-table.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { openDatasetParquet, readRowGroupColumns, type ParquetCell } from '../io/parquet.ts';
import { ruleFolder } from '../core/dataset-meta.ts';
import { loadScoreTable } from '../core/score-table.ts';
import { TOOL_VERSION } from '../core/version.ts';
import {
  AgreementMatrix,
  FleissKappa,
  humanVote,
  MeanKendallTau,
  TieAwareAccuracy,
  VotePatterns,
  type FleissResult,
  type MeanKendallTauResult,
  type PairAgreementResult,
  type TieAwareAccuracyResult,
  type Vote,
} from './agreement.ts';
import { Histogram, MinMax, Reliability, type HistogramResult, type ReliabilityResult } from './distribution.ts';
import { calibrationFitText, renderAuditPage } from './html.ts';
import { collectThumbnails, type ThumbnailOptions } from './thumbnails.ts';
import { boundedText } from '../core/format.ts';

export class AuditInputError extends Error {}

export interface AuditOptions {
  /**
   * The consensus files audited: a rule run with its defaults (`majority`, `single:pick`) or the name of any folder
   * under consensus/ (`majority.ties-half`); default `majority`.
   */
  rule?: string;
  /** Contested pairs shown per list (default 24). */
  top?: number;
  /** Histogram bins of the score distributions (default 30); reliability curves use 10. */
  bins?: number;
}

export interface RunAuditOptions extends AuditOptions {
  /** Folder that receives report.html and report.json (created if needed). */
  out: string;
  thumbnails?: ThumbnailOptions;
}

export interface RaterTies {
  rater: string;
  votes: number;
  ties: number;
  tieRate: number;
}

export interface PatternRow {
  key: string;
  /** The coalition holding the first metric that voted, and the one against it. */
  left: string[];
  right: string[];
  tie: string[];
  missing: string[];
  count: number;
  fraction: number;
  /** Human labels of these pairs: with the left coalition, with the right one, a tie, or none. */
  human: { left: number; right: number; tie: number; unlabelled: number };
  /** left / (left + right + tie): how often the humans sided with the left coalition (NaN without labels). */
  humanSidesWithLeft: number;
}

export interface SliceReport {
  kind: 'all' | 'split' | 'category';
  name: string;
  pairs: number;
  humanLabelled: number;
  /** Pairs where the rule tied, and pairs it could vote on (not dropped as `missing`). */
  consensusTies: number;
  voted: number;
  tieRate: number;
  /** The metrics, then `consensus` and `human`. */
  raters: string[];
  agreement: (PairAgreementResult & { x: string; y: string })[];
  /** Mean over the metrics of Cohen's κ with the human labels (the metrics with a defined κ). */
  meanKappaVsHuman: number;
  /** Across the metrics; null with fewer than two metrics. */
  fleiss: FleissResult | null;
  /** Each metric, then `consensus`, against the human labels. */
  accuracy: (TieAwareAccuracyResult & { rater: string })[];
  tieRates: RaterTies[];
  /** Null when the slice holds no ranked group. */
  kendall: (MeanKendallTauResult & { metric: string })[] | null;
  /** Every folded vote pattern, most frequent first. */
  patterns: PatternRow[];
  distinctPatterns: number;
}

export interface ContestedPair {
  pairId: string;
  promptId: string;
  prompt: string | null;
  imageA: string;
  imageB: string;
  split: string | null;
  category: string | null;
  human: number | null;
  label: number | null;
  tie: boolean;
  soft: number | null;
  margin: number | null;
  disagreement: number | null;
  /** max p − min p over the metrics that have a p. */
  spread: number;
  votesA: number;
  votesB: number;
  metrics: { metric: string; p: number | null; vote: Vote | null }[];
}

export interface ScoreDistribution {
  metric: string;
  count: number;
  nonFinite: number;
  mean: number;
  std: number;
  min: number;
  max: number;
  histogram: HistogramResult;
}

export interface AuditReport {
  kind: 'audit';
  toolVersion: string;
  dataset: string;
  datasetName: string;
  rule: string;
  ties: string;
  margin: number;
  metrics: string[];
  temperatures: Record<string, { tau: number; source: string }> | null;
  overall: SliceReport;
  bySplit: SliceReport[];
  byCategory: SliceReport[];
  /** HPD ranked groups seen (test.json#<group>), and those left out because some of their pairs are absent. */
  rankedGroups: { groups: number; incomplete: number; pairs: number };
  scores: ScoreDistribution[];
  /** Reliability of each metric's p, and of the consensus soft label, against human labels. */
  calibration: { rater: string; reliability: ReliabilityResult }[];
  /**
   * Whether those reliability numbers are in-sample: the splits the fitted τ were fitted on ('all' for every pair,
   * null when no consensus τ was fitted), and how many of the human-labelled pairs audited lie in them.
   */
  calibrationFit: { fittedOn: string[] | 'all' | null; inSamplePairs: number; labelledPairs: number };
  contested: {
    top: number;
    byDisagreement: ContestedPair[];
    mismatches: ContestedPair[];
    /** Pairs where the rule decided (no tie) and the human label is a or b, and those where the two differ. */
    mismatchCompared: number;
    mismatchCount: number;
  };
}

export interface AuditResult {
  report: AuditReport;
  files: { html: string; json: string };
  thumbnails: number;
  htmlBytes: number;
}

// ---------------------------------------------------------------------------------------------------------------
// A bounded heap of the best items: the worst kept item sits at the root, so a better newcomer replaces it.

export class TopN<T> {
  private readonly items: T[] = [];
  /** `before(x, y)`: x ranks ahead of y. */
  constructor(
    readonly limit: number,
    private readonly before: (x: T, y: T) => boolean,
  ) {}

  push(item: T): void {
    if (this.limit <= 0) return;
    const heap = this.items;
    if (heap.length < this.limit) {
      heap.push(item);
      let i = heap.length - 1;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!this.before(heap[parent]!, heap[i]!)) break;
        [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
        i = parent;
      }
    } else if (this.before(item, heap[0]!)) {
      heap[0] = item;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let worst = i;
        if (l < heap.length && this.before(heap[worst]!, heap[l]!)) worst = l;
        if (r < heap.length && this.before(heap[worst]!, heap[r]!)) worst = r;
        if (worst === i) break;
        [heap[worst], heap[i]] = [heap[i]!, heap[worst]!];
        i = worst;
      }
    }
  }

  /** The kept items, best first. */
  sorted(): T[] {
    return [...this.items].sort((x, y) => (this.before(x, y) ? -1 : this.before(y, x) ? 1 : 0));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Per-slice accumulators

interface PairVotes {
  metricVotes: (Vote | null)[];
  consensus: Vote | null;
  human: Vote | null;
  missing: boolean;
  tie: boolean;
  /** The consensus label is the human label (a tie resolved by --ties human). */
  byHuman: boolean;
}

class SliceAccumulator {
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

  constructor(
    readonly kind: SliceReport['kind'],
    readonly name: string,
    private readonly metrics: readonly string[],
  ) {
    this.raters = [...metrics, 'consensus', 'human'];
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
    const all = [...v.metricVotes, v.consensus, v.human];
    this.agreement.add(all);
    all.forEach((vote, r) => {
      if (vote === null) return;
      this.votes[r]! += 1;
      if (vote === 0) this.ties[r]! += 1;
    });
    this.fleiss?.addVotes(v.metricVotes);
    v.metricVotes.forEach((vote, m) => this.accuracy[m]!.add(vote, humanPref));
    this.accuracy[this.metrics.length]!.add(v.byHuman ? null : v.consensus, humanPref);
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
    const humanKappas = agreement.filter((p) => p.y === 'human' && this.metrics.includes(p.x) && Number.isFinite(p.kappa)).map((p) => p.kappa);
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
class SliceSet {
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

// ---------------------------------------------------------------------------------------------------------------
// HPD ranked groups: pairs `test.json#<group>:<i>-<j>` of one prompt; the group's human ranks are rebuilt from them.

export const RANKED_PAIR = /^test\.json#(\d+):(\d+)-(\d+)$/;

interface RankedGroup {
  promptId: string;
  split: string | null;
  category: string | null;
  images: Map<number, string>;
  prefs: { i: number; j: number; pref: number | null }[];
}

/**
 * Human ranks (1 = best, equal ranks for ties) of a group's positions from its pairwise labels: rank_i = 1 + the
 * number of positions preferred over i. Null when a pair of the group is absent or unlabelled, as the ranks could
 * then not be rebuilt exactly.
 */
export function ranksFromPairs(positions: readonly number[], prefs: readonly { i: number; j: number; pref: number | null }[]): number[] | null {
  const k = positions.length;
  if (prefs.length !== (k * (k - 1)) / 2) return null;
  const at = new Map(positions.map((p, index) => [p, index]));
  const ranks = new Array<number>(k).fill(1);
  const seen = new Set<string>();
  for (const { i, j, pref } of prefs) {
    const x = at.get(i);
    const y = at.get(j);
    if (x === undefined || y === undefined || pref === null || seen.has(`${i}-${j}`)) return null;
    seen.add(`${i}-${j}`);
    if (pref > 0.5) ranks[y]! += 1;
    else if (pref < 0.5) ranks[x]! += 1;
  }
  return ranks;
}

// ---------------------------------------------------------------------------------------------------------------
// Building the report

const cellString = (x: ParquetCell): string | null => (x === null || x === undefined ? null : String(x));
const cellNumber = (x: ParquetCell): number | null => {
  if (x === null || x === undefined) return null;
  const n = Number(x);
  return Number.isNaN(n) ? null : n;
};

interface SavedConsensusOptions {
  rule?: string;
  ties?: string;
  margin?: number;
  temperatures?: AuditReport['temperatures'];
  /** The splits calibrate fitted the calibrated τ on (written by consensus when some τ is calibrated). */
  calibratedOn?: string[] | 'all';
}

async function readConsensusOptions(dir: string, ruleFolderName: string): Promise<SavedConsensusOptions> {
  try {
    return (await readMetaJson(consensusOptionsLocation(dir, ruleFolderName))) as SavedConsensusOptions;
  } catch (error) {
    // A folder without its meta/consensus/<rule>.json (written by hand) has no recorded options; a damaged one is an error.
    if (isMissingFile(error)) return {};
    throw error;
  }
}

/** source_ref of the pairs of one pairs part that belong to ranked groups, by pair_id. */
async function rankedRefs(dir: string, consensusFile: string): Promise<Map<string, string>> {
  const refs = new Map<string, string>();
  const pairsFile = `pairs/${basename(consensusFile).replace(/\.parquet$/, '.arrow')}`;
  let part;
  try {
    part = await readPart(dir, pairsFile);
  } catch (error) {
    if (isMissingFile(error)) return refs;
    throw error;
  }
  const ids = part.getChild('pair_id');
  const sourceRefs = part.getChild('source_ref');
  if (!ids || !sourceRefs) return refs;
  for (let i = 0; i < part.numRows; i++) {
    const ref = sourceRefs.get(i) as string;
    if (RANKED_PAIR.test(ref)) refs.set(ids.get(i) as string, ref);
  }
  return refs;
}

async function scoreDistribution(dir: string, metric: string, bins: number): Promise<ScoreDistribution> {
  const files = await listParts(dir, `scores/${metric}`, '.parquet');
  // Each (image, prompt) once, as the score table counts them: an image scored twice under one prompt (it sits in
  // two splits) is one image of the distribution. The first pass marks the repeated rows for the second.
  const seen = new Set<string>();
  const repeated = new Set<number>();
  let pass = 0;
  const each = async (visit: (x: number) => void): Promise<void> => {
    let row = 0;
    for (const file of files) {
      const source = await openDatasetParquet(dir, file);
      for (const group of source.rowGroups) {
        const data = await readRowGroupColumns(source, group, pass === 0 ? ['image_id', 'prompt_id', 'score'] : ['score']);
        const scores = data.score!;
        for (let i = 0; i < scores.length; i++, row++) {
          if (pass === 0) {
            const key = `${String(data.image_id![i])}\u0000${String(data.prompt_id![i])}`;
            if (seen.has(key)) {
              repeated.add(row);
              continue;
            }
            seen.add(key);
          } else if (repeated.has(row)) continue;
          visit(cellNumber(scores[i]) ?? Number.NaN);
        }
      }
    }
    pass++;
  };
  const range = new MinMax();
  let sum = 0;
  await each((x) => {
    range.add(x);
    if (Number.isFinite(x)) sum += x;
  });
  const mean = range.count > 0 ? sum / range.count : Number.NaN;
  let lo = range.min;
  let hi = range.max;
  if (range.count === 0) [lo, hi] = [0, 1];
  else if (lo === hi) [lo, hi] = [lo - 0.5, hi + 0.5];
  const histogram = new Histogram(lo, hi, bins);
  let squares = 0;
  await each((x) => {
    histogram.add(x);
    if (Number.isFinite(x)) squares += (x - mean) ** 2;
  });
  return {
    metric,
    count: range.count,
    nonFinite: range.nonFinite,
    mean,
    std: range.count > 0 ? Math.sqrt(squares / range.count) : Number.NaN,
    min: range.count > 0 ? range.min : Number.NaN,
    max: range.count > 0 ? range.max : Number.NaN,
    histogram: histogram.result(),
  };
}

interface Candidate extends Omit<ContestedPair, 'prompt'> {}

const byDisagreement = (x: Candidate, y: Candidate): boolean =>
  x.disagreement! !== y.disagreement! ? x.disagreement! > y.disagreement! : x.spread !== y.spread ? x.spread > y.spread : x.pairId < y.pairId;
const byMargin = (x: Candidate, y: Candidate): boolean => {
  const mx = x.margin ?? -1;
  const my = y.margin ?? -1;
  return mx !== my ? mx > my : x.spread !== y.spread ? x.spread > y.spread : x.pairId < y.pairId;
};

/** Every statistic of the audit, gathered by streaming the dataset's files; no file is written. */
export async function buildAuditReport(dir: string, options: AuditOptions = {}): Promise<AuditReport> {
  const ruleName = options.rule ?? 'majority';
  const top = options.top ?? 24;
  const bins = options.bins ?? 30;
  if (!Number.isInteger(top) || top < 0) throw new AuditInputError(`--top must be a non-negative integer, got ${top}`);
  const folder = join('consensus', ruleFolder(ruleName));
  const parts = await listParts(dir, folder, '.parquet');
  if (parts.length === 0) {
    const known = (await readdir(join(dir, 'consensus'), { withFileTypes: true }).catch(() => []))
      .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
      .map((e) => e.name)
      .sort();
    throw new AuditInputError(
      `${dir}: no ${folder}/part-*.parquet (run bdpo consensus ${dir} --rule ${ruleName} first; consensus folders here: ${known.join(', ') || 'none'})`,
    );
  }
  const saved = await readConsensusOptions(dir, ruleFolder(ruleName));
  // The consensus rater votes as the labels were written: a policy that resolves ties (a metric, the human label)
  // gives the tie a side; drop and half leave it an abstention. Without recorded options a tie stays an abstention.
  const tiesResolved = saved.ties !== undefined && saved.ties !== 'drop' && saved.ties !== 'half';
  const calibrated = Object.values(saved.temperatures ?? {}).some((t) => t.source === 'calibrated');
  // A calibrated folder from before consensus recorded the splits was fitted on every pair.
  const fittedOn = calibrated ? (saved.calibratedOn ?? 'all') : null;
  const calibrationFit: AuditReport['calibrationFit'] = { fittedOn, inSamplePairs: 0, labelledPairs: 0 };

  // Prompt categories (only the prompts that have one), for the per-category slices.
  const categories = new Map<string, string>();
  for await (const prompt of readRows(dir, 'prompts')) {
    if (prompt.category !== null && !categories.has(prompt.prompt_id)) categories.set(prompt.prompt_id, prompt.category);
  }

  let metrics: string[] | null = null;
  let overall!: SliceAccumulator;
  let splits!: SliceSet;
  let categorySlices!: SliceSet;
  let reliability: Reliability[] = [];
  const groups = new Map<string, RankedGroup>();
  const contested = new TopN<Candidate>(top, byDisagreement);
  const mismatches = new TopN<Candidate>(top, byMargin);
  let mismatchCompared = 0;
  let mismatchCount = 0;

  for (const file of parts) {
    const source = await openDatasetParquet(dir, file);
    const partMetrics = source.columns.filter((c) => c.startsWith('p_')).map((c) => c.slice(2));
    if (metrics === null) {
      metrics = partMetrics;
      if (metrics.length === 0) throw new AuditInputError(`${join(dir, file)}: no p_<metric> columns`);
      const reserved = metrics.filter((m) => m === 'consensus' || m === 'human');
      if (reserved.length > 0) throw new AuditInputError(`a metric named "${reserved[0]}" clashes with the audit's own rater of that name; rename the metric`);
      overall = new SliceAccumulator('all', 'all pairs', metrics);
      splits = new SliceSet('split', metrics);
      categorySlices = new SliceSet('category', metrics);
      reliability = [...metrics, 'consensus'].map(() => new Reliability(10));
    } else if (partMetrics.join(',') !== metrics.join(',')) {
      throw new AuditInputError(`${join(dir, file)}: metrics ${partMetrics.join(', ')} differ from ${metrics.join(', ')} in the other parts`);
    }
    const M = metrics.length;
    const refs = await rankedRefs(dir, file);
    const wanted = [
      'pair_id', 'prompt_id', 'image_a', 'image_b', 'human_pref', 'split', 'votes_a', 'votes_b', 'label', 'soft', 'margin',
      'disagreement', 'tie', 'reason', ...metrics.flatMap((m) => [`p_${m}`, `vote_${m}`]),
    ];
    const absent = wanted.filter((c) => !source.columns.includes(c));
    if (absent.length > 0) throw new AuditInputError(`${join(dir, file)}: not a consensus file (no ${absent.join(', ')})`);
    for (const group of source.rowGroups) {
      const c = await readRowGroupColumns(source, group, wanted);
      const pCols = metrics.map((m) => c[`p_${m}`]!);
      const voteCols = metrics.map((m) => c[`vote_${m}`]!);
      for (let i = 0; i < group.numRows; i++) {
        const pairId = String(c.pair_id![i]);
        const promptId = String(c.prompt_id![i]);
        const humanPref = cellNumber(c.human_pref![i]);
        const split = cellString(c.split![i]);
        const category = categories.get(promptId) ?? null;
        const tie = c.tie![i] === true;
        const missing = c.reason![i] === 'missing';
        const label = cellNumber(c.label![i]);
        const p = pCols.map((col) => cellNumber(col[i]));
        const metricVotes = voteCols.map((col, m): Vote | null => (p[m] === null ? null : (Math.sign(Number(col[i])) as Vote)));
        const consensus: Vote | null =
          missing ? null : tie && !tiesResolved ? 0 : label === null ? (tie ? 0 : null) : label > 0.5 ? 1 : label < 0.5 ? -1 : 0;
        const human = humanVote(humanPref);
        // A tie resolved by the human label agrees with it by construction: not evidence of the rule's accuracy.
        const byHuman = c.reason![i] === 'tie-human';
        const votes: PairVotes = { metricVotes, consensus, human, missing, tie, byHuman };
        if (humanPref !== null) {
          calibrationFit.labelledPairs++;
          if (fittedOn === 'all' || (fittedOn !== null && split !== null && fittedOn.includes(split))) calibrationFit.inSamplePairs++;
        }
        overall.add(votes, humanPref);
        splits.get(split).add(votes, humanPref);
        categorySlices.get(category).add(votes, humanPref);
        p.forEach((x, m) => reliability[m]!.add(x, humanPref));
        reliability[M]!.add(cellNumber(c.soft![i]), humanPref);

        let lo = Infinity;
        let hi = -Infinity;
        for (const x of p) {
          if (x === null) continue;
          lo = Math.min(lo, x);
          hi = Math.max(hi, x);
        }
        const candidate = (): Candidate => ({
          pairId,
          promptId,
          imageA: String(c.image_a![i]),
          imageB: String(c.image_b![i]),
          split,
          category,
          human: humanPref,
          label,
          tie,
          soft: cellNumber(c.soft![i]),
          margin: cellNumber(c.margin![i]),
          disagreement: cellNumber(c.disagreement![i]),
          spread: hi > lo ? hi - lo : 0,
          votesA: Number(c.votes_a![i]),
          votesB: Number(c.votes_b![i]),
          metrics: metrics!.map((metric, m) => ({ metric, p: p[m]!, vote: metricVotes[m]! })),
        });
        const disagreement = cellNumber(c.disagreement![i]);
        // A unanimous pair (entropy 0) is not contested, however few pairs there are.
        if (disagreement !== null && disagreement > 0) contested.push(candidate());
        if ((consensus === 1 || consensus === -1) && (human === 1 || human === -1) && !byHuman) {
          mismatchCompared++;
          if (consensus !== human) {
            mismatchCount++;
            mismatches.push(candidate());
          }
        }

        const ref = refs.get(pairId);
        const match = ref === undefined ? null : RANKED_PAIR.exec(ref);
        if (match) {
          const key = `${promptId}\u0000${match[1]}`;
          let g = groups.get(key);
          if (!g) {
            g = { promptId, split, category, images: new Map(), prefs: [] };
            groups.set(key, g);
          }
          const [x, y] = [Number(match[2]), Number(match[3])];
          g.images.set(x, String(c.image_a![i]));
          g.images.set(y, String(c.image_b![i]));
          g.prefs.push({ i: x, j: y, pref: humanPref });
        }
      }
    }
  }
  const names = metrics!;

  // Kendall's τ per ranked group, from the cached per-image scores.
  const rankedGroups = { groups: groups.size, incomplete: 0, pairs: 0 };
  if (groups.size > 0) {
    const table = await loadScoreTable(dir, names);
    for (const g of groups.values()) {
      rankedGroups.pairs += g.prefs.length;
      const positions = [...g.images.keys()].sort((x, y) => x - y);
      const ranks = ranksFromPairs(positions, g.prefs);
      if (ranks === null) {
        rankedGroups.incomplete++;
        continue;
      }
      const scores = names.map((_, m) =>
        positions.map((pos) => {
          const s = table.score(m, g.images.get(pos)!, g.promptId);
          return Number.isFinite(s) ? s : null;
        }),
      );
      overall.addGroup(scores, ranks);
      splits.get(g.split).addGroup(scores, ranks);
      categorySlices.get(g.category).addGroup(scores, ranks);
    }
  }

  const scores: ScoreDistribution[] = [];
  for (const metric of names) scores.push(await scoreDistribution(dir, metric, bins));

  // Prompt texts of the pairs that will be shown.
  const chosen = { byDisagreement: contested.sorted(), mismatches: mismatches.sorted() };
  const wantedPrompts = new Set([...chosen.byDisagreement, ...chosen.mismatches].map((x) => x.promptId));
  const texts = new Map<string, string>();
  if (wantedPrompts.size > 0) {
    for await (const prompt of readRows(dir, 'prompts')) {
      if (wantedPrompts.has(prompt.prompt_id) && !texts.has(prompt.prompt_id)) texts.set(prompt.prompt_id, boundedText(prompt.text));
    }
  }
  const withPrompt = (x: Candidate): ContestedPair => ({ ...x, prompt: texts.get(x.promptId) ?? null });

  const absolute = resolve(dir);
  return {
    kind: 'audit',
    toolVersion: TOOL_VERSION,
    dataset: dir,
    datasetName: basename(absolute),
    rule: saved.rule ?? ruleName,
    ties: saved.ties ?? 'unknown',
    margin: saved.margin ?? 0,
    metrics: names,
    temperatures: saved.temperatures ?? null,
    overall: overall.result(),
    bySplit: splits.results(),
    byCategory: categorySlices.results(),
    rankedGroups,
    scores,
    calibration: [...names, 'consensus'].map((rater, r) => ({ rater, reliability: reliability[r]!.result() })),
    calibrationFit,
    contested: {
      top,
      byDisagreement: chosen.byDisagreement.map(withPrompt),
      mismatches: chosen.mismatches.map(withPrompt),
      mismatchCompared,
      mismatchCount,
    },
  };
}

/** JSON with NaN and ±Infinity written as null (JSON has no such numbers). */
export function reportJson(report: unknown): string {
  return `${JSON.stringify(report, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? null : value), 2)}\n`;
}

/** The audit of `dir` into `options.out`/report.html and report.json. */
export async function runAudit(dir: string, options: RunAuditOptions): Promise<AuditResult> {
  const report = await buildAuditReport(dir, options);
  const shown = [...report.contested.byDisagreement, ...report.contested.mismatches];
  const thumbs = await collectThumbnails(dir, shown.flatMap((x) => [x.imageA, x.imageB]), options.thumbnails);
  const page = renderAuditPage(report, thumbs);
  await mkdir(options.out, { recursive: true });
  const files = { html: join(options.out, 'report.html'), json: join(options.out, 'report.json') };
  const bytes = Buffer.from(page, 'utf8');
  await writeFileAtomic(files.html, bytes);
  await writeFileAtomic(files.json, Buffer.from(reportJson(report), 'utf8'));
  return { report, files, thumbnails: thumbs.size, htmlBytes: bytes.byteLength };
}

const pctText = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : `${(100 * x).toFixed(1)}%`);
const num = (x: number | null | undefined, digits = 3): string => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits));

/** The short text summary the CLI prints. */
export function formatAuditSummary(result: AuditResult): string {
  const r = result.report;
  const o = r.overall;
  const lines = [
    `audit ${r.dataset}: rule ${r.rule}, ties ${r.ties}, ${o.pairs} pairs (${o.humanLabelled} human-labelled), tie rate ${pctText(o.tieRate)}`,
    `  Fleiss' κ across ${r.metrics.length} metrics: ${num(o.fleiss?.kappa)}`,
  ];
  const width = Math.max(9, ...r.metrics.map((m) => m.length));
  for (const a of o.accuracy) {
    const kappa = o.agreement.find((p) => p.x === a.rater && p.y === 'human');
    const tau = o.kendall?.find((k) => k.metric === a.rater);
    lines.push(
      `  ${a.rater.padEnd(width)} accuracy vs humans ${pctText(a.accuracy)} (n ${a.n}), κ ${num(kappa?.kappa)}${tau ? `, Kendall τ ${num(tau.mean)} over ${tau.groups} groups` : ''}`,
    );
  }
  const topPattern = o.patterns[0];
  if (topPattern) lines.push(`  most common vote pattern: ${topPattern.key} (${pctText(topPattern.fraction)})`);
  lines.push(`  consensus ≠ human on ${r.contested.mismatchCount} of ${r.contested.mismatchCompared} decided pairs`);
  lines.push(`  calibration: ${calibrationFitText(r.calibrationFit)}`);
  lines.push(`  → ${result.files.html} (${(result.htmlBytes / 1024).toFixed(0)} KB, ${result.thumbnails} thumbnails), ${result.files.json}`);
  return lines.join('\n');
}

