// Prompt lists: PartiPrompts' TSV (header `Prompt Category Challenge Note`) or a JSON list (strings, or objects
// with a `prompt` field). The position in the list is the index generation folders are named by.
import { readFile } from 'node:fs/promises';
import { describeJsonSyntaxError } from '../io/json-file.ts';
import { InputError } from './pickapic.ts';

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
}

export async function readPromptList(path: string): Promise<ListedPrompt[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new InputError(`${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  text = text.replace(/^\uFEFF/, '');
  return path.toLowerCase().endsWith('.json') ? parseJsonList(path, text) : parseTsv(path, text);
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
  return parsed.map((item: unknown, index) => {
    const base = { index, ref: `${index}`, category: null, challenge: null, note: null };
    if (typeof item === 'string') return { ...base, text: item };
    if (item && typeof item === 'object' && typeof (item as { prompt?: unknown }).prompt === 'string') {
      const record = item as Record<string, unknown>;
      const str = (key: string): string | null => (typeof record[key] === 'string' ? (record[key] as string) : null);
      return { ...base, text: str('prompt'), category: str('category'), challenge: str('challenge'), note: str('note') };
    }
    return { ...base, text: null, malformed: 'entry is neither a string nor an object with a "prompt" string' };
  });
}
