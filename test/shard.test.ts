import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { ownerOf, owns, parseShard, resolveShard, shardLabel, ShardError, WHOLE } from '../src/core/shard.ts';
import { ingestPickapic } from '../src/ingest/pickapic.ts';
import { listParts, readPart, readRows } from '../src/io/arrow-table.ts';
import { readManifest } from '../src/core/manifest.ts';
import type { TableName } from '../src/core/schema.ts';
import { cleanRows, hostileScenario, noiseImages, writePickapicShard } from './support/pickapic-fixture.ts';
import { tempDir } from './support/tmp.ts';

const sha = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

test('parseShard reads i/n (0-based) and refuses anything else', () => {
  assert.deepEqual(parseShard('0/4'), { index: 0, count: 4 });
  assert.deepEqual(parseShard(' 3/4 '), { index: 3, count: 4 });
  assert.deepEqual(parseShard('0/1'), WHOLE);
  for (const bad of ['4/4', '1/0', '0/0', '-1/3', 'a/b', '1-3', '1/3/5', '', '1.5/3']) {
    assert.throws(() => parseShard(bad), ShardError, bad);
  }
});

test('resolveShard: --shard, then JOB_COMPLETION_INDEX with --shards, then a Slurm array, then the whole input', () => {
  assert.deepEqual(resolveShard({}, {}), WHOLE);
  assert.deepEqual(resolveShard({ shard: '1/3' }, { JOB_COMPLETION_INDEX: '0', SLURM_ARRAY_TASK_ID: '2' }), { index: 1, count: 3 });

  // Kubernetes Indexed Job: the index comes from the environment, the count from --shards.
  assert.deepEqual(resolveShard({ shards: '3' }, { JOB_COMPLETION_INDEX: '2' }), { index: 2, count: 3 });
  assert.deepEqual(resolveShard({ shards: 5 }, { JOB_COMPLETION_INDEX: '0' }), { index: 0, count: 5 });
  assert.throws(() => resolveShard({}, { JOB_COMPLETION_INDEX: '2' }), /--shards/);
  assert.throws(() => resolveShard({ shards: '3' }, { JOB_COMPLETION_INDEX: '3' }), ShardError);
  assert.throws(() => resolveShard({ shards: 'three' }, { JOB_COMPLETION_INDEX: '1' }), ShardError);
  // An Indexed Job inside a Slurm allocation is still an Indexed Job.
  assert.deepEqual(resolveShard({ shards: '4' }, { JOB_COMPLETION_INDEX: '1', SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_COUNT: '8' }), {
    index: 1,
    count: 4,
  });

  // Slurm arrays: ids start at SLURM_ARRAY_TASK_MIN (0 when unset).
  assert.deepEqual(resolveShard({}, { SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_COUNT: '4' }), { index: 2, count: 4 });
  assert.deepEqual(resolveShard({}, { SLURM_ARRAY_TASK_ID: '5', SLURM_ARRAY_TASK_COUNT: '4', SLURM_ARRAY_TASK_MIN: '4' }), {
    index: 1,
    count: 4,
  });
  assert.throws(() => resolveShard({}, { SLURM_ARRAY_TASK_ID: '4', SLURM_ARRAY_TASK_COUNT: '4' }), ShardError);
  assert.deepEqual(resolveShard({}, { SLURM_ARRAY_TASK_ID: '2' }), WHOLE, 'a task id without a count is not an array');

  assert.throws(() => resolveShard({ shards: '3' }, {}), /JOB_COMPLETION_INDEX/);
});

test('ownerOf: the first 13 hex digits of a content id modulo n; other keys are hashed first', () => {
  const allF = 'f'.repeat(64);
  // 0xfffffffffffff = 2^52 − 1; 2^52 ≡ 1 (mod 3), ≡ 2 (mod 7), ≡ 0 (mod 4).
  assert.equal(ownerOf(allF, 3), 0);
  assert.equal(ownerOf(allF, 7), 1);
  assert.equal(ownerOf(allF, 4), 3);
  assert.equal(ownerOf(`0000000000007${'f'.repeat(51)}`, 5), 2);
  assert.equal(ownerOf(allF, 1), 0);

  const ref = 'train-00000-of-00002.parquet#17';
  const hashed = sha(ref);
  assert.equal(ownerOf(ref, 6), Number(BigInt(`0x${hashed.slice(0, 13)}`) % 6n));
  assert.equal(ownerOf(ref, 6), ownerOf(hashed, 6));
  assert.equal(shardLabel({ index: 2, count: 3 }), 's2of3');
  assert.equal(shardLabel(WHOLE), 's0of1');
});

test('owns partitions keys: each key in exactly one of n shards, about 1/n each', () => {
  const n = 3;
  const counts = [0, 0, 0];
  for (let i = 0; i < 30_000; i++) {
    const key = i % 2 === 0 ? sha(`image ${i}`) : `source.parquet#${i}`;
    const owners = [0, 1, 2].filter((index) => owns({ index, count: n }, key));
    assert.equal(owners.length, 1, key);
    counts[owners[0]!]! += 1;
    assert.ok(owns(WHOLE, key));
  }
  // χ² with 2 degrees of freedom; its 0.999 quantile is 13.8.
  const chi2 = counts.reduce((s, c) => s + (c - 10_000) ** 2 / 10_000, 0);
  assert.ok(chi2 < 13.8, `counts ${counts.join(', ')}: χ² = ${chi2}`);
});

// ---------------------------------------------------------------------------------------------------------------
// Sharded ingest: n shards into one directory make exactly the unsharded dataset

const ROW_KEY = (row: Record<string, unknown>): string =>
  JSON.stringify(row, (key, value: unknown) =>
    value instanceof Uint8Array ? `sha256:${sha(value as Uint8Array)}` : key === 'detail' ? undefined : value,
  );

async function rowsByPart(dir: string, table: TableName): Promise<Map<string, Record<string, unknown>[]>> {
  const parts = new Map<string, Record<string, unknown>[]>();
  for (const file of await listParts(dir, table)) {
    const part = await readPart(dir, file);
    parts.set(
      file,
      part.toArray().map((row) => ({ ...(row.toJSON() as Record<string, unknown>) })),
    );
  }
  return parts;
}

test('--shard i/3 into one directory: each shard runs whole units, the union is the unsharded dataset, counts add up', async (t) => {
  const root = await tempDir(t);
  const { rows: hostile } = await hostileScenario();
  const pool = await noiseImages(16, 40);
  await writePickapicShard(join(root, 'train-00000-of-00002.parquet'), hostile, { writer: 'arrow-rs', rowGroupSize: 6 });
  await writePickapicShard(join(root, 'train-00001-of-00002.parquet'), cleanRows(pool, 90, 3), { writer: 'duckdb', rowGroupSize: 30 });
  const inputs = [join(root, 'train-00000-of-00002.parquet'), join(root, 'train-00001-of-00002.parquet')];

  const whole = await ingestPickapic(inputs, { out: join(root, 'whole') });
  const shardedDir = join(root, 'sharded');
  // Side by side, as three jobs of an array would run, sharing the directory.
  const shards = await Promise.all([0, 1, 2].map((index) => ingestPickapic(inputs, { out: shardedDir, shard: { index, count: 3 } })));

  // Every unit ran on exactly one shard, and rows read add up; each shard's counts balance.
  assert.equal(
    shards.reduce((n, s) => n + s.unitsWritten, 0),
    whole.unitsWritten,
  );
  assert.equal(
    shards.reduce((n, s) => n + s.counts.read, 0),
    whole.counts.read,
  );
  for (const s of shards) assert.equal(s.counts.read, s.counts.taken + s.counts.rejected);

  // The same parts, byte for byte, under the same names: a unit's output does not depend on the layout.
  for (const table of ['prompts', 'images', 'pairs', 'rejects'] as const) {
    const wholeParts = await rowsByPart(join(root, 'whole'), table);
    const shardedParts = await rowsByPart(shardedDir, table);
    assert.deepEqual([...shardedParts.keys()], [...wholeParts.keys()], table);
    for (const file of wholeParts.keys()) {
      assert.ok((await readFile(join(root, 'whole', file))).equals(await readFile(join(shardedDir, file))), file);
    }
    // And the reader yields the same rows, each id once.
    const read = async (dir: string) => {
      const out: string[] = [];
      for await (const row of readRows(dir, table)) out.push(ROW_KEY(row as unknown as Record<string, unknown>));
      return out.sort();
    };
    assert.deepEqual(await read(shardedDir), await read(join(root, 'whole')), table);
  }

  const manifest = await readManifest(shardedDir);
  assert.equal(Object.keys(manifest.units).length, whole.unitsWritten, 'one record per unit, whoever ran it');
  assert.deepEqual(manifest.runs.map((r) => r.shard.index).sort(), [0, 1, 2]);
});
