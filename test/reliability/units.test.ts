// The unit engine's guarantees, each once a defect found by adversarial testing: a unit whose input changed is redone
// (also when the input is an images part of the same size), recorded sha256s are checked when a part is read or
// trusted as done, and one directory run under two shard layouts ends as one unsharded run.
import assert from 'node:assert/strict';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { listParts, readRows } from '../../src/io/arrow-table.ts';
import { openDatasetParquet, readRowGroupColumns } from '../../src/io/parquet.ts';
import { runConsensus } from '../../src/consensus/run.ts';
import { runLabel } from '../../src/label/run.ts';
import { cleanRows, noiseImages, readDataset, writePickapicShard, type PickapicRow } from '../support/pickapic-fixture.ts';
import { writeMetricsFixture, type MetricsFixture } from '../support/metrics-fixture.ts';
import { tempDir } from '../support/tmp.ts';

const LABEL = { device: 'cpu', intraOpNumThreads: 1, batchSize: 16 } as const;
const SAMPLE = new URL('../../data/pickapic', import.meta.url).pathname;

let models: MetricsFixture;
let pool: Uint8Array[];

before(async () => {
  const { makeTempDir } = await import('../support/tmp.ts');
  models = await writeMetricsFixture(join(await makeTempDir('bdpo-units-models-'), 'm'));
  pool = await noiseImages(14, 300);
});

/** Overwrites `count` bytes in the middle of a file, keeping its size. */
async function flipBytes(path: string, count: number): Promise<void> {
  const size = (await stat(path)).size;
  const handle = await open(path, 'r+');
  try {
    const offset = Math.floor(size / 2);
    const bytes = Buffer.alloc(count);
    await handle.read(bytes, 0, count, offset);
    for (let i = 0; i < count; i++) bytes[i] = bytes[i]! ^ 0x5a;
    await handle.write(bytes, 0, count, offset);
  } finally {
    await handle.close();
  }
}

async function scoreKeys(dir: string, metric: string): Promise<string[]> {
  const keys: string[] = [];
  for (const file of await listParts(dir, `scores/${metric}`, '.parquet')) {
    const source = await openDatasetParquet(dir, file);
    for (const group of source.rowGroups) {
      const data = await readRowGroupColumns(source, group, ['image_id', 'prompt_id']);
      for (let i = 0; i < group.numRows; i++) keys.push(`${String(data.image_id![i])}:${String(data.prompt_id![i])}`);
    }
  }
  return keys.sort();
}

async function imageKeys(dir: string): Promise<string[]> {
  const keys = new Set<string>();
  for await (const row of readRows(dir, 'images')) keys.add(`${row.image_id}:${row.prompt_id}`);
  return [...keys].sort();
}

function withCaptions(rows: readonly PickapicRow[], prefix: string): PickapicRow[] {
  return rows.map((row) => ({ ...row, caption: row.caption === null ? null : `${prefix} ${row.caption}` }));
}

describe('a unit whose input changed is redone', () => {
  test('label rescores an images part that ingest rewrote with other captions (same size)', async (t) => {
    const root = await tempDir(t);
    const input = join(root, 'train-00000-of-00001.parquet');
    const rows = cleanRows(pool, 40, 5);
    await writePickapicShard(input, rows, { writer: 'hyparquet', rowGroupSize: 20 });
    const dir = join(root, 'ds');
    await ingestPickapic([input], { out: dir });
    const first = await runLabel(dir, { ...LABEL, metrics: [models.metrics.pickscore] });
    assert.equal(first.metrics[0]!.partsSkipped, 0);

    await writePickapicShard(input, withCaptions(rows, 'changed'), { writer: 'hyparquet', rowGroupSize: 20 });
    await ingestPickapic([input], { out: dir });
    const second = await runLabel(dir, { ...LABEL, metrics: [models.metrics.pickscore] });
    assert.equal(second.metrics[0]!.partsSkipped, 0, 'every images part was rewritten, so every unit is redone');
    assert.deepEqual(await scoreKeys(dir, 'pickscore'), await imageKeys(dir), 'every image is scored under its current prompt');
  });
});

describe('recorded sha256s are verified', () => {
  test('label refuses an images part whose bytes changed after ingest, naming the file', async (t) => {
    const dir = join(await tempDir(t), 'ds');
    await ingestPickapic([SAMPLE], { out: dir });
    const [part] = await listParts(dir, 'images');
    await flipBytes(join(dir, part!), 12);
    await assert.rejects(
      runLabel(dir, { ...LABEL, metrics: [models.metrics.pickscore] }),
      (error: Error) => error.message.includes(part!) && /sha256/.test(error.message),
    );
    assert.deepEqual(await listParts(dir, 'scores/pickscore', '.parquet'), [], 'nothing was scored from the corrupt part');
  });

  test('a score part of the right size but other bytes is not done: consensus names it, label redoes it', async (t) => {
    const dir = join(await tempDir(t), 'ds');
    await ingestPickapic([SAMPLE], { out: dir });
    await runLabel(dir, { ...LABEL, metrics: [models.metrics.pickscore, models.metrics.clip] });
    const [part] = await listParts(dir, 'scores/clip', '.parquet');
    const good = await readFile(join(dir, part!));
    await flipBytes(join(dir, part!), 12);
    await assert.rejects(
      runConsensus(dir, { rule: 'majority' }),
      (error: Error) => error.message.includes(part!) && /sha256/.test(error.message),
    );
    const again = await runLabel(dir, { ...LABEL, metrics: [models.metrics.pickscore, models.metrics.clip] });
    const clip = again.metrics.find((m) => m.name === 'clip')!;
    assert.equal(clip.partsWritten, 1, 'the corrupt unit is redone');
    assert.deepEqual(await readFile(join(dir, part!)), good, 'and rewritten to the same bytes');
    await runConsensus(dir, { rule: 'majority' });
  });
});

describe('one directory, two shard layouts', () => {
  test('ingest --shard 0/2, then an unsharded ingest: the same tables as one unsharded run', async (t) => {
    const root = await tempDir(t);
    const reference = join(root, 'whole');
    await ingestPickapic([SAMPLE], { out: reference });
    const mixed = join(root, 'mixed');
    await ingestPickapic([SAMPLE], { out: mixed, shard: { index: 0, count: 2 } });
    const summary = await ingestPickapic([SAMPLE], { out: mixed });
    const [want, got] = [await readDataset(reference), await readDataset(mixed)];
    const ids = (rows: readonly object[], key: string) => rows.map((r) => String((r as Record<string, unknown>)[key])).sort();
    assert.deepEqual(ids(got.pairs, 'pair_id'), ids(want.pairs, 'pair_id'));
    assert.deepEqual(ids(got.images, 'image_id'), ids(want.images, 'image_id'));
    assert.deepEqual(ids(got.prompts, 'prompt_id'), ids(want.prompts, 'prompt_id'));
    assert.deepEqual(ids(got.rejects, 'source_ref'), ids(want.rejects, 'source_ref'));
    assert.equal(summary.counts.read, summary.counts.taken + summary.counts.rejected);
  });

  test('label --shard 0/2, then an unsharded label: each image scored once', async (t) => {
    const dir = join(await tempDir(t), 'ds');
    await ingestPickapic([SAMPLE], { out: dir });
    await runLabel(dir, { ...LABEL, metrics: [models.metrics.pickscore], shard: { index: 0, count: 2 } });
    await runLabel(dir, { ...LABEL, metrics: [models.metrics.pickscore] });
    assert.deepEqual(await scoreKeys(dir, 'pickscore'), await imageKeys(dir));
  });
});
