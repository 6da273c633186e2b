// Provenance of the scores: every score part and meta/scores/<m>.json record the sha256 of the metric's model and
// tokenizer files, its preprocessing profile, its options and the tool version; a model file changed under the same
// "version" string, or another profile, rescores that metric's units, and nothing changed skips them all.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cp } from 'node:fs/promises';
import { TOOL_VERSION } from '../../src/core/version.ts';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { openParquet } from '../../src/io/parquet.ts';
import { runLabel, type LabelSummary } from '../../src/label/run.ts';
import { FileDigests, type MetricProvenance } from '../../src/models/provenance.ts';
import { tinyAestheticModel } from '../../tools/onnx-builder/tiny-models.ts';
import { AESTHETIC, SPLIT_CLIP, writeMetricsFixture, type MetricsFixture } from '../support/metrics-fixture.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';

const OPTIONS = { device: 'cpu', intraOpNumThreads: 1, batchSize: 16, workers: 1 } as const;

let root: string;
let fx: MetricsFixture;
let sample: string;

before(async () => {
  root = await makeTempDir('bdpo-provenance-');
  fx = await writeMetricsFixture(join(root, 'models'));
  sample = join(root, 'sample');
  await ingestPickapic([new URL('../../data/pickapic', import.meta.url).pathname], { out: sample });
});

after(async () => {
  if (root) await removeDir(root);
});

const sha256 = async (path: string): Promise<string> =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

function summaryOf(result: LabelSummary, name: string): { written: number; skipped: number } {
  const m = result.metrics.find((x) => x.name === name)!;
  return { written: m.partsWritten, skipped: m.partsSkipped };
}

async function scoreParts(dir: string, metric: string): Promise<string[]> {
  return (await readdir(join(dir, 'scores', metric))).filter((f) => f.endsWith('.parquet')).map((f) => join(dir, 'scores', metric, f));
}

async function partProvenance(path: string): Promise<MetricProvenance> {
  const { metadata } = await openParquet(path);
  const entry = metadata.key_value_metadata?.find((kv) => kv.key === 'provenance');
  assert.ok(entry?.value, `${basename(path)} has no provenance`);
  return JSON.parse(entry.value) as MetricProvenance;
}

describe('label records what made the scores and rescores when it changes', () => {
  let dir: string;
  let clip: string;
  let aesthetic: string;

  before(async () => {
    dir = join(root, 'ds');
    await cp(sample, dir, { recursive: true });
    clip = fx.metrics.clip;
    aesthetic = fx.metrics.aesthetic;
  });

  test('every score part and meta/scores/<m>.json carry the files’ sha256, the profile, the options, the tool version', async () => {
    const first = await runLabel(dir, { ...OPTIONS, metrics: [clip, aesthetic] });
    assert.deepEqual(summaryOf(first, 'clip'), { written: 2, skipped: 0 });
    const parts = await scoreParts(dir, 'clip');
    assert.equal(parts.length, 2);
    const recorded = await partProvenance(parts[0]!);
    assert.deepEqual(await partProvenance(parts[1]!), recorded);
    assert.equal(recorded.tool, TOOL_VERSION);
    assert.equal(recorded.preprocess, 'hf-clip');
    assert.deepEqual(Object.keys(recorded.models).sort(), ['text', 'vision']);
    assert.equal(recorded.models.vision!.sha256, await sha256(fx.models.vision));
    assert.equal(recorded.models.text!.sha256, await sha256(fx.models.text));
    assert.equal(recorded.models.vision!.bytes, (await stat(fx.models.vision)).size);
    assert.deepEqual(
      recorded.tokenizer.map((t) => t.sha256),
      [await sha256(fx.tokenizer)],
    );
    assert.deepEqual(recorded.options, {
      kind: 'clip',
      version: 'tiny-clip-1',
      score: 'clip-100',
      image_size: SPLIT_CLIP.imageSize,
      image_mean: [0.48145466, 0.4578275, 0.40821073],
      image_std: [0.26862954, 0.26130258, 0.27577711],
      logit_scale: 100,
      temperature: 1,
      pad_token_id: null,
    });
    const info = JSON.parse(await readFile(join(dir, 'meta', 'scores', 'clip.json'), 'utf8')) as { provenance: MetricProvenance };
    assert.deepEqual(info.provenance, recorded);
    const aes = await partProvenance((await scoreParts(dir, 'aesthetic'))[0]!);
    assert.equal(aes.preprocess, 'openai-clip', 'aesthetic defaults to OpenAI CLIP preprocessing');
    assert.equal(aes.models.head!.sha256, await sha256(fx.models.head));
  });

  test('nothing changed: every unit is skipped', async () => {
    const again = await runLabel(dir, { ...OPTIONS, metrics: [clip, aesthetic] });
    assert.deepEqual(summaryOf(again, 'clip'), { written: 0, skipped: 2 });
    assert.deepEqual(summaryOf(again, 'aesthetic'), { written: 0, skipped: 2 });
  });

  test('a touched model file with the same bytes is still the same model: skipped', async () => {
    const later = new Date(Date.now() + 5_000);
    await utimes(fx.models.head, later, later);
    const again = await runLabel(dir, { ...OPTIONS, metrics: [clip, aesthetic] });
    assert.deepEqual(summaryOf(again, 'aesthetic'), { written: 0, skipped: 2 });
  });

  test('another model file under the same "version": that metric is rescored, the others skipped', async () => {
    const before = await partProvenance((await scoreParts(dir, 'aesthetic'))[0]!);
    await writeFile(fx.models.head, tinyAestheticModel({ ...AESTHETIC, seed: AESTHETIC.seed! + 40 }));
    const again = await runLabel(dir, { ...OPTIONS, metrics: [clip, aesthetic] });
    assert.deepEqual(summaryOf(again, 'aesthetic'), { written: 2, skipped: 0 });
    assert.deepEqual(summaryOf(again, 'clip'), { written: 0, skipped: 2 });
    const after = await partProvenance((await scoreParts(dir, 'aesthetic'))[0]!);
    assert.equal(after.options.version, before.options.version);
    assert.notEqual(after.models.head!.sha256, before.models.head!.sha256);
    assert.equal(after.models.head!.sha256, await sha256(fx.models.head));
  });

  test('another preprocessing profile under the same name and version: rescored', async () => {
    const json = JSON.parse(await readFile(clip, 'utf8')) as Record<string, unknown>;
    const openai = await fx.writeMetric('clip-openai.json', { ...json, preprocess: 'openai-clip' });
    const again = await runLabel(dir, { ...OPTIONS, metrics: [openai, aesthetic] });
    assert.deepEqual(summaryOf(again, 'clip'), { written: 2, skipped: 0 });
    assert.deepEqual(summaryOf(again, 'aesthetic'), { written: 0, skipped: 2 });
    assert.equal((await partProvenance((await scoreParts(dir, 'clip'))[0]!)).preprocess, 'openai-clip');
    // And back: the hf-clip scores are computed again, not mistaken for the openai-clip ones.
    const back = await runLabel(dir, { ...OPTIONS, metrics: [clip, aesthetic] });
    assert.deepEqual(summaryOf(back, 'clip'), { written: 2, skipped: 0 });
  });
});

test('file digests are cached by path, size and mtime: read once per run, again when the file changes', async () => {
  const digests = new FileDigests();
  const path = join(root, 'model.bin');
  await writeFile(path, 'first bytes');
  const a = await digests.of(path);
  const b = await digests.of(path);
  assert.equal(digests.size, 1);
  assert.deepEqual(a, b);
  assert.equal(a.sha256, await sha256(path));
  await writeFile(path, 'other bytes, longer');
  const c = await digests.of(path);
  assert.equal(digests.size, 2);
  assert.equal(c.sha256, await sha256(path));
  assert.notEqual(c.sha256, a.sha256);
});
