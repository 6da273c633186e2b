// Arrow columns in the forms the Parquet encoder takes without a JavaScript value per cell: doubles from the value
// buffer (NaN for null), text as its Arrow buffers (ASCII ids) or as codes into its distinct values (low-cardinality
// text such as splits). Read straight from the record batches' buffers, whatever number of batches a part holds.
import { isAscii } from 'node:buffer';
import type { Data, Vector } from 'apache-arrow';
import { ByteColumn, hashBytes, TextCodes } from './parquet-encoder.ts';

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
      const hash = hashBytes(value, 0, value.length);
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
