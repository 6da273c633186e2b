// The pair order over consensus/<rule>: which pairs come in which batch, drawn from a seeded generator over the
// consensus files and their row groups, so that a saved state resumes to exactly the batches of an uninterrupted run.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { openDatasetParquet, readRowGroupColumns, type ParquetCell, type ParquetSource, type RowGroupInfo } from '../io/parquet.ts';
import { createRng, type Rng } from './rng.ts';
import { listParquetParts, MissingDataError, rowGroupOf } from '../io/tensor-store.ts';
import { InputError } from '../core/errors.ts';

/** The options that decide which pairs come in which batch (all of them are saved in the state). */
export interface OrderOptions {
  /** Dataset directory. */
  dir: string;
  /** Folder under consensus/ (e.g. "majority", "majority.ties-half"). */
  rule: string;
  batchSize: number;
  /** Default 0. */
  seed?: number;
  /** Pairs in the shuffle buffer (default 1024); ≤ 1 reads files and rows in order, without shuffling. */
  shuffleBuffer?: number;
  /** Probability of replacing a pair's text states by the empty prompt's (default 0). */
  captionDropout?: number;
  /** Passes over the data (default 1); null: endless. */
  epochs?: number | null;
  /** Splits to read (e.g. ["train"], ["validation_unique"]); null or absent: every split. */
  splits?: readonly string[] | null;
  /** y = the consensus `soft` column (the rule's P(a ≻ b)) instead of `label`; falls back to `label` where soft is null. */
  useSoft?: boolean;
  /** Drop the short last batch of each epoch. */
  dropLast?: boolean;
}

export interface PairLoaderOptions extends OrderOptions {
  /** Per table (latents/, text/): bytes of decoded row groups kept. Default 64 MiB. */
  cacheBytes?: number;
  /** Decode the next batch while the current one is used (default true). */
  prefetch?: boolean;
}

export interface ResolvedOrderOptions {
  dir: string;
  rule: string;
  batchSize: number;
  seed: number;
  shuffleBuffer: number;
  captionDropout: number;
  epochs: number | null;
  splits: string[] | null;
  useSoft: boolean;
  dropLast: boolean;
}

/** A serialisable loader position (JSON-safe). */
export interface LoaderState {
  format: 'bdpo-pair-loader/1';
  options: ResolvedOrderOptions;
  /** The consensus parts read, with their sizes: resuming over changed files is refused. */
  files: Array<{ file: string; rows: number; bytes: number }>;
  /** Epochs finished. */
  epoch: number;
  /** This epoch's file order (indices into `files`); null before the epoch has started. */
  order: number[] | null;
  /** Position in `order` of the file being read (= order.length once the files are exhausted). */
  cursor: number;
  /** Next row of that file to consider. */
  row: number;
  rng: [number, number, number, number];
  /** The shuffle buffer: [file, row, pair_id] of each pair in it, in buffer order. */
  buffer: Array<[number, number, string]>;
  /** Pairs emitted in the current epoch. */
  epochPairs: number;
  /** Batches returned so far. */
  batches: number;
  finished: boolean;
}

interface Entry {
  file: number;
  row: number;
  pairId: string;
  promptId: string;
  imageA: string;
  imageB: string;
  y: number;
}

export interface PlannedBatch {
  entries: Entry[];
  dropped: Uint8Array;
  epoch: number;
  index: number;
  stateAfter: LoaderState;
}

const CONSENSUS_COLUMNS = ['pair_id', 'prompt_id', 'image_a', 'image_b', 'label', 'soft', 'kept', 'split'];

export function resolveOrderOptions(options: OrderOptions): ResolvedOrderOptions {
  const resolved: ResolvedOrderOptions = {
    dir: options.dir,
    rule: options.rule,
    batchSize: options.batchSize,
    seed: options.seed ?? 0,
    shuffleBuffer: options.shuffleBuffer ?? 1024,
    captionDropout: options.captionDropout ?? 0,
    epochs: options.epochs === undefined ? 1 : options.epochs,
    splits: options.splits ? [...options.splits] : null,
    useSoft: options.useSoft ?? false,
    dropLast: options.dropLast ?? false,
  };
  if (!Number.isInteger(resolved.batchSize) || resolved.batchSize < 1)
    throw new RangeError(`batchSize must be a positive integer, got ${resolved.batchSize}`);
  if (!Number.isInteger(resolved.seed) || resolved.seed < 0 || resolved.seed >= 2 ** 32)
    throw new RangeError(`seed must be an integer in [0, 2^32), got ${resolved.seed}`);
  if (!Number.isInteger(resolved.shuffleBuffer) || resolved.shuffleBuffer < 0)
    throw new RangeError(`shuffleBuffer must be a non-negative integer, got ${resolved.shuffleBuffer}`);
  if (!(resolved.captionDropout >= 0 && resolved.captionDropout <= 1))
    throw new RangeError(`captionDropout must be in [0, 1], got ${resolved.captionDropout}`);
  if (resolved.epochs !== null && (!Number.isInteger(resolved.epochs) || resolved.epochs < 1))
    throw new RangeError(`epochs must be a positive integer or null, got ${resolved.epochs}`);
  if (!/^[a-z0-9][a-z0-9_.=-]*$/i.test(resolved.rule))
    throw new RangeError(`rule must be a folder name under consensus/, got "${resolved.rule}"`);
  return resolved;
}

/** One row group's eligible rows, in row order. */
interface LoadedGroup {
  file: number;
  rowStart: number;
  rowEnd: number;
  entries: Entry[];
}

/** Walks consensus/<rule> in the seeded order. Reads are async; every random draw happens in a fixed order. */
export class PairOrder {
  private readonly rng: Rng;
  private loaded: LoadedGroup | null = null;
  private epoch = 0;
  private order: number[] | null = null;
  private cursor = 0;
  private row = 0;
  private buffer: Entry[] = [];
  private epochPairs = 0;
  private batches = 0;
  private finished = false;

  private constructor(
    readonly options: ResolvedOrderOptions,
    private readonly sources: readonly ParquetSource[],
    readonly files: LoaderState['files'],
  ) {
    this.rng = createRng(options.seed);
  }

  static async open(options: ResolvedOrderOptions): Promise<PairOrder> {
    const folder = join('consensus', options.rule);
    const names = await listParquetParts(options.dir, folder);
    if (names.length === 0) {
      const rules = await readdir(join(options.dir, 'consensus')).catch(() => [] as string[]);
      const known = rules.filter((r) => !r.startsWith('.'));
      throw new MissingDataError(
        `${options.dir}: no ${folder}/part-*.parquet (run bdpo consensus${known.length ? `; rules here: ${known.join(', ')}` : ''})`,
      );
    }
    const sources: ParquetSource[] = [];
    const files: LoaderState['files'] = [];
    for (const name of names) {
      const source = await openDatasetParquet(options.dir, name);
      for (const column of CONSENSUS_COLUMNS) {
        if (!source.columns.includes(column)) throw new MissingDataError(`${name}: not a consensus file (no column ${column})`);
      }
      sources.push(source);
      files.push({ file: name, rows: source.numRows, bytes: (await stat(join(options.dir, name))).size });
    }
    return new PairOrder(options, sources, files);
  }

  static async restore(state: LoaderState, dir: string): Promise<PairOrder> {
    if (state.format !== 'bdpo-pair-loader/1') throw new InputError(`not a pair loader state (format ${String(state.format)})`);
    const order = await PairOrder.open(resolveOrderOptions({ ...state.options, dir }));
    const same =
      order.files.length === state.files.length &&
      order.files.every((f, i) => f.file === state.files[i]!.file && f.rows === state.files[i]!.rows && f.bytes === state.files[i]!.bytes);
    if (!same) throw new MissingDataError(`consensus/${state.options.rule} changed since this loader state was saved`);
    order.epoch = state.epoch;
    order.order = state.order ? [...state.order] : null;
    order.cursor = state.cursor;
    order.row = state.row;
    order.rng.setState(state.rng);
    order.epochPairs = state.epochPairs;
    order.batches = state.batches;
    order.finished = state.finished;
    order.buffer = await order.readEntries(state.buffer);
    return order;
  }

  snapshot(): LoaderState {
    return {
      format: 'bdpo-pair-loader/1',
      options: { ...this.options, splits: this.options.splits ? [...this.options.splits] : null },
      files: this.files.map((f) => ({ ...f })),
      epoch: this.epoch,
      order: this.order ? [...this.order] : null,
      cursor: this.cursor,
      row: this.row,
      rng: [...this.rng.state()] as [number, number, number, number],
      buffer: this.buffer.map((e) => [e.file, e.row, e.pairId]),
      epochPairs: this.epochPairs,
      batches: this.batches,
      finished: this.finished,
    };
  }

  private get shuffling(): boolean {
    return this.options.shuffleBuffer > 1;
  }

  /** The next batch's pairs and dropout flags, or null when every epoch is done. */
  async nextBatch(): Promise<PlannedBatch | null> {
    const size = this.options.batchSize;
    for (;;) {
      if (this.finished) return null;
      const entries: Entry[] = [];
      const dropped: number[] = [];
      const epoch = this.epoch;
      while (entries.length < size) {
        if (this.order === null) {
          if (this.options.epochs !== null && this.epoch >= this.options.epochs) {
            this.finished = true;
            break;
          }
          this.startEpoch();
        }
        const entry = await this.take();
        if (entry === null) {
          if (this.epochPairs === 0) {
            throw new MissingDataError(
              `consensus/${this.options.rule} has no kept pair${this.options.splits ? ` in split ${this.options.splits.join(', ')}` : ''}`,
            );
          }
          this.epoch++;
          this.order = null;
          break;
        }
        entries.push(entry);
        dropped.push(this.options.captionDropout > 0 && this.rng.uniform() < this.options.captionDropout ? 1 : 0);
        this.epochPairs++;
      }
      if (entries.length === 0 || (this.options.dropLast && entries.length < size)) continue;
      const index = this.batches++;
      return { entries, dropped: Uint8Array.from(dropped), epoch, index, stateAfter: this.snapshot() };
    }
  }

  private startEpoch(): void {
    const n = this.sources.length;
    const order = Array.from({ length: n }, (_, i) => i);
    if (this.shuffling) {
      for (let i = n - 1; i > 0; i--) {
        const j = this.rng.int(i + 1);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
    }
    this.order = order;
    this.cursor = 0;
    this.row = 0;
    this.epochPairs = 0;
  }

  /** The next pair out of the shuffle buffer (or straight from the files without shuffling); null at epoch end. */
  private async take(): Promise<Entry | null> {
    const capacity = this.options.shuffleBuffer;
    for (;;) {
      const next = await this.nextRow();
      if (next === null) break;
      if (!this.shuffling) return next;
      if (this.buffer.length < capacity) {
        this.buffer.push(next);
        continue;
      }
      const j = this.rng.int(capacity);
      const out = this.buffer[j]!;
      this.buffer[j] = next;
      return out;
    }
    if (this.buffer.length === 0) return null;
    const j = this.rng.int(this.buffer.length);
    const out = this.buffer[j]!;
    const last = this.buffer.pop()!;
    if (j < this.buffer.length) this.buffer[j] = last;
    return out;
  }

  /** The next eligible row of this epoch's files, or null once they are exhausted. */
  private async nextRow(): Promise<Entry | null> {
    const order = this.order!;
    while (this.cursor < order.length) {
      const file = order[this.cursor]!;
      const source = this.sources[file]!;
      if (this.row >= source.numRows) {
        this.cursor++;
        this.row = 0;
        continue;
      }
      const group = await this.groupAt(file, this.row);
      // Entries are in row order: the first at or after `row`.
      let lo = 0;
      let hi = group.entries.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (group.entries[mid]!.row < this.row) lo = mid + 1;
        else hi = mid;
      }
      const entry = group.entries[lo];
      if (entry === undefined) {
        this.row = group.rowEnd;
        continue;
      }
      this.row = entry.row + 1;
      return entry;
    }
    return null;
  }

  private async groupAt(file: number, row: number): Promise<LoadedGroup> {
    const l = this.loaded;
    if (l && l.file === file && row >= l.rowStart && row < l.rowEnd) return l;
    const source = this.sources[file]!;
    const group = rowGroupOf(source.rowGroups, row);
    this.loaded = { file, rowStart: group.rowStart, rowEnd: group.rowStart + group.numRows, entries: await this.readGroup(file, group) };
    return this.loaded;
  }

  /** The eligible rows of one row group. */
  private async readGroup(file: number, group: RowGroupInfo, all = false): Promise<Entry[]> {
    const source = this.sources[file]!;
    const c = await readRowGroupColumns(source, group, CONSENSUS_COLUMNS);
    const col = (name: string): ArrayLike<ParquetCell> => c[name]!;
    const [pairIds, promptIds, imageA, imageB, label, soft, kept, split] = CONSENSUS_COLUMNS.map(col) as ArrayLike<ParquetCell>[];
    const splits = this.options.splits;
    const entries: Entry[] = [];
    for (let i = 0; i < group.numRows; i++) {
      const l = label![i];
      const s = split![i];
      const eligible = kept![i] === true && typeof l === 'number' && (splits === null || (typeof s === 'string' && splits.includes(s)));
      if (!eligible && !all) continue;
      const softValue = soft![i];
      const y = this.options.useSoft && typeof softValue === 'number' ? softValue : (l as number);
      entries.push({
        file,
        row: group.rowStart + i,
        pairId: String(pairIds![i]),
        promptId: String(promptIds![i]),
        imageA: String(imageA![i]),
        imageB: String(imageB![i]),
        y,
      });
    }
    return entries;
  }

  /** Re-reads the buffer's pairs from their files, a row group at a time, checking their pair ids. */
  private async readEntries(refs: LoaderState['buffer']): Promise<Entry[]> {
    const byGroup = new Map<string, { file: number; group: RowGroupInfo }>();
    for (const [file, row] of refs) {
      const source = this.sources[file];
      if (!source || row < 0 || row >= source.numRows) throw new MissingDataError(`loader state: no row ${row} in consensus file ${file}`);
      const group = rowGroupOf(source.rowGroups, row);
      byGroup.set(`${file}:${group.index}`, { file, group });
    }
    const found = new Map<string, Entry>();
    for (const { file, group } of byGroup.values()) {
      for (const entry of await this.readGroup(file, group, true)) found.set(`${entry.file}:${entry.row}`, entry);
    }
    return refs.map(([file, row, pairId]) => {
      const entry = found.get(`${file}:${row}`);
      if (!entry || entry.pairId !== pairId)
        throw new MissingDataError(`loader state: pair ${pairId} is not at row ${row} of ${this.files[file]?.file}`);
      return entry;
    });
  }
}
