// Ingest verifies images in the image worker pool, the one label and encode use: the same verdicts as checkImage on
// the calling thread, the number of workers asked for, none left once the run ends, and the same parts whatever the
// number of workers.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { ingestCommand } from '../../src/cli/ingest.ts';
import { UsageError } from '../../src/core/errors.ts';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { checkImage } from '../../src/models/image-check.ts';
import { ImagePool, liveImageWorkers } from '../../src/models/image-pool.ts';
import { cleanRows, NOT_AN_IMAGE, noiseImage, noiseImages, truncatedJpeg, writePickapicShard } from '../support/pickapic-fixture.ts';
import { tempDir } from '../support/tmp.ts';

async function verdictCases(): Promise<Array<{ name: string; bytes: Uint8Array; maxPixels?: number }>> {
  const gif = await sharp({ create: { width: 9, height: 7, channels: 3, background: '#336699' } })
    .gif()
    .toBuffer();
  const tiff = await sharp({ create: { width: 9, height: 7, channels: 3, background: '#336699' } })
    .tiff()
    .toBuffer();
  return [
    { name: 'jpeg', bytes: await noiseImage(31, { width: 90, height: 60 }) },
    { name: 'png', bytes: await noiseImage(32, { width: 40, height: 70, format: 'png' }) },
    { name: 'gif', bytes: new Uint8Array(gif) },
    { name: 'tiff (unsupported)', bytes: new Uint8Array(tiff) },
    { name: 'truncated', bytes: await truncatedJpeg(33, 128) },
    { name: 'not an image', bytes: NOT_AN_IMAGE },
    { name: 'too many pixels', bytes: await noiseImage(34, { width: 200, height: 100 }), maxPixels: 10_000 },
  ];
}

for (const workers of [1, 2]) {
  test(`the pool's checkImage gives checkImage's verdict (${workers} worker(s))`, async () => {
    const cases = await verdictCases();
    const pool = new ImagePool(workers);
    try {
      const inPool = await Promise.all(cases.map((c) => pool.checkImage(c.bytes, { maxPixels: c.maxPixels ?? 89_478_485, decode: true })));
      for (const [i, c] of cases.entries()) {
        assert.deepEqual(inPool[i], await checkImage(c.bytes, { maxPixels: c.maxPixels ?? 89_478_485, decode: true }), c.name);
      }
      assert.deepEqual(
        inPool.map((v) => (v.ok ? 'ok' : v.reason)),
        ['ok', 'ok', 'ok', 'unsupported_format', 'bad_image', 'bad_image', 'too_many_pixels'],
      );
    } finally {
      await pool.dispose();
    }
    assert.equal(liveImageWorkers(), 0);
  });
}

async function pickapicInput(root: string): Promise<string[]> {
  const images = await noiseImages(10, 300, { width: 96, height: 64 });
  const broken = await truncatedJpeg(400, 96);
  const rows = cleanRows(images, 30, 5).map((row, i) => (i % 7 === 3 ? { ...row, jpg_1: broken } : row));
  const input = join(root, 'train-00000-of-00001.parquet');
  await writePickapicShard(input, rows, { writer: 'duckdb', rowGroupSize: 10 });
  return [input];
}

async function partsOf(dir: string): Promise<Map<string, Buffer>> {
  const found = new Map<string, Buffer>();
  for (const table of ['prompts', 'images', 'pairs', 'rejects']) {
    const names = await readdir(join(dir, table)).catch(() => [] as string[]);
    for (const name of names.sort()) found.set(`${table}/${name}`, await readFile(join(dir, table, name)));
  }
  return found;
}

test('ingest verifies in the worker pool: the workers asked for, none left after, the same parts for 1 and 3', async (t) => {
  const root = await tempDir(t);
  const inputs = await pickapicInput(root);
  const parts: Array<Map<string, Buffer>> = [];
  for (const workers of [1, 3]) {
    let seen = 0;
    const summary = await ingestPickapic(inputs, {
      out: join(root, `out-${workers}`),
      workers,
      onProgress: () => {
        seen = Math.max(seen, liveImageWorkers());
      },
    });
    assert.equal(seen, workers, 'the images were verified by the number of workers asked for');
    assert.equal(liveImageWorkers(), 0);
    assert.equal(summary.counts.read, summary.counts.taken + summary.counts.rejected);
    assert.ok((summary.counts.byReason.bad_image ?? 0) > 0, 'the truncated JPEGs were decoded, and rejected');
    parts.push(await partsOf(join(root, `out-${workers}`)));
  }
  assert.deepEqual([...parts[1]!.keys()], [...parts[0]!.keys()]);
  for (const [file, bytes] of parts[0]!) assert.ok(bytes.equals(parts[1]!.get(file)!), `${file} differs`);
});

test('ingest --no-decode reads headers on the calling thread and starts no worker', async (t) => {
  const root = await tempDir(t);
  const inputs = await pickapicInput(root);
  let seen = 0;
  await ingestPickapic(inputs, {
    out: join(root, 'out'),
    decode: false,
    onProgress: () => {
      seen = Math.max(seen, liveImageWorkers());
    },
  });
  assert.equal(seen, 0);
});

test('ingest --workers takes an integer ≥ 0; the library refuses a bad count before reading', async (t) => {
  const root = await tempDir(t);
  for (const bad of ['-1', '2.5', 'all']) {
    await assert.rejects(ingestCommand(['parti', 'missing.tsv', '--out', join(root, 'x'), `--workers=${bad}`]), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, /--workers must be an integer in 0\.\.\d+/);
      return true;
    });
  }
  await assert.rejects(ingestPickapic(await pickapicInput(root), { out: join(root, 'y'), workers: -2 }), /workers must be an integer ≥ 0/);
});
