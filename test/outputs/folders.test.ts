// Every Parquet folder of a dataset directory holds only Parquet parts, so that engines reading a folder as one
// dataset (DuckDB `folder/*`, polars, pyarrow) take it whole. The dataset is the bundled Pick-a-Pic sample labelled
// by the tiny real metrics, with a consensus and the encode caches; the JSON describing those folders is in meta/.
import assert from 'node:assert/strict';
import { cp, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { runConsensus } from '../../src/consensus/run.ts';
import { runLabel } from '../../src/label/run.ts';
import { loadScoreTable } from '../../src/core/score-table.ts';
import { buildAuditReport } from '../../src/report/audit.ts';
import { tinyClipTextEncoder, tinyVaeEncoder } from '../../tools/onnx-builder/tiny-models.ts';
import { runEncode } from '../../src/encode/encode.ts';
import { readRows } from '../../src/io/arrow-table.ts';
import { runTables } from '../../src/tables/tables.ts';
import { clipTokenizerPath, writeMetricsFixture } from '../support/metrics-fixture.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';

let root: string;
let dir: string;
let duck: DuckDBInstance;
let db: DuckDBConnection;

const sql = (text: string): string => `'${text.replaceAll("'", "''")}'`;

async function query(text: string): Promise<Record<string, unknown>[]> {
  return (await db.runAndReadAll(text)).getRowObjectsJS() as Record<string, unknown>[];
}

before(async () => {
  root = await makeTempDir('bdpo-folders-');
  const fx = await writeMetricsFixture(join(root, 'models'));
  dir = join(root, 'sample');
  await ingestPickapic([new URL('../../data/pickapic', import.meta.url).pathname], { out: dir });
  await runLabel(dir, { metrics: [fx.metrics.pickscore, fx.metrics.aesthetic], device: 'cpu', intraOpNumThreads: 1 });
  await runConsensus(dir, { rule: 'majority' });
  const vae = join(root, 'vae.onnx');
  const text = join(root, 'text.onnx');
  await writeFile(vae, tinyVaeEncoder({ seed: 5 }));
  await writeFile(text, tinyClipTextEncoder({ seed: 7, width: 16 }));
  await runEncode(dir, { vae, text, tokenizer: clipTokenizerPath(), device: 'cpu', intraOpNumThreads: 1, batchSize: 8 });
  duck = await DuckDBInstance.create(':memory:', { threads: '1' });
  db = await duck.connect();
});

after(async () => {
  db?.closeSync();
  duck?.closeSync();
  if (root) await removeDir(root);
});

/** Asserts the folder holds only part files ending in .parquet, and DuckDB reads `folder/*` as one dataset. */
async function assertParquetFolder(folder: string, base = dir): Promise<void> {
  const names = await readdir(join(base, folder));
  assert.ok(names.length > 0, `${folder}: empty`);
  assert.deepEqual(
    names.filter((n) => !n.endsWith('.parquet')),
    [],
    `${folder}: files that are not Parquet`,
  );
  const [row] = await query(`SELECT count(*)::INTEGER AS n FROM read_parquet(${sql(join(base, folder, '*'))})`);
  assert.ok((row!.n as number) > 0, `${folder}: DuckDB read no rows`);
}

describe('Parquet folders of a labelled, voted and encoded dataset', () => {
  test('scores/<metric>/ of every metric holds only Parquet and reads as one dataset', async () => {
    const metrics = await readdir(join(dir, 'scores'));
    assert.deepEqual(metrics.sort(), ['aesthetic', 'pickscore']);
    for (const metric of metrics) await assertParquetFolder(join('scores', metric));
  });

  test('consensus/<rule>/ holds only Parquet and reads as one dataset', async () => {
    await assertParquetFolder('consensus/majority');
  });

  test('latents/ and text/ hold only Parquet and read as one dataset', async () => {
    await assertParquetFolder('latents');
    await assertParquetFolder('text');
  });

  test('the describing JSON is in meta/ and read back from there', async () => {
    assert.deepEqual((await readdir(join(dir, 'meta', 'scores'))).sort(), ['aesthetic.json', 'pickscore.json']);
    assert.deepEqual(await readdir(join(dir, 'meta', 'consensus')), ['majority.json']);
    const table = await loadScoreTable(dir);
    assert.deepEqual(table.metrics.map((m) => m.name).sort(), ['aesthetic', 'pickscore']);
    const report = await buildAuditReport(dir, { rule: 'majority' });
    assert.equal(report.ties, 'drop');
  });
});

describe('a dataset written with the describing JSON inside the folders (earlier layout)', () => {
  test('scores and consensus options are read from the old place', async () => {
    const old = join(root, 'old-layout');
    await cp(dir, old, { recursive: true });
    for (const metric of ['aesthetic', 'pickscore']) {
      await rename(join(old, 'meta', 'scores', `${metric}.json`), join(old, 'scores', metric, 'metric.json'));
    }
    await mkdir(join(old, 'consensus', 'majority'), { recursive: true });
    await rename(join(old, 'meta', 'consensus', 'majority.json'), join(old, 'consensus', 'majority', 'options.json'));
    const table = await loadScoreTable(old);
    assert.deepEqual(table.metrics.map((m) => m.name).sort(), ['aesthetic', 'pickscore']);
    const report = await buildAuditReport(old, { rule: 'majority' });
    assert.equal(report.ties, 'drop');
  });
});

describe('bdpo tables: Parquet copies of the Arrow tables', () => {
  test('tables/<table>/ of every table holds only Parquet, one part per Arrow part, every row, columns as in schema.ts', async () => {
    const summary = await runTables(dir);
    for (const table of ['prompts', 'pairs', 'rejects', 'images'] as const) {
      await assertParquetFolder(join('tables', table));
      const arrowParts = (await readdir(join(dir, table)))
        .filter((n) => n.endsWith('.arrow'))
        .map((n) => n.replace(/\.arrow$/, '.parquet'));
      assert.deepEqual((await readdir(join(dir, 'tables', table))).sort(), arrowParts.sort(), table);
      let rows = 0;
      for await (const _row of readRows(dir, table)) rows++;
      const [row] = await query(`SELECT count(*)::INTEGER AS n FROM read_parquet(${sql(join(dir, 'tables', table, '*'))})`);
      assert.equal(row!.n, rows, `${table}: rows`);
      assert.equal(summary.tables[table].rowsWritten, rows);
    }
    const columns = await query(`DESCRIBE SELECT * FROM read_parquet(${sql(join(dir, 'tables/images/*'))})`);
    assert.deepEqual(
      columns.map((c) => c.column_name),
      ['image_id', 'prompt_id', 'mime', 'width', 'height', 'source_ref', 'model', 'seed'],
    );
  });

  test('captions join pairs and consensus labels in one SQL query', async () => {
    await runTables(dir);
    const t = (name: string): string => `read_parquet(${sql(join(dir, name, '*'))})`;
    const rows = await query(
      `SELECT pr.text AS caption, p.pair_id, c.label FROM ${t('tables/pairs')} p JOIN ${t('tables/prompts')} pr USING (prompt_id) ` +
        `JOIN ${t('consensus/majority')} c USING (pair_id) ORDER BY p.pair_id`,
    );
    const captions = new Map<string, string>();
    for await (const prompt of readRows(dir, 'prompts')) captions.set(prompt.prompt_id, prompt.text);
    const expected: { caption: string; pair_id: string }[] = [];
    for await (const pair of readRows(dir, 'pairs')) expected.push({ caption: captions.get(pair.prompt_id)!, pair_id: pair.pair_id });
    expected.sort((a, b) => (a.pair_id < b.pair_id ? -1 : a.pair_id > b.pair_id ? 1 : 0));
    assert.ok(expected.length > 0);
    assert.deepEqual(
      rows.map((r) => ({ caption: r.caption, pair_id: r.pair_id })),
      expected,
    );
  });

  test('a re-run skips current parts, redoes a lost one, and --images-bytes rewrites images with their bytes', async () => {
    const first = await runTables(dir);
    assert.equal(first.tables.pairs.written, 0);
    assert.equal(first.tables.pairs.skipped, first.tables.pairs.parts);
    const [lost] = (await readdir(join(dir, 'tables/prompts'))).sort();
    await rm(join(dir, 'tables/prompts', lost!));
    const again = await runTables(dir);
    assert.equal(again.tables.prompts.written, 1);
    const withBytes = await runTables(dir, { imageBytes: true });
    assert.equal(withBytes.tables.images.written, withBytes.tables.images.parts);
    const stored = new Map<string, string>();
    for await (const image of readRows(dir, 'images')) stored.set(image.image_id, Buffer.from(image.bytes).toString('hex'));
    const copied = await query(`SELECT image_id, hex(bytes) AS hex FROM read_parquet(${sql(join(dir, 'tables/images/*'))})`);
    assert.equal(copied.length, stored.size);
    for (const row of copied) assert.equal((row.hex as string).toLowerCase(), stored.get(row.image_id as string), row.image_id as string);
  });

  test('--out puts the copies there and writes nothing in the dataset directory', async () => {
    const copy = join(root, 'copy-src');
    await cp(dir, copy, { recursive: true });
    await rm(join(copy, 'tables'), { recursive: true, force: true });
    const out = join(root, 'elsewhere');
    await runTables(copy, { out });
    assert.equal((await readdir(copy)).includes('tables'), false);
    for (const table of ['prompts', 'pairs', 'rejects', 'images']) await assertParquetFolder(table, out);
  });
});
