// The HPD JSON lists (train.json, test.json, benchmark/*.json) read a chunk of entries at a time: one streaming pass
// finds each entry's byte range, and a chunk is parsed only when its unit runs, so train.json (~800k entries) is
// never held whole. The scanner knows nothing of HPD; its errors are InputErrors naming the file.
import { open, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeUtf8, InvalidText, jsonEntrySpans } from './text.ts';
import { errorCode, InputError } from '../core/errors.ts';

export interface JsonChunk {
  /** Index of the chunk's first entry. */
  first: number;
  count: number;
  /** Byte range from the first entry's first byte to the last entry's last byte. */
  start: number;
  end: number;
}

export interface JsonArrayFile {
  path: string;
  /** Path relative to the dataset root, as source refs and errors name it. */
  name: string;
  count: number;
  chunks: JsonChunk[];
  size: number;
  mtimeMs: number;
}

const BYTE = {
  tab: 0x09,
  lf: 0x0a,
  cr: 0x0d,
  space: 0x20,
  quote: 0x22,
  comma: 0x2c,
  openBracket: 0x5b,
  backslash: 0x5c,
  closeBracket: 0x5d,
  openBrace: 0x7b,
  closeBrace: 0x7d,
} as const;

/**
 * Finds the byte ranges of a top-level JSON array's entries, `chunkSize` entries per chunk, in one streaming pass.
 * It tracks only strings and nesting depth: the entries themselves are validated when a chunk is parsed. Structural
 * bytes are ASCII and never occur inside a UTF-8 multi-byte sequence, so scanning bytes is exact.
 */
export async function indexJsonArray(path: string, name: string, chunkSize: number): Promise<JsonArrayFile> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw new InputError(`${path}: cannot read (${errorCode(error)})`);
  }
  const fail = (what: string, at: number): never => {
    throw new InputError(`${path}: not a JSON array (${what} at byte ${at})`);
  };
  const chunks: JsonChunk[] = [];
  let current: JsonChunk | undefined;
  let count = 0;
  let phase: 'before' | 'inside' | 'after' = 'before';
  let depth = 0;
  let inString = false;
  let escaped = false;
  let entryStart = -1;
  let entryEnd = -1;
  try {
    const info = await handle.stat();
    const buffer = Buffer.allocUnsafe(1 << 20);
    let position = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.byteLength, position);
      if (bytesRead === 0) break;
      const bytes = buffer.subarray(0, bytesRead);
      let i = 0;
      if (position === 0 && bytesRead >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) i = 3;
      // Next quote and backslash at or after the scan position in this read (-1: none left; -2: not searched yet).
      let nextQuote = -2;
      let nextBackslash = -2;
      for (; i < bytesRead; i++) {
        if (inString) {
          if (escaped) {
            escaped = false;
            continue;
          }
          // Most of the file is string content: jump over it natively rather than byte by byte.
          if (nextBackslash !== -1 && nextBackslash < i) nextBackslash = bytes.indexOf(BYTE.backslash, i);
          if (nextQuote !== -1 && nextQuote < i) nextQuote = bytes.indexOf(BYTE.quote, i);
          const end = nextQuote === -1 ? bytesRead : nextQuote;
          if (nextBackslash !== -1 && nextBackslash < end) {
            i = nextBackslash;
            escaped = true;
          } else if (nextQuote === -1) {
            i = bytesRead - 1;
          } else {
            i = nextQuote;
            inString = false;
            entryEnd = position + nextQuote + 1;
          }
          continue;
        }
        const c = bytes[i]!;
        if (c === BYTE.space || c === BYTE.lf || c === BYTE.cr || c === BYTE.tab) continue;
        const at = position + i;
        if (phase === 'before') {
          if (c !== BYTE.openBracket) fail('the top level is not an array', at);
          phase = 'inside';
          depth = 1;
          continue;
        }
        if (phase === 'after') fail('content after the array', at);
        if (depth === 1 && (c === BYTE.comma || c === BYTE.closeBracket)) {
          if (entryStart >= 0) {
            if (count % chunkSize === 0) {
              current = { first: count, count: 0, start: entryStart, end: entryEnd };
              chunks.push(current);
            }
            current!.count++;
            current!.end = entryEnd;
            count++;
            entryStart = -1;
          } else if (c === BYTE.comma || count > 0) {
            fail(c === BYTE.comma ? 'an empty entry' : 'a trailing comma', at);
          }
          if (c === BYTE.closeBracket) {
            phase = 'after';
            depth = 0;
          }
          continue;
        }
        if (depth === 1 && entryStart < 0) entryStart = at;
        if (c === BYTE.quote) inString = true;
        else if (c === BYTE.openBrace || c === BYTE.openBracket) depth++;
        else if (c === BYTE.closeBrace || c === BYTE.closeBracket) {
          depth--;
          if (depth < 1) fail('an unbalanced bracket', at);
        }
        entryEnd = at + 1;
      }
      position += bytesRead;
    }
    if (phase !== 'after') fail('the file ends before the array is closed', position);
    return { path, name, count, chunks, size: info.size, mtimeMs: info.mtimeMs };
  } finally {
    await handle.close();
  }
}

/** The entries of one chunk, parsed. */
export async function readChunk(file: JsonArrayFile, chunk: JsonChunk): Promise<unknown[]> {
  const bytes = Buffer.alloc(chunk.end - chunk.start);
  const handle = await open(file.path, 'r');
  try {
    const info = await handle.stat();
    if (info.size !== file.size || info.mtimeMs !== file.mtimeMs) {
      throw new InputError(`${file.path}: changed while it was being ingested`);
    }
    let offset = 0;
    while (offset < bytes.byteLength) {
      const { bytesRead } = await handle.read(bytes, offset, bytes.byteLength - offset, chunk.start + offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
    }
  } finally {
    await handle.close();
  }
  const last = chunk.first + chunk.count - 1;
  let entries: unknown;
  const fail = (error: unknown): never => {
    throw new InputError(`${file.path}: not valid JSON in entries ${chunk.first}–${last} (${(error as Error).message})`);
  };
  const text = decodeUtf8(bytes);
  if (text.ok) {
    try {
      entries = JSON.parse(`[${text.text}]`);
    } catch (error) {
      fail(error);
    }
  } else {
    // Some entry is not UTF-8: parse entry by entry, so that it alone is rejected and the others still read.
    entries = jsonEntrySpans(bytes, 0, bytes.length).map(([from, to]): unknown => {
      const entry = decodeUtf8(bytes.subarray(from, to));
      if (!entry.ok) return new InvalidText(chunk.start + from + entry.offset);
      try {
        return JSON.parse(entry.text);
      } catch (error) {
        return fail(error);
      }
    });
  }
  if (!Array.isArray(entries) || entries.length !== chunk.count) {
    throw new InputError(`${file.path}: entries ${chunk.first}–${last} are not ${chunk.count} comma-separated values`);
  }
  return entries;
}

/** The list at <root>/<name>, indexed; null when there is none. */
export async function optionalJsonArray(root: string, name: string, chunkSize: number): Promise<JsonArrayFile | null> {
  const path = join(root, name);
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw new InputError(`${path}: cannot read (${errorCode(error)})`);
  });
  if (!info) return null;
  if (!info.isFile()) throw new InputError(`${path}: not a file`);
  return indexJsonArray(path, name, chunkSize);
}

/** Unit keys number their chunks, and benchmark images their prompts, five digits wide. */
export function pad5(n: number): string {
  return String(n).padStart(5, '0');
}
