// Parquet files of flat columns, byte for byte as hyparquet-writer's ParquetWriter writes them, with the column kinds
// every stage writes by the million (doubles, int32s, booleans, and text or binary held as Arrow lays it out) encoded
// here from typed arrays. The library's writer takes a JavaScript value per cell: it builds a Map to try a dictionary,
// slices each page, filters nulls and appends byte by byte, which was a third of a consensus run's CPU and most of its
// garbage. Every decision it makes (the dictionary's sampling and its win check, page boundaries, statistics, the
// RLE/bit-packed runs) is made here the same way, so a file's bytes — and the sha256 recorded of them — do not depend
// on which path wrote a column; test/io/parquet-encoder.test.ts compares the two on every kind of column. Other
// columns (strings as JavaScript strings, int64, float) go through the library's own column writer, and the page
// headers, page indexes and footer are always the library's.
import type { ByteWriter, SchemaElement } from 'hyparquet-writer';
import { writeColumn } from 'hyparquet-writer/src/column.js';
import { writePageHeader } from 'hyparquet-writer/src/datapage.js';
import { encodeNestedValues } from 'hyparquet-writer/src/dremel.js';
import { writeIndexes } from 'hyparquet-writer/src/indexes.js';
import { writeBlooms } from 'hyparquet-writer/src/bloom.js';
import { writeMetadata } from 'hyparquet-writer/src/metadata.js';
import { schemaPathResolver } from 'hyparquet-writer/src/schema.js';

type ColumnEncoder = Parameters<typeof writeColumn>[0]['column'];
type WrittenColumn = ReturnType<typeof writeColumn>;
type ColumnChunk = WrittenColumn['chunk'];
type ColumnMeta = NonNullable<ColumnChunk['meta_data']>;
type PageHeader = Parameters<typeof writePageHeader>[1];

/** Turns a page's bytes into what is written; the result is used before the next call (it may be a reused buffer). */
export type PageCompressor = (bytes: Uint8Array) => Uint8Array;

/** The library writer's default page size, which it splits pages by. */
const PAGE_SIZE = 1048576;
/** The library's sampled dictionary rejection: distinct sampled bytes above this share of sampled bytes. */
const SAMPLE_REJECTION_RATIO = 0.9;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A text or binary column without nulls as Arrow lays it out: value i is bytes[offsets[i], offsets[i + 1]). */
export class ByteColumn {
  readonly length: number;
  constructor(
    readonly offsets: Int32Array,
    readonly bytes: Uint8Array,
  ) {
    this.length = offsets.length - 1;
  }
}

/** Doubles where NaN stands for null: written as the array of numbers with null for each NaN would be. */
export class NullableDoubles {
  readonly length: number;
  constructor(readonly values: Float64Array) {
    this.length = values.length;
  }

  toArray(): Array<number | null> {
    return Array.from(this.values, (x) => (Number.isNaN(x) ? null : x));
  }
}

/** Text as codes into distinct labels (−1: null): written as the array of those strings would be. */
export class TextCodes {
  readonly length: number;
  constructor(
    readonly codes: Int32Array | Uint8Array,
    readonly labels: readonly string[],
  ) {
    this.length = codes.length;
    if (new Set(labels).size !== labels.length) throw new Error('text codes need distinct labels');
  }

  toArray(): Array<string | null> {
    return Array.from(this.codes, (c) => (c < 0 ? null : this.labels[c]!));
  }
}

export type ColumnData = ArrayLike<unknown> | ByteColumn | NullableDoubles | TextCodes;

export interface FlatColumn {
  name: string;
  data: ColumnData;
}

export interface FlatParquetOptions {
  rowGroupSize: number;
  compress: PageCompressor;
  /** The same codec for the library's column writer, which may keep what it returns. */
  compressors: ColumnEncoder['compressors'];
  kvMetadata: Array<{ key: string; value: string }>;
  createdBy: string;
}

/** Writes a whole file (header, row groups, page indexes, footer) of a flat schema to the writer. */
export function writeFlatParquet(writer: ByteWriter, schema: SchemaElement[], columns: FlatColumn[], options: FlatParquetOptions): void {
  const rows = columns[0]?.data.length ?? 0;
  const resolve = schemaPathResolver(schema);
  const written: WrittenColumn[] = [];
  const rowGroups: Array<{ columns: ColumnChunk[]; total_byte_size: bigint; num_rows: bigint; total_compressed_size: bigint }> = [];
  writer.appendUint32(0x31524150);
  for (let start = 0; start < rows; start += options.rowGroupSize) {
    const end = Math.min(rows, start + options.rowGroupSize);
    const groupStart = writer.offset;
    const chunks: ColumnChunk[] = [];
    for (const { name, data } of columns) {
      if (data.length !== rows) throw new Error('parquet columns must have the same length');
      const path = resolve([name]);
      const element = path.at(-1)!.element;
      if (path.length !== 2 || path.at(-1)!.children.length > 0) throw new Error(`column ${name}: only flat columns are written`);
      const fast = fastValues(element, data, start, end);
      let result: WrittenColumn;
      if (fast) result = writeFastColumn(writer, element, fast, end - start, options.compress);
      else if (data instanceof ByteColumn) throw new Error(`column ${name}: bytes given for a ${element.type} column`);
      else {
        const column: ColumnEncoder = {
          columnName: name,
          element,
          schemaPath: path.map((node) => node.element),
          codec: 'SNAPPY',
          compressors: options.compressors,
          stats: true,
          pageSize: PAGE_SIZE,
          columnIndex: false,
          offsetIndex: true,
        };
        // As the library's writer slices a group: an array stays an array, a typed array a typed array.
        const values = data instanceof NullableDoubles || data instanceof TextCodes ? data.toArray() : data;
        const sliced =
          (values as { slice?: (from: number, to: number) => unknown }).slice?.(start, end) ??
          Array.prototype.slice.call(values, start, end);
        result = writeColumn({ writer, column, pageData: encodeNestedValues(path, sliced as never) });
      }
      chunks.push(result.chunk);
      written.push(result);
    }
    let totalByteSize = 0n;
    for (const chunk of chunks) totalByteSize += chunk.meta_data?.total_uncompressed_size ?? 0n;
    rowGroups.push({
      columns: chunks,
      total_byte_size: totalByteSize,
      num_rows: BigInt(end - start),
      total_compressed_size: BigInt(writer.offset - groupStart),
    });
  }
  writeIndexes(writer, written);
  writeBlooms(writer, written);
  writeMetadata(writer, {
    version: 2,
    created_by: options.createdBy,
    schema,
    num_rows: BigInt(rows),
    row_groups: rowGroups,
    key_value_metadata: options.kvMetadata,
  } as never);
  writer.appendUint32(0x31524150);
}

type FastValues =
  | { kind: 'double'; values: Float64Array; defined: Definitions }
  | {
      kind: 'text';
      codes: Int32Array | Uint8Array;
      labels: readonly string[];
      /** Each label's UTF-8. */
      encoded: Uint8Array[];
      /** Each label's place in the library's string order (code points; equal strings share one). */
      rank: Int32Array;
      defined: Definitions;
    }
  | { kind: 'int32'; values: Int32Array }
  | { kind: 'boolean'; values: Uint8Array }
  | { kind: 'bytes'; offsets: Int32Array; bytes: Uint8Array };

/** A nullable column's definition levels (1 a value, 0 a null), made at its first null; null while there is none. */
type Definitions = Uint8Array | null;

function withNull(defined: Definitions, n: number, i: number): Uint8Array {
  const levels = defined ?? new Uint8Array(n).fill(1);
  levels[i] = 0;
  return levels;
}

/** The rows [start, end) in a form encoded here, or null for the library's writer (which also owns its errors). */
function fastValues(element: SchemaElement, data: ColumnData, start: number, end: number): FastValues | null {
  const plain = element.converted_type === undefined && element.logical_type === undefined;
  const required = element.repetition_type !== 'OPTIONAL';
  if (data instanceof ByteColumn) {
    if (element.type !== 'BYTE_ARRAY' || !(plain || element.converted_type === 'UTF8')) return null;
    return { kind: 'bytes', offsets: data.offsets.subarray(start, end + 1), bytes: data.bytes };
  }
  if (data instanceof TextCodes) {
    if (element.type !== 'BYTE_ARRAY' || element.converted_type !== 'UTF8' || element.logical_type !== undefined) return null;
    const codes = data.codes.subarray(start, end);
    let defined: Definitions = null;
    for (let i = 0; i < codes.length; i++) if (codes[i]! < 0) defined = withNull(defined, codes.length, i);
    if (defined && required) return null;
    const encoder = new TextEncoder();
    return {
      kind: 'text',
      codes,
      labels: data.labels,
      encoded: data.labels.map((l) => encoder.encode(l)),
      rank: stringRanks(data.labels),
      defined,
    };
  }
  if (data instanceof NullableDoubles) {
    if (element.type !== 'DOUBLE' || !plain) return null;
    const values = data.values.subarray(start, end);
    let defined: Definitions = null;
    for (let i = 0; i < values.length; i++) if (Number.isNaN(values[i]!)) defined = withNull(defined, values.length, i);
    if (defined && required) return null;
    return { kind: 'double', values, defined };
  }
  if (!plain) return null;
  if (element.type === 'DOUBLE') {
    if (data instanceof Float64Array) return { kind: 'double', values: data.subarray(start, end), defined: null };
    if (!Array.isArray(data)) return null;
    const values = new Float64Array(end - start);
    let defined: Definitions = null;
    for (let i = start; i < end; i++) {
      const value: unknown = data[i];
      if (typeof value === 'number') values[i - start] = value;
      else if (value === null || value === undefined) defined = withNull(defined, end - start, i - start);
      else return null;
    }
    if (defined && required) return null;
    return { kind: 'double', values, defined };
  }
  if (element.type === 'INT32') return data instanceof Int32Array ? { kind: 'int32', values: data.subarray(start, end) } : null;
  if (element.type === 'BOOLEAN' && Array.isArray(data)) {
    const values = new Uint8Array(end - start);
    for (let i = start; i < end; i++) {
      const value: unknown = data[i];
      if (typeof value !== 'boolean') return null;
      values[i - start] = value ? 1 : 0;
    }
    return { kind: 'boolean', values };
  }
  return null;
}

const isNull = (fast: FastValues, i: number): boolean =>
  (fast.kind === 'double' || fast.kind === 'text') && fast.defined !== null && fast.defined[i] === 0;

const codePointAt = (text: string, i: number): number => {
  const code = text.codePointAt(i) ?? 0xfffd;
  return code >= 0xd800 && code <= 0xdfff ? 0xfffd : code;
};

/** The library's string order: UTF-8 byte order, which is code point order, with lone surrogates as U+FFFD. */
function compareStrings(left: string, right: string): number {
  if (left === right) return 0;
  const length = Math.min(left.length, right.length);
  let i = 0;
  while (i < length && left.charCodeAt(i) === right.charCodeAt(i)) i++;
  if (i > 0) {
    const previous = left.charCodeAt(i - 1);
    if (previous >= 0xd800 && previous <= 0xdbff) i--;
  }
  while (i < left.length && i < right.length) {
    const a = codePointAt(left, i);
    const b = codePointAt(right, i);
    if (a !== b) return a - b;
    i += a > 0xffff ? 2 : 1;
  }
  return left.length - right.length;
}

function stringRanks(labels: readonly string[]): Int32Array {
  const order = labels.map((_, i) => i).sort((a, b) => compareStrings(labels[a]!, labels[b]!));
  const rank = new Int32Array(labels.length);
  order.forEach((label, k) => {
    const previous = order[k - 1];
    rank[label] = previous !== undefined && compareStrings(labels[previous]!, labels[label]!) === 0 ? rank[previous]! : k;
  });
  return rank;
}

/** The byte length of value i of a bytes column. */
const byteLength = (offsets: Int32Array, i: number): number => offsets[i + 1]! - offsets[i]!;

type Statistic = number | boolean | string | Uint8Array;

function compareBytes(bytes: Uint8Array, aStart: number, aEnd: number, bStart: number, bEnd: number): number {
  const length = Math.min(aEnd - aStart, bEnd - bStart);
  for (let i = 0; i < length; i++) {
    const d = bytes[aStart + i]! - bytes[bStart + i]!;
    if (d !== 0) return d;
  }
  return aEnd - aStart - (bEnd - bStart);
}

/** The chunk's min, max, null and NaN counts, as the library computes them (NaN skipped; min −0, max +0). */
function statistics(fast: FastValues, n: number): ColumnMeta['statistics'] {
  let min: Statistic | undefined;
  let max: Statistic | undefined;
  let nulls = 0;
  let nans = 0;
  if (fast.kind === 'bytes') {
    const { offsets, bytes } = fast;
    let minAt = -1;
    let maxAt = -1;
    for (let i = 0; i < n; i++) {
      if (minAt < 0 || compareBytes(bytes, offsets[i]!, offsets[i + 1]!, offsets[minAt]!, offsets[minAt + 1]!) < 0) minAt = i;
      if (maxAt < 0 || compareBytes(bytes, offsets[i]!, offsets[i + 1]!, offsets[maxAt]!, offsets[maxAt + 1]!) > 0) maxAt = i;
    }
    if (minAt >= 0) min = bytes.subarray(offsets[minAt]!, offsets[minAt + 1]!);
    if (maxAt >= 0) max = bytes.subarray(offsets[maxAt]!, offsets[maxAt + 1]!);
  } else if (fast.kind === 'text') {
    let low = -1;
    let high = -1;
    for (let i = 0; i < n; i++) {
      const code = fast.codes[i]!;
      if (code < 0) {
        nulls++;
        continue;
      }
      if (low < 0 || fast.rank[code]! < fast.rank[low]!) low = code;
      if (high < 0 || fast.rank[code]! > fast.rank[high]!) high = code;
    }
    if (low >= 0) {
      min = fast.labels[low];
      max = fast.labels[high];
    }
  } else if (fast.kind === 'boolean') {
    for (let i = 0; i < n; i++) {
      const value = fast.values[i] === 1;
      if (min === undefined || value < (min as boolean)) min = value;
      if (max === undefined || value > (max as boolean)) max = value;
    }
  } else {
    const values = fast.values;
    let low = Number.NaN;
    let high = Number.NaN;
    let any = false;
    for (let i = 0; i < n; i++) {
      if (isNull(fast, i)) {
        nulls++;
        continue;
      }
      const value = values[i]!;
      if (Number.isNaN(value)) {
        nans++;
        continue;
      }
      if (!any || value < low) low = value;
      if (!any || value > high) high = value;
      any = true;
    }
    if (any) {
      min = low === 0 ? -0 : low;
      max = high === 0 ? 0 : high;
    }
  }
  return {
    min_value: min,
    max_value: max,
    null_count: BigInt(nulls),
    nan_count: fast.kind === 'double' ? BigInt(nans) : undefined,
  } as ColumnMeta['statistics'];
}

/** FNV-1a over a byte range: the library's key for sampled byte arrays. */
export function hashBytes(bytes: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

interface Dictionary {
  /** Row → dictionary entry, −1 for null. */
  indexes: Int32Array;
  /** Numbers: the entries' values. Bytes: the entries' first row. */
  entries: number[];
}

/** The library's useDictionary: sample to reject, then build, then keep only if it at least halves the plain bytes. */
function dictionary(fast: FastValues, n: number): Dictionary | null {
  if (fast.kind === 'boolean') return null;
  const prefix = fast.kind === 'bytes' || fast.kind === 'text' ? 4 : 0;
  const fixedSize = fast.kind === 'double' ? 8 : 4;
  // A string's estimated size is its length in UTF-16 units, as the library estimates it.
  const sizeOf = (i: number): number =>
    fast.kind === 'bytes' ? byteLength(fast.offsets, i) : fast.kind === 'text' ? fast.labels[fast.codes[i]!]!.length : fixedSize;
  const keyOf = (i: number): number | null =>
    fast.kind === 'bytes'
      ? hashBytes(fast.bytes, fast.offsets[i]!, fast.offsets[i + 1]!)
      : isNull(fast, i)
        ? null
        : fast.kind === 'text'
          ? fast.codes[i]!
          : fast.values[i]!;

  const sampleSize = Math.min(n, 1000);
  const sampled = new Map<number | null, number>();
  let sampleDictionary = 0;
  let sampleTotal = 0;
  for (let i = 0; i < sampleSize; i++) {
    const at = sampleSize === 1 ? 0 : Math.floor((i * (n - 1)) / (sampleSize - 1));
    const key = keyOf(at);
    let size = sampled.get(key);
    if (size === undefined) {
      size = key === null ? 0 : sizeOf(at) + prefix;
      sampled.set(key, size);
      sampleDictionary += size;
    }
    sampleTotal += size;
  }
  if (!sampleTotal || sampleDictionary / sampleTotal > SAMPLE_REJECTION_RATIO) return null;

  const indexes = new Int32Array(n);
  const entries: number[] = [];
  let dictionarySize = 0;
  let totalSize = 0;
  let nonNull = 0;
  if (fast.kind === 'bytes') {
    const { offsets, bytes } = fast;
    const buckets = new Map<number, number[]>();
    for (let i = 0; i < n; i++) {
      nonNull++;
      const start = offsets[i]!;
      const end = offsets[i + 1]!;
      totalSize += end - start;
      const hash = hashBytes(bytes, start, end);
      const bucket = buckets.get(hash);
      let index = -1;
      if (bucket) {
        for (const j of bucket) {
          const row = entries[j]!;
          if (compareBytes(bytes, offsets[row]!, offsets[row + 1]!, start, end) === 0) {
            index = j;
            break;
          }
        }
      }
      if (index < 0) {
        dictionarySize += end - start;
        index = entries.length;
        entries.push(i);
        if (bucket) bucket.push(index);
        else buckets.set(hash, [index]);
      }
      indexes[i] = index;
    }
  } else {
    const values = fast.kind === 'text' ? fast.codes : fast.values;
    const seen = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      if (isNull(fast, i)) {
        indexes[i] = -1;
        continue;
      }
      nonNull++;
      const size = fast.kind === 'text' ? sizeOf(i) : fixedSize;
      totalSize += size;
      const value = values[i]!;
      let index = seen.get(value);
      if (index === undefined) {
        dictionarySize += size;
        index = entries.length;
        entries.push(value);
        seen.set(value, index);
      }
      indexes[i] = index;
    }
  }
  const bitWidth = Math.ceil(Math.log2(entries.length));
  const indexSize = Math.ceil((nonNull * bitWidth) / 8);
  const plainSize = totalSize + nonNull * prefix;
  const dictionaryValueSize = dictionarySize + entries.length * prefix;
  if (2 * (dictionaryValueSize + indexSize) > plainSize) return null;
  return { indexes, entries };
}

/** A growable byte buffer, reused across pages. */
class Bytes {
  buffer = new Uint8Array(1 << 16);
  view = new DataView(this.buffer.buffer);
  length = 0;

  reset(): this {
    this.length = 0;
    return this;
  }

  ensure(extra: number): void {
    if (this.length + extra <= this.buffer.length) return;
    const grown = new Uint8Array(Math.max(this.buffer.length * 2, this.length + extra));
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
    this.view = new DataView(grown.buffer);
  }

  u8(value: number): void {
    this.ensure(1);
    this.buffer[this.length++] = value & 0xff;
  }

  u32(value: number): void {
    this.ensure(4);
    this.view.setUint32(this.length, value, true);
    this.length += 4;
  }

  varint(value: number): void {
    for (;;) {
      if ((value & ~0x7f) === 0) {
        this.u8(value);
        return;
      }
      this.u8((value & 0x7f) | 0x80);
      value >>>= 7;
    }
  }

  bytes(source: Uint8Array, start: number, end: number): void {
    this.ensure(end - start);
    this.buffer.set(source.subarray(start, end), this.length);
    this.length += end - start;
  }

  get data(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }
}

let defined = new Uint8Array(0);

/** Definition levels of a column without nulls: all 1. */
function allDefined(n: number): Uint8Array {
  if (defined.length < n) defined = new Uint8Array(Math.max(n, defined.length * 2)).fill(1);
  return defined;
}

const levelBytes = new Bytes();
const pageBytes = new Bytes();
const runBytes = new Bytes();

/** The library's RLE / bit-packed hybrid over values[from, to): runs of 8 or more equal values, else groups of 8. */
function rleHybrid(out: Bytes, values: ArrayLike<number>, from: number, to: number, bitWidth: number): number {
  const start = out.length;
  let pendingGroups = 0;
  let packedStart = 0;
  let i = from;
  while (i < to) {
    const first = values[i]!;
    let count = 1;
    while (i + count < to && values[i + count] === first) count++;
    if (count >= 8) {
      if (pendingGroups) {
        bitPack(out, values, packedStart, pendingGroups, bitWidth, to);
        pendingGroups = 0;
      }
      out.varint(count << 1);
      const width = (bitWidth + 7) >> 3;
      for (let j = 0; j < width; j++) out.u8((first >> (j << 3)) & 0xff);
      i += count;
    } else {
      if (pendingGroups === 0) packedStart = i;
      pendingGroups++;
      i += 8;
    }
  }
  if (pendingGroups) bitPack(out, values, packedStart, pendingGroups, bitWidth, to);
  return out.length - start;
}

function bitPack(out: Bytes, values: ArrayLike<number>, start: number, groups: number, bitWidth: number, to: number): void {
  out.varint((groups << 1) | 1);
  if (bitWidth === 0) return;
  const mask = (1 << bitWidth) - 1;
  let buffer = 0;
  let bitsUsed = 0;
  for (let i = 0, total = groups * 8; i < total; i++) {
    const at = start + i;
    const value = at < to ? values[at]! & mask : 0;
    buffer |= value << bitsUsed;
    bitsUsed += bitWidth;
    while (bitsUsed >= 8) {
      out.u8(buffer & 0xff);
      buffer >>>= 8;
      bitsUsed -= 8;
    }
  }
  if (bitsUsed > 0) out.u8(buffer & 0xff);
}

/** Appends a page: its header (the library's), its levels as they are, its data compressed. Returns its uncompressed size. */
function appendPage(writer: ByteWriter, header: PageHeader, levels: Uint8Array, data: Uint8Array, compressed: Uint8Array): number {
  const headerStart = writer.offset;
  writePageHeader(writer, header);
  const headerSize = writer.offset - headerStart;
  if (levels.length > 0) writer.appendBytes(levels);
  writer.appendBytes(compressed);
  return headerSize + levels.length + data.length;
}

/** PLAIN values of rows [start, end), nulls left out; for a dictionary page, the entries. */
function writePlain(out: Bytes, fast: FastValues, start: number, end: number): void {
  if (fast.kind === 'bytes') {
    const { offsets, bytes } = fast;
    for (let i = start; i < end; i++) {
      out.u32(offsets[i + 1]! - offsets[i]!);
      out.bytes(bytes, offsets[i]!, offsets[i + 1]!);
    }
  } else if (fast.kind === 'text') {
    for (let i = start; i < end; i++) {
      const code = fast.codes[i]!;
      if (code < 0) continue;
      const bytes = fast.encoded[code]!;
      out.u32(bytes.length);
      out.bytes(bytes, 0, bytes.length);
    }
  } else if (fast.kind === 'boolean') {
    let current = 0;
    for (let i = start; i < end; i++) {
      const bit = (i - start) % 8;
      if (fast.values[i] === 1) current |= 1 << bit;
      if (bit === 7) {
        out.u8(current);
        current = 0;
      }
    }
    if ((end - start) % 8) out.u8(current);
  } else {
    const width = fast.kind === 'double' ? 8 : 4;
    const values = fast.values;
    if (LITTLE_ENDIAN && !(fast.kind === 'double' && fast.defined)) {
      out.bytes(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), start * width, end * width);
      return;
    }
    out.ensure((end - start) * width);
    for (let i = start; i < end; i++) {
      if (isNull(fast, i)) continue;
      if (fast.kind === 'double') out.view.setFloat64(out.length, values[i]!, true);
      else out.view.setInt32(out.length, values[i]!, true);
      out.length += width;
    }
  }
}

function writeDictionaryPage(writer: ByteWriter, fast: FastValues, dict: Dictionary, compress: PageCompressor): number {
  const out = pageBytes.reset();
  if (fast.kind === 'bytes') {
    const { offsets, bytes } = fast;
    for (const row of dict.entries) {
      out.u32(offsets[row + 1]! - offsets[row]!);
      out.bytes(bytes, offsets[row]!, offsets[row + 1]!);
    }
  } else if (fast.kind === 'text') {
    for (const code of dict.entries) {
      const bytes = fast.encoded[code]!;
      out.u32(bytes.length);
      out.bytes(bytes, 0, bytes.length);
    }
  } else {
    const width = fast.kind === 'double' ? 8 : 4;
    out.ensure(dict.entries.length * width);
    for (const value of dict.entries) {
      if (width === 8) out.view.setFloat64(out.length, value, true);
      else out.view.setInt32(out.length, value, true);
      out.length += width;
    }
  }
  const data = out.data;
  const compressed = compress(data);
  const header = {
    type: 'DICTIONARY_PAGE',
    uncompressed_page_size: data.length,
    compressed_page_size: compressed.length,
    dictionary_page_header: { num_values: dict.entries.length, encoding: 'PLAIN' },
  } as PageHeader;
  return appendPage(writer, header, new Uint8Array(0), data, compressed);
}

/** Page boundaries by the library's estimated value sizes (a dictionary's pages count 4 bytes per index). */
function pageBoundaries(fast: FastValues, n: number, dictionaryIndexes: boolean): Array<[number, number]> {
  const pages: Array<[number, number]> = [];
  let start = 0;
  let accumulated = 0;
  for (let i = 0; i < n; i++) {
    let size: number;
    if (isNull(fast, i)) size = 0;
    else if (dictionaryIndexes) size = 4;
    else if (fast.kind === 'bytes') size = byteLength(fast.offsets, i);
    // Plain strings are paged by their UTF-8 length: the library encodes them before it pages.
    else if (fast.kind === 'text') size = fast.encoded[fast.codes[i]!]!.length;
    else size = fast.kind === 'double' ? 8 : fast.kind === 'int32' ? 4 : 0.125;
    accumulated += size;
    if (accumulated >= PAGE_SIZE && i > start) {
      pages.push([start, i]);
      start = i;
      accumulated = size;
    }
  }
  if (start < n) pages.push([start, n]);
  return pages;
}

/** One column chunk of n rows: the library's writeColumn for these kinds, without a JavaScript value per cell. */
function writeFastColumn(writer: ByteWriter, element: SchemaElement, fast: FastValues, n: number, compress: PageCompressor): WrittenColumn {
  const offsetStart = writer.offset;
  let uncompressedSize = 0;
  const encodings: Array<'PLAIN' | 'RLE' | 'RLE_DICTIONARY'> = [];
  const stats = statistics(fast, n);
  const dict = dictionary(fast, n);
  let dictionaryPageOffset: bigint | undefined;
  let encoding: 'PLAIN' | 'RLE' | 'RLE_DICTIONARY';
  if (dict) {
    dictionaryPageOffset = BigInt(writer.offset);
    uncompressedSize += writeDictionaryPage(writer, fast, dict, compress);
    encodings.push('PLAIN');
    encoding = 'RLE_DICTIONARY';
  } else encoding = fast.kind === 'boolean' && n > 16 ? 'RLE' : 'PLAIN';
  encodings.push(encoding);

  const optional = element.repetition_type === 'OPTIONAL';
  const pages = pageBoundaries(fast, n, dict !== null);
  const dataPageOffset = BigInt(writer.offset);
  const locations: Array<{ offset: bigint; compressed_page_size: number; first_row_index: bigint }> = [];
  const definedLevels = fast.kind === 'double' || fast.kind === 'text' ? fast.defined : null;
  let present: Int32Array | null = null;
  for (const [start, end] of pages) {
    const pageOffset = writer.offset;
    let levelLength = 0;
    let nullCount = 0;
    levelBytes.reset();
    if (optional) {
      if (definedLevels) for (let i = start; i < end; i++) nullCount += 1 - definedLevels[i]!;
      levelLength = rleHybrid(levelBytes, definedLevels ?? allDefined(end), start, end, 1);
    }
    const out = pageBytes.reset();
    if (encoding === 'RLE_DICTIONARY') {
      const indexes = dict!.indexes;
      let from = start;
      let to = end;
      let source: Int32Array = indexes;
      if (nullCount > 0) {
        present ??= new Int32Array(n);
        let k = 0;
        for (let i = start; i < end; i++) if (indexes[i]! >= 0) present[k++] = indexes[i]!;
        source = present;
        from = 0;
        to = k;
      }
      let maxValue = 0;
      for (let i = from; i < to; i++) if (source[i]! > maxValue) maxValue = source[i]!;
      const bitWidth = Math.ceil(Math.log2(maxValue + 1));
      out.u8(bitWidth);
      rleHybrid(out, source, from, to, bitWidth);
    } else if (encoding === 'RLE') {
      const values = (fast as { values: Uint8Array }).values;
      const run = runBytes.reset();
      rleHybrid(run, values, start, end, 1);
      out.u32(run.length);
      out.bytes(run.buffer, 0, run.length);
    } else writePlain(out, fast, start, end);
    const data = out.data;
    const compressed = compress(data);
    const levels = levelBytes.data;
    const header = {
      type: 'DATA_PAGE_V2',
      uncompressed_page_size: levelLength + data.length,
      compressed_page_size: levelLength + compressed.length,
      data_page_header_v2: {
        num_values: end - start,
        num_nulls: nullCount,
        num_rows: end - start,
        encoding,
        definition_levels_byte_length: levelLength,
        repetition_levels_byte_length: 0,
        is_compressed: true,
      },
    } as PageHeader;
    uncompressedSize += appendPage(writer, header, levels, data, compressed);
    locations.push({ offset: BigInt(pageOffset), compressed_page_size: writer.offset - pageOffset, first_row_index: BigInt(start) });
  }
  const encodingStats: ColumnMeta['encoding_stats'] = [];
  if (dictionaryPageOffset !== undefined) encodingStats.push({ page_type: 'DICTIONARY_PAGE', encoding: 'PLAIN', count: 1 });
  encodingStats.push({ page_type: 'DATA_PAGE_V2', encoding, count: pages.length });
  return {
    chunk: {
      meta_data: {
        type: element.type!,
        encodings,
        path_in_schema: [element.name],
        codec: 'SNAPPY',
        num_values: BigInt(n),
        total_compressed_size: BigInt(writer.offset - offsetStart),
        total_uncompressed_size: BigInt(uncompressedSize),
        data_page_offset: dataPageOffset,
        dictionary_page_offset: dictionaryPageOffset,
        statistics: stats,
        encoding_stats: encodingStats,
        geospatial_statistics: undefined,
      } as ColumnMeta,
      file_offset: BigInt(offsetStart),
    },
    ...(pages.length > 1 ? { offsetIndex: { page_locations: locations } } : {}),
  } as WrittenColumn;
}
