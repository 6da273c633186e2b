// The one Parquet module: hyparquet reads (row group by row group, any writer's files: snappy/zstd/gzip,
// dictionary pages, data page v1/v2); writes go through parquet-encoder.ts, which encodes the hot column kinds itself
// and leaves the rest, and the footer, to hyparquet-writer. Nothing else imports either library.
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { parquetMetadataAsync, parquetRead, parquetSchema } from 'hyparquet';
import type { AsyncBuffer, FileMetaData } from 'hyparquet';
import { parquetHeader } from 'hyparquet/src/column.js';
import { decompressPage } from 'hyparquet/src/datapage.js';
import { readRleBitPackedHybrid } from 'hyparquet/src/encoding.js';
import { compressors } from 'hyparquet-compressors';
import { ByteWriter } from 'hyparquet-writer';
import type { SchemaElement as WriterSchemaElement } from 'hyparquet-writer';
import { writeFlatParquet, type ColumnData, type FlatColumn } from './parquet-encoder.ts';
import { writeStreamAtomic } from './atomic.ts';
import { hashFile } from './file-hash.ts';
import { snappyCompress, snappyCompressView } from './snappy.ts';
import { verifyPartFile } from '../core/manifest.ts';
import { resolveInside } from './paths.ts';
import { createReadStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { BdpoError } from '../core/errors.ts';

export class ParquetFileError extends BdpoError {}

export interface RowGroupInfo {
  index: number;
  rowStart: number;
  numRows: number;
}

export interface ParquetSource {
  path: string;
  file: AsyncBuffer;
  metadata: FileMetaData;
  numRows: number;
  rowGroups: RowGroupInfo[];
  /** Top-level column names, in file order. */
  columns: string[];
}

/**
 * The file as the reader's byte source: each slice (a footer, a row group's column chunks) is one positioned read
 * into a buffer of its size. The library's own source streams a slice in 64 KiB chunks, a thread-pool round trip
 * each, and joins them: most of a scan's time went to waiting.
 */
async function fileSlices(path: string): Promise<AsyncBuffer> {
  const { size } = await stat(path);
  return {
    byteLength: size,
    async slice(start: number, end?: number): Promise<ArrayBuffer> {
      const stop = Math.min(end ?? size, size);
      const buffer = new Uint8Array(Math.max(0, stop - start));
      if (buffer.byteLength === 0) return buffer.buffer;
      const handle = await open(path, 'r');
      try {
        for (let done = 0; done < buffer.byteLength; ) {
          const { bytesRead } = await handle.read(buffer, done, buffer.byteLength - done, start + done);
          if (bytesRead === 0) throw new ParquetFileError(`${path}: ended at byte ${start + done}, before ${stop} (truncated while read?)`);
          done += bytesRead;
        }
      } finally {
        await handle.close();
      }
      return buffer.buffer;
    },
  };
}

export async function openParquet(path: string): Promise<ParquetSource> {
  let file: AsyncBuffer;
  let metadata: FileMetaData;
  try {
    file = await fileSlices(path);
    metadata = await parquetMetadataAsync(file);
  } catch (error) {
    throw new ParquetFileError(`${path}: not a readable Parquet file (${(error as Error).message})`);
  }
  const rowGroups: RowGroupInfo[] = [];
  let rowStart = 0;
  metadata.row_groups.forEach((group, index) => {
    const numRows = Number(group.num_rows);
    rowGroups.push({ index, rowStart, numRows });
    rowStart += numRows;
  });
  const columns = parquetSchema(metadata).children.map((child) => child.element.name);
  return { path, file, metadata, numRows: Number(metadata.num_rows), rowGroups, columns };
}

/** A Parquet part of a dataset directory, checked against the sha256 its writer recorded before it is read. */
export async function openDatasetParquet(dir: string, file: string): Promise<ParquetSource> {
  await verifyPartFile(dir, file);
  return openParquet(resolveInside(dir, file));
}

/**
 * A top-level column's type in plain words — 'string', 'binary', 'double', 'float', 'int32', 'int64', 'boolean',
 * or the annotation ('timestamp', 'decimal', 'list', …) — for readers that check what they read; undefined when absent.
 */
export function columnType(source: ParquetSource, name: string): string | undefined {
  const node = parquetSchema(source.metadata).children.find((child) => child.element.name === name);
  if (!node) return undefined;
  const { type, converted_type: converted, logical_type: logical, repetition_type: repetition } = node.element;
  if (node.children.length > 0) return (logical?.type ?? converted ?? 'struct').toLowerCase();
  const annotation = logical?.type ?? converted;
  let plain: string;
  if (type === 'BYTE_ARRAY') {
    plain = annotation === undefined ? 'binary' : annotation === 'UTF8' || annotation === 'STRING' ? 'string' : annotation.toLowerCase();
  } else if ((type === 'INT32' || type === 'INT64') && annotation !== undefined && !/^(U?INT(_\d+)?|INTEGER)$/.test(annotation)) {
    plain = annotation.replace(/_(MILLIS|MICROS)$/, '').toLowerCase();
  } else if (type === 'FIXED_LEN_BYTE_ARRAY' && annotation !== undefined) {
    plain = annotation.toLowerCase();
  } else {
    plain = String(type).toLowerCase();
  }
  return repetition === 'REPEATED' ? `repeated ${plain}` : plain;
}

export type ParquetCell = string | number | bigint | boolean | Uint8Array | null | undefined;
export type ParquetRow = Record<string, ParquetCell>;

/** What every read of one row group passes: binary stays binary (utf8 false), any codec, that group's rows. */
function rowGroupRead(source: ParquetSource, group: RowGroupInfo) {
  return {
    file: source.file,
    metadata: source.metadata,
    compressors,
    utf8: false,
    rowStart: group.rowStart,
    rowEnd: group.rowStart + group.numRows,
  };
}

/**
 * The rows of one row group as objects. Binary columns stay Uint8Array; UTF8-annotated ones become strings, or stay
 * bytes with `textAsBytes` for a reader that decodes them strictly (the library's decoder replaces bad bytes).
 */
export async function readRowGroup(
  source: ParquetSource,
  group: RowGroupInfo,
  columns?: string[],
  options: { textAsBytes?: boolean } = {},
): Promise<ParquetRow[]> {
  const wanted = columns?.filter((name) => source.columns.includes(name));
  let rows: ParquetRow[] = [];
  await parquetRead({
    ...rowGroupRead(source, group),
    ...(options.textAsBytes ? { parsers: { stringFromBytes: (bytes: Uint8Array): Uint8Array => bytes } } : {}),
    rowFormat: 'object',
    ...(wanted ? { columns: wanted } : {}),
    onComplete: (result: ParquetRow[]) => {
      rows = result;
    },
  });
  return rows;
}

/**
 * Columns of one row group, column-major (cheaper than objects for numeric scans). With `textAsBytes`, UTF8 columns
 * stay bytes (no decoding, for readers that only compare or hash ids). Each column is a plain array.
 */
export async function readRowGroupColumns(
  source: ParquetSource,
  group: RowGroupInfo,
  columns: string[],
  options: { textAsBytes?: boolean } = {},
): Promise<Record<string, ArrayLike<ParquetCell>>> {
  const decoded = await readRowGroupVectors(source, group, columns, options);
  const out: Record<string, ParquetCell[]> = {};
  for (const [name, values] of Object.entries(decoded)) out[name] = Array.isArray(values) ? values : Array.from(values);
  return out;
}

/** Decompressed PLAIN values of a BYTE_ARRAY column: `values` of them, each a 4-byte length and its bytes. */
export interface PlainBytePage {
  values: number;
  bytes: Uint8Array;
}

/** A BYTE_ARRAY column chunk decompressed but not decoded: its PLAIN pages, or its dictionary and each row's entry. */
export type BytePages = { kind: 'plain'; pages: PlainBytePage[] } | { kind: 'dictionary'; dictionary: PlainBytePage; indexes: Int32Array };

/**
 * A required BYTE_ARRAY column's values in one row group, decompressed but not decoded, when the chunk is written as
 * our writer writes ids (PLAIN data pages v2 without levels, or all of them indexes into one dictionary page); null
 * when it is written any other way, for the caller to read it through the library. For scans that parse millions of
 * ids straight from the pages (the score table), where the library's view per value was most of the work and of the
 * garbage.
 */
export async function readBytePages(source: ParquetSource, group: RowGroupInfo, column: string): Promise<BytePages | null> {
  const chunk = source.metadata.row_groups[group.index]?.columns.find((c) => c.meta_data?.path_in_schema.join('.') === column);
  const meta = chunk?.meta_data;
  const element = parquetSchema(source.metadata).children.find((child) => child.element.name === column)?.element;
  if (!meta || !element || element.type !== 'BYTE_ARRAY' || element.repetition_type !== 'REQUIRED') return null;
  if (meta.encodings.some((e) => e !== 'PLAIN' && e !== 'RLE_DICTIONARY')) return null;
  const start = Number(meta.dictionary_page_offset ?? meta.data_page_offset);
  const bytes = new Uint8Array(await source.file.slice(start, start + Number(meta.total_compressed_size)));
  const reader = { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), offset: 0 };
  const fail = (why: string): ParquetFileError =>
    new ParquetFileError(`${source.path}: row group ${group.index} column "${column}": ${why}`);
  const pages: PlainBytePage[] = [];
  let dictionary: PlainBytePage | null = null;
  const indexes = new Int32Array(group.numRows);
  let values = 0;
  try {
    while (reader.offset < bytes.length && values < group.numRows) {
      const header = parquetHeader(reader);
      const body = bytes.subarray(reader.offset, reader.offset + header.compressed_page_size);
      reader.offset += header.compressed_page_size;
      const dictionaryHeader = header.dictionary_page_header;
      if (header.type === 'DICTIONARY_PAGE' && dictionaryHeader && dictionary === null && values === 0) {
        dictionary = {
          values: dictionaryHeader.num_values,
          bytes: decompressPage(body, header.uncompressed_page_size, meta.codec, compressors),
        };
        continue;
      }
      const v2 = header.data_page_header_v2;
      if (header.type !== 'DATA_PAGE_V2' || !v2 || v2.num_nulls !== 0) return null;
      if (v2.definition_levels_byte_length !== 0 || v2.repetition_levels_byte_length !== 0) return null;
      if (v2.encoding !== (dictionary ? 'RLE_DICTIONARY' : 'PLAIN') || values + v2.num_values > group.numRows) return null;
      const page =
        v2.is_compressed === false || header.uncompressed_page_size === 0
          ? body
          : decompressPage(body, header.uncompressed_page_size, meta.codec, compressors);
      if (dictionary && v2.num_values > 0) {
        const bitWidth = page[0]!;
        const pageReader = { view: new DataView(page.buffer, page.byteOffset + 1, page.byteLength - 1), offset: 0 };
        readRleBitPackedHybrid(pageReader, bitWidth, indexes.subarray(values, values + v2.num_values), page.byteLength - 1);
      } else if (!dictionary) pages.push({ values: v2.num_values, bytes: page });
      values += v2.num_values;
    }
  } catch (error) {
    throw fail((error as Error).message);
  }
  if (values !== group.numRows) throw fail(`has ${values} of ${group.numRows} rows`);
  if (!dictionary) return { kind: 'plain', pages };
  for (const index of indexes)
    if (index < 0 || index >= dictionary.values) throw fail(`index ${index} outside its dictionary of ${dictionary.values}`);
  return { kind: 'dictionary', dictionary, indexes };
}

/**
 * Columns of one row group as the decoder made them, without a row per value: a required number column may come as
 * a typed array (Float64Array, Int32Array, BigInt64Array), anything else as a plain array. For scans of millions of
 * rows (the score table, the audit's distributions), where assembling rows costs more than decoding them.
 */
export async function readRowGroupVectors(
  source: ParquetSource,
  group: RowGroupInfo,
  columns: string[],
  options: { textAsBytes?: boolean } = {},
): Promise<Record<string, ArrayLike<ParquetCell>>> {
  const chunks = new Map<string, Array<{ rowStart: number; values: ArrayLike<ParquetCell> }>>();
  await parquetRead({
    ...rowGroupRead(source, group),
    ...(options.textAsBytes ? { parsers: { stringFromBytes: (bytes: Uint8Array): Uint8Array => bytes } } : {}),
    columns,
    onChunk: ({ columnName, columnData, rowStart }) => {
      let list = chunks.get(columnName);
      if (!list) chunks.set(columnName, (list = []));
      list.push({ rowStart, values: columnData as ArrayLike<ParquetCell> });
    },
  });
  const out: Record<string, ArrayLike<ParquetCell>> = {};
  const start = group.rowStart;
  const end = group.rowStart + group.numRows;
  for (const name of columns) {
    const list = chunks.get(name);
    if (!list) throw new ParquetFileError(`${source.path}: row group ${group.index} has no column "${name}"`);
    list.sort((a, b) => a.rowStart - b.rowStart);
    const only = list.length === 1 ? list[0]! : undefined;
    if (only && only.rowStart === start && only.values.length === group.numRows) {
      out[name] = only.values;
      continue;
    }
    // Pages split the chunk, or it reaches past the group: keep the group's rows, in order.
    const values: ParquetCell[] = [];
    for (const { rowStart, values: part } of list) {
      for (let i = Math.max(0, start - rowStart), n = Math.min(part.length, end - rowStart); i < n; i++) values.push(part[i]!);
    }
    if (values.length !== group.numRows) {
      throw new ParquetFileError(`${source.path}: row group ${group.index} column "${name}" has ${values.length} of ${group.numRows} rows`);
    }
    out[name] = values;
  }
  return out;
}

/** A Parquet column type of ours, mapped to one schema element so files read the same in DuckDB and pyarrow. */
export type ColumnType = 'string' | 'double' | 'float' | 'int32' | 'int64' | 'int8' | 'boolean' | 'binary';

export interface ColumnSpec {
  name: string;
  type: ColumnType;
  nullable: boolean;
}

function schemaElement(spec: ColumnSpec): WriterSchemaElement {
  const repetition_type = spec.nullable ? 'OPTIONAL' : 'REQUIRED';
  switch (spec.type) {
    case 'string':
      return { name: spec.name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type };
    case 'binary':
      return { name: spec.name, type: 'BYTE_ARRAY', repetition_type };
    case 'double':
      return { name: spec.name, type: 'DOUBLE', repetition_type };
    case 'float':
      return { name: spec.name, type: 'FLOAT', repetition_type };
    case 'int32':
      return { name: spec.name, type: 'INT32', repetition_type };
    case 'int64':
      return { name: spec.name, type: 'INT64', repetition_type };
    case 'int8':
      return { name: spec.name, type: 'INT32', converted_type: 'INT_8', repetition_type };
    case 'boolean':
      return { name: spec.name, type: 'BOOLEAN', repetition_type };
  }
}

export interface ParquetWriteResult {
  file: string;
  rows: number;
  bytes: number;
  sha256: string;
}

/**
 * Writes one Parquet part atomically from columns (one row group per `rowGroupSize` rows). Columns are plain arrays
 * or typed arrays in schema order; zstd is not offered by the writer, so parts use snappy, which every reader has.
 */
export async function writeParquetPart(
  dir: string,
  file: string,
  specs: readonly ColumnSpec[],
  columns: Record<string, ColumnData>,
  options: { rowGroupSize?: number; metadata?: Record<string, string> } = {},
): Promise<ParquetWriteResult> {
  const target = resolveInside(dir, file);
  await mkdir(dirname(target), { recursive: true });
  const rows = specs.length === 0 ? 0 : columns[specs[0]!.name]!.length;
  const schema: WriterSchemaElement[] = [{ name: 'schema', num_children: specs.length }, ...specs.map(schemaElement)];
  const columnData: FlatColumn[] = specs.map((spec) => {
    const data = columns[spec.name];
    if (!data || data.length !== rows) throw new Error(`column ${spec.name}: expected ${rows} values`);
    return { name: spec.name, data };
  });
  await writeStreamAtomic(target, async (handle) => {
    const writer = handleWriter(handle);
    writeFlatParquet(writer, schema, columnData, {
      rowGroupSize: options.rowGroupSize ?? 100_000,
      compress: snappyCompressView,
      compressors: { SNAPPY: snappyCompress },
      createdBy: 'balanced-dpo',
      kvMetadata: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
    });
    writer.finish();
  });
  const { bytes, sha256 } = await hashFile(target);
  return { file, rows, bytes, sha256 };
}

/**
 * The library's file writer, over an open handle instead of a file name, so the part goes through the atomic writer:
 * bytes gather in the buffer and go to the file a megabyte at a time (the writer's interface is synchronous).
 */
function handleWriter(handle: FileHandle): ByteWriter {
  const writer = new ByteWriter();
  const flushAt = 1_000_000;
  const flush = (): void => {
    const chunk = new Uint8Array(writer.buffer, 0, writer.index);
    for (let offset = 0; offset < chunk.byteLength; ) offset += writeSync(handle.fd, chunk, offset);
    writer.index = 0;
  };
  const grow = writer.ensure.bind(writer);
  writer.ensure = (size: number): void => {
    if (writer.index > flushAt) flush();
    grow(size);
  };
  writer.getBuffer = (): ArrayBuffer => {
    throw new Error('a part written to a file has no buffer');
  };
  writer.getBytes = (): Uint8Array<ArrayBuffer> => {
    throw new Error('a part written to a file has no buffer');
  };
  writer.finish = flush;
  return writer;
}

/** The byte range of a row group's column chunks in its file: what reading the row group reads. */
export function rowGroupByteRange(source: ParquetSource, group: RowGroupInfo): { start: number; end: number } {
  let start = Number.POSITIVE_INFINITY;
  let end = 0;
  for (const column of source.metadata.row_groups[group.index]!.columns) {
    const meta = column.meta_data;
    if (!meta) continue;
    const first = Number(meta.dictionary_page_offset ?? meta.data_page_offset);
    start = Math.min(start, first, Number(meta.data_page_offset));
    end = Math.max(end, first + Number(meta.total_compressed_size));
  }
  return Number.isFinite(start) ? { start, end } : { start: 0, end: 0 };
}

/**
 * The sha256 of one row group's bytes (with its row count and place): a shard fingerprints the row groups it owns
 * by reading just them, where a hash of the whole file would make every shard read every file.
 */
export async function rowGroupFingerprint(source: ParquetSource, group: RowGroupInfo): Promise<string> {
  const { start, end } = rowGroupByteRange(source, group);
  // Not the offsets: a row group whose bytes moved (an earlier one grew) holds the same rows.
  const hash = createHash('sha256').update(`${group.index}:${group.rowStart}:${group.numRows}\0`);
  if (end > start) for await (const chunk of createReadStream(source.path, { start, end: end - 1 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
