// The image worker pool: tensors written by worker threads into shared batches equal those of preprocessInto on the
// main thread, rejects come back per row in row order, and runLabel / runEncode write the same bytes with any number
// of workers, leaving no worker alive afterwards, whether the run succeeded or failed.
import assert from 'node:assert/strict';
import { cp, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { imageId, promptId } from '../../src/core/ids.ts';
import type { ImageRow, PromptRow, RejectRow } from '../../src/core/schema.ts';
import { runEncode } from '../../src/encode/encode.ts';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { readRows, writeRowsPart } from '../../src/io/arrow-table.ts';
import { runLabel } from '../../src/label/run.ts';
import { ImagePool, liveImageWorkers, sharedFloat32, type BatchTarget } from '../../src/models/image-pool.ts';
import { ImageDecodeError, preprocessInto, type PreprocessOptions } from '../../src/models/preprocess.ts';
import { labelCommand } from '../../src/cli/label.ts';
import { UsageError } from '../../src/core/errors.ts';
import { tinyClipTextEncoder, tinyVaeEncoder } from '../../tools/onnx-builder/tiny-models.ts';
import { clipTokenizerPath, writeMetricsFixture, type MetricsFixture } from '../support/metrics-fixture.ts';
import { NOT_AN_IMAGE, noiseImage, truncatedJpeg } from '../support/pickapic-fixture.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';

const SETTINGS: PreprocessOptions[] = [{ size: 64 }, { size: 40, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }];

let root: string;
let fx: MetricsFixture;
let sample: string;
/** Good images of several sizes and formats, with an undecodable one every few rows. */
let mixed: Array<{ bytes: Uint8Array; ref: string }>;

before(async () => {
  root = await makeTempDir('bdpo-image-pool-');
  fx = await writeMetricsFixture(join(root, 'models'));
  sample = join(root, 'sample');
  await ingestPickapic([new URL('../../data/pickapic', import.meta.url).pathname], { out: sample });
  const good = await Promise.all([
    noiseImage(21, { width: 80, height: 48 }),
    noiseImage(22, { width: 48, height: 96 }),
    noiseImage(23, { width: 64, height: 64, format: 'png' }),
    noiseImage(24, { width: 200, height: 120 }),
    noiseImage(25),
    noiseImage(26, { width: 33, height: 47 }),
    noiseImage(27, { width: 120, height: 90, format: 'png' }),
  ]);
  mixed = [
    { bytes: good[0]!, ref: 'good-0' },
    { bytes: await truncatedJpeg(), ref: 'truncated' },
    { bytes: good[1]!, ref: 'good-1' },
    { bytes: NOT_AN_IMAGE, ref: 'not-an-image' },
    { bytes: good[2]!, ref: 'good-2' },
    { bytes: good[3]!, ref: 'good-3' },
    { bytes: new Uint8Array(0), ref: 'empty' },
    { bytes: good[4]!, ref: 'good-4' },
    { bytes: good[5]!, ref: 'good-5' },
    { bytes: await truncatedJpeg(5, 96), ref: 'truncated-96' },
    { bytes: good[6]!, ref: 'good-6' },
  ];
});

after(async () => {
  if (root) await removeDir(root);
});

/** The main-thread reference: preprocessInto per row and setting, stopping at the first failure of a row. */
async function inThread(rows: readonly Uint8Array[]): Promise<{ batches: Float32Array[]; outcomes: Array<string | null> }> {
  const batches = SETTINGS.map((s) => new Float32Array(rows.length * 3 * s.size! * s.size!));
  const outcomes: Array<string | null> = [];
  for (const [i, bytes] of rows.entries()) {
    let outcome: string | null = null;
    for (const [k, options] of SETTINGS.entries()) {
      try {
        await preprocessInto(bytes, batches[k]!, i, options);
      } catch (error) {
        assert.ok(error instanceof ImageDecodeError);
        outcome = `${error.reason}: ${error.message}`;
        break;
      }
    }
    outcomes.push(outcome);
  }
  return { batches, outcomes };
}

describe('ImagePool', () => {
  for (const workers of [1, 2, 3]) {
    test(`${workers} worker(s) write the bytes preprocessInto writes, rejects per row in row order`, async () => {
      const rows = mixed.map((m) => m.bytes);
      const expected = await inThread(rows);
      const pool = new ImagePool(workers);
      try {
        const targets: BatchTarget[] = SETTINGS.map((options) => ({
          batch: sharedFloat32(rows.length * 3 * options.size! * options.size!),
          options,
        }));
        const outcomes = await pool.preprocessRows(rows, targets);
        assert.equal(pool.liveWorkers, workers);
        assert.deepEqual(
          outcomes.map((o) => (o === null ? null : `${o.reason}: ${o.message}`)),
          expected.outcomes,
        );
        assert.ok(outcomes.every((o) => o === null || o instanceof ImageDecodeError));
        for (const [k, target] of targets.entries()) {
          assert.ok(target.batch.buffer instanceof SharedArrayBuffer);
          assert.ok(Buffer.from(target.batch.buffer).equals(Buffer.from(expected.batches[k]!.buffer)), `setting ${k} differs`);
        }
      } finally {
        await pool.dispose();
      }
      assert.equal(pool.liveWorkers, 0);
      assert.equal(liveImageWorkers(), 0);
    });
  }

  test('a target that is not on a SharedArrayBuffer is refused; rows pending at dispose are rejected', async () => {
    const pool = new ImagePool(1);
    try {
      assert.throws(
        () => pool.preprocessRow(mixed[0]!.bytes, 0, [{ batch: new Float32Array(3 * 64 * 64), options: { size: 64 } }]),
        TypeError,
      );
      const pending = pool.preprocessRow(mixed[0]!.bytes, 0, [{ batch: sharedFloat32(3 * 64 * 64), options: { size: 64 } }]);
      const refused = assert.rejects(pending, /disposed/);
      await pool.dispose();
      await refused;
    } finally {
      await pool.dispose();
    }
    assert.equal(liveImageWorkers(), 0);
  });
});

async function mixedDataset(name: string): Promise<string> {
  const dir = join(root, name);
  await cp(sample, dir, { recursive: true });
  const text = 'a lighthouse on a cliff';
  const prompt: PromptRow = {
    prompt_id: promptId(text),
    text,
    source: 'images',
    split: null,
    category: null,
    challenge: null,
    note: null,
    prompt_index: null,
  };
  await writeRowsPart(dir, 'prompts', 'mixed', [prompt]);
  const images: ImageRow[] = mixed.map(({ bytes, ref }) => ({
    image_id: imageId(bytes),
    prompt_id: prompt.prompt_id,
    bytes,
    mime: 'image/jpeg',
    width: 64,
    height: 64,
    source_ref: ref,
    model: null,
    seed: null,
  }));
  await writeRowsPart(dir, 'images', 'mixed', images);
  return dir;
}

/** Every file under `sub`, by relative path. */
async function filesUnder(dir: string, sub: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const entry of await readdir(join(dir, sub), { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files.set(path.slice(dir.length + 1), await readFile(path));
  }
  return files;
}

async function rejectsOf(dir: string): Promise<string[]> {
  const rows: RejectRow[] = [];
  for await (const row of readRows(dir, 'rejects')) rows.push(row);
  return rows.filter((r) => r.stage === 'label').map((r) => `${r.stage} ${r.reason} ${r.source_ref} ${r.detail}`);
}

describe('runLabel with image workers', () => {
  const runs = new Map<number, { scores: Map<string, Buffer>; rejects: string[]; rejectFiles: Map<string, Buffer> }>();

  before(async () => {
    for (const workers of [1, 2, 3]) {
      const dir = await mixedDataset(`label-${workers}`);
      let seen = 0;
      await runLabel(dir, {
        metrics: [fx.metrics.pickscore, fx.metrics.hps, fx.metrics.aesthetic],
        device: 'cpu',
        intraOpNumThreads: 1,
        batchSize: 4,
        workers,
        onProgress: () => {
          seen = Math.max(seen, liveImageWorkers());
        },
      });
      assert.equal(seen, workers, 'the pool runs the number of workers asked for');
      assert.equal(liveImageWorkers(), 0);
      runs.set(workers, {
        scores: await filesUnder(dir, 'scores'),
        rejects: await rejectsOf(dir),
        rejectFiles: await filesUnder(dir, 'rejects'),
      });
    }
  });

  test('score Parquet and rejects are byte-identical for 1, 2 and 3 workers', () => {
    const one = runs.get(1)!;
    assert.ok(one.scores.size >= 6);
    for (const workers of [2, 3]) {
      const other = runs.get(workers)!;
      assert.deepEqual([...other.scores.keys()].sort(), [...one.scores.keys()].sort());
      for (const [path, bytes] of one.scores) assert.ok(other.scores.get(path)!.equals(bytes), `${path} differs with ${workers} workers`);
      assert.deepEqual([...other.rejectFiles.keys()].sort(), [...one.rejectFiles.keys()].sort());
      for (const [path, bytes] of one.rejectFiles) assert.ok(other.rejectFiles.get(path)!.equals(bytes), `${path} differs`);
    }
  });

  test('the undecodable images are rejected in row order with the reason and message of the main-thread decode', async () => {
    const expected: string[] = [];
    for (const { bytes, ref } of mixed) {
      try {
        await preprocessInto(bytes, new Float32Array(3 * 64 * 64), 0, { size: 64 });
      } catch (error) {
        assert.ok(error instanceof ImageDecodeError);
        expected.push(`label ${error.reason} ${ref} ${error.message}`);
      }
    }
    assert.equal(expected.length, 4);
    assert.deepEqual(runs.get(3)!.rejects, expected);
  });

  test('a run that fails midway leaves no worker alive and no rows pending', async () => {
    const dir = await mixedDataset('label-fails');
    await assert.rejects(
      runLabel(dir, {
        metrics: [fx.metrics.pickscore],
        device: 'cpu',
        intraOpNumThreads: 1,
        batchSize: 2,
        workers: 2,
        onProgress: (p) => {
          if (p.images > 0) throw new Error('stop after the first batch');
        },
      }),
      /stop after the first batch/,
    );
    assert.equal(liveImageWorkers(), 0);
  });
});

test('runEncode writes the same latents with 1 and 3 workers', async () => {
  const models = { vae: join(root, 'vae.onnx'), text: join(root, 'text.onnx'), tokenizer: clipTokenizerPath() };
  await writeFile(models.vae, tinyVaeEncoder({ seed: 5 }));
  await writeFile(models.text, tinyClipTextEncoder({ seed: 7, width: 16 }));
  const latents: Array<Map<string, Buffer>> = [];
  for (const workers of [1, 3]) {
    const dir = join(root, `encode-${workers}`);
    await cp(sample, dir, { recursive: true });
    let seen = 0;
    const onProgress = (): void => {
      seen = Math.max(seen, liveImageWorkers());
    };
    await runEncode(dir, { ...models, device: 'cpu', intraOpNumThreads: 1, batchSize: 5, workers, onProgress });
    assert.equal(seen, workers, 'the pool runs the number of workers asked for');
    assert.equal(liveImageWorkers(), 0);
    latents.push(await filesUnder(dir, 'latents'));
  }
  assert.ok(latents[0]!.size > 0);
  assert.deepEqual([...latents[1]!.keys()].sort(), [...latents[0]!.keys()].sort());
  for (const [path, bytes] of latents[0]!) assert.ok(latents[1]!.get(path)!.equals(bytes), `${path} differs`);
});

test('--workers takes an integer ≥ 0 (0: one per core)', async () => {
  for (const bad of ['-1', '1.5', 'many']) {
    await assert.rejects(labelCommand([sample, '--metrics', fx.metrics.aesthetic, `--workers=${bad}`]), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, new RegExp(`--workers must be an integer in 0\\.\\.\\d+, got "${bad.replace('.', '\\.')}"`));
      return true;
    });
  }
});
