// float16 model exports (half-precision pixel_values and embeddings, int64 token ids) scored end to end by runLabel on
// the CPU, against the float32 export of the same weights; and the session options a CUDA run would get.
import assert from 'node:assert/strict';
import { cp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { runLabel } from '../../src/label/run.ts';
import { createSession, sessionOptionsFor } from '../../src/models/session.ts';
import { tinyClipTextModelFloat16, tinyClipVisionModelFloat16 } from '../../tools/onnx-builder/tiny-models.ts';
import { PICK_LOGIT_SCALE, SPLIT_CLIP, writeMetricsFixture, type MetricsFixture } from '../support/metrics-fixture.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';

let root: string;
let fx: MetricsFixture;
let sample: string;
let duck: DuckDBInstance;
let db: DuckDBConnection;

before(async () => {
  root = await makeTempDir('bdpo-fp16-');
  fx = await writeMetricsFixture(join(root, 'models'));
  await writeFile(join(fx.dir, 'clip-text-fp16.onnx'), tinyClipTextModelFloat16(SPLIT_CLIP));
  await writeFile(join(fx.dir, 'clip-vision-fp16.onnx'), tinyClipVisionModelFloat16(SPLIT_CLIP));
  sample = join(root, 'sample');
  await ingestPickapic([new URL('../../data/pickapic', import.meta.url).pathname], { out: sample });
  duck = await DuckDBInstance.create(':memory:', { threads: '1' });
  db = await duck.connect();
});

after(async () => {
  db?.closeSync();
  duck?.closeSync();
  if (root) await removeDir(root);
});

interface Score {
  key: string;
  score: number;
}

async function scores(dir: string, metric: string): Promise<Score[]> {
  const glob = join(dir, 'scores', metric, '*.parquet').replaceAll("'", "''");
  const reader = await db.runAndReadAll(`SELECT image_id || '/' || prompt_id AS key, score FROM read_parquet('${glob}') ORDER BY key`);
  return reader.getRowObjectsJS() as unknown as Score[];
}

/** Labels a fresh copy of the sample with the given metric JSONs (CPU, one thread) and returns its folder. */
async function labelCopy(name: string, metrics: string[]): Promise<string> {
  const dir = join(root, name);
  await cp(sample, dir, { recursive: true });
  await runLabel(dir, { device: 'cpu', intraOpNumThreads: 1, batchSize: 16, metrics });
  return dir;
}

describe('float16 CLIP towers', () => {
  test('the float16 exports declare float16 pixels and embeddings, int64 token ids', async () => {
    const vision = await createSession(join(fx.dir, 'clip-vision-fp16.onnx'), { device: 'cpu', intraOpNumThreads: 1 });
    const text = await createSession(join(fx.dir, 'clip-text-fp16.onnx'), { device: 'cpu', intraOpNumThreads: 1 });
    try {
      const types = (infos: readonly { name: string; type: string }[]) => Object.fromEntries(infos.map((i) => [i.name, i.type]));
      assert.deepEqual(types(vision.inputs), { pixel_values: 'float16' });
      assert.deepEqual(types(vision.outputs), { image_embeds: 'float16', last_hidden_state: 'float16' });
      assert.deepEqual(types(text.inputs), { input_ids: 'int64', attention_mask: 'int64' });
      assert.deepEqual(types(text.outputs), { text_embeds: 'float16', last_hidden_state: 'float16' });
    } finally {
      await Promise.all([vision.dispose(), text.dispose()]);
    }
  });

  test('runLabel scores float16 towers within float16 tolerance of the float32 towers (clip, pickscore, aesthetic)', async () => {
    const split = (text: string, vision: string) => ({ text_model: text, vision_model: vision, tokenizer: fx.tokenizer });
    const size = { image_size: SPLIT_CLIP.imageSize };
    const half = [
      await fx.writeMetric('clip-fp16.json', {
        name: 'clip',
        kind: 'clip',
        version: 'tiny-clip-1',
        score: 'clip-100',
        ...split('clip-text-fp16.onnx', 'clip-vision-fp16.onnx'),
        ...size,
      }),
      await fx.writeMetric('pickscore-fp16.json', {
        name: 'pickscore',
        kind: 'pickscore',
        version: 'tiny-pickscore-1',
        logit_scale: PICK_LOGIT_SCALE,
        ...split('clip-text-fp16.onnx', 'clip-vision-fp16.onnx'),
        ...size,
      }),
      await fx.writeMetric('aesthetic-fp16.json', {
        name: 'aesthetic',
        kind: 'aesthetic',
        version: 'tiny-aesthetic-1',
        vision_model: 'clip-vision-fp16.onnx',
        head_model: 'aesthetic-mlp.onnx',
        ...size,
      }),
    ];
    const fullDir = await labelCopy('float32', [fx.metrics.clip, fx.metrics.pickscore, fx.metrics.aesthetic]);
    const halfDir = await labelCopy('float16', half);
    // float16 keeps 11 significant bits: embeddings rounded at the output move a cosine by ≲ 1e-3.
    const cosineTolerance = 1e-3;
    const scaleOf: Record<string, number> = { clip: 100, pickscore: PICK_LOGIT_SCALE, aesthetic: 4.5 };
    for (const metric of ['clip', 'pickscore', 'aesthetic']) {
      const expected = await scores(fullDir, metric);
      const got = await scores(halfDir, metric);
      assert.equal(got.length, expected.length, `${metric}: every image scored`);
      assert.ok(expected.length > 0, `${metric}: the sample was scored`);
      let largest = 0;
      got.forEach((row, i) => {
        const want = expected[i]!;
        assert.equal(row.key, want.key);
        largest = Math.max(largest, Math.abs(row.score - want.score));
      });
      const tolerance = cosineTolerance * scaleOf[metric]!;
      assert.ok(largest <= tolerance, `${metric}: largest difference ${largest} > ${tolerance}`);
      assert.ok(largest > 0, `${metric}: float16 rounding must show (else the float32 towers ran)`);
    }
  });
});

describe('session options per execution provider', () => {
  test('CPU sessions keep their options: the threads asked for, full graph optimisation, the CPU provider', () => {
    assert.deepEqual(sessionOptionsFor('cpu', 3), {
      intraOpNumThreads: 3,
      graphOptimizationLevel: 'all',
      executionProviders: ['cpu'],
    });
  });

  test('CUDA sessions name device 0 and get full graph optimisation, and only keys the 1.30 binding reads', () => {
    const options = sessionOptionsFor('cuda', 8);
    assert.deepEqual(options, {
      intraOpNumThreads: 8,
      graphOptimizationLevel: 'all',
      executionProviders: [{ name: 'cuda', deviceId: 0 }],
    });
    // The Node binding builds the CUDA provider options from its defaults and copies only deviceId: any other key
    // (arena_extend_strategy, cudnn_conv_algo_search, ...) would be dropped without a word.
    for (const provider of options.executionProviders ?? []) {
      if (typeof provider === 'string') continue;
      assert.deepEqual(Object.keys(provider).sort(), ['deviceId', 'name']);
    }
  });

  test('asking for CUDA where it cannot load is an error naming the model, not a silent CPU run', async () => {
    await assert.rejects(
      createSession(join(fx.dir, 'clip-vision-fp16.onnx'), { device: 'cuda', intraOpNumThreads: 1 }),
      /cannot use the CUDA execution provider for .*clip-vision-fp16\.onnx/,
    );
  });
});
