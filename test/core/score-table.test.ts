// The score table over real Parquet score files: every (image, prompt) found whatever the ids look like, an image
// under two prompts kept apart, and a table that outgrows the size it was allocated for (two metrics scoring
// different images) still finding every row, from strings and from a worker-shared copy of its buffers.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { sha256Hex } from '../../src/core/ids.ts';
import { SCORE_SPECS } from '../../src/core/schema.ts';
import { loadScoreTable } from '../../src/core/score-table.ts';
import { writeParquetPart } from '../../src/io/parquet.ts';
import { tempDir } from '../support/tmp.ts';

async function writeMetric(dir: string, metric: string, rows: Array<[string, string, number]>): Promise<void> {
  await writeParquetPart(dir, `scores/${metric}/part-00000.parquet`, SCORE_SPECS, {
    image_id: rows.map((r) => r[0]),
    prompt_id: rows.map((r) => r[1]),
    score: Float64Array.from(rows, (r) => r[2]),
    metric_version: rows.map(() => 'v1'),
  });
  await mkdir(join(dir, 'meta', 'scores'), { recursive: true });
  const info = { name: metric, kind: 'clip', version: 'v1', score: 'cos', temperature: 0.01 };
  await writeFile(join(dir, 'meta', 'scores', `${metric}.json`), JSON.stringify(info));
}

test('two metrics over different images: the table grows past its first size and finds every score', async (t) => {
  const dir = await tempDir(t);
  const image = (i: number): string => (i % 7 === 0 ? `img-${i}` : sha256Hex(`image ${i}`));
  const prompt = (i: number): string => (i % 5 === 0 ? `prompt ${i % 40}` : sha256Hex(`prompt ${i % 40}`));
  const n = 3000;
  await writeMetric(
    dir,
    'a',
    Array.from({ length: n }, (_, i): [string, string, number] => [image(i), prompt(i), i]),
  );
  await writeMetric(
    dir,
    'b',
    Array.from({ length: n }, (_, i): [string, string, number] => [image(i + n), prompt(i + n), -i]),
  );
  const table = await loadScoreTable(dir);
  assert.equal(table.images, 2 * n);
  for (let i = 0; i < n; i++) {
    assert.equal(table.score(0, image(i), prompt(i)), i);
    assert.ok(Number.isNaN(table.score(1, image(i), prompt(i))));
    assert.equal(table.score(1, image(i + n), prompt(i + n)), -i);
  }
  assert.ok(Number.isNaN(table.score(0, image(1), prompt(2))), 'an image under another prompt is not scored');
  assert.ok(Number.isNaN(table.score(0, 'no such image', prompt(1))));
  assert.equal(table.stats.a!.count, n);

  // A worker thread reads the same buffers (shared, not copied) and finds the same scores.
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    parentPort.postMessage(workerData.scores[0][workerData.rows - 1]);`;
  const worker = new Worker(source, { eval: true, workerData: table.shared });
  const last = await new Promise((resolve) => worker.once('message', resolve));
  await worker.terminate();
  assert.ok(table.shared.scores[0]!.buffer instanceof SharedArrayBuffer);
  assert.ok(Number.isNaN(last as number), 'the last row is a metric-b image, not scored by a');
});

test('the same image under two prompts is two rows, each with its own score', async (t) => {
  const dir = await tempDir(t);
  const img = sha256Hex('shared image');
  await writeMetric(dir, 'a', [
    [img, sha256Hex('p1'), 1.5],
    [img, sha256Hex('p2'), 2.5],
  ]);
  const table = await loadScoreTable(dir);
  assert.equal(table.images, 2);
  assert.equal(table.score(0, img, sha256Hex('p1')), 1.5);
  assert.equal(table.score(0, img, sha256Hex('p2')), 2.5);
});
