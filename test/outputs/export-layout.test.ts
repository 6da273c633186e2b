// The export folder as HF datasets and the PyTorch Diffusion-DPO trainers read it: one group of
// data/<split>-<k>-of-<n>.parquet files per split and a dataset card whose `configs:` block names those splits; ties
// (label_0 = 0.5, which both trainers train as "jpg_0 wins") only with --keep-ties; model_0/model_1 from images/.
// Built over the bundled Pick-a-Pic sample (two splits, four models) and a copy of it without model columns.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { readRows } from '../../src/io/arrow-table.ts';
import { writeParquetPart } from '../../src/io/parquet.ts';
import { runConsensus } from '../../src/consensus/run.ts';
import { SCORE_SPECS, type MetricInfo } from '../../src/core/schema.ts';
import { ExportError, runExport } from '../../src/export/export.ts';
import { seededRandom } from '../support/pickapic-fixture.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';

const REPO = new URL('../..', import.meta.url).pathname;
const TSX = import.meta.resolve('tsx');
const BDPO = join(REPO, 'bin/bdpo.cjs');
const SAMPLE = join(REPO, 'data/pickapic');
const HF_FILE = /^data\/([A-Za-z0-9._~-]+)-(\d{5})-of-(\d{5})\.parquet$/;

let root: string;
let dir: string;
let duck: DuckDBInstance;
let db: DuckDBConnection;

const sql = (text: string): string => `'${text.replaceAll("'", "''")}'`;

async function query(text: string): Promise<Record<string, unknown>[]> {
  return (await db.runAndReadAll(text)).getRowObjectsJS() as Record<string, unknown>[];
}

/** A dataset ingested from `source` with seeded scores of two metrics, and consensus/majority{,.ties-half}. */
async function scoredDataset(source: string, out: string): Promise<void> {
  await ingestPickapic([source], { out });
  const random = seededRandom(11);
  const keys: Array<[string, string]> = [];
  for await (const row of readRows(out, 'images')) keys.push([row.image_id, row.prompt_id]);
  for (const m of ['m1', 'm2']) {
    await writeParquetPart(out, `scores/${m}/part-0.parquet`, SCORE_SPECS, {
      image_id: keys.map((k) => k[0]),
      prompt_id: keys.map((k) => k[1]),
      score: keys.map(() => random()),
      metric_version: keys.map(() => 'v1'),
    });
    const info: MetricInfo = { name: m, kind: 'clip', version: 'v1', score: 'cos', temperature: 1 };
    await writeFile(join(out, 'scores', m, 'metric.json'), JSON.stringify(info));
  }
  await runConsensus(out, { rule: 'majority' });
  await runConsensus(out, { rule: 'majority', ties: 'half' });
}

function bdpo(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX, BDPO, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function listTree(folder: string, prefix = ''): Promise<string[]> {
  const names: string[] = [];
  for (const entry of await readdir(folder, { withFileTypes: true })) {
    if (entry.isDirectory()) names.push(...(await listTree(join(folder, entry.name), `${prefix}${entry.name}/`)));
    else names.push(`${prefix}${entry.name}`);
  }
  return names.sort();
}

/** The `configs:` block of a dataset card: split name → data_files path. */
function cardSplits(card: string): Map<string, string> {
  const front = /^---\n([\s\S]*?)\n---\n/.exec(card);
  assert.ok(front, 'the card opens with a YAML front matter block');
  assert.match(front[1]!, /^configs:\n- config_name: default\n {2}data_files:\n/m);
  const splits = new Map<string, string>();
  for (const m of front[1]!.matchAll(/- split: (\S+)\n {4}path: (\S+)/g)) splits.set(m[1]!, m[2]!);
  return splits;
}

before(async () => {
  root = await makeTempDir('bdpo-export-layout-');
  dir = join(root, 'sample');
  await scoredDataset(SAMPLE, dir);
  duck = await DuckDBInstance.create(':memory:', { threads: '1' });
  db = await duck.connect();
});

after(async () => {
  db?.closeSync();
  duck?.closeSync();
  if (root) await removeDir(root);
});

describe('export layout', () => {
  test('one group of data/<split>-<k>-of-<n>.parquet files per split, and a card whose configs block lists each split', async () => {
    const out = join(root, 'out-splits');
    const summary = await runExport(dir, { rule: 'majority', out, rowsPerPart: 4 });
    const tree = await listTree(out);
    assert.ok(tree.includes('README.md'), `card in ${tree.join(', ')}`);
    const dataFiles = tree.filter((f) => f !== 'README.md');
    assert.ok(dataFiles.length > 2);
    const groups = new Map<string, Array<{ k: number; n: number }>>();
    for (const file of dataFiles) {
      const m = HF_FILE.exec(file);
      assert.ok(m, `${file} follows data/<split>-<k:05d>-of-<n:05d>.parquet`);
      groups.set(m[1]!, [...(groups.get(m[1]!) ?? []), { k: Number(m[2]), n: Number(m[3]) }]);
    }
    for (const [split, parts] of groups) {
      assert.deepEqual(
        parts.map((p) => p.k),
        parts.map((_, i) => i),
        `${split}: k counts from 0`,
      );
      assert.ok(
        parts.every((p) => p.n === parts.length),
        `${split}: n is the number of files`,
      );
    }
    const perFile = await query(
      'SELECT filename, list(DISTINCT split) AS splits, count(*) AS n ' +
        `FROM read_parquet(${sql(join(out, 'data/*.parquet'))}, filename = true) GROUP BY filename`,
    );
    assert.equal(perFile.length, dataFiles.length);
    for (const row of perFile) {
      const name = String(row.filename).slice(out.length + 1);
      assert.deepEqual(row.splits, [HF_FILE.exec(name)![1]], `${name} holds one split, the one it is named for`);
    }
    const kept = await query(
      `SELECT split, count(*) AS n FROM read_parquet(${sql(join(dir, 'consensus/majority/*.parquet'))}) WHERE kept GROUP BY split`,
    );
    assert.deepEqual(new Set(groups.keys()), new Set(kept.map((r) => String(r.split))));
    assert.deepEqual(new Set(groups.keys()), new Set(['train', 'validation_unique']));
    const card = cardSplits(await readFile(join(out, 'README.md'), 'utf8'));
    assert.deepEqual(new Map([...card].sort()), new Map([...groups.keys()].sort().map((s) => [s, `data/${s}-*.parquet`])));
    assert.deepEqual(summary.files.slice().sort(), tree);
    // The new layout is recognised as ours: an export over it replaces it.
    const again = await runExport(dir, { rule: 'majority', out, rowsPerPart: 100 });
    assert.deepEqual(await listTree(out), again.files.slice().sort());
    assert.deepEqual(await listTree(out), [
      'README.md',
      'data/train-00000-of-00001.parquet',
      'data/validation_unique-00000-of-00001.parquet',
    ]);
  });

  test('a folder holding a card and data files of someone else is not ours to replace', async () => {
    const foreign = join(root, 'foreign-card');
    await writeParquetPart(foreign, 'data/train-00000-of-00001.parquet', SCORE_SPECS, {
      image_id: ['a'],
      prompt_id: ['b'],
      score: [1],
      metric_version: ['v'],
    });
    await writeFile(join(foreign, 'README.md'), '# my dataset\n');
    await assert.rejects(
      runExport(dir, { rule: 'majority', out: foreign }),
      (e: Error) => e instanceof ExportError && /not an export/.test(e.message),
    );
    assert.equal(await readFile(join(foreign, 'README.md'), 'utf8'), '# my dataset\n');
    // An export of ours in the earlier layout (part files at the top) is still ours to replace.
    const legacy = join(root, 'legacy');
    await writeParquetPart(
      legacy,
      'part-00000.parquet',
      SCORE_SPECS,
      { image_id: ['a'], prompt_id: ['b'], score: [1], metric_version: ['v'] },
      {
        metadata: { source: 'balanced-dpo export' },
      },
    );
    const replaced = await runExport(dir, { rule: 'majority', out: legacy });
    assert.deepEqual(await listTree(legacy), replaced.files.slice().sort());
  });

  test('ties never reach the export without --keep-ties; they are left out and counted', async () => {
    const out = join(root, 'out-no-ties');
    const summary = await runExport(dir, { rule: 'majority.ties-half', out });
    const ties = await query(
      `SELECT count(*) AS n FROM read_parquet(${sql(join(dir, 'consensus/majority.ties-half/*.parquet'))}) WHERE kept AND label = 0.5`,
    );
    const tieCount = Number(ties[0]!.n);
    assert.ok(tieCount > 0);
    const labels = await query(`SELECT label_0, count(*) AS n FROM read_parquet(${sql(join(out, 'data/*.parquet'))}) GROUP BY label_0`);
    assert.ok(
      labels.every((r) => r.label_0 === 0 || r.label_0 === 1),
      labels.map((r) => `${String(r.label_0)} ×${String(r.n)}`).join(', '),
    );
    assert.equal(summary.tiesLeftOut, tieCount);
    assert.equal(summary.pairs + tieCount, 26);
    assert.equal(summary.byLabel['0.5'], undefined);
  });

  test('--keep-ties exports them as label_0 = 0.5 and says how the trainers will read them', async () => {
    const out = join(root, 'out-keep-ties');
    const result = await bdpo(['export', dir, '--rule', 'majority.ties-half', '--out', out, '--keep-ties']);
    assert.equal(result.code, 0, result.stderr);
    const tied = await query(
      `SELECT count(*) AS n FROM read_parquet(${sql(join(out, 'data/*.parquet'))}) WHERE label_0 = 0.5 AND label_1 = 0.5`,
    );
    const n = Number(tied[0]!.n);
    assert.ok(n > 0);
    assert.ok(
      `${result.stdout}${result.stderr}`.includes(
        `${n} tied pairs exported with label_0 = 0.5: diffusers and DiffusionDPO train them as jpg_0 wins`,
      ),
      `${result.stdout}\n${result.stderr}`,
    );
    const without = await bdpo(['export', dir, '--rule', 'majority.ties-half', '--out', join(root, 'out-cli-no-ties')]);
    assert.equal(without.code, 0, without.stderr);
    assert.match(without.stdout, new RegExp(`${n} tied pairs left out`));
  });

  test('model_0 and model_1 come from the images table, null where unknown', async () => {
    const out = join(root, 'out-models');
    await runExport(dir, { rule: 'majority', out });
    const models = new Map<string, string | null>();
    for await (const row of readRows(dir, 'images')) models.set(row.image_id, row.model);
    const consensus = new Map(
      (await query(`SELECT pair_id, image_a, image_b FROM read_parquet(${sql(join(dir, 'consensus/majority/*.parquet'))})`)).map((r) => [
        r.pair_id,
        r,
      ]),
    );
    const rows = await query(`SELECT pair_id, model_0, model_1 FROM read_parquet(${sql(join(out, 'data/*.parquet'))})`);
    assert.ok(rows.length > 0);
    for (const row of rows) {
      const pair = consensus.get(row.pair_id)!;
      assert.equal(row.model_0, models.get(String(pair.image_a)));
      assert.equal(row.model_1, models.get(String(pair.image_b)));
    }
    assert.ok(rows.some((r) => r.model_0 === 'Dreamlike Photoreal 2.0' || r.model_1 === 'Dreamlike Photoreal 2.0'));

    // The same sample without model columns: the images have no model, the export says null.
    const bare = join(root, 'bare-src');
    await query(`CREATE OR REPLACE TABLE bare AS SELECT * EXCLUDE (model_0, model_1) FROM read_parquet(${sql(join(SAMPLE, '*.parquet'))})`);
    await mkdir(bare, { recursive: true });
    await query(`COPY bare TO ${sql(join(bare, 'train-00000-of-00001.parquet'))} (FORMAT parquet)`);
    const bareDir = join(root, 'bare');
    await scoredDataset(bare, bareDir);
    const bareOut = join(root, 'out-bare');
    await runExport(bareDir, { rule: 'majority', out: bareOut });
    const nulls = await query(
      `SELECT count(*) AS n, count(model_0) AS m0, count(model_1) AS m1 FROM read_parquet(${sql(join(bareOut, 'data/*.parquet'))})`,
    );
    assert.ok(Number(nulls[0]!.n) > 0);
    assert.equal(Number(nulls[0]!.m0), 0);
    assert.equal(Number(nulls[0]!.m1), 0);
  });
});
