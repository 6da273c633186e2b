// An id as four 32-bit words (its first 128 bits), the form the in-memory joins compare: parsed straight from a
// string or from UTF-8 bytes (an Arrow or Parquet buffer), so a join never builds a JS string per id. Our ids are
// sha256 hex, and 128 bits of a sha256 are unique among any number of ids a dataset can hold (a collision among
// 10M ids has probability ≈ 10⁻²⁵). An id that is not 64 lowercase hex digits (hand-made test data, other tools)
// is first hashed with sha256 behind a prefix, so every string still has exactly one key, different strings
// different keys, and an id never the key of the hex of its own plain sha256 (a dataset may hold both: "prompt 5"
// from one source, sha256("prompt 5") from another). The one-shot hash: a hash object per id costs more than the
// digest of a short id.
import { hash } from 'node:crypto';
import type { Data, Vector } from 'apache-arrow';

/** The words of one id go here, at `offset`. */
export type IdWords = Uint32Array;

const HEX_VALUE = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX_VALUE[48 + c] = c;
for (let c = 0; c < 6; c++) HEX_VALUE[97 + c] = 10 + c;
/** The byte two lowercase hex digits make (the first digit in the index's low byte), −256 if either is not one. */
const HEX_PAIR = new Int16Array(65536).fill(-256);
for (let a = 0; a < 256; a++) {
  for (let b = 0; b < 256; b++) if (HEX_VALUE[a]! >= 0 && HEX_VALUE[b]! >= 0) HEX_PAIR[a | (b << 8)] = (HEX_VALUE[a]! << 4) | HEX_VALUE[b]!;
}

/**
 * Words per key: 4 (128 bits, the joins' key), or 8, every bit of a sha256 hex id (the reader's de-duplication,
 * where two hand-made hex ids that share their first 32 digits must still be two ids).
 */
export type KeyWidth = 4 | 8;

function wordsOfDigest(digest: Uint8Array, out: IdWords, offset: number, width: KeyWidth = 4): void {
  for (let w = 0; w < width; w++) {
    const at = w * 4;
    out[offset + w] = ((digest[at]! << 24) | (digest[at + 1]! << 16) | (digest[at + 2]! << 8) | digest[at + 3]!) >>> 0;
  }
}

/** The key of the UTF-8 id in `bytes[start, end)`, into `out[offset, offset + width)`. */
export function idWordsFromBytes(bytes: Uint8Array, start: number, end: number, out: IdWords, offset: number, width: KeyWidth = 4): void {
  if (end - start === 64) {
    // Two digits per lookup, checked as they are parsed (a pair with a non-digit is −256, which sets the sign bit of
    // `bad`), the rest of the id after: one pass over each byte, half the lookups of a digit at a time.
    let bad = 0;
    for (let w = 0; w < width; w++) {
      const at = start + w * 8;
      const b0 = HEX_PAIR[bytes[at]! | (bytes[at + 1]! << 8)]!;
      const b1 = HEX_PAIR[bytes[at + 2]! | (bytes[at + 3]! << 8)]!;
      const b2 = HEX_PAIR[bytes[at + 4]! | (bytes[at + 5]! << 8)]!;
      const b3 = HEX_PAIR[bytes[at + 6]! | (bytes[at + 7]! << 8)]!;
      bad |= b0 | b1 | b2 | b3;
      out[offset + w] = (((b0 & 255) << 24) | ((b1 & 255) << 16) | ((b2 & 255) << 8) | (b3 & 255)) >>> 0;
    }
    for (let i = start + width * 8; i < end; i += 2) bad |= HEX_PAIR[bytes[i]! | (bytes[i + 1]! << 8)]!;
    if (bad >= 0) return;
  }
  wordsOfOtherId(bytes.subarray(start, end), out, offset, width);
}

const scratch = new Uint8Array(64);
const encoder = new TextEncoder();

/** What a non-hex id's bytes are hashed behind. */
const PREFIX = new TextEncoder().encode('balanced-dpo id\0');
let prefixed = new Uint8Array(256);

function wordsOfOtherId(bytes: Uint8Array, out: IdWords, offset: number, width: KeyWidth): void {
  const length = PREFIX.length + bytes.length;
  if (length > prefixed.length) prefixed = new Uint8Array(Math.max(length, prefixed.length * 2));
  prefixed.set(PREFIX, 0);
  prefixed.set(bytes, PREFIX.length);
  wordsOfDigest(hash('sha256', prefixed.subarray(0, length), 'buffer'), out, offset, width);
}

/** The key of a string id, into `out[offset, offset + 4)`: the same words as its UTF-8 bytes give. */
export function idWordsFromString(id: string, out: IdWords, offset: number, width: KeyWidth = 4): void {
  if (id.length === 64) {
    let ascii = true;
    for (let i = 0; i < 64; i++) {
      const c = id.charCodeAt(i);
      if (c > 127) {
        ascii = false;
        break;
      }
      scratch[i] = c;
    }
    // ASCII: these are the id's UTF-8 bytes, so the bytes' key (hex words, else their sha256) is the string's.
    if (ascii) {
      idWordsFromBytes(scratch, 0, 64, out, offset, width);
      return;
    }
  }
  wordsOfOtherId(encoder.encode(id), out, offset, width);
}

/** Key words of every value of a UTF-8 column, `width` per row, read from the Arrow buffers. */
export function columnWords(vector: Vector, rows: number, width: KeyWidth = 4): Uint32Array {
  const words = new Uint32Array(rows * width);
  let row = 0;
  for (const chunk of vector.data as Data[]) {
    const offsets = chunk.valueOffsets as Int32Array;
    const bytes = chunk.values as Uint8Array;
    for (let i = 0; i < chunk.length; i++, row++) {
      idWordsFromBytes(bytes, offsets[i]!, offsets[i + 1]!, words, row * width, width);
    }
  }
  return words;
}
