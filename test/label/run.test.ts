// runLabel end to end: tiny real ONNX scorers (test/support/metrics-fixture.ts), datasets from the bundled Pick-a-Pic
// sample or written by hand, score Parquet read back by DuckDB. Reference scores come from the same ONNX files run
// one image at a time through createSession, normalised and combined in float64 here.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import ort from 'onnxruntime-node';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { imageId, promptId } from '../../src/core/ids.ts';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { readRows, writeRowsPart } from '../../src/io/arrow-table.ts';
import { readManifest } from '../../src/core/manifest.ts';
import { loadMetricSpec } from '../../src/models/metric-spec.ts';
import { MetricSpecError } from '../../src/core/errors.ts';
import { preprocessImage } from '../../src/models/preprocess.ts';
import { runLabel, type LabelOptions, type LabelSummary } from '../../src/label/run.ts';
import type { MetricInfo } from '../../src/core/schema.ts';
import { ClipTokenizer } from '../../src/models/tokenizer.ts';
import { groupByVision, ModelHub } from '../../src/models/towers.ts';
import { createSession, float32Output, type OnnxSession } from '../../src/models/session.ts';
import type { ImageRow, PromptRow, RejectRow } from '../../src/core/schema.ts';
import { NOT_AN_IMAGE, noiseImage, truncatedJpeg } from '../support/pickapic-fixture.ts';
import { aestheticReference, PICK_LOGIT_SCALE, SPLIT_CLIP, writeMetricsFixture, type MetricsFixture } from '../support/metrics-fixture.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';

const METRICS = ['pickscore', 'clip', 'hps', 'aesthetic'] as const;
type MetricName = (typeof METRICS)[number];
/** Absolute tolerance on every score (the largest are PickScore's ≈ ±7 and aesthetic's ≈ 7). */
const TOL = 1e-5;
const BASE_OPTIONS = { device: 'cpu', intraOpNumThreads: 1, batchSize: 16 } as const;

let root: string;
let fx: MetricsFixture;
/** The bundled sample, ingested and never labelled: each scenario labels its own copy. */
let sample: string;
let db: DuckDBConnection;
let duck: DuckDBInstance;
let direct: DirectScorer;

before(async () => {
  root = await makeTempDir('bdpo-label-');
  fx = await writeMetricsFixture(join(root, 'models'));
  sample = join(root, 'sample');
  await ingestPickapic([new URL('../../data/pickapic', import.meta.url).pathname], { out: sample });
  duck = await DuckDBInstance.create(':memory:', { threads: '1' });
  db = await duck.connect();
  direct = await DirectScorer.open(fx);
});

after(async () => {
  await direct?.dispose();
  db?.closeSync();
  duck?.closeSync();
  if (root) await removeDir(root);
});

async function copyOfSample(name: string): Promise<string> {
  const dir = join(root, name);
  await cp(sample, dir, { recursive: true });
  return dir;
}

const sql = (text: string): string => `'${text.replaceAll("'", "''")}'`;

async function query(text: string): Promise<Record<string, unknown>[]> {
  return (await db.runAndReadAll(text)).getRowObjectsJS() as Record<string, unknown>[];
}

interface ScoreRow {
  image_id: string;
  prompt_id: string;
  score: number;
  metric_version: string;
}

async function scoreRows(dir: string, metric: string): Promise<ScoreRow[]> {
  const rows = await query(
    `SELECT image_id, prompt_id, score, metric_version FROM read_parquet(${sql(join(dir, 'scores', metric, '*.parquet'))})
     ORDER BY image_id, prompt_id`,
  );
  return rows as unknown as ScoreRow[];
}

async function imageRows(dir: string): Promise<ImageRow[]> {
  const rows: ImageRow[] = [];
  for await (const row of readRows(dir, 'images')) rows.push({ ...row, bytes: Uint8Array.from(row.bytes) });
  return rows;
}

async function promptTexts(dir: string): Promise<Map<string, string>> {
  const texts = new Map<string, string>();
  for await (const row of readRows(dir, 'prompts')) texts.set(row.prompt_id, row.text);
  return texts;
}

/**
 * Every file under a folder by relative path: sha256, plus the mtime for Parquet parts (proof they were not rewritten;
 * metric.json is rewritten on every run, with the same bytes).
 */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const hash = createHash('sha256')
      .update(await readFile(path))
      .digest('hex');
    out.set(relative(dir, path), entry.name.endsWith('.parquet') ? `${hash} ${(await stat(path)).mtimeMs}` : hash);
  }
  return out;
}

// ---- the independent scorer -------------------------------------------------------------------------------------

const unit = (v: ArrayLike<number>): number[] => {
  const a = Array.from(v);
  const norm = Math.sqrt(a.reduce((s, x) => s + x * x, 0));
  return a.map((x) => x / norm);
};
const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

/** The fixture's ONNX files run one image and one prompt at a time; every score formula applied here in float64. */
class DirectScorer {
  private constructor(
    private readonly text: OnnxSession,
    private readonly vision: OnnxSession,
    private readonly full: OnnxSession,
    private readonly tokenizer: ClipTokenizer,
  ) {}

  static async open(fixture: MetricsFixture): Promise<DirectScorer> {
    const open = (path: string) => createSession(path, { device: 'cpu', intraOpNumThreads: 1 });
    return new DirectScorer(
      await open(fixture.models.text),
      await open(fixture.models.vision),
      await open(fixture.models.full),
      await ClipTokenizer.fromFile(fixture.tokenizer),
    );
  }

  private readonly memo = new Map<string, Promise<Record<MetricName, number>>>();

  /** The four scores of one image under one prompt (memoised: several tests ask for the same rows). */
  scores(bytes: Uint8Array, text: string): Promise<Record<MetricName, number>> {
    const key = `${imageId(bytes)}:${text}`;
    let result = this.memo.get(key);
    if (!result) {
      result = this.compute(bytes, text);
      this.memo.set(key, result);
    }
    return result;
  }

  private async compute(bytes: Uint8Array, text: string): Promise<Record<MetricName, number>> {
    const size = SPLIT_CLIP.imageSize!;
    const tokens = this.tokenizer.encodeBatch([text]);
    const ids = {
      input_ids: { data: tokens.inputIds, dims: tokens.shape },
      attention_mask: { data: tokens.attentionMask, dims: tokens.shape },
    };
    const small = await preprocessImage(bytes, { size });
    // hps (the full export; its metric JSON leaves image_size at 224) and aesthetic preprocess as their references do.
    const large = await preprocessImage(bytes, { profile: 'hpsv2' });
    const smallOpenai = await preprocessImage(bytes, { size, profile: 'openai-clip' });
    const embed = async (pixels: Float32Array) =>
      unit(float32Output(await this.vision.run({ pixel_values: { data: pixels, dims: [1, 3, size, size] } }), 'image_embeds').data);
    const image = await embed(small);
    const caption = unit(float32Output(await this.text.run(ids), 'text_embeds').data);
    const full = await this.full.run({ ...ids, pixel_values: { data: large, dims: [1, 3, 224, 224] } });
    const cos = dot(image, caption);
    return {
      pickscore: PICK_LOGIT_SCALE * cos,
      clip: 100 * Math.max(cos, 0),
      hps: dot(float32Output(full, 'text_embeds').data, float32Output(full, 'image_embeds').data),
      aesthetic: aestheticReference(await embed(smallOpenai)),
    };
  }

  async dispose(): Promise<void> {
    await Promise.all([this.text.dispose(), this.vision.dispose(), this.full.dispose()]);
  }
}

// ---- watching ONNX Runtime --------------------------------------------------------------------------------------

interface SessionLog {
  /** Model file names, one entry per session ONNX Runtime created. */
  created: string[];
  /** Inference calls per model file name. */
  runs: Map<string, number>;
}

/** Runs `action` while counting the sessions ONNX Runtime creates and the inference calls each receives. */
async function watchSessions<T>(action: () => Promise<T>): Promise<{ result: T; log: SessionLog }> {
  type Create = (...args: unknown[]) => Promise<ort.InferenceSession>;
  const factory = ort.InferenceSession as unknown as { create: Create };
  const original = factory.create;
  const log: SessionLog = { created: [], runs: new Map() };
  factory.create = async (...args: unknown[]) => {
    const session = await original.apply(ort.InferenceSession, args);
    const name = typeof args[0] === 'string' ? basename(args[0]) : '<bytes>';
    log.created.push(name);
    const run = session.run.bind(session) as (...runArgs: unknown[]) => ReturnType<ort.InferenceSession['run']>;
    (session as unknown as { run: typeof run }).run = (...runArgs: unknown[]) => {
      log.runs.set(name, (log.runs.get(name) ?? 0) + 1);
      return run(...runArgs);
    };
    return session;
  };
  try {
    return { result: await action(), log };
  } finally {
    factory.create = original;
  }
}

function label(dir: string, metrics: readonly MetricName[], extra: Partial<LabelOptions> = {}): Promise<LabelSummary> {
  return runLabel(dir, { ...BASE_OPTIONS, metrics: metrics.map((m) => fx.metrics[m]), ...extra });
}

function metricSummary(summary: LabelSummary, name: string) {
  const found = summary.metrics.find((m) => m.name === name);
  assert.ok(found, `summary has no metric ${name}`);
  return found;
}

// ---- the bundled sample: 2 images parts (25 + 9 images), 8 prompts -------------------------------------------------

describe('label the bundled Pick-a-Pic sample', () => {
  let dir: string;
  let first: LabelSummary;
  let firstLog: SessionLog;
  let images: ImageRow[];
  let texts: Map<string, string>;

  before(async () => {
    dir = await copyOfSample('labelled');
    images = await imageRows(dir);
    texts = await promptTexts(dir);
    ({ result: first, log: firstLog } = await watchSessions(() => label(dir, ['pickscore', 'clip', 'hps'])));
  });

  test('the sample is what these tests assume', () => {
    assert.equal(images.length, 34);
    assert.equal(new Set(images.map((r) => `${r.image_id}:${r.prompt_id}`)).size, 34);
    assert.equal(texts.size, 8);
  });

  test('every (image, prompt) is scored exactly once per metric, with the metric version and info', async () => {
    const expected = images.map((r) => `${r.image_id}:${r.prompt_id}`).sort();
    for (const name of ['pickscore', 'clip', 'hps'] as const) {
      const rows = await scoreRows(dir, name);
      assert.deepEqual(
        rows.map((r) => `${r.image_id}:${r.prompt_id}`),
        expected,
        name,
      );
      const spec = await loadMetricSpec(fx.metrics[name]);
      assert.ok(
        rows.every((r) => r.metric_version === spec.version),
        `${name}: metric_version`,
      );
      const info = JSON.parse(await readFile(join(dir, 'meta', 'scores', `${name}.json`), 'utf8')) as MetricInfo;
      const { provenance, ...rest } = info;
      assert.deepEqual(rest, { name, kind: spec.kind, version: spec.version, score: spec.score, temperature: spec.temperature });
      assert.equal((provenance as { preprocess?: string } | undefined)?.preprocess, spec.preprocess, `${name}: provenance`);
      assert.deepEqual(
        {
          scored: metricSummary(first, name).scored,
          written: metricSummary(first, name).partsWritten,
          skipped: metricSummary(first, name).partsSkipped,
        },
        { scored: 34, written: 2, skipped: 0 },
        name,
      );
    }
    // docs/design.md §5 default temperatures: PickScore 1, cosine 0.01; clip-100 is on PickScore's scale.
    const taus = await Promise.all(
      (['pickscore', 'clip', 'hps'] as const).map(async (m) => (await loadMetricSpec(fx.metrics[m])).temperature),
    );
    assert.deepEqual(taus, [1, 1, 0.01]);
    assert.deepEqual(first.counts, { read: 34, taken: 34, rejected: 0, byReason: {} });
    const columns = await query(`DESCRIBE SELECT * FROM read_parquet(${sql(join(dir, 'scores/pickscore/*.parquet'))})`);
    assert.deepEqual(
      columns.map((c) => `${c.column_name} ${c.column_type}`),
      ['image_id VARCHAR', 'prompt_id VARCHAR', 'score DOUBLE', 'metric_version VARCHAR'],
    );
  });

  test('scores equal the towers run directly: logit_scale·cos, 100·max(cos, 0), cos of a full export', async () => {
    const byKey = new Map(images.map((r) => [`${r.image_id}:${r.prompt_id}`, r]));
    const rows = {
      pickscore: await scoreRows(dir, 'pickscore'),
      clip: await scoreRows(dir, 'clip'),
      hps: await scoreRows(dir, 'hps'),
    };
    let worst = 0;
    let negative = 0;
    for (let i = 0; i < rows.pickscore.length; i++) {
      const image = byKey.get(`${rows.pickscore[i]!.image_id}:${rows.pickscore[i]!.prompt_id}`)!;
      const expected = await direct.scores(image.bytes, texts.get(image.prompt_id)!);
      for (const name of ['pickscore', 'clip', 'hps'] as const) {
        const got = rows[name][i]!.score;
        worst = Math.max(worst, Math.abs(got - expected[name]));
        assert.ok(Math.abs(got - expected[name]) <= TOL, `${name} of ${image.source_ref}: ${got} vs ${expected[name]}`);
      }
      if (expected.pickscore < 0) negative++;
    }
    // Both signs of the cosine occur, so clip-100's clamp at 0 is exercised.
    assert.ok(negative > 0 && negative < 34, `${negative} negative cosines`);
    assert.ok(worst < TOL);
  });

  test('metrics naming the same towers share one session and one forward pass per batch', () => {
    // Three model files → three sessions (not five). 34 images in batches of 16 → 16 + 9 and 9: 3 batches.
    assert.deepEqual([...firstLog.created].sort(), ['clip-full.onnx', 'clip-text.onnx', 'clip-vision.onnx']);
    assert.equal(firstLog.runs.get('clip-vision.onnx'), 3, 'vision tower once per batch for pickscore and clip');
    // Each batch holds a prompt not seen before; clip finds every text embedding pickscore computed.
    assert.equal(firstLog.runs.get('clip-text.onnx'), 3, 'text tower once per batch for pickscore and clip');
    // The full export: image embeddings and text embeddings, once per batch each.
    assert.equal(firstLog.runs.get('clip-full.onnx'), 6);
  });

  test('two metrics on one vision tower see the same cosine: clip-100 = (100/logit_scale)·max(pickscore, 0), bit for bit', async () => {
    const pick = await scoreRows(dir, 'pickscore');
    const clip = await scoreRows(dir, 'clip');
    const ratio = 100 / PICK_LOGIT_SCALE; // 2: a power of two, so the scaling is exact
    assert.deepEqual(
      clip.map((r) => r.score),
      pick.map((r) => ratio * Math.max(r.score, 0)),
    );
  });

  test('a second run skips every part, runs no model and leaves every file as it was', async () => {
    const before = await snapshot(join(dir, 'scores'));
    const { result, log } = await watchSessions(() => label(dir, ['pickscore', 'clip', 'hps']));
    for (const name of ['pickscore', 'clip', 'hps']) {
      const m = metricSummary(result, name);
      assert.deepEqual(
        { scored: m.scored, written: m.partsWritten, skipped: m.partsSkipped },
        { scored: 34, written: 0, skipped: 2 },
        name,
      );
    }
    assert.equal(log.runs.size, 0, `inference ran: ${[...log.runs.keys()].join(', ')}`);
    assert.deepEqual(await snapshot(join(dir, 'scores')), before);
  });

  test('a resumed run still reports the images of the units it skipped', async () => {
    // LabelSummary.counts: "skipped units count from the manifest", as ingest's summary does.
    const again = await label(dir, ['pickscore', 'clip', 'hps']);
    assert.deepEqual(again.counts, first.counts);
  });

  test('adding a metric later scores only that metric; the others stay byte for byte', async () => {
    const others = new Map<string, Map<string, string>>();
    for (const name of ['pickscore', 'clip', 'hps']) others.set(name, await snapshot(join(dir, 'scores', name)));
    const { result, log } = await watchSessions(() => label(dir, ['pickscore', 'clip', 'hps', 'aesthetic']));
    const aes = metricSummary(result, 'aesthetic');
    assert.deepEqual({ scored: aes.scored, written: aes.partsWritten, skipped: aes.partsSkipped }, { scored: 34, written: 2, skipped: 0 });
    for (const name of ['pickscore', 'clip', 'hps']) {
      assert.equal(metricSummary(result, name).partsSkipped, 2, name);
      assert.equal(metricSummary(result, name).partsWritten, 0, name);
      assert.deepEqual(await snapshot(join(dir, 'scores', name)), others.get(name), `${name} files changed`);
    }
    // Only the aesthetic path ran: its (shared) vision tower and its head, once per batch; no text tower.
    assert.deepEqual(Object.fromEntries(log.runs), { 'clip-vision.onnx': 3, 'aesthetic-mlp.onnx': 3 });

    const rows = await scoreRows(dir, 'aesthetic');
    assert.equal(rows.length, 34);
    const byKey = new Map(images.map((r) => [`${r.image_id}:${r.prompt_id}`, r]));
    for (const row of rows) {
      const image = byKey.get(`${row.image_id}:${row.prompt_id}`)!;
      const expected = (await direct.scores(image.bytes, texts.get(image.prompt_id)!)).aesthetic;
      assert.ok(Math.abs(row.score - expected) <= TOL, `aesthetic of ${image.source_ref}: ${row.score} vs ${expected}`);
    }
  });
});

test("changing a metric's version under the same name never leaves scores of the old version behind", async () => {
  const dir = await copyOfSample('new-version');
  await label(dir, ['aesthetic']);
  const v2 = await fx.writeMetric('aesthetic-v2.json', {
    ...JSON.parse(await readFile(fx.metrics.aesthetic, 'utf8')),
    version: 'tiny-aesthetic-2',
  });
  // Either the run rescores under the new version or it refuses with a clear error; both are acceptable.
  await runLabel(dir, { ...BASE_OPTIONS, metrics: [v2] }).catch((error: unknown) => {
    assert.ok(error instanceof MetricSpecError, String(error));
  });
  const info = JSON.parse(await readFile(join(dir, 'meta/scores/aesthetic.json'), 'utf8')) as MetricInfo;
  const versions = await query(`SELECT DISTINCT metric_version AS v FROM read_parquet(${sql(join(dir, 'scores/aesthetic/*.parquet'))})`);
  // meta/scores/<metric>.json describes the scores: consensus reads its version and τ for them.
  assert.deepEqual(
    versions.map((r) => r.v),
    [info.version],
  );
});

// ---- ModelHub ---------------------------------------------------------------------------------------------------

test('ModelHub: two metrics naming one vision model share its session and get identical unit embeddings', async () => {
  const pick = await loadMetricSpec(fx.metrics.pickscore);
  const aes = await loadMetricSpec(fx.metrics.aesthetic);
  const hps = await loadMetricSpec(fx.metrics.hps);
  const groups = (specs: (typeof pick)[]) => [...groupByVision(specs).values()].map((g) => g.map((s) => s.name));
  // Same tower, other preprocessing (aesthetic defaults to openai-clip): another forward pass.
  assert.deepEqual(groups([pick, hps, aes]), [['pickscore'], ['hps'], ['aesthetic']]);
  assert.deepEqual(groups([pick, hps, { ...aes, preprocess: 'hf-clip' }]), [['pickscore', 'aesthetic'], ['hps']]);

  const hub = new ModelHub({ device: 'cpu', intraOpNumThreads: 1 });
  try {
    assert.equal(await hub.session(pick.models.vision!), await hub.session(aes.models.vision!));
    const size = SPLIT_CLIP.imageSize!;
    const pixels = new Float32Array(2 * 3 * size * size).map((_, i) => Math.sin(i * 0.013));
    const a = await hub.imageEmbeddings(pick, pixels, 2);
    const b = await hub.imageEmbeddings(aes, pixels, 2);
    assert.deepEqual(b, a);
    for (let i = 0; i < 2; i++) {
      const norm = Math.hypot(...a.data.subarray(i * a.dim, (i + 1) * a.dim));
      assert.ok(Math.abs(norm - 1) < 1e-6, `row ${i} norm ${norm}`);
    }
  } finally {
    await hub.dispose();
  }
});

// ---- bad rows ---------------------------------------------------------------------------------------------------

test('an unreadable image inside an images part is a label reject with its reason; the other rows are scored', async () => {
  const dir = join(root, 'handmade');
  const promptA = 'a lighthouse on a cliff';
  const promptB = 'two cats on a sofa';
  const prompt = (text: string): PromptRow => ({
    prompt_id: promptId(text),
    text,
    source: 'images',
    split: null,
    category: null,
    challenge: null,
    note: null,
    prompt_index: null,
  });
  await writeRowsPart(dir, 'prompts', 'handmade', [prompt(promptA), prompt(promptB)]);
  const image = (bytes: Uint8Array, text: string, ref: string): ImageRow => ({
    image_id: imageId(bytes),
    prompt_id: promptId(text),
    bytes,
    mime: 'image/jpeg',
    width: 64,
    height: 64,
    source_ref: ref,
    model: null,
    seed: null,
  });
  const good = await Promise.all([
    noiseImage(11, { width: 80, height: 48 }),
    noiseImage(12, { width: 48, height: 96 }),
    noiseImage(13, { width: 64, height: 64, format: 'png' }),
    noiseImage(14, { width: 200, height: 120 }),
    noiseImage(15),
  ]);
  // Batches of 4 after the missing prompt is set aside: [good, truncated, good, not-an-image], [good, empty, good].
  const rows: ImageRow[] = [
    image(good[0]!, promptA, 'good-0'),
    image(await truncatedJpeg(), promptA, 'truncated'),
    image(good[1]!, promptB, 'good-1'),
    image(NOT_AN_IMAGE, promptB, 'not-an-image'),
    image(good[2]!, promptA, 'good-2'),
    image(new Uint8Array(0), promptB, 'empty'),
    image(good[4]!, 'a prompt that was never ingested', 'orphan'),
    image(good[3]!, promptB, 'good-3'),
  ];
  await writeRowsPart(dir, 'images', 'handmade', rows);

  const summary = await label(dir, ['pickscore', 'hps', 'aesthetic'], { batchSize: 4 });
  const rejects: RejectRow[] = [];
  for await (const row of readRows(dir, 'rejects')) rejects.push(row);
  assert.deepEqual(rejects.map((r) => `${r.stage} ${r.reason} ${r.source_ref}`).sort(), [
    'label bad_image not-an-image',
    'label bad_image truncated',
    'label empty_image empty',
    'label missing_prompt orphan',
  ]);
  assert.ok(rejects.every((r) => r.detail.length > 0));
  assert.deepEqual(summary.counts, { read: 8, taken: 4, rejected: 4, byReason: { bad_image: 2, empty_image: 1, missing_prompt: 1 } });

  const goodRows = rows.filter((r) => r.source_ref.startsWith('good-'));
  const texts = new Map([promptA, promptB].map((t) => [promptId(t), t]));
  for (const name of ['pickscore', 'hps', 'aesthetic'] as const) {
    const scored = await scoreRows(dir, name);
    assert.deepEqual(
      scored.map((r) => `${r.image_id}:${r.prompt_id}`),
      goodRows.map((r) => `${r.image_id}:${r.prompt_id}`).sort(),
      name,
    );
    assert.equal(metricSummary(summary, name).scored, 4);
    // The good images after a bad one in the same batch got their own pixels (packing skips the hole).
    for (const row of scored) {
      const source = goodRows.find((r) => r.image_id === row.image_id)!;
      const expected = (await direct.scores(source.bytes, texts.get(source.prompt_id)!))[name];
      assert.ok(Math.abs(row.score - expected) <= TOL, `${name} of ${source.source_ref}: ${row.score} vs ${expected}`);
    }
  }
  // The manifest records each (metric, part) unit with the same counts.
  const units = Object.entries((await readManifest(dir)).units).filter(([key]) => key.startsWith('label:') && key.includes(':handmade:'));
  assert.equal(units.length, 3);
  for (const [key, unit] of units) assert.deepEqual(unit.counts, summary.counts, key);
});

// ---- refused metrics --------------------------------------------------------------------------------------------

async function assertRefused(dir: string, metrics: string[], pattern: RegExp): Promise<void> {
  await assert.rejects(runLabel(dir, { ...BASE_OPTIONS, metrics }), (error: unknown) => {
    assert.ok(error instanceof MetricSpecError, `not a MetricSpecError: ${String(error)}`);
    assert.match(error.message, pattern);
    assert.ok(!error.message.includes('\n'), 'one line');
    return true;
  });
}

async function parquetFilesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(join(dir, 'scores'), { recursive: true }).catch(() => [] as string[]);
  return entries.filter((e) => e.endsWith('.parquet'));
}

test('a vision model without projection is refused with a clear message before anything is scored', async () => {
  const dir = await copyOfSample('no-projection');
  const metric = await fx.writeMetric('no-projection.json', {
    name: 'noproj',
    kind: 'pickscore',
    text_model: 'clip-text.onnx',
    vision_model: 'clip-vision-no-projection.onnx',
    tokenizer: fx.tokenizer,
    image_size: SPLIT_CLIP.imageSize,
  });
  await assertRefused(
    dir,
    [fx.metrics.aesthetic, metric],
    /clip-vision-no-projection\.onnx: vision model has no projection.*CLIPVisionModelWithProjection/,
  );
  assert.deepEqual(await parquetFilesUnder(dir), []);
});

test('metric JSON mistakes are one clear MetricSpecError each, naming the file', async () => {
  const dir = await copyOfSample('bad-json');
  const split = { text_model: 'clip-text.onnx', vision_model: 'clip-vision.onnx', tokenizer: fx.tokenizer };
  const cases: Array<[string, Record<string, unknown> | string, RegExp]> = [
    [
      'unknown-kind.json',
      { name: 'x', kind: 'imagereward', ...split },
      /unknown-kind\.json: "kind" must be one of pickscore, hps, clip, aesthetic/,
    ],
    [
      'no-tokenizer.json',
      { name: 'x', kind: 'pickscore', text_model: 'clip-text.onnx', vision_model: 'clip-vision.onnx' },
      /no-tokenizer\.json: needs "tokenizer"/,
    ],
    [
      'bad-formula.json',
      { name: 'x', kind: 'pickscore', score: 'cos', ...split },
      /bad-formula\.json: "score" for kind pickscore must be logit-scale-cos/,
    ],
    [
      'odd-formula.json',
      { name: 'x', kind: 'clip', score: '10*cos', ...split },
      /odd-formula\.json: "score" for kind clip must be cos or clip-100/,
    ],
    [
      'no-head.json',
      { name: 'x', kind: 'aesthetic', vision_model: 'clip-vision.onnx' },
      /no-head\.json: an aesthetic metric needs "head_model"/,
    ],
    [
      'one-tower.json',
      { name: 'x', kind: 'hps', vision_model: 'clip-vision.onnx', tokenizer: fx.tokenizer },
      /one-tower\.json: needs "clip_model".*or both "text_model" and "vision_model"/,
    ],
    ['bad-tau.json', { name: 'x', kind: 'hps', temperature: 0, ...split }, /bad-tau\.json: "temperature" must be > 0/],
    ['bad-name.json', { name: '../x', kind: 'hps', ...split }, /bad-name\.json: "name" must be a plain identifier/],
    ['not-json.json', '{ "name": "x", ', /not-json\.json: cannot read metric JSON/],
  ];
  for (const [file, json, pattern] of cases) {
    let path = join(fx.dir, file);
    if (typeof json === 'string') await writeFile(path, json);
    else path = await fx.writeMetric(file, json);
    await assertRefused(dir, [path], pattern);
  }
  await assertRefused(dir, [join(fx.dir, 'absent.json')], /absent\.json: cannot read metric JSON/);
  await assertRefused(dir, [fx.metrics.pickscore, fx.metrics.pickscore], /two metrics are named "pickscore"/);
  await assertRefused(dir, [], /no metrics given/);
  assert.deepEqual(await parquetFilesUnder(dir), []);
});

test('an aesthetic metric reading a full CLIP export without a tokenizer is refused before any image is read', async () => {
  const dir = await copyOfSample('full-aesthetic');
  const metric = await fx.writeMetric('aesthetic-on-full.json', {
    name: 'aesfull',
    kind: 'aesthetic',
    clip_model: 'clip-full.onnx',
    head_model: 'aesthetic-mlp.onnx',
  });
  await assertRefused(dir, [metric], /aesthetic-on-full\.json: .*"tokenizer"/);
  // Refused up front, as every other contract check is: nothing of the metric is left in scores/.
  assert.deepEqual(await readdir(join(dir, 'scores')).catch(() => []), []);
});

// ---- sharding ---------------------------------------------------------------------------------------------------

test('shards 0/2 and 1/2 together score exactly the rows of one unsharded run', async () => {
  const whole = await copyOfSample('unsharded');
  const sharded = await copyOfSample('sharded');
  const metrics = ['pickscore', 'aesthetic'] as const;
  await label(whole, metrics);
  const s0 = await label(sharded, metrics, { shard: { index: 0, count: 2 } });
  const s1 = await label(sharded, metrics, { shard: { index: 1, count: 2 } });
  assert.ok(s0.counts.read > 0 && s1.counts.read > 0, `shard sizes ${s0.counts.read}, ${s1.counts.read}`);
  assert.equal(s0.counts.read + s1.counts.read, 34);
  for (const name of metrics) {
    const files = (await readdir(join(sharded, 'scores', name))).filter((f) => f.endsWith('.parquet')).sort();
    assert.equal(files.length, 4, files.join(', '));
    assert.equal(files.filter((f) => f.endsWith('-s0of2.parquet')).length, 2);
    const union = await scoreRows(sharded, name);
    const reference = await scoreRows(whole, name);
    assert.deepEqual(
      union.map((r) => `${r.image_id}:${r.prompt_id}`),
      reference.map((r) => `${r.image_id}:${r.prompt_id}`),
      name,
    );
    union.forEach((r, i) =>
      assert.ok(Math.abs(r.score - reference[i]!.score) <= TOL, `${name} ${r.image_id}: ${r.score} vs ${reference[i]!.score}`),
    );
    // No image is scored by both shards.
    const perShard = await query(
      'SELECT count(*) AS n, count(DISTINCT image_id || prompt_id) AS d ' +
        `FROM read_parquet(${sql(join(sharded, 'scores', name, '*.parquet'))})`,
    );
    assert.equal(Number(perShard[0]!.n), Number(perShard[0]!.d));
  }
});
