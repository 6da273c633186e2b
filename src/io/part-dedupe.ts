// Content de-duplication at the reader (docs/architecture.md "Sharding"). Ingest units de-duplicate within themselves
// only, so that a unit's parts are the same bytes under any shard layout; the same prompt, image or pair may then sit
// in two units' parts. The rule every reader of the dataset sees: parts are taken in their unit's rank (the order a
// source declares its kinds of units: HPD's benchmark lists first), then name order, rows in row order, and the first
// row of an id is the row; later ones are duplicates — dropped from prompts/images/pairs,
// and a duplicate pair is read as a `duplicate_pair` reject (the row an unsharded run of earlier versions wrote).
// `bdpo compact` rewrites the parts without them.
//
// The ids of a part come from the small id list its unit wrote beside it (.state/ingest/<part name>.json), so a
// reader that reads a few images parts (a label shard) never opens the others; a part without one (written by hand)
// is read for its ids.
import { readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { createHash } from 'node:crypto';
import type { Table } from 'apache-arrow';
import { parseJsonText } from './json-file.ts';
import { listParts } from './arrow-table.ts';
import { columnWords, idWordsFromString } from '../core/id-words.ts';
import { IdKeySet } from '../core/key-set.ts';

/** The tables whose rows are keyed by an id. */
export const KEYED_TABLES = ['prompts', 'images', 'pairs'] as const;
export type KeyedTable = (typeof KEYED_TABLES)[number];

export const DUPLICATE_PAIR_DETAIL = 'same prompt and images as an earlier pair';

/** A row's identity in its table: prompt id, pair id, and for images the image under its prompt, model and seed. */
export function rowKeys(table: KeyedTable, part: Table): string[] {
  const keys: string[] = [];
  const column = (name: string) => part.getChild(name)!;
  if (table === 'images') {
    const [ids, prompts, models, seeds] = ['image_id', 'prompt_id', 'model', 'seed'].map(column) as [
      ReturnType<typeof column>,
      ReturnType<typeof column>,
      ReturnType<typeof column>,
      ReturnType<typeof column>,
    ];
    for (let i = 0; i < part.numRows; i++) {
      const seed = seeds.get(i) as number | bigint | null;
      keys.push(`${ids.get(i)}:${prompts.get(i)}:${models.get(i) ?? ''}:${seed === null ? '' : Number(seed)}`);
    }
    return keys;
  }
  const ids = column(table === 'prompts' ? 'prompt_id' : 'pair_id');
  for (let i = 0; i < part.numRows; i++) keys.push(ids.get(i) as string);
  return keys;
}

interface Sidecar {
  rank: number;
  keys: string[] | null;
}

/**
 * The id list ingest wrote beside a part and the rank of its unit; keys null for a part written by hand, or one the
 * list does not describe (then ranked after every unit's part).
 */
async function sidecarOf(dir: string, table: KeyedTable, file: string): Promise<Sidecar> {
  const name = basename(file)
    .replace(/^part-/, '')
    .replace(/\.arrow$/, '');
  const path = join(dir, '.state', 'ingest', `${name}.json`);
  const text = await readFile(path, 'utf8').catch(() => null);
  if (text === null) return { rank: Number.MAX_SAFE_INTEGER, keys: null };
  const state = parseJsonText(text, path) as Partial<Record<KeyedTable | 'rank', unknown>>;
  const keys = state[table];
  return {
    rank: typeof state.rank === 'number' ? state.rank : 0,
    keys: Array.isArray(keys) && keys.every((k) => typeof k === 'string') ? (keys as string[]) : null,
  };
}

/** A table's parts in the reader's order: by their unit's rank, then by name. */
async function orderedParts(dir: string, table: KeyedTable): Promise<Array<{ file: string; sidecar: Sidecar }>> {
  const parts = await Promise.all(
    (await listParts(dir, table)).map(async (file) => ({ file, sidecar: await sidecarOf(dir, table, file) })),
  );
  return parts.sort((x, y) => x.sidecar.rank - y.sidecar.rank || (x.file < y.file ? -1 : x.file > y.file ? 1 : 0));
}

/** Which rows of which parts the reader drops; plain data, so a run can hand it to its worker threads. */
export interface DuplicatePlan {
  /** The state of the folders it was computed from (their inode and mtime). */
  signature: string;
  /** Part file → row indices that are duplicates of an earlier part's row (only parts that have any). */
  duplicates: Map<string, number[]>;
}

const plans = new Map<string, DuplicatePlan>();

async function signatureOf(dir: string): Promise<string> {
  const folders = [join(dir, '.state', 'ingest'), ...KEYED_TABLES.map((t) => join(dir, t))];
  const stats = await Promise.all(folders.map((f) => stat(f).catch(() => null)));
  return stats.map((s) => (s ? `${s.ino}:${s.mtimeMs}` : '-')).join('|');
}

const ID_COLUMN = { prompts: 'prompt_id', pairs: 'pair_id' } as const;

/** Each row's full key words (eight per row): from the id list, else from the part (ids from its buffers). */
function keyWordsOf(table: KeyedTable, keys: string[] | null, part: Table | null): Uint32Array {
  if (keys === null && table !== 'images') {
    const ids = part!.getChild(ID_COLUMN[table])!;
    return columnWords(ids, part!.numRows, 8);
  }
  const strings = keys ?? rowKeys(table, part!);
  const words = new Uint32Array(strings.length * 8);
  strings.forEach((key, row) => idWordsFromString(key, words, row * 8, 8));
  return words;
}

/**
 * Which rows of which parts are duplicates, for the whole dataset: computed from the id lists once per process and
 * directory (or handed over by adoptDuplicatePlan), and again only when a table's folder or the id lists change.
 * Keys are compared by their full words (every bit of a hex id; an id list's string and the same id read from a
 * part give the same words), so the dataset's ids are never all held as strings.
 */
export async function duplicatePlan(dir: string, readRaw: (file: string) => Promise<Table>): Promise<DuplicatePlan> {
  const signature = await signatureOf(dir);
  const cached = plans.get(dir);
  if (cached?.signature === signature) return cached;
  const duplicates = new Map<string, number[]>();
  for (const table of KEYED_TABLES) {
    // A table of one part (most small datasets) has nothing to resolve between parts.
    if ((await listParts(dir, table)).length < 2) continue;
    const parts = await orderedParts(dir, table);
    // Sized from the id lists when every part has one (what ingest writes), so the set is allocated once.
    const listed = parts.reduce((n, { sidecar }) => n + (sidecar.keys?.length ?? 0), 0);
    const seen = new IdKeySet(listed);
    for (const { file, sidecar } of parts) {
      const words = keyWordsOf(table, sidecar.keys, sidecar.keys === null ? await readRaw(file) : null);
      const dropped: number[] = [];
      for (let row = 0, rows = words.length / 8; row < rows; row++) if (!seen.add(words, row * 8)) dropped.push(row);
      if (dropped.length > 0) duplicates.set(file, dropped);
    }
  }
  const plan = { signature, duplicates };
  plans.set(dir, plan);
  return plan;
}

/**
 * Takes a plan another thread computed for `dir` (a run's main thread, for its workers), so each worker does not
 * read every part's ids again. It is used only while the directory's signature is the one it was computed under.
 */
export function adoptDuplicatePlan(dir: string, plan: DuplicatePlan): void {
  plans.set(dir, plan);
}

function keyedTableOf(file: string): KeyedTable | null {
  const folder = file.split('/')[0] ?? '';
  return (KEYED_TABLES as readonly string[]).includes(folder) ? (folder as KeyedTable) : null;
}

/** Rows of a part that the reader drops as duplicates of an earlier part's rows (sorted), or none. */
export async function duplicateRowsOf(dir: string, file: string, readRaw: (file: string) => Promise<Table>): Promise<number[]> {
  if (keyedTableOf(file) === null) return [];
  return (await duplicatePlan(dir, readRaw)).duplicates.get(file) ?? [];
}

/** Rows the reader drops, for many parts at once (one plan, however the directory changes meanwhile). */
export async function duplicateRowsOfParts(
  dir: string,
  files: readonly string[],
  readRaw: (file: string) => Promise<Table>,
): Promise<Map<string, number[]>> {
  const plan = await duplicatePlan(dir, readRaw);
  return new Map(files.map((file) => [file, plan.duplicates.get(file) ?? []]));
}

/** Every pairs part that holds duplicate rows, with those rows. */
export async function duplicatePairRows(dir: string, readRaw: (file: string) => Promise<Table>): Promise<Array<[string, number[]]>> {
  const plan = await duplicatePlan(dir, readRaw);
  return [...plan.duplicates.entries()].filter(([file]) => file.startsWith('pairs/')).sort(([a], [b]) => (a < b ? -1 : 1));
}

/** A digest of the rows of a part the reader drops ([] when none): part of a unit's fingerprint that reads the part. */
export async function duplicateRowsDigestOf(dir: string, file: string, readRaw: (file: string) => Promise<Table>): Promise<string[]> {
  const rows = await duplicateRowsOf(dir, file, readRaw);
  return rows.length === 0 ? [] : [createHash('sha256').update(rows.join(',')).digest('hex')];
}

/** The part without the given rows (sorted): slices of the kept runs, concatenated; no copy of the kept data. */
export function withoutRows(part: Table, rows: readonly number[]): Table {
  const slices: Table[] = [];
  let start = 0;
  for (const row of rows) {
    if (row > start) slices.push(part.slice(start, row));
    start = row + 1;
  }
  if (start < part.numRows) slices.push(part.slice(start));
  if (slices.length === 0) return part.slice(0, 0);
  return slices.length === 1 ? slices[0]! : slices[0]!.concat(...slices.slice(1));
}
