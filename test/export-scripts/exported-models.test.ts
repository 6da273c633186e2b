// `bdpo label` on the models scripts/export/ wrote (test/fixtures/export: tiny random models of the real
// architectures, built by transformers and open_clip) gives the scores those libraries' own preprocessing and forward
// pass give on real photographs (expected.json, made by scripts/export/make_fixtures.py). Reads committed files only.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { ingestGenerations } from '../../src/ingest/index.ts';
import { runLabel } from '../../src/label/index.ts';
import { loadMetricSpec } from '../../src/models/metric-spec.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';

const FIXTURES = new URL('../fixtures/export/', import.meta.url).pathname;

interface Expected {
  photos_dir: string;
  photos: Array<{ file: string; prompt: string; sha256: string }>;
  scores: Record<string, number[]>;
}

/** Metric name → absolute tolerance: 1e-4 on cosines (and the ≈5-scale aesthetic score), 1e-2 on 100× scales. */
const METRICS: Record<string, number> = {
  pickscore: 1e-2,
  'hf-clip': 1e-4,
  hps: 1e-4,
  'hps-legacy': 1e-4,
  'open-clip': 1e-4,
  aesthetic: 1e-4,
};

let root: string;
let dataset: string;
let expected: Expected;
let duck: DuckDBInstance;
let db: DuckDBConnection;
/** Photo index by image id (sha256 of its bytes). */
const photoOf = new Map<string, number>();

const sql = (text: string): string => `'${text.replaceAll("'", "''")}'`;

before(async () => {
  expected = JSON.parse(await readFile(join(FIXTURES, 'expected.json'), 'utf8')) as Expected;
  root = await makeTempDir('bdpo-export-scripts-');
  const images = join(root, 'photos');
  await mkdir(images);
  // Generated-image names: <prompt index>.<ext>, prompt i of the list below.
  for (const [i, photo] of expected.photos.entries()) {
    const source = join(FIXTURES, expected.photos_dir, photo.file);
    const bytes = await readFile(source);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), photo.sha256, `${photo.file} is not the photo scored`);
    photoOf.set(photo.sha256, i);
    await copyFile(source, join(images, `${String(i).padStart(5, '0')}${extname(photo.file)}`));
  }
  const prompts = join(root, 'prompts.tsv');
  await writeFile(prompts, `Prompt\n${expected.photos.map((p) => p.prompt).join('\n')}\n`);
  dataset = join(root, 'dataset');
  const ingested = await ingestGenerations(images, { out: dataset, prompts, model: 'photos' });
  assert.equal(ingested.tables.images, expected.photos.length, 'every photo ingested');
  duck = await DuckDBInstance.create(':memory:', { threads: '1' });
  db = await duck.connect();
});

after(async () => {
  db?.closeSync();
  duck?.closeSync();
  if (root) await removeDir(root);
});

/** Scores by photo index of one labelled metric. */
async function labelledScores(dir: string, metric: string): Promise<number[]> {
  const rows = (
    await db.runAndReadAll(`SELECT image_id, score FROM read_parquet(${sql(join(dir, 'scores', metric, '*.parquet'))})`)
  ).getRowObjectsJS() as Array<{ image_id: string; score: number }>;
  const scores = new Array<number>(expected.photos.length).fill(Number.NaN);
  for (const row of rows) scores[photoOf.get(row.image_id)!] = row.score;
  return scores;
}

async function label(dir: string, metricJsons: string[]): Promise<void> {
  await runLabel(dir, { metrics: metricJsons, device: 'cpu', intraOpNumThreads: 1, workers: 1, batchSize: 8 });
}

function worstDifference(actual: readonly number[], wanted: readonly number[]): { at: number; diff: number } {
  let worst = { at: -1, diff: 0 };
  actual.forEach((value, i) => {
    const diff = Number.isFinite(value) ? Math.abs(value - wanted[i]!) : Number.POSITIVE_INFINITY;
    if (!(diff <= worst.diff)) worst = { at: i, diff };
  });
  return worst;
}

describe('exported checkpoints score as their libraries do', () => {
  before(async () => {
    await label(
      dataset,
      Object.keys(METRICS).map((name) => join(FIXTURES, `${name}.json`)),
    );
  });

  for (const [name, tolerance] of Object.entries(METRICS)) {
    test(name, async () => {
      const spec = await loadMetricSpec(join(FIXTURES, `${name}.json`));
      const scores = await labelledScores(dataset, name);
      const wanted = expected.scores[name]!;
      assert.equal(wanted.length, expected.photos.length);
      const worst = worstDifference(scores, wanted);
      assert.ok(
        worst.diff <= tolerance,
        `${name}: label (preprocess ${spec.preprocess}) scored ${expected.photos[worst.at]?.file} ${scores[worst.at]}, ` +
          `the library ${wanted[worst.at]} (|Δ| ${worst.diff} > ${tolerance})`,
      );
    });
  }
});

describe('the committed exports', () => {
  test('are the files make_fixtures.py wrote (manifest sha256s)', async () => {
    const manifest = JSON.parse(await readFile(join(FIXTURES, 'manifest.json'), 'utf8')) as { files: Record<string, string> };
    assert.ok(Object.keys(manifest.files).length >= Object.keys(METRICS).length * 2);
    for (const [file, sha256] of Object.entries(manifest.files)) {
      assert.equal(
        createHash('sha256')
          .update(await readFile(join(FIXTURES, file)))
          .digest('hex'),
        sha256,
        file,
      );
    }
  });

  test("name each metric's reference preprocessing", async () => {
    const profiles: Record<string, string> = {};
    for (const name of Object.keys(METRICS)) profiles[name] = (await loadMetricSpec(join(FIXTURES, `${name}.json`))).preprocess;
    assert.deepEqual(profiles, {
      pickscore: 'hf-clip',
      'hf-clip': 'hf-clip',
      hps: 'hpsv2',
      'hps-legacy': 'hpsv2-legacy',
      'open-clip': 'openai-clip',
      aesthetic: 'openai-clip',
    });
  });
});

// Optional: where a Python with torch, transformers and open_clip exists, the script remakes the same scores.
const PYTHON = process.env.BDPO_EXPORT_PYTHON ?? 'python3';
// find_spec, not import: transformers may need the scripts' own compatibility shim to import on an older torch.
const probe = spawnSync(
  PYTHON,
  ['-c', "import importlib.util as u, torch, torchvision; assert u.find_spec('transformers') and u.find_spec('open_clip')"],
  { encoding: 'utf8' },
);
const noPython =
  probe.status === 0 ? false : `${PYTHON} lacks torch, torchvision, transformers or open_clip (set BDPO_EXPORT_PYTHON to one that can)`;

test('make_fixtures.py remakes the expected scores', { skip: noPython, timeout: 300_000 }, async () => {
  const out = join(root, 'remade');
  const script = new URL('../../scripts/export/make_fixtures.py', import.meta.url).pathname;
  const run = spawnSync(PYTHON, [script, '--out', out], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr.slice(-2000));
  const remade = JSON.parse(await readFile(join(out, 'expected.json'), 'utf8')) as Expected;
  for (const [name, wanted] of Object.entries(expected.scores)) {
    const worst = worstDifference(remade.scores[name]!, wanted);
    assert.ok(worst.diff <= 1e-5, `${name}: remade score of ${expected.photos[worst.at]?.file} differs by ${worst.diff}`);
  }
});

test('each exporter command writes a metric that label scores', { skip: noPython, timeout: 300_000 }, async () => {
  const scripts = new URL('../../scripts/export/', import.meta.url).pathname;
  const tokenizer = `keep:${join(FIXTURES, '../clip/tokenizer.json')}`;
  const commands: Record<string, string[]> = {
    pickscore: ['export_hf_clip.py', '--kind', 'pickscore', '--tokenizer', tokenizer],
    clip: ['export_hf_clip.py', '--kind', 'clip', '--layout', 'split', '--score', 'clip-100', '--tokenizer', tokenizer],
    hps: ['export_hps.py'],
    'open-clip': ['export_open_clip.py', '--name', 'open-clip'],
    aesthetic: ['export_aesthetic.py'],
  };
  const metrics: string[] = [];
  for (const [name, [script, ...args]] of Object.entries(commands)) {
    const out = join(root, 'cli', name);
    const run = spawnSync(PYTHON, [join(scripts, script!), '--random-tiny', '1', '--out', out, ...args], { encoding: 'utf8' });
    assert.equal(run.status, 0, `${script}: ${run.stderr.slice(-2000)}`);
    metrics.push(join(out, `${name}.json`));
  }
  // A copy: these metrics reuse the names of the fixtures' metrics with other models.
  const copy = join(root, 'cli-dataset');
  await cp(dataset, copy, { recursive: true });
  const summary = await runLabel(copy, { metrics, device: 'cpu', intraOpNumThreads: 1, workers: 1 });
  for (const metric of summary.metrics) assert.equal(metric.scored, expected.photos.length, metric.name);
  for (const name of Object.keys(commands)) {
    const scores = await labelledScores(copy, name);
    assert.ok(scores.every(Number.isFinite), `${name}: ${scores}`);
  }
});
