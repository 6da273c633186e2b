// The cached scores of every metric, joined by (image, prompt): what consensus, calibration and the reports read.
// Memory grows with the number of distinct scored images — 16 bytes of image key, 4 of prompt, 8 per metric and
// 8 of hash slots per row, ≈ 60 bytes with 4 metrics — not with pairs, and sits in SharedArrayBuffers, so worker
// threads join pairs against one copy of it.
import { readdir } from 'node:fs/promises';
import { JsonFileError } from '../io/json-file.ts';
import { metricInfoLocation, readMetaJson } from './dataset-meta.ts';
import { join } from 'node:path';
import { listParts } from '../io/arrow-table.ts';
import {
  openDatasetParquet,
  openParquet,
  ParquetFileError,
  readBytePages,
  readRowGroupVectors,
  type BytePages,
  type PlainBytePage,
} from '../io/parquet.ts';
import { slotsFor } from './key-set.ts';
import { MetricStatsAccumulator, type MetricStats } from './stats.ts';
import type { MetricInfo } from './schema.ts';
import { InputError } from './errors.ts';
import { idWordsFromBytes, idWordsFromString } from './id-words.ts';

export interface ScoreTable {
  metrics: MetricInfo[];
  /** The table's memory, for a ScoreLookup in another thread (structured-cloned, the buffers are shared). */
  shared: SharedScoreTable;
  /** Score of metric m for an image under a prompt; NaN when it was not scored. */
  score(metric: number, imageId: string, promptId: string): number;
  /** The row of an image under a prompt (-1 when no metric scored it), for several metrics' scores of one image. */
  rowOf(imageId: string, promptId: string): number;
  /** Score of metric m at a row from rowOf; NaN when it was not scored (or the row is -1). */
  scoreAt(metric: number, row: number): number;
  /** Dataset-level statistics of each metric's image scores (the `normalized` rule's z-scores). */
  stats: Record<string, MetricStats>;
  images: number;
}

export async function listScoredMetrics(dir: string): Promise<string[]> {
  const entries = await readdir(join(dir, 'scores'), { withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
}

/** One score file's rows: the image and prompt keys (eight words per row) and the scores. */
export interface ScoreFileRows {
  rows: number;
  words: Uint32Array;
  scores: Float64Array;
}

/** Reads one scores/<metric>/part-*.parquet into keys and scores (checked against its recorded sha256 first). */
export async function readScoreFile(dir: string, file: string): Promise<ScoreFileRows> {
  const source = await openDatasetParquet(dir, file);
  const words = new Uint32Array(source.numRows * 8);
  const scores = new Float64Array(source.numRows);
  for (const group of source.rowGroups) {
    // Ids as our writer writes them are parsed straight from their pages; any other file through the library.
    const imagePages = await readBytePages(source, group, 'image_id');
    const promptPages = imagePages && (await readBytePages(source, group, 'prompt_id'));
    if (imagePages && promptPages) {
      idWordsFromPages(source.path, imagePages, words, group.rowStart, 0);
      idWordsFromPages(source.path, promptPages, words, group.rowStart, 4);
      const values = (await readRowGroupVectors(source, group, ['score'])).score!;
      for (let i = 0; i < group.numRows; i++) scores[group.rowStart + i] = scoreOf(values[i]);
      continue;
    }
    const data = await readRowGroupVectors(source, group, ['image_id', 'prompt_id', 'score'], { textAsBytes: true });
    const imageIds = data.image_id!;
    const promptIds = data.prompt_id!;
    const values = data.score!;
    for (let i = 0; i < group.numRows; i++) {
      const row = group.rowStart + i;
      const image = imageIds[i] as Uint8Array;
      const prompt = promptIds[i] as Uint8Array;
      idWordsFromBytes(image, 0, image.length, words, row * 8);
      idWordsFromBytes(prompt, 0, prompt.length, words, row * 8 + 4);
      scores[row] = scoreOf(values[i]);
    }
  }
  return { rows: source.numRows, words, scores };
}

/** A score cell as a number; a null (a file not ours) is no score, NaN, not 0. */
const scoreOf = (cell: unknown): number => (cell === null || cell === undefined ? Number.NaN : Number(cell));

/** The key words of each of `count` ids in PLAIN pages into words[k × stride + at], for k from 0. */
function idWordsOfValues(path: string, pages: readonly PlainBytePage[], words: Uint32Array, stride: number, at: number): void {
  let k = 0;
  for (const { values, bytes } of pages) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let offset = 0;
    for (let i = 0; i < values; i++, k++) {
      const length = offset + 4 <= bytes.length ? view.getUint32(offset, true) : -1;
      if (length < 0 || offset + 4 + length > bytes.length) throw new ParquetFileError(`${path}: an id page ends inside value ${i}`);
      idWordsFromBytes(bytes, offset + 4, offset + 4 + length, words, k * stride + at);
      offset += 4 + length;
    }
  }
}

/** The key words of a row group's ids into words[row × 8 + at], from row `firstRow` on. */
function idWordsFromPages(path: string, column: BytePages, words: Uint32Array, firstRow: number, at: number): void {
  if (column.kind === 'plain') {
    idWordsOfValues(path, column.pages, words.subarray(firstRow * 8), 8, at);
    return;
  }
  // A dictionary's ids are parsed once, then copied to each row that names them.
  const entries = new Uint32Array(column.dictionary.values * 4);
  idWordsOfValues(path, [column.dictionary], entries, 4, 0);
  const { indexes } = column;
  for (let i = 0; i < indexes.length; i++) {
    const from = indexes[i]! * 4;
    const to = (firstRow + i) * 8 + at;
    words[to] = entries[from]!;
    words[to + 1] = entries[from + 1]!;
    words[to + 2] = entries[from + 2]!;
    words[to + 3] = entries[from + 3]!;
  }
}

export interface ScoreTableOptions {
  /** Reads one score file; default readScoreFile in this thread (consensus passes one that uses its workers). */
  readFile?: (dir: string, file: string) => Promise<ScoreFileRows>;
  /** Files read at once (each held in memory until its rows are in): the reader's threads; default 1. */
  filesAhead?: number;
}

export async function loadScoreTable(dir: string, names?: readonly string[], options: ScoreTableOptions = {}): Promise<ScoreTable> {
  const metricNames = names && names.length > 0 ? [...names] : await listScoredMetrics(dir);
  if (metricNames.length === 0) throw new InputError(`${dir}: no scores/ (run bdpo label first)`);
  const metrics: MetricInfo[] = [];
  for (const name of metricNames) {
    try {
      metrics.push((await readMetaJson(metricInfoLocation(dir, name))) as MetricInfo);
    } catch (error) {
      if (error instanceof JsonFileError) throw error;
      const known = (await listScoredMetrics(dir)).join(', ') || 'none';
      throw new InputError(`${dir}: metric "${name}" has no meta/scores/${name}.json (known: ${known})`);
    }
  }
  // Sized for the largest metric's row count (usually every metric scores the same images), so a 10M-image table is
  // allocated once rather than grown by doubling through twice its size.
  let expected = 0;
  for (const name of metricNames) {
    let rows = 0;
    for (const file of await listParts(dir, `scores/${name}`, '.parquet')) rows += (await openParquet(join(dir, file))).numRows;
    expected = Math.max(expected, rows);
  }
  const index = new ScoreIndex(metricNames.length, expected);
  const imageWords = new Uint32Array(4);
  const promptWords = new Uint32Array(4);
  const stats: Record<string, MetricStats> = {};
  const read = options.readFile ?? readScoreFile;
  const ahead = Math.max(1, options.filesAhead ?? 1);
  for (const [m, name] of metricNames.entries()) {
    // `ahead` files are asked for at a time (a reader with threads reads them side by side); rows go in in file
    // order, so the table's row order, and the statistics summed over it, do not depend on the reader.
    const files = await listParts(dir, `scores/${name}`, '.parquet');
    const pending: Array<Promise<ScoreFileRows>> = [];
    const ask = (k: number): void => {
      if (k >= files.length) return;
      const reading = read(dir, files[k]!);
      reading.catch(() => {}); // awaited below in order; a later file's failure must not go unhandled meanwhile
      pending[k] = reading;
    };
    for (let k = 0; k < ahead; k++) ask(k);
    let next = 0;
    for (let k = 0; k < files.length; k++) {
      const { rows, words, scores } = await pending[k]!;
      delete pending[k];
      ask(k + ahead);
      for (let i = 0; i < rows; i++) {
        const at = i * 8;
        const row = index.isRow(next, words, at, words, at + 4) ? next : index.rowOf(words, at, words, at + 4, true);
        index.set(m, row, scores[i]!);
        next = row + 1;
      }
    }
    // Over the table's cells, not the files' rows: an image scored twice under one prompt (it sits in two splits)
    // is one image of the distribution, not two.
    const accumulator = new MetricStatsAccumulator();
    const column = index.column(m);
    for (let row = 0; row < index.size; row++) accumulator.add(column[row]!);
    stats[name] = accumulator.stats();
  }
  const shared = index.share();
  const lookup = new ScoreLookup(shared);
  const rowOf = (imageId: string, promptId: string): number => {
    idWordsFromString(imageId, imageWords, 0);
    idWordsFromString(promptId, promptWords, 0);
    return lookup.rowOf(imageWords, 0, promptWords, 0);
  };
  return {
    metrics,
    stats,
    images: index.size,
    shared,
    score(metric, imageId, promptId) {
      return lookup.score(metric, rowOf(imageId, promptId));
    },
    rowOf,
    scoreAt(metric, row) {
      return lookup.score(metric, row);
    },
  };
}

/** A score table's buffers: what a worker thread needs to look scores up without a copy. */
export interface SharedScoreTable {
  readonly rows: number;
  readonly metrics: number;
  /** Four words per row: the image id's key. */
  readonly imageWords: Uint32Array;
  /** The prompt of each row, an index into promptWords. */
  readonly promptOfRow: Uint32Array;
  /** Four words per distinct prompt. */
  readonly promptWords: Uint32Array;
  /** Open addressing, row + 1 (0 = empty), by image key and prompt index. */
  readonly rowSlots: Int32Array;
  /** Open addressing, prompt + 1 (0 = empty), by prompt key. */
  readonly promptSlots: Int32Array;
  /** One column per metric, NaN where the metric did not score the row. */
  readonly scores: Float64Array[];
}

function sharedArray<T extends Uint32Array | Int32Array | Float64Array>(
  kind: { new (buffer: SharedArrayBuffer): T; BYTES_PER_ELEMENT: number },
  length: number,
): T {
  return new kind(new SharedArrayBuffer(length * kind.BYTES_PER_ELEMENT));
}

/** The first word of a sha256-derived key is already uniform; the prompt index is mixed in for the row hash. */
const rowHash = (imageWord: number, prompt: number): number => (imageWord ^ Math.imul(prompt + 1, 0x9e3779b1)) >>> 0;

/** Lookups over a (possibly shared) score table; cheap to build in each thread. */
export class ScoreLookup {
  private readonly rowMask: number;
  private readonly promptMask: number;

  constructor(private readonly table: SharedScoreTable) {
    this.rowMask = table.rowSlots.length - 1;
    this.promptMask = table.promptSlots.length - 1;
  }

  get metrics(): number {
    return this.table.metrics;
  }

  /** The prompt index of a prompt key, −1 when no score names that prompt. */
  promptOf(words: Uint32Array, at: number): number {
    const { promptWords, promptSlots } = this.table;
    for (let slot = words[at]! & this.promptMask; ; slot = (slot + 1) & this.promptMask) {
      const entry = promptSlots[slot]!;
      if (entry === 0) return -1;
      const p = (entry - 1) * 4;
      if (
        promptWords[p] === words[at] &&
        promptWords[p + 1] === words[at + 1] &&
        promptWords[p + 2] === words[at + 2] &&
        promptWords[p + 3] === words[at + 3]
      )
        return entry - 1;
    }
  }

  /** The row of (image, prompt index), −1 when absent. */
  rowOfPrompt(image: Uint32Array, at: number, prompt: number): number {
    if (prompt < 0) return -1;
    const { imageWords, promptOfRow, rowSlots } = this.table;
    for (let slot = rowHash(image[at]!, prompt) & this.rowMask; ; slot = (slot + 1) & this.rowMask) {
      const entry = rowSlots[slot]!;
      if (entry === 0) return -1;
      const row = entry - 1;
      const r = row * 4;
      if (
        promptOfRow[row] === prompt &&
        imageWords[r] === image[at] &&
        imageWords[r + 1] === image[at + 1] &&
        imageWords[r + 2] === image[at + 2] &&
        imageWords[r + 3] === image[at + 3]
      )
        return row;
    }
  }

  rowOf(image: Uint32Array, imageAt: number, prompt: Uint32Array, promptAt: number): number {
    return this.rowOfPrompt(image, imageAt, this.promptOf(prompt, promptAt));
  }

  /** Score of metric m in a row; NaN for row −1 (not scored). */
  score(metric: number, row: number): number {
    return row < 0 ? Number.NaN : this.table.scores[metric]![row]!;
  }
}

/**
 * Distinct (image, prompt) pairs of ids for several metrics at once, as compact as the score table (≈ 30 bytes each
 * and a byte per metric): `firstFor(m, …)` says whether metric m sees this pair for the first time. For readers that
 * count each scored image once per metric without holding a string per image. The metrics' files list the same
 * images in the same order, so after the first metric nearly every pair is found in place, without a hash probe.
 */
export class ImagePromptIndex {
  private readonly index: ScoreIndex;
  /** seen[row × metrics + m]: 1 once metric m has seen the row's (image, prompt). */
  private seen: Uint8Array;
  /** Per metric, the row after the last one it looked up. */
  private readonly next: Int32Array;

  constructor(
    private readonly metrics: number,
    expected = 0,
  ) {
    this.index = new ScoreIndex(0, expected);
    this.seen = new Uint8Array(Math.max(1024, expected) * metrics);
    this.next = new Int32Array(metrics);
  }

  /**
   * Looks the keys up (adding them when new), the image's four words at words[at] and the prompt's at words[at + 4]
   * (as readScoreFile gives them); true when metric m has not seen this (image, prompt) before.
   */
  firstFor(metric: number, words: Uint32Array, at: number): boolean {
    const guess = this.next[metric]!;
    const row = this.index.isRow(guess, words, at, words, at + 4) ? guess : this.index.rowOf(words, at, words, at + 4, true);
    this.next[metric] = row + 1;
    const cell = row * this.metrics + metric;
    if (cell >= this.seen.length) {
      const grown = new Uint8Array(Math.max(cell + 1, this.seen.length * 2));
      grown.set(this.seen);
      this.seen = grown;
    }
    if (this.seen[cell] === 1) return false;
    this.seen[cell] = 1;
    return true;
  }
}

/** The table while it is loaded: grows by doubling, then is frozen into a SharedScoreTable. */
class ScoreIndex {
  private table: SharedScoreTable;
  private lookup: ScoreLookup;
  private prompts = 0;
  private rows = 0;

  constructor(
    private readonly metricCount: number,
    expectedRows: number,
  ) {
    this.table = ScoreIndex.allocate(metricCount, Math.max(1024, expectedRows), Math.max(1024, expectedRows >>> 2), 0);
    this.lookup = new ScoreLookup(this.table);
  }

  private static allocate(metrics: number, rowCapacity: number, promptCapacity: number, rows: number): SharedScoreTable {
    return {
      rows,
      metrics,
      imageWords: sharedArray(Uint32Array, rowCapacity * 4),
      promptOfRow: sharedArray(Uint32Array, rowCapacity),
      promptWords: sharedArray(Uint32Array, promptCapacity * 4),
      rowSlots: sharedArray(Int32Array, slotsFor(rowCapacity)),
      promptSlots: sharedArray(Int32Array, slotsFor(promptCapacity)),
      scores: Array.from({ length: metrics }, () => sharedArray(Float64Array, rowCapacity).fill(Number.NaN)),
    };
  }

  get size(): number {
    return this.rows;
  }

  column(metric: number): Float64Array {
    return this.table.scores[metric]!;
  }

  set(metric: number, row: number, score: number): void {
    this.table.scores[metric]![row] = score;
  }

  private addPrompt(words: Uint32Array, at: number): number {
    if (this.prompts * 4 >= this.table.promptWords.length)
      this.regrow(this.table.imageWords.length / 4, (this.table.promptWords.length / 4) * 2);
    const prompt = this.prompts++;
    this.table.promptWords.set(words.subarray(at, at + 4), prompt * 4);
    const { promptSlots } = this.table;
    const mask = promptSlots.length - 1;
    let slot = words[at]! & mask;
    while (promptSlots[slot] !== 0) slot = (slot + 1) & mask;
    promptSlots[slot] = prompt + 1;
    return prompt;
  }

  rowOf(image: Uint32Array, imageAt: number, promptKey: Uint32Array, promptAt: number, insert: true): number {
    let prompt = this.lookup.promptOf(promptKey, promptAt);
    if (prompt < 0) prompt = this.addPrompt(promptKey, promptAt);
    const found = this.lookup.rowOfPrompt(image, imageAt, prompt);
    if (found >= 0 || !insert) return found;
    if (this.rows * 4 >= this.table.imageWords.length) {
      this.regrow(Math.ceil((this.table.imageWords.length / 4) * 1.5), this.table.promptWords.length / 4);
    }
    const row = this.rows++;
    this.table.imageWords.set(image.subarray(imageAt, imageAt + 4), row * 4);
    this.table.promptOfRow[row] = prompt;
    this.placeRow(row);
    return row;
  }

  /**
   * Whether row `row` is the key (image, prompt): a check of two keys in place, no hash probe. Score files of one
   * dataset list the same images in the same order for every metric, so the row after the last one found is
   * nearly always the next row's, and the probe into a table too big for any cache is skipped.
   */
  isRow(row: number, image: Uint32Array, imageAt: number, promptKey: Uint32Array, promptAt: number): boolean {
    if (row < 0 || row >= this.rows) return false;
    const { imageWords, promptOfRow, promptWords } = this.table;
    const r = row * 4;
    if (
      imageWords[r] !== image[imageAt] ||
      imageWords[r + 1] !== image[imageAt + 1] ||
      imageWords[r + 2] !== image[imageAt + 2] ||
      imageWords[r + 3] !== image[imageAt + 3]
    )
      return false;
    const p = promptOfRow[row]! * 4;
    return (
      promptWords[p] === promptKey[promptAt] &&
      promptWords[p + 1] === promptKey[promptAt + 1] &&
      promptWords[p + 2] === promptKey[promptAt + 2] &&
      promptWords[p + 3] === promptKey[promptAt + 3]
    );
  }

  private placeRow(row: number): void {
    const { imageWords, promptOfRow, rowSlots } = this.table;
    const mask = rowSlots.length - 1;
    let slot = rowHash(imageWords[row * 4]!, promptOfRow[row]!) & mask;
    while (rowSlots[slot] !== 0) slot = (slot + 1) & mask;
    rowSlots[slot] = row + 1;
  }

  /** Copies the rows into buffers of the new capacities and rebuilds both hash tables. */
  private regrow(rowCapacity: number, promptCapacity: number): void {
    const old = this.table;
    const rows = this.rows;
    const next = ScoreIndex.allocate(this.metricCount, rowCapacity, promptCapacity, 0);
    next.imageWords.set(old.imageWords.subarray(0, rows * 4));
    next.promptOfRow.set(old.promptOfRow.subarray(0, rows));
    next.promptWords.set(old.promptWords.subarray(0, this.prompts * 4));
    old.scores.forEach((column, m) => next.scores[m]!.set(column.subarray(0, rows)));
    this.table = next;
    for (let row = 0; row < rows; row++) this.placeRow(row);
    const mask = next.promptSlots.length - 1;
    for (let prompt = 0; prompt < this.prompts; prompt++) {
      let slot = next.promptWords[prompt * 4]! & mask;
      while (next.promptSlots[slot] !== 0) slot = (slot + 1) & mask;
      next.promptSlots[slot] = prompt + 1;
    }
    this.lookup = new ScoreLookup(this.table);
  }

  share(): SharedScoreTable {
    return { ...this.table, rows: this.rows };
  }
}
