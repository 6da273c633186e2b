import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { ownerOf, owns, parseShard, resolveShard, shardLabel, ShardError, WHOLE } from '../src/shard.ts';

const sha = (text: string): string => createHash('sha256').update(text).digest('hex');

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
  assert.deepEqual(
    resolveShard({ shards: '4' }, { JOB_COMPLETION_INDEX: '1', SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_COUNT: '8' }),
    { index: 1, count: 4 },
  );

  // Slurm arrays: ids start at SLURM_ARRAY_TASK_MIN (0 when unset).
  assert.deepEqual(resolveShard({}, { SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_COUNT: '4' }), { index: 2, count: 4 });
  assert.deepEqual(
    resolveShard({}, { SLURM_ARRAY_TASK_ID: '5', SLURM_ARRAY_TASK_COUNT: '4', SLURM_ARRAY_TASK_MIN: '4' }),
    { index: 1, count: 4 },
  );
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
