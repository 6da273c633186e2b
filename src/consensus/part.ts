// One pairs part through a consensus rule: its pairs joined to the score table (by id keys parsed from the Arrow
// buffers, no string per lookup), the kernel, and its consensus/<rule>/part-*.parquet. The same function runs in the
// main thread or in a worker (part-worker.ts); either way it returns the part's tallies, which the run sums in part
// order. No rule is defined here: computeConsensus is the definition.
import { basename } from 'node:path';
import type { Data, Table, Vector } from 'apache-arrow';
import { readPart } from '../io/arrow-table.ts';
import { adoptDuplicatePlan, type DuplicatePlan } from '../io/part-dedupe.ts';
import { writeParquetPart } from '../io/parquet.ts';
import { isAscii } from 'node:buffer';
import { ByteColumn, NullableDoubles, TextCodes, type ColumnData } from '../io/parquet-encoder.ts';
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

/** A nullable double column's values, NaN for null, from Arrow's buffers (no boxed number per row). */
export function doublesOf(vector: Vector): Float64Array {
  const out = new Float64Array(vector.length);
  let row = 0;
  for (const chunk of vector.data as Data[]) {
    const values = chunk.values as Float64Array;
    if (chunk.nullCount === 0) out.set(values.subarray(0, chunk.length), row);
    else for (let i = 0; i < chunk.length; i++) out[row + i] = chunk.getValid(i) ? values[i]! : Number.NaN;
    row += chunk.length;
  }
  return out;
}

/**
 * A text column as codes into its distinct values, each decoded once as Arrow decodes it (Arrow's reader decodes a
 * string per row). Values are found by their bytes; bytes that decode alike (invalid UTF-8) share a label.
 */
export function textCodes(vector: Vector): TextCodes {
  const codes = new Int32Array(vector.length);
  const labels: string[] = [];
  const codeOfLabel = new Map<string, number>();
  const seen = new Map<number, Array<{ bytes: Uint8Array; code: number }>>();
  const decoder = new TextDecoder('utf-8');
  let row = 0;
  for (const chunk of vector.data as Data[]) {
    const offsets = chunk.valueOffsets as Int32Array;
    const bytes = chunk.values as Uint8Array;
    for (let i = 0; i < chunk.length; i++, row++) {
      if (chunk.nullCount > 0 && !chunk.getValid(i)) {
        codes[row] = -1;
        continue;
      }
      const value = bytes.subarray(offsets[i]!, offsets[i + 1]!);
      let hash = 0x811c9dc5;
      for (let k = 0; k < value.length; k++) hash = Math.imul(hash ^ value[k]!, 0x01000193);
      const bucket = seen.get(hash) ?? [];
      let code = bucket.find((entry) => Buffer.compare(entry.bytes, value) === 0)?.code;
      if (code === undefined) {
        const label = decoder.decode(value);
        code = codeOfLabel.get(label);
        if (code === undefined) {
          code = labels.push(label) - 1;
          codeOfLabel.set(label, code);
        }
        bucket.push({ bytes: value, code });
        seen.set(hash, bucket);
      }
      codes[row] = code;
    }
  }
  return new TextCodes(codes, labels);
}

/**
 * A text column as the Parquet writer takes it. ASCII text without nulls (every id we write) goes as the Arrow
 * buffers themselves: the writer writes the same bytes for them as for the strings (they are the strings' UTF-8, it
 * sizes pages by string length, which is the byte length in ASCII, and orders statistics by bytes, which is the
 * strings' code point order), without a string or a view per value. Other text goes as strings.
 */
export function textColumn(vector: Vector): ByteColumn | Array<string | null> {
  if (vector.nullCount > 0) return vector.toArray() as Array<string | null>;
  const chunks = vector.data as Data[];
  for (const chunk of chunks) {
    const offsets = chunk.valueOffsets as Int32Array;
    if (!isAscii((chunk.values as Uint8Array).subarray(offsets[0]!, offsets[chunk.length]!)))
      return vector.toArray() as Array<string | null>;
  }
  if (chunks.length === 1) {
    const only = chunks[0]!;
    return new ByteColumn((only.valueOffsets as Int32Array).subarray(0, only.length + 1), only.values as Uint8Array);
  }
  // Batches each with their own buffers: one offsets array over one copy of their bytes.
  const offsets = new Int32Array(vector.length + 1);
  let total = 0;
  for (const chunk of chunks) {
    const from = chunk.valueOffsets as Int32Array;
    total += from[chunk.length]! - from[0]!;
  }
  const bytes = new Uint8Array(total);
  let row = 0;
  let at = 0;
  for (const chunk of chunks) {
    const from = chunk.valueOffsets as Int32Array;
    const start = from[0]!;
    const end = from[chunk.length]!;
    bytes.set((chunk.values as Uint8Array).subarray(start, end), at);
    for (let i = 0; i < chunk.length; i++) offsets[row++] = at + from[i]! - start;
    at += end - start;
  }
  offsets[row] = at;
  return new ByteColumn(offsets, bytes);
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
