// Prompt lists: PartiPrompts' TSV (header `Prompt Category Challenge Note`) or a JSON list (strings, or objects
// with a `prompt` field). The position in the list is the index generation folders are named by.
import { readFile } from 'node:fs/promises';
import { describeJsonSyntaxError } from '../io/json-file.ts';
import { InputError } from '../core/errors.ts';
import { decodeUtf8, jsonEntrySpans } from '../io/text.ts';

export interface ListedPrompt {
  index: number;
  /** Line (TSV, 1-based, header = 1) or array position (JSON), for source refs. */
  ref: string;
  text: string | null;
  category: string | null;
  challenge: string | null;
  note: string | null;
  /** Set when the entry's shape is wrong: the caller records it as a reject. */
  malformed?: string;
  /** Set when the entry's bytes are not UTF-8 (where, in the file): the caller records it as a bad_text reject. */
  badText?: string;
}

const BOM = [0xef, 0xbb, 0xbf];
const NEWLINE = 0x0a;

export async function readPromptList(path: string): Promise<ListedPrompt[]> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new InputError(`${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const start = BOM.every((byte, i) => bytes[i] === byte) ? BOM.length : 0;
  const json = path.toLowerCase().endsWith('.json');
  const whole = decodeUtf8(bytes.subarray(start), 'keep');
  if (whole.ok) return json ? parseJsonList(path, whole.text) : parseTsv(path, whole.text);
  // Some bytes are not UTF-8: find the entries they belong to and reject those alone.
  return json ? parseJsonEntries(path, bytes, start) : parseTsvLines(path, bytes, start);
}

/** A TSV with invalid bytes, line by line: a line that is not UTF-8 becomes a bad_text entry. */
function parseTsvLines(path: string, bytes: Buffer, start: number): ListedPrompt[] {
  const lines: string[] = [];
  const bad = new Map<number, string>();
  for (let at = start; at < bytes.length; ) {
    const newline = bytes.indexOf(NEWLINE, at);
    const end = newline < 0 ? bytes.length : newline;
    const line = decodeUtf8(bytes.subarray(at, end), 'keep');
    if (line.ok) {
      lines.push(line.text);
    } else {
      if (lines.length === 0) throw new InputError(`${path}: the header line is not UTF-8 (invalid byte at ${at + line.offset})`);
      bad.set(lines.length, `invalid UTF-8 at byte ${at + line.offset}`);
      // A stand-in without tabs; the entry is rejected for its bytes, whatever the stand-in says.
      lines.push('?');
    }
    at = end + 1;
  }
  return parseTsv(path, lines.join('\n')).map((entry, offset) => {
    const detail = bad.get(offset + 1);
    return detail === undefined ? entry : { ...entry, text: null, badText: detail };
  });
}

export function parseTsv(path: string, text: string): ListedPrompt[] {
  const lines = text.split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const header = (lines[0] ?? '').split('\t').map((name) => name.trim().toLowerCase());
  const column = (name: string): number => header.indexOf(name);
  const promptColumn = column('prompt');
  if (promptColumn < 0) throw new InputError(`${path}: no "Prompt" column in the header line`);
  const optional = (cells: string[], name: string): string | null => {
    const at = column(name);
    const value = at >= 0 ? cells[at]?.trim() : undefined;
    return value ? value : null;
  };
  return lines.slice(1).map((line, offset) => {
    const cells = line.split('\t');
    const entry: ListedPrompt = {
      index: offset,
      ref: `${offset + 2}`,
      text: cells[promptColumn] ?? null,
      category: optional(cells, 'category'),
      challenge: optional(cells, 'challenge'),
      note: optional(cells, 'note'),
    };
    if (cells.length > header.length) entry.malformed = `${cells.length} fields, header has ${header.length}`;
    return entry;
  });
}

function parseJsonList(path: string, text: string): ListedPrompt[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new InputError(`${path}: not valid JSON (${describeJsonSyntaxError(text)})`);
  }
  if (!Array.isArray(parsed)) throw new InputError(`${path}: expected a JSON array of prompts`);
  return parsed.map((item: unknown, index) => listedJson(item, index));
}

/** A JSON list with invalid bytes, entry by entry: an entry that is not UTF-8 becomes a bad_text entry. */
function parseJsonEntries(path: string, bytes: Buffer, start: number): ListedPrompt[] {
  const spans = jsonArraySpans(bytes, start);
  if (spans === null) throw new InputError(`${path}: expected a JSON array of prompts`);
  return spans.map(([from, to], index) => {
    const entry = decodeUtf8(bytes.subarray(from, to), 'keep');
    if (!entry.ok) {
      const base = { index, ref: `${index}`, text: null, category: null, challenge: null, note: null };
      return { ...base, badText: `invalid UTF-8 at byte ${from + entry.offset}` };
    }
    let item: unknown;
    try {
      item = JSON.parse(entry.text);
    } catch (error) {
      throw new InputError(`${path}: not valid JSON in entry ${index} (${(error as Error).message})`);
    }
    return listedJson(item, index);
  });
}

/** Byte ranges of the entries of a top-level JSON array, or null when the bytes are not one array. */
function jsonArraySpans(bytes: Buffer, start: number): Array<[number, number]> | null {
  const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
  let first = start;
  while (first < bytes.length && isSpace(bytes[first]!)) first++;
  let last = bytes.length - 1;
  while (last > first && isSpace(bytes[last]!)) last--;
  if (bytes[first] !== 0x5b || bytes[last] !== 0x5d) return null;
  return jsonEntrySpans(bytes, first + 1, last);
}

function listedJson(item: unknown, index: number): ListedPrompt {
  const base = { index, ref: `${index}`, category: null, challenge: null, note: null };
  if (typeof item === 'string') return { ...base, text: item };
  if (item && typeof item === 'object' && typeof (item as { prompt?: unknown }).prompt === 'string') {
    const record = item as Record<string, unknown>;
    const str = (key: string): string | null => (typeof record[key] === 'string' ? (record[key] as string) : null);
    return { ...base, text: str('prompt'), category: str('category'), challenge: str('challenge'), note: str('note') };
  }
  return { ...base, text: null, malformed: 'entry is neither a string nor an object with a "prompt" string' };
}
