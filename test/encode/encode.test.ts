// runEncode over the bundled Pick-a-Pic sample (34 images of 192², 8 prompts, 26 pairs) with tiny ONNX encoders
// built here. Latents are checked against the tiny VAE evaluated in float64 from its weights (8×8 mean pool, then a
// 1×1 conv) on the centre crop scaled to [-1, 1]; text states against the same ONNX file run directly on token ids
// built here. Everything written is read back by DuckDB.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import ort from 'onnxruntime-node';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { readRows, writeRowsPart } from '../../src/io/arrow-table.ts';
import { writeParquetPart } from '../../src/io/parquet.ts';
import { runConsensus } from '../../src/consensus/run.ts';
import { preprocessPixels } from '../../src/models/preprocess.ts';
import { ClipTokenizer } from '../../src/models/tokenizer.ts';
import { SCORE_SPECS, type MetricInfo } from '../../src/core/schema.ts';
import { readManifest } from '../../src/core/manifest.ts';
import { fromFloat16Bits } from '../../src/io/float16.ts';
import { tinyClipTextEncoder, tinyVaeEncoder, tinyVaeWeights } from '../../tools/onnx-builder/tiny-models.ts';
import { imageId, pairId, promptId } from '../../src/core/ids.ts';
import { EncodeError, runEncode, SD_SCALING_FACTOR, type EncodeOptions, type EncodeSummary } from '../../src/encode/encode.ts';
import { decodeFloat16, encodeFloat16 } from '../../src/io/float16-bytes.ts';
import { clipTokenizerPath } from '../support/metrics-fixture.ts';
import { NOT_AN_IMAGE, noiseImage, seededRandom } from '../support/pickapic-fixture.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';

const VAE_SEED = 5;
const TEXT = { seed: 7, width: 16 } as const;
const EOS = 49407;
const BOS = 49406;

let root: string;
let sample: string;
let models: { vae: string; text: string; tokenizer: string };
let duck: DuckDBInstance;
let db: DuckDBConnection;
let textSession: ort.InferenceSession;
let imageBytes: Map<string, Uint8Array>;
let promptText: Map<string, string>;

before(async () => {
  root = await makeTempDir('bdpo-encode-');
  sample = join(root, 'sample');
  await ingestPickapic([new URL('../../data/pickapic', import.meta.url).pathname], { out: sample });
  models = { vae: join(root, 'vae.onnx'), text: join(root, 'text.onnx'), tokenizer: clipTokenizerPath() };
  await writeFile(models.vae, tinyVaeEncoder({ seed: VAE_SEED }));
  await writeFile(models.text, tinyClipTextEncoder(TEXT));
  duck = await DuckDBInstance.create(':memory:', { threads: '1' });
  db = await duck.connect();
  textSession = await ort.InferenceSession.create(models.text, { intraOpNumThreads: 1 });
  imageBytes = new Map();
  for await (const row of readRows(sample, 'images')) imageBytes.set(row.image_id, Uint8Array.from(row.bytes));
  promptText = new Map();
  for await (const row of readRows(sample, 'prompts')) promptText.set(row.prompt_id, row.text);
});

after(async () => {
  await textSession?.release();
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

function encodeOptions(extra: Partial<EncodeOptions> = {}): EncodeOptions {
  return { ...models, device: 'cpu', intraOpNumThreads: 1, batchSize: 5, ...extra };
}

interface CachedRow {
  id: string;
  shape: string;
  values: Float32Array;
}

/** A cache table as DuckDB reads it, decoded with the IEEE half formula (not the code under test). */
async function cached(dir: string, table: 'latents' | 'text'): Promise<Map<string, CachedRow>> {
  const [idColumn, valueColumn] = table === 'latents' ? ['image_id', 'latent'] : ['prompt_id', 'hidden'];
  const rows = await query(
    `SELECT ${idColumn} AS id, shape, ${valueColumn} AS value FROM read_parquet(${sql(join(dir, table, '*.parquet'))})`,
  );
  const out = new Map<string, CachedRow>();
  for (const row of rows) {
    const bytes = row.value as Uint8Array;
    const values = new Float32Array(bytes.length / 2);
    for (let i = 0; i < values.length; i++) values[i] = fromFloat16Bits(bytes[2 * i]! | (bytes[2 * i + 1]! << 8));
    assert.ok(!out.has(row.id as string), `${table}: ${row.id as string} stored twice`);
    out.set(row.id as string, { id: row.id as string, shape: row.shape as string, values });
  }
  return out;
}

/** The tiny VAE from its weights, in float64: centre crop in [-1, 1] → 8×8 means → 3 → 4 channels → × scale. */
function referenceLatent(crop: Uint8Array, size: number, scale = SD_SCALING_FACTOR): Float64Array {
  const { weight, bias } = tinyVaeWeights({ seed: VAE_SEED });
  const h = size / 8;
  const out = new Float64Array(4 * h * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < h; x++) {
      const mean = [0, 0, 0];
      for (let dy = 0; dy < 8; dy++) {
        for (let dx = 0; dx < 8; dx++) {
          const p = ((y * 8 + dy) * size + (x * 8 + dx)) * 3;
          for (let c = 0; c < 3; c++) mean[c]! += ((2 * crop[p + c]!) / 255 - 1) / 64;
        }
      }
      for (let o = 0; o < 4; o++) {
        let v = bias[o]!;
        for (let c = 0; c < 3; c++) v += weight[o * 3 + c]! * mean[c]!;
        out[(o * h + y) * h + x] = v * scale;
      }
    }
  }
  return out;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string): void {
  assert.equal(actual.length, expected.length, label);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    // float16 keeps 11 significant bits (relative error ≤ 2⁻¹¹ ≈ 4.9e-4); the floor covers subnormals.
    assert.ok(Math.abs(actual[i]! - e) <= 1e-3 * Math.abs(e) + 1e-6, `${label}[${i}]: ${actual[i]} vs ${e}`);
  }
}

/** Token ids as SD feeds them: start, BPE ids, end, then end tokens up to 77. */
async function textReference(ids: readonly number[]): Promise<Float32Array> {
  const padded = [...ids, ...Array<number>(77 - ids.length).fill(EOS)];
  const tensor = new ort.Tensor('int64', BigInt64Array.from(padded, BigInt), [1, 77]);
  const out = await textSession.run({ input_ids: tensor });
  return out.last_hidden_state!.data as Float32Array;
}

/** Every file under a folder: sha256 and mtime (a rewritten file changes its mtime even with the same bytes). */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const hash = createHash('sha256')
      .update(await readFile(path))
      .digest('hex');
    out.set(relative(dir, path), `${hash} ${(await stat(path)).mtimeMs}`);
  }
  return out;
}

async function pairsOf(dir: string): Promise<Array<{ prompt_id: string; image_a: string; image_b: string }>> {
  const pairs = [];
  for await (const p of readRows(dir, 'pairs')) pairs.push(p);
  return pairs;
}

/** Four metrics with seeded random scores (ties among four voters happen), and their metric.json. */
async function writeScores(dir: string, seed = 11): Promise<void> {
  const random = seededRandom(seed);
  const keys: Array<[string, string]> = [];
  for await (const row of readRows(dir, 'images')) keys.push([row.image_id, row.prompt_id]);
  for (const m of ['m1', 'm2', 'm3', 'm4']) {
    await writeParquetPart(dir, `scores/${m}/part-0.parquet`, SCORE_SPECS, {
      image_id: keys.map((k) => k[0]),
      prompt_id: keys.map((k) => k[1]),
      score: keys.map(() => random()),
      metric_version: keys.map(() => 'v1'),
    });
    const info: MetricInfo = { name: m, kind: 'clip', version: 'v1', score: 'cos', temperature: 1 };
    await writeFile(join(dir, 'scores', m, 'metric.json'), JSON.stringify(info));
  }
}

// ---------------------------------------------------------------------------------------------------------------

describe('float16 bytes', () => {
  test('every finite half value survives encode → decode exactly; bytes are little endian', () => {
    const values: number[] = [];
    for (let h = 0; h < 65536; h++) if ((h & 0x7c00) !== 0x7c00) values.push(fromFloat16Bits(h));
    const bytes = encodeFloat16(values);
    let k = 0;
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00) continue;
      assert.equal(bytes[2 * k]! | (bytes[2 * k + 1]! << 8), h, `bits of ${values[k]}`);
      k++;
    }
    const back = decodeFloat16(bytes);
    values.forEach((v, i) => assert.ok(Object.is(back[i], v), `${v} decoded as ${back[i]}`));
    assert.deepEqual([...encodeFloat16([1, -2, 65504, 2 ** -24])], [0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00]);
  });

  test('rounds to nearest even, overflows to Infinity, keeps NaN; decodes at an offset', () => {
    const [a, b, c, d, e] = decodeFloat16(encodeFloat16([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65520, -1e6, Number.NaN]));
    assert.equal(a, 1); // halfway, even mantissa kept
    assert.equal(b, 1 + 2 ** -9); // halfway, odd mantissa rounded up
    assert.equal(c, Infinity);
    assert.equal(d, -Infinity);
    assert.ok(Number.isNaN(e));
    const out = new Float32Array(5).fill(9);
    decodeFloat16(encodeFloat16([0.5, -0.25]), out, 2);
    assert.deepEqual([...out], [9, 9, 0.5, -0.25, 9]);
    assert.throws(() => decodeFloat16(new Uint8Array(3)), RangeError);
    assert.throws(() => decodeFloat16(new Uint8Array(4), new Float32Array(1)), RangeError);
  });
});

describe('runEncode without a rule (every pair)', () => {
  let dir: string;
  let summary: EncodeSummary;

  before(async () => {
    dir = await copyOfSample('all-pairs');
    summary = await runEncode(dir, encodeOptions());
  });

  test('latents of every image referenced by a pair equal the VAE computed from its weights (float16, 1e-3 relative)', async () => {
    const pairs = await pairsOf(dir);
    const wanted = new Set(pairs.flatMap((p) => [p.image_a, p.image_b]));
    const latents = await cached(dir, 'latents');
    assert.deepEqual([...latents.keys()].sort(), [...wanted].sort());
    assert.equal(latents.size, 34);
    assert.equal(summary.latents.encoded, 34);
    assert.equal(summary.latents.shape, '4x8x8');
    assert.deepEqual(summary.counts, { read: 34, taken: 34, rejected: 0, byReason: {} });
    for (const [id, row] of latents) {
      assert.equal(row.shape, '4x8x8');
      const crop = await preprocessPixels(imageBytes.get(id)!, { size: 64 });
      assertClose(row.values, referenceLatent(crop, 64), `latent of ${id.slice(0, 8)}`);
    }
    const sizes = await query(`SELECT DISTINCT octet_length(latent) AS n FROM read_parquet(${sql(join(dir, 'latents/*.parquet'))})`);
    assert.deepEqual(sizes, [{ n: 512n }]);
  });

  test(
    'text states of every prompt of a pair, and of the empty prompt, ' + 'equal the text encoder on 77 ids padded with <|endoftext|>',
    async () => {
      const pairs = await pairsOf(dir);
      const text = await cached(dir, 'text');
      assert.deepEqual([...text.keys()].sort(), ['', ...new Set(pairs.map((p) => p.prompt_id))].sort());
      assert.equal(summary.text.shape, '77x16');
      const tokenizer = await ClipTokenizer.fromFile(models.tokenizer);
      for (const [id, row] of text) {
        assert.equal(row.shape, '77x16');
        const ids = tokenizer.encode(id === '' ? '' : promptText.get(id)!).ids;
        assert.equal(ids[0], BOS);
        assert.equal(ids.at(-1), EOS);
        assertClose(row.values, await textReference(ids), `text of prompt ${id.slice(0, 8)}`);
      }
      const empty = text.get('')!;
      assertClose(empty.values, await textReference([BOS, EOS]), 'empty prompt');
    },
  );

  test('DuckDB reads the parts; row groups hold ≈ 1 MiB', async () => {
    const groups = await query(
      `SELECT count(*) AS n, max(row_group_num_rows) AS rows FROM parquet_metadata(${sql(join(dir, 'latents/*.parquet'))})`,
    );
    assert.ok(Number(groups[0]!.n) >= 2);
    const manifest = await readManifest(dir);
    const run = manifest.runs.at(-1)!;
    assert.equal(run.stage, 'encode');
    assert.deepEqual(
      run.inputs.map((i) => i.path),
      [models.vae, models.text, models.tokenizer],
    );
    assert.equal(run.options.resolution, 64);
  });

  test('a re-run skips finished parts; a lost part is redone with the same bytes, nothing else is rewritten', async () => {
    const before = await snapshot(dir);
    const again = await runEncode(dir, encodeOptions());
    assert.equal(again.latents.encoded, 0);
    assert.equal(again.latents.done, 34);
    assert.equal(again.latents.partsWritten, 0);
    assert.equal(again.latents.partsSkipped, 2);
    assert.equal(again.text.encoded, 0);
    const afterRerun = await snapshot(dir);
    for (const [file, state] of before) if (file.endsWith('.parquet')) assert.equal(afterRerun.get(file), state, file);

    const lost = [...before.keys()].filter((f) => f.startsWith('latents/') && f.endsWith('.parquet')).sort()[0]!;
    await rm(join(dir, lost));
    const redo = await runEncode(dir, encodeOptions());
    assert.equal(redo.latents.partsWritten, 1);
    assert.equal(redo.latents.partsSkipped, 1);
    const afterRedo = await snapshot(dir);
    for (const [file, state] of before) {
      if (!file.endsWith('.parquet')) continue;
      if (file === lost) assert.equal(afterRedo.get(file)!.split(' ')[0], state.split(' ')[0], 'same bytes');
      else assert.equal(afterRedo.get(file), state, file);
    }
  });

  test('other settings are refused rather than mixed into the cache', async () => {
    await assert.rejects(
      runEncode(dir, encodeOptions({ resolution: 128 })),
      (e: Error) => e instanceof EncodeError && /resolution/.test(e.message),
    );
    await assert.rejects(
      runEncode(dir, encodeOptions({ scalingFactor: 0.13025 })),
      (e: Error) => e instanceof EncodeError && /scalingFactor/.test(e.message),
    );
    await assert.rejects(runEncode(dir, encodeOptions({ resolution: 60 })), /multiple of 8/);
  });
});

describe('runEncode of a rule', () => {
  test('encodes exactly the kept pairs of consensus/<rule>; a second rule reuses what is cached', async () => {
    const dir = await copyOfSample('rule');
    await writeScores(dir);
    const drop = await runConsensus(dir, { rule: 'majority' });
    const half = await runConsensus(dir, { rule: 'majority', ties: 'half' });
    assert.ok(drop.kept < half.kept && drop.tiesCount > 0, `ties: ${drop.tiesCount}`);
    const keptOf = async (rule: string) =>
      (await query(
        `SELECT prompt_id, image_a, image_b FROM read_parquet(${sql(join(dir, 'consensus', rule, '*.parquet'))}) WHERE kept`,
      )) as Array<{
        prompt_id: string;
        image_a: string;
        image_b: string;
      }>;
    const imagesOf = (rows: Awaited<ReturnType<typeof keptOf>>) => new Set(rows.flatMap((r) => [r.image_a, r.image_b]));

    const first = await runEncode(dir, encodeOptions({ rule: 'majority', resolution: 32 }));
    const keptDrop = await keptOf('majority');
    assert.deepEqual([...(await cached(dir, 'latents')).keys()].sort(), [...imagesOf(keptDrop)].sort());
    assert.deepEqual([...(await cached(dir, 'text')).keys()].sort(), ['', ...new Set(keptDrop.map((r) => r.prompt_id))].sort());
    assert.equal(first.selection, 'rule-majority');
    assert.equal(first.latents.shape, '4x4x4');

    const second = await runEncode(dir, encodeOptions({ rule: 'majority.ties-half', resolution: 32 }));
    const keptHalf = await keptOf('majority.ties-half');
    const all = imagesOf(keptHalf);
    const fresh = [...all].filter((id) => !imagesOf(keptDrop).has(id));
    assert.ok(fresh.length > 0);
    assert.equal(second.latents.encoded, fresh.length);
    assert.equal(second.latents.reused, all.size - fresh.length);
    const latents = await cached(dir, 'latents');
    assert.deepEqual([...latents.keys()].sort(), [...all].sort());
    for (const id of fresh)
      assertClose(latents.get(id)!.values, referenceLatent(await preprocessPixels(imageBytes.get(id)!, { size: 32 }), 32), id);

    await assert.rejects(runEncode(dir, encodeOptions({ rule: 'no-such-rule', resolution: 32 })), /no consensus\/no-such-rule/);
  });

  test('a rule whose kept pairs changed (consensus re-run into the same folder) is encoded again, reusing what is cached', async () => {
    const dir = await copyOfSample('rule-changed');
    await writeScores(dir, 11);
    await runConsensus(dir, { rule: 'majority' });
    await runEncode(dir, encodeOptions({ rule: 'majority', resolution: 32 }));
    const cachedBefore = new Set((await cached(dir, 'latents')).keys());

    await writeScores(dir, 12);
    await runConsensus(dir, { rule: 'majority' });
    const kept = (await query(
      `SELECT image_a, image_b FROM read_parquet(${sql(join(dir, 'consensus/majority/*.parquet'))}) WHERE kept`,
    )) as Array<{
      image_a: string;
      image_b: string;
    }>;
    const wanted = new Set(kept.flatMap((r) => [r.image_a, r.image_b]));
    const missing = [...wanted].filter((id) => !cachedBefore.has(id));
    assert.ok(missing.length > 0, 'the new kept set has images the old one had not');
    const again = await runEncode(dir, encodeOptions({ rule: 'majority', resolution: 32 }));
    assert.equal(again.latents.partsSkipped, 0);
    assert.equal(again.latents.encoded, missing.length);
    assert.equal(again.latents.reused, wanted.size - missing.length);
    const latents = await cached(dir, 'latents');
    for (const id of wanted) assert.ok(latents.has(id), id);
    for (const id of missing)
      assertClose(latents.get(id)!.values, referenceLatent(await preprocessPixels(imageBytes.get(id)!, { size: 32 }), 32), id);

    const third = await runEncode(dir, encodeOptions({ rule: 'majority', resolution: 32 }));
    assert.equal(third.latents.partsSkipped, 2);
    assert.equal(third.latents.encoded + third.text.encoded, 0);
  });

  test('shards 0/2 and 1/2 together write what one unsharded run writes', async () => {
    const whole = await copyOfSample('shard-whole');
    const split = await copyOfSample('shard-split');
    await runEncode(whole, encodeOptions());
    const a = await runEncode(split, encodeOptions({ shard: { index: 0, count: 2 } }));
    const b = await runEncode(split, encodeOptions({ shard: { index: 1, count: 2 } }));
    assert.equal(a.latents.encoded + b.latents.encoded, 34);
    // Whole images parts per shard: which shard encodes a part depends on its name only, so one may get none.
    for (const table of ['latents', 'text'] as const) {
      const expected = await cached(whole, table);
      const actual = await cached(split, table); // throws on an id stored twice
      assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), table);
      for (const [id, row] of expected) assert.deepEqual(actual.get(id)!.values, row.values, `${table} ${id}`);
    }
  });
});

test('an image that does not decode is a reject with its reason; the rest are encoded', async () => {
  const dir = join(root, 'hostile');
  const prompt = 'a red cube';
  const pid = promptId(prompt);
  const good = await noiseImage(3, { width: 80, height: 48 });
  const images = [good, NOT_AN_IMAGE].map((bytes, i) => ({
    image_id: imageId(bytes),
    prompt_id: pid,
    bytes,
    mime: 'image/jpeg',
    width: 80,
    height: 48,
    source_ref: `hand#${i}`,
    model: null,
    seed: null,
  }));
  await writeRowsPart(dir, 'prompts', 'hand', [
    { prompt_id: pid, text: prompt, source: 'pickapic', split: 'train', category: null, challenge: null, note: null, prompt_index: null },
  ]);
  await writeRowsPart(dir, 'images', 'hand', images);
  const [a, b] = [images[0]!.image_id, images[1]!.image_id];
  await writeRowsPart(dir, 'pairs', 'hand', [
    { pair_id: pairId(pid, a, b), prompt_id: pid, image_a: a, image_b: b, human_pref: 1, split: 'train', source_ref: 'hand#0' },
  ]);
  const summary = await runEncode(dir, encodeOptions());
  assert.deepEqual(summary.counts, { read: 2, taken: 1, rejected: 1, byReason: { bad_image: 1 } });
  const rejects = [];
  for await (const r of readRows(dir, 'rejects')) rejects.push(r);
  assert.deepEqual(
    rejects.map((r) => [r.source_ref, r.stage, r.reason]),
    [['hand#1', 'encode', 'bad_image']],
  );
  const latents = await cached(dir, 'latents');
  assert.deepEqual([...latents.keys()], [a]);
  // 80×48 → short side 64: 106×64, centre crop 64×64.
  assertClose(latents.get(a)!.values, referenceLatent(await preprocessPixels(good, { size: 64 }), 64), 'non-square image');
});
