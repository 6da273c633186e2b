// Arrow IPC *file* parts for the ingest tables (docs/design.md §2): one part is built whole in memory (parts are bounded by
// the unit of work that made them), written atomically, and read back from one buffer — the file format needs its
// footer, so streaming a part from disk would buffer it anyway.
import { open, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  RecordBatch,
  RecordBatchReader,
  Struct,
  Table,
  makeData,
  tableFromIPC,
  tableToIPC,
  vectorFromArray,
  type Schema,
} from 'apache-arrow';
import { TABLES, type TableName, type TableRows } from '../core/schema.ts';
import { writeFileAtomic } from './atomic.ts';
import { resolveInside } from './paths.ts';
import { sha256Hex } from '../core/ids.ts';
import { verifyPartBytes } from '../core/manifest.ts';
import { BdpoError } from '../core/errors.ts';
import {
  DUPLICATE_PAIR_DETAIL,
  duplicatePairRows,
  duplicateRowsDigestOf,
  duplicateRowsOf,
  duplicateRowsOfParts,
  duplicatePlan,
  withoutRows,
  type DuplicatePlan,
} from './part-dedupe.ts';

export interface WrittenPart {
  /** Path relative to the dataset directory, e.g. "images/part-pickapic-train-rg0000.arrow". */
  file: string;
  rows: number;
  bytes: number;
  sha256: string;
}

export function partFile(table: string, partName: string, extension: 'arrow' | 'parquet' = 'arrow'): string {
  return `${table}/part-${partName}.${extension}`;
}

/** Arrow IPC file bytes for rows of one table, columns typed and ordered by the schema module. */
export function encodeRows<T extends TableName>(table: T, rows: readonly TableRows[T][]): Uint8Array {
  const schema: Schema = TABLES[table];
  const children = schema.fields.map((field) => {
    const values = rows.map((row) => (row as unknown as Record<string, unknown>)[field.name] ?? null);
    if (!field.nullable && values.some((value) => value === null)) {
      throw new Error(`${table}.${field.name} is not nullable but a row has no value`);
    }
    return vectorFromArray(values as never[], field.type).data[0]!;
  });
  const data = makeData({ type: new Struct(schema.fields), length: rows.length, nullCount: 0, children });
  return tableToIPC(new Table([new RecordBatch(schema, data)]), 'file');
}

export async function writeRowsPart<T extends TableName>(
  dir: string,
  table: T,
  partName: string,
  rows: readonly TableRows[T][],
): Promise<WrittenPart> {
  const bytes = encodeRows(table, rows);
  const file = partFile(table, partName);
  await writeFileAtomic(resolveInside(dir, file), bytes);
  return { file, rows: rows.length, bytes: bytes.byteLength, sha256: sha256Hex(bytes) };
}

/** Part files of a table, sorted, relative to the dataset directory. Temporary files are not parts. */
export async function listParts(dir: string, table: string, extension = '.arrow'): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(join(dir, table));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return names
    .filter((name) => name.startsWith('part-') && name.endsWith(extension))
    .sort()
    .map((name) => `${table}/${name}`);
}

export class ArrowPartError extends BdpoError {}

const MAGIC = Buffer.from('ARROW1', 'latin1');
// "ARROW1", 2 bytes of padding, at least a schema message, the footer, its int32 length and "ARROW1" again.
const SMALLEST_FILE = 8 + 4 + 6;

/** "truncated" / "not an Arrow IPC file" from the magic at both ends, or null when both are there. */
function framingProblem(head: Uint8Array, tail: Uint8Array, size: number): string | null {
  if (!MAGIC.equals(head.subarray(0, 6))) return 'not an Arrow IPC file (no ARROW1 at its start)';
  if (size < SMALLEST_FILE || !MAGIC.equals(tail.subarray(tail.length - 6))) {
    return `truncated (${size} bytes, no Arrow footer at its end)`;
  }
  return null;
}

/** The table a part belongs to, from its folder ("images/part-….arrow" → images), when that is one of ours. */
function tableOf(file: string): TableName | null {
  const folder = file.split('/')[0] ?? '';
  return Object.hasOwn(TABLES, folder) ? (folder as TableName) : null;
}

/** What differs between a part's schema and the table's schema in schema.ts (the first difference), or null. */
function schemaProblem(table: TableName, schema: Schema): string | null {
  const expected: Schema = TABLES[table];
  for (const field of expected.fields) {
    const found = schema.fields.find((f) => f.name === field.name);
    if (!found) return `no column "${field.name}" (the ${table} table of schema.ts has it)`;
    if (String(found.type) !== String(field.type)) {
      return `column "${field.name}" is ${String(found.type)}, the ${table} table of schema.ts says ${String(field.type)}`;
    }
  }
  return null;
}

function partError(path: string, problem: string): ArrowPartError {
  return new ArrowPartError(`${path}: ${problem}`);
}

/**
 * Checks a part without reading its rows: magic at both ends, footer and schema. Cheap enough to run over every
 * part before a stage starts writing, so a damaged part late in the list fails the run before its first output.
 */
export async function checkPart(dir: string, file: string): Promise<void> {
  const path = join(dir, file);
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const head = Buffer.alloc(Math.min(6, size));
    const tail = Buffer.alloc(Math.min(6, size));
    await handle.read(head, 0, head.length, 0);
    await handle.read(tail, 0, tail.length, Math.max(0, size - 6));
    const framing = framingProblem(head, tail, size);
    if (framing) throw partError(path, framing);
    let schema: Schema;
    try {
      const reader = await RecordBatchReader.from(handle);
      await reader.open();
      schema = reader.schema;
    } catch (error) {
      throw partError(path, `unreadable Arrow IPC file (${(error as Error).message})`);
    }
    const table = tableOf(file);
    const problem = table ? schemaProblem(table, schema) : null;
    if (problem) throw partError(path, problem);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * A part of the dataset as every reader sees it: checked against the sha256 its writer recorded and against its
 * table's schema, without the rows that an earlier part holds too (io/part-dedupe.ts).
 */
export async function readPart(dir: string, file: string): Promise<Table> {
  const part = await readPartAsWritten(dir, file);
  const duplicates = await duplicateRowsOf(dir, file, (other) => readPartAsWritten(dir, other));
  return duplicates.length === 0 ? part : withoutRows(part, duplicates);
}

/**
 * The whole dataset's de-duplication plan, for a run to hand to its worker threads (adoptDuplicatePlan), which then
 * read their parts without each reading every part's ids again.
 */
export function readerDuplicatePlan(dir: string): Promise<DuplicatePlan> {
  return duplicatePlan(dir, (other) => readPartAsWritten(dir, other));
}

/** The digest of the rows of a part the reader drops ([] when none), for the fingerprint of a unit that reads it. */
export function duplicateRowsDigest(dir: string, file: string): Promise<string[]> {
  return duplicateRowsDigestOf(dir, file, (other) => readPartAsWritten(dir, other));
}

/** The rows of a part (as written) that the reader drops as duplicates of an earlier part's rows, sorted. */
export function droppedRows(dir: string, file: string): Promise<number[]> {
  return duplicateRowsOf(dir, file, (other) => readPartAsWritten(dir, other));
}

/** How many rows of each part the reader drops as duplicates of an earlier part's rows, from one plan. */
export async function duplicateRowCounts(dir: string, files: readonly string[]): Promise<Map<string, number>> {
  const rows = await duplicateRowsOfParts(dir, files, (other) => readPartAsWritten(dir, other));
  return new Map([...rows].map(([file, dropped]) => [file, dropped.length]));
}

/** A part with every row it was written with (`bdpo compact`, and the de-duplication itself). */
export async function readPartAsWritten(dir: string, file: string): Promise<Table> {
  const path = join(dir, file);
  const bytes = await readFile(path);
  await verifyPartBytes(dir, file, bytes);
  const framing = framingProblem(bytes, bytes, bytes.byteLength);
  if (framing) throw partError(path, framing);
  let part: Table;
  try {
    part = tableFromIPC(bytes);
  } catch (error) {
    throw partError(path, `unreadable Arrow IPC file (${(error as Error).message})`);
  }
  const table = tableOf(file);
  if (table) {
    const problem = schemaProblem(table, part.schema);
    if (problem) throw partError(path, problem);
    for (const field of TABLES[table].fields) {
      if (!field.nullable && part.getChild(field.name)!.nullCount > 0) {
        throw partError(path, `column "${field.name}" has nulls, the ${table} table of schema.ts says it has none`);
      }
    }
  }
  return part;
}

/**
 * Rows of every part of a table, one part in memory at a time, as every reader sees them: duplicates dropped, and for
 * rejects, after the written ones, a `duplicate_pair` row for each pair an earlier part holds too. Binary cells are
 * views into the part's buffer.
 */
export async function* readRows<T extends TableName>(dir: string, table: T): AsyncGenerator<TableRows[T]> {
  for (const file of await listParts(dir, table)) yield* partRows<T>(await readPart(dir, file));
  if (table !== 'rejects') return;
  for (const row of await duplicatePairRejects(dir)) yield row as unknown as TableRows[T];
}

/** A table's rows as objects (bigints as numbers; binary cells are views into the part's buffer). */
export function* partRows<T extends TableName>(part: Table): Generator<TableRows[T]> {
  const columns = part.schema.fields.map((f) => [f.name, part.getChild(f.name)!] as const);
  for (let i = 0; i < part.numRows; i++) {
    const row: Record<string, unknown> = {};
    for (const [name, column] of columns) {
      const value = column.get(i);
      row[name] = typeof value === 'bigint' ? Number(value) : value;
    }
    yield row as unknown as TableRows[T];
  }
}

/** The rejects the reader adds: one per pair row that repeats a pair of an earlier part, in part and row order. */
export async function duplicatePairRejects(dir: string): Promise<Array<TableRows['rejects']>> {
  const rows: Array<TableRows['rejects']> = [];
  for (const [file, duplicates] of await duplicatePairRows(dir, (other) => readPartAsWritten(dir, other))) {
    const refs = (await readPartAsWritten(dir, file)).getChild('source_ref')!;
    for (const row of duplicates) {
      rows.push({ source_ref: refs.get(row) as string, stage: 'ingest', reason: 'duplicate_pair', detail: DUPLICATE_PAIR_DETAIL });
    }
  }
  return rows;
}
