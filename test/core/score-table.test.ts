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

test('score files read the same whichever way their ids are written: plain pages, a dictionary, nullable, many row groups', async (t) => {
  const n = 5000;
  // Images under several prompts repeat (a dictionary for image_id too); prompts repeat (a dictionary for prompt_id).
  const rows = Array.from({ length: n }, (_, i): [string, string, number] => [
    i % 2 === 0 ? sha256Hex(`image ${i}`) : sha256Hex(`image ${i % 50}`),
    i % 3 === 0 ? `prompt ${i % 7}` : sha256Hex(`prompt ${i % 60}`),
    Math.sin(i),
  ]);
  const layouts = {
    plain: {
      rows: rows.map((r, i): [string, string, number] => [sha256Hex(`unique ${i}`), sha256Hex(`p ${i}`), r[2]]),
      nullable: false,
      group: 100_000,
    },
    dictionaries: { rows, nullable: false, group: 100_000 },
    nullable: { rows, nullable: true, group: 100_000 },
    groups: { rows, nullable: false, group: 333 },
  };
  for (const [name, layout] of Object.entries(layouts)) {
    const dir = await tempDir(t);
    const specs = SCORE_SPECS.map((s) => (s.name.endsWith('_id') ? { ...s, nullable: layout.nullable } : s));
    await writeParquetPart(
      dir,
      'scores/m/part-00000.parquet',
      specs,
      {
        image_id: layout.rows.map((r) => r[0]),
        prompt_id: layout.rows.map((r) => r[1]),
        score: Float64Array.from(layout.rows, (r) => r[2]),
        metric_version: layout.rows.map(() => 'v1'),
      },
      { rowGroupSize: layout.group },
    );
    await mkdir(join(dir, 'meta', 'scores'), { recursive: true });
    await writeFile(
      join(dir, 'meta', 'scores', 'm.json'),
      JSON.stringify({ name: 'm', kind: 'clip', version: 'v1', score: 'cos', temperature: 0.01 }),
    );
    const table = await loadScoreTable(dir);
    const expected = new Map(layout.rows.map((r) => [`${r[0]} ${r[1]}`, r[2]]));
    assert.equal(table.images, expected.size, name);
    for (const [key, score] of expected) {
      const [image, prompt] = key.split(' ', 2) as [string, string];
      const at = key.indexOf(' ');
      assert.equal(table.score(0, key.slice(0, at), key.slice(at + 1)), score, `${name}: ${image} under ${prompt}`);
    }
  }
});

test('a null score in a file not ours is no score (NaN), not a score of 0', async (t) => {
  const dir = await tempDir(t);
  const specs = SCORE_SPECS.map((s) => (s.name === 'score' ? { ...s, nullable: true } : s));
  await writeParquetPart(dir, 'scores/m/part-00000.parquet', specs, {
    image_id: [sha256Hex('a'), sha256Hex('b')],
    prompt_id: [sha256Hex('p'), sha256Hex('p')],
    score: [0.5, null],
    metric_version: ['v1', 'v1'],
  });
  await mkdir(join(dir, 'meta', 'scores'), { recursive: true });
  await writeFile(
    join(dir, 'meta', 'scores', 'm.json'),
    JSON.stringify({ name: 'm', kind: 'clip', version: 'v1', score: 'cos', temperature: 0.01 }),
  );
  const table = await loadScoreTable(dir);
  assert.equal(table.score(0, sha256Hex('a'), sha256Hex('p')), 0.5);
  assert.ok(Number.isNaN(table.score(0, sha256Hex('b'), sha256Hex('p'))));
});
