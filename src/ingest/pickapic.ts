// Pick-a-Pic v2 shards as published (docs/design.md §3): one unit per row group, so a shard of hundreds of MB is never held
// whole. label_0 is P(image 0 ≻ image 1) with 0.5 = tie; has_label false keeps the pair unlabelled.
import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import {
  columnType,
  openParquet,
  readRowGroup,
  rowGroupFingerprint,
  ParquetFileError,
  type ParquetCell,
  type ParquetSource,
} from '../io/parquet.ts';
import { statInputs } from '../core/manifest.ts';
import { InputError } from '../core/errors.ts';
import { safeName } from '../io/paths.ts';
import { decodeUtf8 } from '../io/text.ts';
import { reject, type Draft, type IngestUnit } from './drafts.ts';
import { runIngest, type IngestOptions, type IngestSummary } from './driver.ts';

export const PICKAPIC_REQUIRED = ['caption', 'jpg_0', 'jpg_1', 'label_0'] as const;
const PICKAPIC_OPTIONAL = ['label_1', 'has_label', 'model_0', 'model_1'] as const;
const LABEL_TYPES = ['double', 'float', 'int32', 'int64', 'decimal', 'boolean'];
/** The column types each column the reader uses may have: a column of another type is an error, not row by row noise. */
const COLUMN_TYPES: Record<(typeof PICKAPIC_REQUIRED)[number] | (typeof PICKAPIC_OPTIONAL)[number], { what: string; types: string[] }> = {
  caption: { what: 'text', types: ['string'] },
  jpg_0: { what: 'image bytes', types: ['binary'] },
  jpg_1: { what: 'image bytes', types: ['binary'] },
  label_0: { what: 'a number', types: LABEL_TYPES },
  label_1: { what: 'a number', types: LABEL_TYPES },
  has_label: { what: 'a flag', types: ['boolean', 'int32', 'int64'] },
  model_0: { what: 'text', types: ['string'] },
  model_1: { what: 'text', types: ['string'] },
};
const SPLITS = ['validation_unique', 'test_unique', 'validation', 'train', 'test'] as const;

/** The split in a published shard's name: `train-00000-of-00645.parquet`, `validation_unique-….parquet`. */
export function splitFromFileName(path: string): string | null {
  const name = basename(path);
  return SPLITS.find((split) => name.startsWith(`${split}-`) || name.startsWith(`${split}.`)) ?? null;
}

/** Parquet files named on the command line, folders expanded (one level, sorted). */
export async function listParquetInputs(paths: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const path of paths) {
    const info = await stat(path).catch(() => null);
    if (!info) throw new InputError(`${path}: no such file or folder`);
    if (info.isDirectory()) {
      const names = (await readdir(path)).filter((name) => name.endsWith('.parquet')).sort();
      if (names.length === 0) throw new InputError(`${path}: folder has no .parquet files`);
      files.push(...names.map((name) => join(path, name)));
    } else {
      files.push(path);
    }
  }
  const byName = new Map<string, string>();
  for (const file of files) {
    const other = byName.get(basename(file));
    if (other && other !== file) throw new InputError(`two inputs share the name ${basename(file)}: ${other}, ${file}`);
    byName.set(basename(file), file);
  }
  return [...byName.values()].sort((x, y) => basename(x).localeCompare(basename(y)));
}

export interface PickapicOptions extends IngestOptions {
  /** Split for files whose name does not say it. */
  split?: string;
}

export async function ingestPickapic(paths: string[], options: PickapicOptions): Promise<IngestSummary> {
  const files = await listParquetInputs(paths);
  const units: IngestUnit[] = [];
  for (const file of files) {
    const source = await openParquet(file);
    const missing = PICKAPIC_REQUIRED.filter((column) => !source.columns.includes(column));
    if (missing.length > 0) {
      throw new InputError(`${file}: not a Pick-a-Pic shard (no column ${missing.join(', ')})`);
    }
    for (const [column, expected] of Object.entries(COLUMN_TYPES)) {
      const found = columnType(source, column);
      if (found !== undefined && !expected.types.includes(found)) {
        throw new InputError(`${file}: column ${column} is ${found}, expected ${expected.what} (${expected.types.join(' or ')})`);
      }
    }
    const split = splitFromFileName(file) ?? options.split ?? null;
    const { size, mtimeMs } = await stat(file);
    units.push(...rowGroupUnits(source, split, `${size}:${mtimeMs}`));
  }
  // Only footers are read here (to list the row groups): a shard reads and hashes the row groups it owns, no more.
  const inputs = await statInputs(files);
  return runIngest('pickapic', units, inputs, { split: options.split ?? null, decode: options.decode ?? true }, options);
}

function rowGroupUnits(source: ParquetSource, split: string | null, signature: string): IngestUnit[] {
  const stem = safeName(basename(source.path).replace(/\.parquet$/, ''));
  return source.rowGroups.map((group) => ({
    key: `${stem}-rg${String(group.index).padStart(4, '0')}`,
    bytes: Number(source.metadata.row_groups[group.index]!.total_byte_size),
    input: source.path,
    fingerprint: () => rowGroupFingerprint(source, group),
    signature,
    async *drafts(): AsyncGenerator<Draft> {
      let rows;
      try {
        rows = await readRowGroup(source, group, [...PICKAPIC_REQUIRED, ...PICKAPIC_OPTIONAL], { textAsBytes: true });
      } catch (error) {
        throw new ParquetFileError(`${source.path}: row group ${group.index} unreadable (${(error as Error).message})`);
      }
      for (const [offset, row] of rows.entries()) {
        yield rowDraft(`${basename(source.path)}#${group.rowStart + offset}`, row, split);
      }
    },
  }));
}

function rowDraft(sourceRef: string, row: Record<string, ParquetCell>, split: string | null): Draft {
  const texts: Record<'caption' | 'model_0' | 'model_1', string | null> = { caption: null, model_0: null, model_1: null };
  for (const column of ['caption', 'model_0', 'model_1'] as const) {
    const cell = row[column];
    if (cell === null || cell === undefined) continue;
    if (!(cell instanceof Uint8Array)) return reject(sourceRef, 'malformed_entry', `${column} is not text`);
    const decoded = decodeUtf8(cell);
    if (!decoded.ok) return reject(sourceRef, 'bad_text', `${column}: invalid UTF-8 at byte ${decoded.offset} of the value`);
    texts[column] = decoded.text;
  }
  const caption = texts.caption;
  const a = row.jpg_0;
  const b = row.jpg_1;
  if ((a !== null && a !== undefined && !(a instanceof Uint8Array)) || (b !== null && b !== undefined && !(b instanceof Uint8Array))) {
    return reject(sourceRef, 'malformed_entry', 'jpg_0/jpg_1 are not binary');
  }
  const label = humanPreference(row);
  if (label === 'bad') {
    return reject(sourceRef, 'bad_label', `label_0=${String(row.label_0)} label_1=${String(row.label_1)}`);
  }
  return {
    kind: 'pair',
    sourceRef,
    prompt: { text: caption, source: 'pickapic', split },
    a: { bytes: a ?? null, sourceRef: `${sourceRef}:jpg_0`, model: texts.model_0 },
    b: { bytes: b ?? null, sourceRef: `${sourceRef}:jpg_1`, model: texts.model_1 },
    humanPref: label,
    split,
  };
}

/** P(a ≻ b) from label_0, null when the row says it has no label; 'bad' when the labels are inconsistent. */
function humanPreference(row: Record<string, ParquetCell>): number | null | 'bad' {
  const hasLabel = row.has_label;
  if (hasLabel === false || hasLabel === 0 || hasLabel === 0n) return null;
  const label0 = toNumber(row.label_0);
  if (label0 === null) return hasLabel === undefined || hasLabel === null ? null : 'bad';
  if (label0 !== 0 && label0 !== 0.5 && label0 !== 1) return 'bad';
  const label1 = toNumber(row.label_1);
  if (label1 !== null && label0 + label1 !== 1) return 'bad';
  return label0;
}

function toNumber(cell: ParquetCell): number | null {
  if (typeof cell === 'number') return Number.isFinite(cell) ? cell : Number.NaN;
  if (typeof cell === 'bigint') return Number(cell);
  if (typeof cell === 'boolean') return cell ? 1 : 0;
  return null;
}
