// One pairs part through a consensus rule: its pairs joined to the score table (by id keys parsed from the Arrow
// buffers, no string per lookup), the kernel, and its consensus/<rule>/part-*.parquet. The same function runs in the
// main thread or in a worker (part-worker.ts); either way it returns the part's tallies, which the run sums in part
// order. No rule is defined here: computeConsensus is the definition.
import { basename } from 'node:path';
import type { Table } from 'apache-arrow';
import { readPart } from '../io/arrow-table.ts';
import { adoptDuplicatePlan, type DuplicatePlan } from '../io/part-dedupe.ts';
import { writeParquetPart } from '../io/parquet.ts';
import { NullableDoubles, TextCodes, type ColumnData } from '../io/parquet-encoder.ts';
import { doublesOf, textCodes, textColumn } from '../io/arrow-columns.ts';
import { consensusSpecs } from '../core/schema.ts';
import { columnWords } from '../core/id-words.ts';
import { ScoreLookup, type SharedScoreTable } from '../core/score-table.ts';
import type { MetricStats } from '../core/stats.ts';
import { allocateConsensusColumns, compileConsensus, computeConsensus, LABEL_REASONS, type ConsensusOptions } from './consensus.ts';

/** Everything a part needs, as structured-clonable data (the score table's buffers are shared, not copied). */
export interface PartJob {
  dir: string;
  /** The pairs part, relative to dir. */
  file: string;
  /** The folder the Parquet part goes to (the run's staging folder). */
  staging: string;
  options: ConsensusOptions;
  stats: Record<string, MetricStats>;
  table: SharedScoreTable;
  metadata: Record<string, string>;
  /** The reader's de-duplication plan, computed once by the run (absent: the part's reader computes it). */
  duplicates?: DuplicatePlan;
}

/** A part's counts, summed by the run into its summary; reasons in the order they first occur. */
export interface PartTally {
  pairs: number;
  ties: number;
  kept: number;
  reasons: Array<[string, number]>;
  agree: number;
  compared: number;
  humanAgreementExcluded: number;
}

export async function labelPart(job: PartJob): Promise<PartTally> {
  const plan = compileConsensus(job.options, job.stats);
  const metrics = job.options.metrics;
  const M = metrics.length;
  const lookup = new ScoreLookup(job.table);
  if (job.duplicates) adoptDuplicatePlan(job.dir, job.duplicates);
  const part: Table = await readPart(job.dir, job.file);
  const n = part.numRows;
  const col = (name: string) => part.getChild(name)!;
  // Only the random rule reads pair ids as text (its draw hashes them); the writer takes the ids as bytes.
  const pairIds = plan.needsPairIds ? (col('pair_id').toArray() as string[]) : undefined;
  const human = doublesOf(col('human_pref'));

  const promptWords = columnWords(col('prompt_id'), n);
  const wordsA = columnWords(col('image_a'), n);
  const wordsB = columnWords(col('image_b'), n);
  const scoreA = metrics.map(() => new Float64Array(n));
  const scoreB = metrics.map(() => new Float64Array(n));
  for (let i = 0; i < n; i++) {
    const prompt = lookup.promptOf(promptWords, i * 4);
    const rowA = lookup.rowOfPrompt(wordsA, i * 4, prompt);
    const rowB = lookup.rowOfPrompt(wordsB, i * 4, prompt);
    for (let m = 0; m < M; m++) {
      scoreA[m]![i] = lookup.score(m, rowA);
      scoreB[m]![i] = lookup.score(m, rowB);
    }
  }
  const input = { length: n, scoreA, scoreB, humanPref: human, ...(pairIds ? { pairIds } : {}) };
  const out = computeConsensus(plan, input, allocateConsensusColumns(M, n));
  const columns: Record<string, ColumnData> = {
    pair_id: textColumn(col('pair_id')),
    prompt_id: textColumn(col('prompt_id')),
    image_a: textColumn(col('image_a')),
    image_b: textColumn(col('image_b')),
    human_pref: new NullableDoubles(human),
    split: textCodes(col('split')),
    votes_a: Int32Array.from(out.votesA),
    votes_b: Int32Array.from(out.votesB),
    label: new NullableDoubles(out.label),
    soft: new NullableDoubles(out.soft),
    margin: new NullableDoubles(out.margin),
    disagreement: new NullableDoubles(out.disagreement),
    kept: Array.from(out.kept, (k) => k === 1),
    tie: Array.from(out.tie, (t) => t === 1),
    reason: new TextCodes(out.reason, LABEL_REASONS),
  };
  metrics.forEach((m, j) => {
    columns[`p_${m}`] = new NullableDoubles(out.p[j]!);
    columns[`vote_${m}`] = Int32Array.from(out.vote[j]!);
  });
  const name = basename(job.file).replace(/\.arrow$/, '.parquet');
  await writeParquetPart(job.staging, name, consensusSpecs(metrics), columns, { metadata: job.metadata });

  const tally: PartTally = { pairs: n, ties: 0, kept: 0, reasons: [], agree: 0, compared: 0, humanAgreementExcluded: 0 };
  const reasonCounts = new Float64Array(LABEL_REASONS.length);
  const firstSeen: number[] = [];
  for (let i = 0; i < n; i++) {
    tally.ties += out.tie[i]!;
    tally.kept += out.kept[i]!;
    const r = out.reason[i]!;
    if (reasonCounts[r] === 0) firstSeen.push(r);
    reasonCounts[r]!++;
    const label = out.label[i]!;
    const h = human[i]!;
    if (out.kept[i] && (label === 0 || label === 1) && (h === 0 || h === 1)) {
      if (LABEL_REASONS[r] === 'tie-human') {
        tally.humanAgreementExcluded++;
        continue;
      }
      tally.compared++;
      if (label === h) tally.agree++;
    }
  }
  tally.reasons = firstSeen.map((r) => [LABEL_REASONS[r]!, reasonCounts[r]!]);
  return tally;
}
