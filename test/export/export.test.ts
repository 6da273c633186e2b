// runExport over the bundled Pick-a-Pic sample (26 pairs) with consensus/majority (ties dropped) and
// consensus/majority.ties-half from seeded random scores of four metrics. DuckDB reads every export back; image bytes
// are compared with the ingested ones and hashed (sha256 = image id); label_0 is recomputed from the vote counts.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { readRows } from '../../src/io/arrow-table.ts';
import { writeParquetPart } from '../../src/io/parquet.ts';
import { runConsensus } from '../../src/consensus/run.ts';
import { SCORE_SPECS, type MetricInfo } from '../../src/core/schema.ts';
import { readManifest } from '../../src/core/manifest.ts';
import { ExportError, runExport } from '../../src/export/export.ts';
import { seededRandom } from '../support/pickapic-fixture.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';

const METRICS = ['m1', 'm2', 'm3', 'm4'];

let root: string;
let dir: string;
let duck: DuckDBInstance;
let db: DuckDBConnection;
let imageBytes: Map<string, Uint8Array>;
let captions: Map<string, string>;

const sql = (text: string): string => `'${text.replaceAll("'", "''")}'`;
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

async function query(text: string): Promise<Record<string, unknown>[]> {
  return (await db.runAndReadAll(text)).getRowObjectsJS() as Record<string, unknown>[];
}

before(async () => {
  root = await makeTempDir('bdpo-export-');
  dir = join(root, 'sample');
  await ingestPickapic([new URL('../../data/pickapic', import.meta.url).pathname], { out: dir });
  const random = seededRandom(11);
  const keys: Array<[string, string]> = [];
  for await (const row of readRows(dir, 'images')) keys.push([row.image_id, row.prompt_id]);
  for (const m of METRICS) {
    await writeParquetPart(dir, `scores/${m}/part-0.parquet`, SCORE_SPECS, {
      image_id: keys.map((k) => k[0]),
      prompt_id: keys.map((k) => k[1]),
      score: keys.map(() => random()),
      metric_version: keys.map(() => 'v1'),
    });
    const info: MetricInfo = { name: m, kind: 'clip', version: 'v1', score: 'cos', temperature: 1 };
    await writeFile(join(dir, 'scores', m, 'metric.json'), JSON.stringify(info));
  }
  const drop = await runConsensus(dir, { rule: 'majority' });
  assert.ok(drop.tiesCount > 0 && drop.kept > 0);
  await runConsensus(dir, { rule: 'majority', ties: 'half' });
  duck = await DuckDBInstance.create(':memory:', { threads: '1' });
  db = await duck.connect();
  imageBytes = new Map();
  for await (const row of readRows(dir, 'images')) imageBytes.set(row.image_id, Uint8Array.from(row.bytes));
  captions = new Map();
  for await (const row of readRows(dir, 'prompts')) captions.set(row.prompt_id, row.text);
});

after(async () => {
  db?.closeSync();
  duck?.closeSync();
  if (root) await removeDir(root);
});

interface ExportRow {
  caption: string;
  jpg_0: Uint8Array;
  jpg_1: Uint8Array;
  label_0: number;
  label_1: number;
  pair_id: string;
  split: string | null;
  soft: number | null;
  margin: number | null;
  disagreement: number | null;
  votes_a: number;
  votes_b: number;
  [p: string]: unknown;
}

async function consensusRows(rule: string): Promise<Map<string, Record<string, unknown>>> {
  const rows = await query(`SELECT * FROM read_parquet(${sql(join(dir, 'consensus', rule, '*.parquet'))})`);
  return new Map(rows.map((r) => [r.pair_id as string, r]));
}

/** Every exported row against the consensus row of its pair, the ingested images and prompts. */
async function checkExport(
  glob: string,
  rule: string,
  expectedLabel: (votesA: number, votesB: number) => number | null,
): Promise<ExportRow[]> {
  const rows = (await query(`SELECT * FROM read_parquet(${sql(glob)}) ORDER BY pair_id`)) as ExportRow[];
  const consensus = await consensusRows(rule);
  const kept = [...consensus.values()].filter((r) => r.kept);
  assert.deepEqual(
    rows.map((r) => r.pair_id),
    kept.map((r) => r.pair_id as string).sort(),
  );
  for (const row of rows) {
    const c = consensus.get(row.pair_id)!;
    assert.equal(sha256(row.jpg_0), c.image_a);
    assert.equal(sha256(row.jpg_1), c.image_b);
    assert.deepEqual(Buffer.from(row.jpg_0), Buffer.from(imageBytes.get(c.image_a as string)!));
    assert.deepEqual(Buffer.from(row.jpg_1), Buffer.from(imageBytes.get(c.image_b as string)!));
    assert.equal(row.caption, captions.get(c.prompt_id as string));
    assert.equal(row.label_0, expectedLabel(row.votes_a, row.votes_b));
    assert.equal(row.label_1, 1 - row.label_0);
    for (const column of ['split', 'soft', 'margin', 'disagreement', 'votes_a', 'votes_b', ...METRICS.map((m) => `p_${m}`)]) {
      assert.equal(row[column], c[column], `${column} of ${row.pair_id}`);
    }
  }
  return rows;
}

/** majority: a wins with more votes, b with more votes against; a tie is ½ under `half` (and never kept under drop). */
const majorityLabel = (a: number, b: number): number | null => (a > b ? 1 : b > a ? 0 : 0.5);

describe('diffusers-dpo export', () => {
  test('a folder of parts: kept pairs only, original bytes, label_0 from the votes; ties dropped', async () => {
    const out = join(root, 'out-drop');
    const summary = await runExport(dir, { rule: 'majority', out, rowsPerPart: 5, rowGroupSize: 2 });
    const rows = await checkExport(join(out, 'data/*.parquet'), 'majority', majorityLabel);
    assert.ok(rows.every((r) => r.label_0 === 1 || r.label_0 === 0));
    assert.equal(summary.pairs, rows.length);
    const bySplit = Object.values(summary.bySplit);
    assert.equal(
      bySplit.reduce((a, b) => a + b, 0),
      rows.length,
    );
    assert.equal(summary.files.length, bySplit.reduce((n, k) => n + Math.ceil(k / 5), 0) + 1);
    const groups = await query(
      'SELECT max(row_group_num_rows) AS rows, count(DISTINCT (file_name, row_group_id)) AS n ' +
        `FROM parquet_metadata(${sql(join(out, 'data/*.parquet'))})`,
    );
    assert.equal(Number(groups[0]!.rows), 2);
    const groupsOf = (k: number): number =>
      Array.from({ length: Math.ceil(k / 5) }, (_, i) => Math.ceil(Math.min(5, k - 5 * i) / 2)).reduce((a, b) => a + b, 0);
    assert.equal(
      Number(groups[0]!.n),
      bySplit.reduce((n, k) => n + groupsOf(k), 0),
    );
    const types = await query(
      `SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(${sql(join(out, 'data/*.parquet'))}))`,
    );
    assert.deepEqual(Object.fromEntries(types.map((t) => [t.column_name, t.column_type])), {
      caption: 'VARCHAR',
      jpg_0: 'BLOB',
      jpg_1: 'BLOB',
      label_0: 'DOUBLE',
      label_1: 'DOUBLE',
      model_0: 'VARCHAR',
      model_1: 'VARCHAR',
      pair_id: 'VARCHAR',
      split: 'VARCHAR',
      soft: 'DOUBLE',
      margin: 'DOUBLE',
      disagreement: 'DOUBLE',
      votes_a: 'INTEGER',
      votes_b: 'INTEGER',
      p_m1: 'DOUBLE',
      p_m2: 'DOUBLE',
      p_m3: 'DOUBLE',
      p_m4: 'DOUBLE',
    });
    const manifest = await readManifest(dir);
    assert.equal(manifest.runs.at(-1)!.stage, 'export');
  });

  test('the half tie policy exports ties as label_0 = 0.5 when asked to keep them', async () => {
    const out = join(root, 'out-half');
    const summary = await runExport(dir, { rule: 'majority.ties-half', out, keepTies: true });
    const rows = await checkExport(join(out, 'data/*.parquet'), 'majority.ties-half', majorityLabel);
    const ties = rows.filter((r) => r.label_0 === 0.5);
    assert.ok(ties.length > 0);
    assert.ok(ties.every((r) => r.votes_a === r.votes_b));
    assert.deepEqual(summary.byLabel, {
      '1': rows.filter((r) => r.label_0 === 1).length,
      '0': rows.filter((r) => r.label_0 === 0).length,
      '0.5': ties.length,
    });
    assert.equal(rows.length, 26);
  });

  test('a single .parquet file, and a split filter', async () => {
    const out = join(root, 'train.parquet');
    const summary = await runExport(dir, { rule: 'majority', out, splits: ['train'] });
    assert.deepEqual(summary.files, ['train.parquet']);
    const rows = (await query(`SELECT pair_id, split FROM read_parquet(${sql(out)})`)) as Array<{ pair_id: string; split: string }>;
    const expected = [...(await consensusRows('majority')).values()].filter((r) => r.kept && r.split === 'train');
    assert.deepEqual(rows.map((r) => r.pair_id).sort(), expected.map((r) => r.pair_id as string).sort());
    assert.ok(rows.length > 0 && rows.length < [...(await consensusRows('majority')).values()].filter((r) => r.kept).length);
    await assert.rejects(runExport(dir, { rule: 'majority', out: join(root, 'big.parquet'), maxPartBytes: 1000 }), /pass a folder/);
  });

  test('an export over an earlier one replaces it whole', async () => {
    const out = join(root, 'out-replace');
    await runExport(dir, { rule: 'majority.ties-half', out, rowsPerPart: 3, keepTies: true });
    const second = await runExport(dir, { rule: 'majority', out, rowsPerPart: 100 });
    assert.deepEqual(second.files, ['data/train-00000-of-00001.parquet', 'data/validation_unique-00000-of-00001.parquet', 'README.md']);
    await checkExport(join(out, 'data/*.parquet'), 'majority', majorityLabel);
  });

  test('bad requests are refused with one clear line', async () => {
    await assert.rejects(runExport(dir, { rule: 'nope', out: join(root, 'x') }), /no consensus\/nope/);
    await assert.rejects(
      runExport(dir, { rule: 'majority', out: join(dir, 'export') }),
      (e: Error) => e instanceof ExportError && /outside the dataset/.test(e.message),
    );
    await assert.rejects(runExport(dir, { rule: 'majority', out: join(root, 'y'), rowGroupSize: 257 }), /1\.\.256/);
    await assert.rejects(runExport(dir, { rule: 'majority', out: join(root, 'z'), splits: ['nowhere'] }), /no kept pair in split nowhere/);
  });
});
