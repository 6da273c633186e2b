// `bdpo compact`: the raw parts come to say what the reader already shows; nothing a reader sees changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { duplicatePairRejects, listParts, readPartAsWritten, readRows } from '../../src/io/arrow-table.ts';
import { compactDataset } from '../../src/ingest/compact.ts';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import type { TableName } from '../../src/core/schema.ts';
import { cleanRows, noiseImages, writePickapicShard } from '../support/pickapic-fixture.ts';
import { tempDir } from '../support/tmp.ts';
import { runTables } from '../../src/tables/tables.ts';
import { openParquet } from '../../src/io/parquet.ts';
import { readdir } from 'node:fs/promises';

/** Rows of a `bdpo tables` copy, every part. */
async function copyRows(dir: string, table: string): Promise<number> {
  let n = 0;
  const folder = join(dir, 'tables', table);
  for (const name of (await readdir(folder)).filter((f) => f.endsWith('.parquet'))) n += (await openParquet(join(folder, name))).numRows;
  return n;
}

const sha = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

async function readerRows(dir: string, table: TableName): Promise<string[]> {
  const rows: string[] = [];
  for await (const row of readRows(dir, table)) {
    rows.push(JSON.stringify(row, (_key, value: unknown) => (value instanceof Uint8Array ? `sha256:${sha(value)}` : value)));
  }
  return rows.sort();
}

async function rawRowCount(dir: string, table: TableName): Promise<number> {
  let n = 0;
  for (const file of await listParts(dir, table)) n += (await readPartAsWritten(dir, file)).numRows;
  return n;
}

test('compact rewrites the parts without later copies; readers see the same rows before and after; it resumes', async (t) => {
  const root = await tempDir(t);
  const pool = await noiseImages(12, 70);
  const input = join(root, 'train-00000-of-00001.parquet');
  await writePickapicShard(input, cleanRows(pool, 60, 21), { writer: 'hyparquet', rowGroupSize: 12 });
  const out = join(root, 'out');
  const ingested = await ingestPickapic([input], { out });

  const tables: TableName[] = ['prompts', 'images', 'pairs', 'rejects'];
  const before = new Map<TableName, string[]>();
  for (const table of tables) before.set(table, await readerRows(out, table));
  const synthetic = (await duplicatePairRejects(out)).length;
  assert.ok(synthetic > 0, 'the fixture has pairs repeated across units');
  assert.ok((await rawRowCount(out, 'prompts')) > before.get('prompts')!.length, 'and prompts stored by two units');

  // `bdpo tables` copies what the reader sees, the added duplicate_pair rejects included.
  await runTables(out);
  for (const table of tables) assert.equal(await copyRows(out, table), before.get(table)!.length, `tables/${table}`);

  const compacted = await compactDataset(out);
  assert.equal(compacted.dropped.pairs, synthetic);
  assert.ok(compacted.unitsRewritten > 0);
  for (const table of tables) assert.deepEqual(await readerRows(out, table), before.get(table), table);
  // The raw parts now hold each id once, and the repeated pairs as written rejects.
  for (const table of ['prompts', 'images', 'pairs'] as const)
    assert.equal(await rawRowCount(out, table), before.get(table)!.length, table);
  assert.equal(await rawRowCount(out, 'rejects'), before.get('rejects')!.length);
  assert.equal((await duplicatePairRejects(out)).length, 0);

  await runTables(out);
  for (const table of tables) assert.equal(await copyRows(out, table), before.get(table)!.length, `tables/${table} after compact`);

  // Nothing left to do, and ingest trusts the rewritten parts: its counts are the same.
  assert.equal((await compactDataset(out)).unitsRewritten, 0);
  const again = await ingestPickapic([input], { out });
  assert.deepEqual([again.unitsWritten, again.unitsSkipped], [0, ingested.unitsWritten]);
  assert.deepEqual(again.counts, ingested.counts);
});
