// Arrow IPC *file* parts for the ingest tables (DESIGN §2): one part is built whole in memory (parts are bounded by
// the unit of work that made them), written atomically, and read back from one buffer — the file format needs its
// footer, so streaming a part from disk would buffer it anyway.
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  RecordBatch,
  Struct,
  Table,
  makeData,
  tableFromIPC,
  tableToIPC,
  vectorFromArray,
  type Schema,
} from 'apache-arrow';
import { TABLES, type TableName, type TableRows } from '../schema.ts';
import { writeFileAtomic } from './atomic.ts';
import { resolveInside } from './paths.ts';
import { sha256Hex } from '../ids.ts';

export interface WrittenPart {
  /** Path relative to the dataset directory, e.g. "images/part-pickapic-train-rg0000-s0of1.arrow". */
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

export async function readPart(dir: string, file: string): Promise<Table> {
  return tableFromIPC(await readFile(join(dir, file)));
}

/** Rows of every part of a table, one part in memory at a time. Binary cells are views into the part's buffer. */
export async function* readRows<T extends TableName>(dir: string, table: T): AsyncGenerator<TableRows[T]> {
  for (const file of await listParts(dir, table)) {
    const part = await readPart(dir, file);
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
}
