// Computing the audit: where the metrics disagree, with each other and with humans, read from a dataset directory's
// consensus files. One streaming pass over consensus/<rule>/part-*.parquet (row group by row group) feeds
// accumulators per slice (all pairs, each split, each prompt category); memory holds the accumulators, the
// contested-pair heaps, the prompt → category map and the HPD ranked groups (a few pairs each), not the pairs.
// Scores are read again only for the histograms (two passes over the score column) and, when ranked groups exist,
// through the score table for Kendall's τ.
import { readdir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { ruleFolder } from '../../core/dataset-meta.ts';
import { boundedText } from '../../core/format.ts';
import { loadScoreTable } from '../../core/score-table.ts';
import { TOOL_VERSION } from '../../core/version.ts';
import { listParts, readRows } from '../../io/arrow-table.ts';
import { openDatasetParquet, readRowGroupVectors } from '../../io/parquet.ts';
import { humanVote, type Vote } from '../agreement.ts';
import { Reliability } from '../distribution.ts';
import type { AuditReport, ContestedPair, ScoreDistribution } from '../model.ts';
import { TopN } from '../top-n.ts';
import { cellNumber, cellString, rankedRefs, readConsensusOptions } from './input.ts';
import { RANKED_PAIR, ranksFromPairs, type RankedGroup } from './ranked-groups.ts';
import { distributionIndex, scoreDistribution } from './score-distribution.ts';
import { SliceAccumulator, SliceSet, type PairVotes } from './slices.ts';
import { BdpoError } from '../../core/errors.ts';

export class AuditInputError extends BdpoError {}

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

interface Candidate extends Omit<ContestedPair, 'prompt'> {}

/** The ranking keys of a candidate, so that whether it would be kept is known before it is built. */
type RankKeys = Pick<Candidate, 'disagreement' | 'margin' | 'spread' | 'pairId'>;
const byDisagreement = (x: RankKeys, y: RankKeys): boolean =>
  x.disagreement! !== y.disagreement!
    ? x.disagreement! > y.disagreement!
    : x.spread !== y.spread
      ? x.spread > y.spread
      : x.pairId < y.pairId;
const byMargin = (x: RankKeys, y: RankKeys): boolean => {
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
      `${dir}: no ${folder}/part-*.parquet (run bdpo consensus ${dir} --rule ${ruleName} first; ` +
        `consensus folders here: ${known.join(', ') || 'none'})`,
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
      if (reserved.length > 0)
        throw new AuditInputError(`a metric named "${reserved[0]}" clashes with the audit's own rater of that name; rename the metric`);
      overall = new SliceAccumulator('all', 'all pairs', metrics);
      splits = new SliceSet('split', metrics);
      categorySlices = new SliceSet('category', metrics);
      reliability = [...metrics, 'consensus'].map(() => new Reliability(10));
    } else if (partMetrics.join(',') !== metrics.join(',')) {
      throw new AuditInputError(
        `${join(dir, file)}: metrics ${partMetrics.join(', ')} differ from ${metrics.join(', ')} in the other parts`,
      );
    }
    const M = metrics.length;
    const refs = await rankedRefs(dir, file);
    const wanted = [
      'pair_id',
      'prompt_id',
      'image_a',
      'image_b',
      'human_pref',
      'split',
      'votes_a',
      'votes_b',
      'label',
      'soft',
      'margin',
      'disagreement',
      'tie',
      'reason',
      ...metrics.flatMap((m) => [`p_${m}`, `vote_${m}`]),
    ];
    const absent = wanted.filter((c) => !source.columns.includes(c));
    if (absent.length > 0) throw new AuditInputError(`${join(dir, file)}: not a consensus file (no ${absent.join(', ')})`);
    for (const group of source.rowGroups) {
      const c = await readRowGroupVectors(source, group, wanted);
      const pCols = metrics.map((m) => c[`p_${m}`]!);
      const voteCols = metrics.map((m) => c[`vote_${m}`]!);
      // One row's values, refilled for each row (the accumulators read them and keep nothing; a candidate copies).
      const p: (number | null)[] = new Array(M).fill(null);
      const metricVotes: (Vote | null)[] = new Array(M).fill(null);
      for (let i = 0; i < group.numRows; i++) {
        const pairId = String(c.pair_id![i]);
        const promptId = String(c.prompt_id![i]);
        const humanPref = cellNumber(c.human_pref![i]);
        const split = cellString(c.split![i]);
        const category = categories.get(promptId) ?? null;
        const tie = c.tie![i] === true;
        const missing = c.reason![i] === 'missing';
        const label = cellNumber(c.label![i]);
        for (let m = 0; m < M; m++) {
          p[m] = cellNumber(pCols[m]![i]);
          metricVotes[m] = p[m] === null ? null : (Math.sign(Number(voteCols[m]![i])) as Vote);
        }
        const consensus: Vote | null = missing
          ? null
          : tie && !tiesResolved
            ? 0
            : label === null
              ? tie
                ? 0
                : null
              : label > 0.5
                ? 1
                : label < 0.5
                  ? -1
                  : 0;
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
        for (let m = 0; m < M; m++) reliability[m]!.add(p[m]!, humanPref);
        reliability[M]!.add(cellNumber(c.soft![i]), humanPref);

        let lo = Infinity;
        let hi = -Infinity;
        for (const x of p) {
          if (x === null) continue;
          lo = Math.min(lo, x);
          hi = Math.max(hi, x);
        }
        const disagreement = cellNumber(c.disagreement![i]);
        // A unanimous pair (entropy 0) is not contested, however few pairs there are.
        const isContested = disagreement !== null && disagreement > 0;
        const compared = (consensus === 1 || consensus === -1) && (human === 1 || human === -1) && !byHuman;
        if (compared) mismatchCompared++;
        const isMismatch = compared && consensus !== human;
        if (isMismatch) mismatchCount++;
        if (isContested || isMismatch) {
          // Built only for a pair that may enter a top list (most pairs do not).
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
          const keys: RankKeys = { disagreement, margin: cellNumber(c.margin![i]), spread: hi > lo ? hi - lo : 0, pairId };
          if (isContested && contested.wouldKeep((worst) => byDisagreement(keys, worst))) contested.push(candidate());
          if (isMismatch && mismatches.wouldKeep((worst) => byMargin(keys, worst))) mismatches.push(candidate());
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
  const seen = await distributionIndex(dir, names);
  for (const [m, metric] of names.entries()) scores.push(await scoreDistribution(dir, metric, bins, seen, m));

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
