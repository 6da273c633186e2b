// The training stage's data side: a streaming, resumable loader of preference pairs. It reads the consensus
// file of one rule row group by row group, shuffles through a bounded buffer, and looks up the cached VAE latents and
// text-encoder states (written by `bdpo encode`) of each pair, so training never touches an image or a text model.
//
// Memory is bounded whatever the dataset size:
// - consensus: the eligible rows of one row group of one file, plus the shuffle buffer (≈ 500 bytes a pair);
// - latents / text: an index of 16 bytes per cached row (a 52-bit key from the id and the row's place, in sorted
//   typed arrays), plus an LRU cache of decoded row groups (`cacheBytes` per table, default 64 MiB, counted in
//   the row groups' uncompressed sizes); `bdpo encode` writes row groups of ≈ 1 MiB, so a cache miss reads ≈ 1 MiB;
// - two batches as float32 (the one in use and the one being prefetched).
// A latent is 2·C·H·W bytes (4×64×64 at 512 px: 32 KiB), so a whole Pick-a-Pic latent cache (≈ 1M images, 32 GB)
// does not fit in memory, while its index (≈ 16 MB) does.
//
// Order: per epoch, the consensus files are visited in an order drawn from the generator, their eligible rows
// (kept, in the chosen splits, with a label) stream through a shuffle buffer of N pairs (fill it, then each new pair
// replaces a uniformly chosen one that is emitted; at the end of the files the buffer drains in random order), and
// batches are cut from that stream without crossing an epoch boundary: every eligible pair appears exactly once
// per epoch (the last batch of an epoch may be short unless dropLast). Caption dropout draws from the same generator
// as each pair is emitted. All randomness comes from one seeded xoshiro128** generator (src/train/rng.ts) drawn in
// a fixed order, independent of I/O timing, so `state()` — epoch, file cursor and row, generator words, and the
// buffer's pairs — is enough for `PairLoader.resume` to continue with exactly the batches an uninterrupted run would
// have produced.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { openDatasetParquet, readRowGroupColumns, type ParquetCell, type ParquetSource, type RowGroupInfo } from '../io/parquet.ts';
import { sha256Hex } from '../ids.ts';
import { createRng, type Rng, type RngState } from './rng.ts';
import { decodeFloat16, formatShape, parseShape } from './float16.ts';

// ---------------------------------------------------------------------------------------------------------------
// A compact index from content ids to row locations

/** The first 52 bits of an id: its leading 13 hex digits, or those of its sha256 when it is not hex. */
export function idKey(id: string): number {
  const hex = /^[0-9a-f]{13}/i.test(id) ? id : sha256Hex(id);
  return parseInt(hex.slice(0, 13), 16);
}

export interface RowLocation {
  file: number;
  row: number;
}

/**
 * Sorted keys with their (file, row) locations: 16 bytes per id instead of a Map of strings (≈ 150 bytes per
 * 64-character id). A key is only 52 bits of the id, so a lookup returns candidates that the caller confirms
 * against the id stored in the row (two ids sharing a key — or one id stored twice — give two candidates).
 */
export class IdIndex {
  private constructor(
    private readonly keys: Float64Array,
    private readonly files: Uint32Array,
    private readonly rows: Uint32Array,
  ) {}

  static builder(): IdIndexBuilder {
    return new IdIndexBuilder();
  }

  /** @internal */
  static fromSorted(keys: Float64Array, files: Uint32Array, rows: Uint32Array): IdIndex {
    return new IdIndex(keys, files, rows);
  }

  get size(): number {
    return this.keys.length;
  }

  /** sha256 of the sorted keys: the same ids (with the same multiplicities) give the same digest on every host. */
  digest(): string {
    const bytes = new DataView(new ArrayBuffer(this.keys.length * 8));
    this.keys.forEach((key, i) => bytes.setFloat64(i * 8, key, true));
    return sha256Hex(new Uint8Array(bytes.buffer));
  }

  /** Whether an id with this id's key was added: never false for an added id; rarely true for another one. */
  mayContain(id: string): boolean {
    const key = idKey(id);
    const i = this.lowerBound(key);
    return i < this.keys.length && this.keys[i] === key;
  }

  /** Locations of the rows whose id has this id's key, in the order they were added. */
  candidates(id: string): RowLocation[] {
    const key = idKey(id);
    const out: RowLocation[] = [];
    for (let i = this.lowerBound(key); i < this.keys.length && this.keys[i] === key; i++) {
      out.push({ file: this.files[i]!, row: this.rows[i]! });
    }
    return out;
  }

  private lowerBound(key: number): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.keys[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

export class IdIndexBuilder {
  private keys: number[] = [];
  private files: number[] = [];
  private rows: number[] = [];

  add(id: string, file = 0, row = 0): void {
    this.keys.push(idKey(id));
    this.files.push(file);
    this.rows.push(row);
  }

  build(): IdIndex {
    const n = this.keys.length;
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    const keys = this.keys;
    // Stable by insertion order among equal keys, so the first stored copy of an id is found first.
    order.sort((x, y) => keys[x]! - keys[y]! || x - y);
    const sortedKeys = new Float64Array(n);
    const files = new Uint32Array(n);
    const rows = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const j = order[i]!;
      sortedKeys[i] = keys[j]!;
      files[i] = this.files[j]!;
      rows[i] = this.rows[j]!;
    }
    this.keys = [];
    this.files = [];
    this.rows = [];
    return IdIndex.fromSorted(sortedKeys, files, rows);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Cached tensors (latents/, text/): id → float16 bytes, row group by row group

/** Parquet part files of a folder of the dataset, sorted, relative to it ("latents/part-….parquet"). */
export async function listParquetParts(dir: string, folder: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(join(dir, folder));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return names
    .filter((name) => name.startsWith('part-') && name.endsWith('.parquet'))
    .sort()
    .map((name) => `${folder}/${name}`);
}

export class MissingDataError extends Error {
  override name = 'MissingDataError';
}

export interface TensorTableSpec {
  /** Folder under the dataset directory: "latents" or "text". */
  folder: string;
  idColumn: string;
  valueColumn: string;
}

export const LATENT_TABLE: TensorTableSpec = { folder: 'latents', idColumn: 'image_id', valueColumn: 'latent' };
export const TEXT_TABLE: TensorTableSpec = { folder: 'text', idColumn: 'prompt_id', valueColumn: 'hidden' };

interface GroupData {
  ids: string[];
  values: Uint8Array[];
}

function rowGroupOf(groups: readonly RowGroupInfo[], row: number): RowGroupInfo {
  let lo = 0;
  let hi = groups.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (groups[mid]!.rowStart <= row) lo = mid;
    else hi = mid - 1;
  }
  return groups[lo]!;
}

/** Consecutive row groups merged into spans of at most `maxRows` rows (a group larger than that is a span alone). */
export function rowSpans(groups: readonly RowGroupInfo[], maxRows: number): RowGroupInfo[] {
  const spans: RowGroupInfo[] = [];
  for (const group of groups) {
    const last = spans.at(-1);
    if (last && last.numRows + group.numRows <= maxRows) last.numRows += group.numRows;
    else spans.push({ index: group.index, rowStart: group.rowStart, numRows: group.numRows });
  }
  return spans;
}

/** Decoded row groups, least recently used first; cost = the row group's uncompressed size from the footer. */
class RowGroupCache {
  private readonly entries = new Map<string, { data: Promise<GroupData>; cost: number }>();
  private total = 0;

  constructor(private readonly budget: number) {}

  get(key: string, cost: number, load: () => Promise<GroupData>): Promise<GroupData> {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit.data;
    }
    const data = load();
    // A failed read is not cached: the next lookup retries it.
    data.catch(() => this.drop(key));
    this.entries.set(key, { data, cost });
    this.total += cost;
    for (const [k, e] of this.entries) {
      if (this.total <= this.budget || k === key) break;
      this.entries.delete(k);
      this.total -= e.cost;
    }
    return data;
  }

  private drop(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.total -= e.cost;
  }

  clear(): void {
    this.entries.clear();
    this.total = 0;
  }
}

/**
 * One folder of cached tensors (latents/ or text/): every part's ids indexed at open, values read a row group at a
 * time through an LRU cache. All rows must share one shape.
 */
export class TensorStore {
  private readonly cache: RowGroupCache;

  private constructor(
    readonly spec: TensorTableSpec,
    readonly files: readonly ParquetSource[],
    private readonly index: IdIndex,
    /** Tensor shape of every row, e.g. [4, 8, 8]. */
    readonly shape: readonly number[],
    cacheBytes: number,
  ) {
    this.cache = new RowGroupCache(cacheBytes);
  }

  /** Every part of the folder, or only `files` (paths relative to `dir`). */
  static async open(dir: string, spec: TensorTableSpec, options: { cacheBytes?: number; files?: readonly string[] } = {}): Promise<TensorStore> {
    const names = options.files ? [...options.files] : await listParquetParts(dir, spec.folder);
    const files: ParquetSource[] = [];
    const builder = IdIndex.builder();
    const shapes = new Set<string>();
    for (const [f, name] of names.entries()) {
      const source = await openDatasetParquet(dir, name);
      for (const column of [spec.idColumn, 'shape', spec.valueColumn]) {
        if (!source.columns.includes(column)) throw new MissingDataError(`${name}: no column ${column}`);
      }
      files.push(source);
      // Several row groups per read: each read has a fixed cost of a few milliseconds.
      for (const span of rowSpans(source.rowGroups, 65536)) {
        const columns = await readRowGroupColumns(source, span, [spec.idColumn, 'shape']);
        const ids = columns[spec.idColumn]!;
        const shape = columns.shape!;
        for (let i = 0; i < span.numRows; i++) {
          builder.add(String(ids[i]), f, span.rowStart + i);
          shapes.add(String(shape[i]));
        }
      }
    }
    if (shapes.size > 1) {
      throw new MissingDataError(
        `${spec.folder}/ holds tensors of shapes ${[...shapes].sort().join(', ')}: re-encode with one model and resolution`,
      );
    }
    const shape = shapes.size === 1 ? parseShape([...shapes][0]!) : [];
    return new TensorStore(spec, files, builder.build(), shape, options.cacheBytes ?? 64 * 2 ** 20);
  }

  get size(): number {
    return this.index.size;
  }

  /** Values per row (the product of the shape). */
  get length(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  mayContain(id: string): boolean {
    return this.index.mayContain(id);
  }

  /** The float16 bytes stored for `id`, or null when no row holds it. */
  async find(id: string): Promise<Uint8Array | null> {
    for (const { file, row } of this.index.candidates(id)) {
      const source = this.files[file]!;
      const group = rowGroupOf(source.rowGroups, row);
      const cost = Number(source.metadata.row_groups[group.index]!.total_byte_size);
      const data = await this.cache.get(`${file}:${group.index}`, cost, () => this.readGroup(source, group));
      const k = row - group.rowStart;
      if (data.ids[k] === id) return data.values[k]!;
    }
    return null;
  }

  /** Decodes the row of `id` into `out` at `offset`; throws MissingDataError when there is none. */
  async decodeInto(id: string, out: Float32Array, offset: number, what: string, hint = ''): Promise<void> {
    const bytes = await this.find(id);
    if (bytes === null) throw new MissingDataError(`${this.spec.folder}/ has no row for ${what}${hint ? `: ${hint}` : ''}`);
    if (bytes.length !== 2 * this.length) {
      throw new MissingDataError(`${this.spec.folder}/: ${what} has ${bytes.length} bytes, expected ${2 * this.length} (${formatShape(this.shape)} float16)`);
    }
    decodeFloat16(bytes, out, offset);
  }

  private async readGroup(source: ParquetSource, group: RowGroupInfo): Promise<GroupData> {
    const columns = await readRowGroupColumns(source, group, [this.spec.idColumn, this.spec.valueColumn]);
    const ids = Array.from(columns[this.spec.idColumn]!, (v) => String(v));
    const values = Array.from(columns[this.spec.valueColumn]!, (v, i) => {
      if (!(v instanceof Uint8Array)) throw new MissingDataError(`${source.path}: row ${group.rowStart + i} has no ${this.spec.valueColumn} bytes`);
      return v;
    });
    return { ids, values };
  }

  clear(): void {
    this.cache.clear();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The pair order over consensus/<rule>

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

interface PlannedBatch {
  entries: Entry[];
  dropped: Uint8Array;
  epoch: number;
  index: number;
  stateAfter: LoaderState;
}

const CONSENSUS_COLUMNS = ['pair_id', 'prompt_id', 'image_a', 'image_b', 'label', 'soft', 'kept', 'split'];

function resolveOrderOptions(options: OrderOptions): ResolvedOrderOptions {
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
  if (!Number.isInteger(resolved.batchSize) || resolved.batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${resolved.batchSize}`);
  if (!Number.isInteger(resolved.seed) || resolved.seed < 0 || resolved.seed >= 2 ** 32) throw new RangeError(`seed must be an integer in [0, 2^32), got ${resolved.seed}`);
  if (!Number.isInteger(resolved.shuffleBuffer) || resolved.shuffleBuffer < 0) throw new RangeError(`shuffleBuffer must be a non-negative integer, got ${resolved.shuffleBuffer}`);
  if (!(resolved.captionDropout >= 0 && resolved.captionDropout <= 1)) throw new RangeError(`captionDropout must be in [0, 1], got ${resolved.captionDropout}`);
  if (resolved.epochs !== null && (!Number.isInteger(resolved.epochs) || resolved.epochs < 1)) throw new RangeError(`epochs must be a positive integer or null, got ${resolved.epochs}`);
  if (!/^[a-z0-9][a-z0-9_.=-]*$/i.test(resolved.rule)) throw new RangeError(`rule must be a folder name under consensus/, got "${resolved.rule}"`);
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
class PairOrder {
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
    if (state.format !== 'bdpo-pair-loader/1') throw new Error(`not a pair loader state (format ${String(state.format)})`);
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
      if (!entry || entry.pairId !== pairId) throw new MissingDataError(`loader state: pair ${pairId} is not at row ${row} of ${this.files[file]?.file}`);
      return entry;
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The loader

/** One batch, ready for the trainer: float32 arrays, row-major. */
export interface LoaderBatch {
  /** [B, C, H, W] latents of image a (VAE mean × scaling factor, as cached). */
  latentsA: Float32Array;
  latentsB: Float32Array;
  latentShape: [number, number, number, number];
  /** [B, T, W] text-encoder states; the empty prompt's where captionDropped. */
  text: Float32Array;
  textShape: [number, number, number];
  /** y = P(a ≻ b): the consensus label (1, 0, or 0.5 where the rule's tie policy kept a tie), or `soft`. */
  label: Float64Array;
  pairIds: string[];
  promptIds: string[];
  /** 1 where the text states were replaced by the empty prompt's (caption dropout). */
  captionDropped: Uint8Array;
  /** Epoch this batch belongs to (0-based); batches never span two. */
  epoch: number;
  /** Batches returned before this one (across resumes). */
  index: number;
}

interface Produced {
  batch: LoaderBatch;
  stateAfter: LoaderState;
}

export class PairLoader implements AsyncIterable<LoaderBatch> {
  private pending: Promise<Produced | null> | null = null;
  private current: LoaderState;
  private closed = false;

  private constructor(
    private readonly order: PairOrder,
    private readonly latents: TensorStore,
    private readonly texts: TensorStore,
    private readonly emptyText: Float32Array | null,
    private readonly prefetch: boolean,
    private readonly encodeHint: string,
  ) {
    this.current = order.snapshot();
  }

  static async open(options: PairLoaderOptions): Promise<PairLoader> {
    const order = await PairOrder.open(resolveOrderOptions(options));
    return PairLoader.assemble(order, options);
  }

  /** Continues from `state()` of an earlier loader: the batches that follow are those the earlier one would have given. */
  static async resume(state: LoaderState, options: { dir?: string; cacheBytes?: number; prefetch?: boolean } = {}): Promise<PairLoader> {
    const order = await PairOrder.restore(state, options.dir ?? state.options.dir);
    return PairLoader.assemble(order, options);
  }

  private static async assemble(order: PairOrder, options: { cacheBytes?: number; prefetch?: boolean }): Promise<PairLoader> {
    const dir = order.options.dir;
    const cache = options.cacheBytes === undefined ? {} : { cacheBytes: options.cacheBytes };
    const [latents, texts] = await Promise.all([TensorStore.open(dir, LATENT_TABLE, cache), TensorStore.open(dir, TEXT_TABLE, cache)]);
    const encodeHint = `run bdpo encode ${dir} --rule ${order.options.rule}`;
    if (latents.size === 0) throw new MissingDataError(`${dir}: no latents/part-*.parquet (${encodeHint})`);
    if (texts.size === 0) throw new MissingDataError(`${dir}: no text/part-*.parquet (${encodeHint})`);
    if (latents.shape.length !== 3) throw new MissingDataError(`latents/: shape ${formatShape(latents.shape)} is not C×H×W`);
    if (texts.shape.length !== 2) throw new MissingDataError(`text/: shape ${formatShape(texts.shape)} is not tokens×width`);
    let emptyText: Float32Array | null = null;
    if (order.options.captionDropout > 0) {
      emptyText = new Float32Array(texts.length);
      await texts.decodeInto('', emptyText, 0, 'the empty prompt (caption dropout needs it)', encodeHint);
    }
    return new PairLoader(order, latents, texts, emptyText, options.prefetch ?? true, encodeHint);
  }

  get latentShape(): readonly number[] {
    return this.latents.shape;
  }

  get textShape(): readonly number[] {
    return this.texts.shape;
  }

  /** Position after the last batch returned by next(): pass it to PairLoader.resume. JSON-serialisable. */
  state(): LoaderState {
    return structuredClone(this.current);
  }

  /** The next batch, or null when every epoch has been read. */
  async next(): Promise<LoaderBatch | null> {
    if (this.closed) throw new Error('the pair loader is closed');
    const job = this.pending ?? this.produce();
    this.pending = null;
    const produced = await job;
    if (produced === null) return null;
    this.current = produced.stateAfter;
    if (this.prefetch) {
      this.pending = this.produce();
      // Surfaced by the next call to next(); never an unhandled rejection in between.
      this.pending.catch(() => undefined);
    }
    return produced.batch;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<LoaderBatch> {
    for (;;) {
      const batch = await this.next();
      if (batch === null) return;
      yield batch;
    }
  }

  /** Waits for a prefetch in flight and drops the caches. */
  async close(): Promise<void> {
    this.closed = true;
    await this.pending?.catch(() => undefined);
    this.pending = null;
    this.latents.clear();
    this.texts.clear();
  }

  private async produce(): Promise<Produced | null> {
    const plan = await this.order.nextBatch();
    if (plan === null) return null;
    return { batch: await this.decode(plan), stateAfter: plan.stateAfter };
  }

  private async decode(plan: PlannedBatch): Promise<LoaderBatch> {
    const n = plan.entries.length;
    const [c, h, w] = this.latents.shape as [number, number, number];
    const [t, width] = this.texts.shape as [number, number];
    const per = this.latents.length;
    const perText = this.texts.length;
    const latentsA = new Float32Array(n * per);
    const latentsB = new Float32Array(n * per);
    const text = new Float32Array(n * perText);
    const hint = this.encodeHint;
    const jobs: Promise<void>[] = [];
    plan.entries.forEach((e, i) => {
      jobs.push(this.latents.decodeInto(e.imageA, latentsA, i * per, `image ${e.imageA} (image_a of pair ${e.pairId})`, hint));
      jobs.push(this.latents.decodeInto(e.imageB, latentsB, i * per, `image ${e.imageB} (image_b of pair ${e.pairId})`, hint));
      if (plan.dropped[i]) text.set(this.emptyText!, i * perText);
      else jobs.push(this.texts.decodeInto(e.promptId, text, i * perText, `prompt ${e.promptId} (pair ${e.pairId})`, hint));
    });
    await Promise.all(jobs);
    return {
      latentsA,
      latentsB,
      latentShape: [n, c, h, w],
      text,
      textShape: [n, t, width],
      label: Float64Array.from(plan.entries, (e) => e.y),
      pairIds: plan.entries.map((e) => e.pairId),
      promptIds: plan.entries.map((e) => e.promptId),
      captionDropped: plan.dropped,
      epoch: plan.epoch,
      index: plan.index,
    };
  }
}
