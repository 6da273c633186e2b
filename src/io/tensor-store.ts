// Cached tensors (latents/, text/): id → float16 bytes, read row group by row group with a bounded cache, so that
// encode can reuse what an earlier selection cached and train can stream a cache larger than memory.
import { listParts } from './arrow-table.ts';
import { openDatasetParquet, readRowGroupColumns, type ParquetSource, type RowGroupInfo } from './parquet.ts';
import { decodeFloat16, formatShape, parseShape } from './float16-bytes.ts';
import { IdIndex } from '../core/id-index.ts';
import { BdpoError } from '../core/errors.ts';

/** Parquet part files of a folder of the dataset, sorted, relative to it ("latents/part-….parquet"). */
export function listParquetParts(dir: string, folder: string): Promise<string[]> {
  return listParts(dir, folder, '.parquet');
}

export class MissingDataError extends BdpoError {
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

export function rowGroupOf(groups: readonly RowGroupInfo[], row: number): RowGroupInfo {
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
  static async open(
    dir: string,
    spec: TensorTableSpec,
    options: { cacheBytes?: number; files?: readonly string[] } = {},
  ): Promise<TensorStore> {
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
      throw new MissingDataError(
        `${this.spec.folder}/: ${what} has ${bytes.length} bytes, expected ${2 * this.length} (${formatShape(this.shape)} float16)`,
      );
    }
    decodeFloat16(bytes, out, offset);
  }

  private async readGroup(source: ParquetSource, group: RowGroupInfo): Promise<GroupData> {
    const columns = await readRowGroupColumns(source, group, [this.spec.idColumn, this.spec.valueColumn]);
    const ids = Array.from(columns[this.spec.idColumn]!, (v) => String(v));
    const values = Array.from(columns[this.spec.valueColumn]!, (v, i) => {
      if (!(v instanceof Uint8Array))
        throw new MissingDataError(`${source.path}: row ${group.rowStart + i} has no ${this.spec.valueColumn} bytes`);
      return v;
    });
    return { ids, values };
  }

  clear(): void {
    this.cache.clear();
  }
}
