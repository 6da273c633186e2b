// Text decoded from bytes is exact or refused: a decoder that swaps bad bytes for U+FFFD would merge prompts that
// differ in the source, and nothing could tell them from a prompt that really holds U+FFFD.
const STRIP_BOM = new TextDecoder('utf-8', { fatal: true });
const KEEP_BOM = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export type Decoded = { ok: true; text: string } | { ok: false; offset: number };

/** Strict UTF-8; on failure, the offset of the first byte of the first invalid sequence. */
export function decodeUtf8(bytes: Uint8Array, bom: 'strip' | 'keep' = 'strip'): Decoded {
  try {
    return { ok: true, text: (bom === 'strip' ? STRIP_BOM : KEEP_BOM).decode(bytes) };
  } catch {
    return { ok: false, offset: firstInvalidUtf8(bytes) };
  }
}

/** Offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629), or -1. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i]!;
    if (lead < 0x80) {
      i++;
      continue;
    }
    let length: number;
    // The second byte's range rules out overlong forms, surrogates (ED A0..BF) and code points above U+10FFFF.
    let low = 0x80;
    let high = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) length = 2;
    else if (lead >= 0xe0 && lead <= 0xef) {
      length = 3;
      if (lead === 0xe0) low = 0xa0;
      if (lead === 0xed) high = 0x9f;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      length = 4;
      if (lead === 0xf0) low = 0x90;
      if (lead === 0xf4) high = 0x8f;
    } else return i;
    if (i + length > bytes.length) return i;
    const second = bytes[i + 1]!;
    if (second < low || second > high) return i;
    for (let k = 2; k < length; k++) {
      const next = bytes[i + k]!;
      if (next < 0x80 || next > 0xbf) return i;
    }
    i += length;
  }
  return -1;
}

/** Index of the first UTF-16 code unit of a string that is half a surrogate pair (from a JSON `\ud800` escape), or -1. */
export function loneSurrogateAt(text: string): number {
  const match = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.exec(text);
  return match ? match.index : -1;
}

/** A JSON entry whose bytes are not UTF-8: it stands in the parsed list so the reader can reject that entry alone. */
export class InvalidText {
  constructor(
    /** Byte offset in the file of the first invalid sequence. */
    readonly offset: number,
  ) {}

  get detail(): string {
    return `invalid UTF-8 at byte ${this.offset}`;
  }
}

/**
 * Byte ranges of the comma-separated JSON values in bytes[from, to) (the inside of an array). Only strings and
 * nesting are tracked — the values are parsed afterwards — and structural bytes are ASCII, never part of a UTF-8
 * sequence, so this works on bytes that are not all UTF-8.
 */
export function jsonEntrySpans(bytes: Uint8Array, from: number, to: number): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  let depth = 0;
  let inString = false;
  let escaped = false;
  let entryStart = from;
  for (let i = from; i < to; i++) {
    const c = bytes[i]!;
    if (inString) {
      if (escaped) escaped = false;
      else if (c === 0x5c) escaped = true;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) depth++;
    else if (c === 0x5d || c === 0x7d) depth--;
    else if (c === 0x2c && depth === 0) {
      spans.push([entryStart, i]);
      entryStart = i + 1;
    }
  }
  const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
  if (spans.length > 0 || bytes.subarray(entryStart, to).some((c) => !isSpace(c))) spans.push([entryStart, to]);
  return spans;
}
