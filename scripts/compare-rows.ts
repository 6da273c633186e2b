// `compare-outputs.ts --rows`: two runs compared by what their readers see, for a change that renames parts or moves
// rows between them (sharding by unit, reader-side de-duplication). In a dataset directory (one with manifest.json):
// the rows of prompts/images/pairs/rejects as the dataset reader yields them, and the rows of every Parquet folder
// (scores/<metric>, consensus/<rule>, latents, text), each as a multiset; the manifest by its runs (inputs by path
// and size) and by the multiset of its units' stages and counts. Every other file is compared by its name with the
// shard label (`-s<i>of<n>`) removed; the per-unit records (meta/units) and id lists (.state) are bookkeeping.
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readRows } from '../src/io/arrow-table.ts';
import { openParquet, readRowGroup } from '../src/io/parquet.ts';
import type { TableName } from '../src/core/schema.ts';

const TABLES: TableName[] = ['prompts', 'images', 'pairs', 'rejects'];

/** One cell as comparable text: bytes by their sha256, floats as they are. */
function cell(value: unknown): unknown {
  if (value instanceof Uint8Array) return `sha256:${createHash('sha256').update(value).digest('hex')}`;
  if (typeof value === 'bigint') return Number(value);
  return value;
}

function rowText(row: Record<string, unknown>): string {
  return JSON.stringify(Object.fromEntries(Object.entries(row).map(([k, v]) => [k, cell(v)])));
}

/** The sorted rows of a table as the reader yields them. */
async function tableRows(dir: string, table: TableName): Promise<string[]> {
  const rows: string[] = [];
  for await (const row of readRows(dir, table)) rows.push(rowText(row as unknown as Record<string, unknown>));
  return rows.sort();
}

async function parquetFolderRows(dir: string, folder: string): Promise<string[]> {
  const names = (await readdir(join(dir, folder)).catch(() => [] as string[])).filter(
    (n) => n.startsWith('part-') && n.endsWith('.parquet'),
  );
  const rows: string[] = [];
  for (const name of names) {
    const source = await openParquet(join(dir, folder, name));
    for (const group of source.rowGroups) for (const row of await readRowGroup(source, group)) rows.push(rowText(row));
  }
  return rows.sort();
}

/** Folders under a dataset directory that hold Parquet parts, relative to it. */
async function parquetFolders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const folders = new Set<string>();
  for (const entry of entries) {
    if (entry.isFile() && entry.name.startsWith('part-') && entry.name.endsWith('.parquet')) {
      folders.add(join(entry.parentPath, '.').slice(dir.length + 1));
    }
  }
  return [...folders].sort();
}

interface ManifestLike {
  runs: Array<Record<string, unknown> & { inputs: Array<{ path: string; bytes: number }> }>;
  units: Record<string, { stage: string; counts: unknown }>;
}

function manifestView(text: string, strip: (value: unknown) => unknown): string {
  const manifest = JSON.parse(text) as ManifestLike;
  const runs = manifest.runs.map((run) => ({ ...run, inputs: run.inputs.map(({ path, bytes }) => ({ path, bytes })) }));
  const units = Object.values(manifest.units)
    .map((unit) => JSON.stringify({ stage: unit.stage, counts: unit.counts }))
    .sort();
  return JSON.stringify({ runs: strip(runs), units });
}

function multisetDifference(a: string[], b: string[]): { onlyA: number; onlyB: number } {
  let i = 0;
  let j = 0;
  let onlyA = 0;
  let onlyB = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]! < b[j]!)) {
      onlyA++;
      i++;
    } else if (i >= a.length || b[j]! < a[i]!) {
      onlyB++;
      j++;
    } else {
      i++;
      j++;
    }
  }
  return { onlyA, onlyB };
}

export interface RowsComparison {
  differences: string[];
  same: number;
}

/** Compares two dataset directories by rows; `strip` removes the volatile JSON fields, as compare-outputs does. */
export async function compareDatasetRows(a: string, b: string, strip: (value: unknown) => unknown): Promise<RowsComparison> {
  const differences: string[] = [];
  let same = 0;
  const check = (what: string, rowsA: string[], rowsB: string[]): void => {
    const { onlyA, onlyB } = multisetDifference(rowsA, rowsB);
    if (onlyA === 0 && onlyB === 0) same++;
    else differences.push(`rows differ: ${what} (${onlyA} only in the first, ${onlyB} only in the second)`);
  };
  for (const table of TABLES) check(`${b}/${table}`, await tableRows(a, table), await tableRows(b, table));
  const folders = [...new Set([...(await parquetFolders(a)), ...(await parquetFolders(b))])].sort();
  for (const folder of folders) check(`${b}/${folder}`, await parquetFolderRows(a, folder), await parquetFolderRows(b, folder));
  const [manifestA, manifestB] = [await readFile(join(a, 'manifest.json'), 'utf8'), await readFile(join(b, 'manifest.json'), 'utf8')];
  if (manifestView(manifestA, strip) === manifestView(manifestB, strip)) same++;
  else differences.push(`differs: ${b}/manifest.json (runs, or the units' stages and counts)`);
  return { differences, same };
}

/** A file's name with shard labels removed, so that `part-x-s0of1.arrow` and `part-x.arrow` are one file. */
export function withoutShardLabels(file: string): string {
  return file.replace(/-s\d+of\d+(?=[-.])/g, '');
}

/** Whether a file of a dataset directory is compared by rows or is bookkeeping (so not compared byte for byte). */
export function comparedByRows(file: string): boolean {
  const inside = file.split('/');
  return (
    /\/part-[^/]+\.(arrow|parquet)$/.test(`/${file}`) ||
    inside.includes('.state') ||
    file.includes('meta/units/') ||
    file.endsWith('manifest.json')
  );
}
