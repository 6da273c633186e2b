// Every Parquet folder of a dataset directory holds only Parquet parts, so that engines reading a folder as one
// dataset (DuckDB `folder/*`, polars, pyarrow) take it whole. The dataset is the bundled Pick-a-Pic sample labelled
// by the tiny real metrics, with a consensus and the encode caches; the JSON describing those folders is in meta/.
import assert from 'node:assert/strict';
import { cp, mkdir, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { runConsensus } from '../../src/label/consensus-run.ts';
import { runLabel } from '../../src/label/run.ts';
import { loadScoreTable } from '../../src/label/score-table.ts';
import { buildAuditReport } from '../../src/report/audit.ts';
import { tinyClipTextEncoder, tinyVaeEncoder } from '../../src/onnx/tiny-models.ts';
import { runEncode } from '../../src/train/encode.ts';
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
async function assertParquetFolder(folder: string): Promise<void> {
  const names = await readdir(join(dir, folder));
  assert.ok(names.length > 0, `${folder}: empty`);
  assert.deepEqual(names.filter((n) => !n.endsWith('.parquet')), [], `${folder}: files that are not Parquet`);
  const [row] = await query(`SELECT count(*)::INTEGER AS n FROM read_parquet(${sql(join(dir, folder, '*'))})`);
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
