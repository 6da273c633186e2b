// Recording a unit costs the same whatever the run's size, and a unit whose input changed is redone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UnitLedger } from '../../src/core/units.ts';
import { WHOLE } from '../../src/core/shard.ts';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { cleanRows, noiseImages, writePickapicShard } from '../support/pickapic-fixture.ts';
import { tempDir } from '../support/tmp.ts';

const outcome = (i: number) => ({ parts: [], counts: { read: i, taken: i, rejected: 0, byReason: {} } });

/** Bytes the ledger writes to record one more unit in a directory that already records `existing` units. */
async function commitCost(dir: string, existing: number): Promise<{ bytes: number; manifestTouched: boolean }> {
  const ledger = await UnitLedger.open(dir, 'synthetic', WHOLE);
  for (let i = 0; i < existing; i++) await ledger.commit({ key: `synthetic:unit-${String(i).padStart(6, '0')}` }, outcome(i));
  const before = await stat(join(dir, 'manifest.json')).catch(() => null);
  const start = ledger.recordBytes;
  await ledger.commit({ key: 'synthetic:unit-last' }, outcome(7));
  const after = await stat(join(dir, 'manifest.json')).catch(() => null);
  return { bytes: ledger.recordBytes - start, manifestTouched: before?.mtimeMs !== after?.mtimeMs };
}

test('bookkeeping is O(1) per unit: the same bytes for one commit after 50 or 1,500 units; no manifest rewrite', async (t) => {
  const root = await tempDir(t);
  const small = await commitCost(join(root, 'small'), 50);
  const large = await commitCost(join(root, 'large'), 1_500);
  assert.equal(large.bytes, small.bytes, 'one record file of the same size');
  assert.ok(small.bytes < 300, `${small.bytes} bytes`);
  assert.equal(small.manifestTouched || large.manifestTouched, false, 'a commit does not read or rewrite manifest.json');
});

test('a row group whose bytes changed is redone; the other units of the rewritten file are not', async (t) => {
  const root = await tempDir(t);
  const pool = await noiseImages(10, 40);
  const input = join(root, 'train-00000-of-00001.parquet');
  const rows = cleanRows(pool, 40, 2);
  await writePickapicShard(input, rows, { writer: 'hyparquet', rowGroupSize: 10 });
  const out = join(root, 'out');
  const first = await ingestPickapic([input], { out });
  assert.equal(first.unitsWritten, 4);
  // Same file, same rows, one caption of row group 2 changed: the file's size and mtime change, so every unit is
  // fingerprinted again; only the changed row group is redone.
  const changed = rows.map((row, i) => (i === 25 ? { ...row, caption: `${row.caption} (edited)` } : row));
  await writePickapicShard(input, changed, { writer: 'hyparquet', rowGroupSize: 10 });
  const second = await ingestPickapic([input], { out });
  assert.deepEqual([second.unitsWritten, second.unitsSkipped], [1, 3]);
  const third = await ingestPickapic([input], { out });
  assert.deepEqual([third.unitsWritten, third.unitsSkipped], [0, 4]);
});
