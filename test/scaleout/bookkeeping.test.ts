// Recording a unit costs the same whatever the run's size, and a unit whose input changed is redone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { UnitLedger } from '../../src/core/units.ts';
import { WHOLE } from '../../src/core/shard.ts';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { cleanRows, noiseImages, writePickapicShard } from '../support/pickapic-fixture.ts';
import { tempDir } from '../support/tmp.ts';

const outcome = (i: number) => ({ parts: [], counts: { read: i, taken: i, rejected: 0, byReason: {} } });

/** Every file under a folder with its size and mtime. */
async function snapshot(dir: string): Promise<Map<string, { size: number; mtimeMs: number }>> {
  const files = new Map<string, { size: number; mtimeMs: number }>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const info = await stat(path).catch(() => null);
    if (info) files.set(path, { size: info.size, mtimeMs: info.mtimeMs });
  }
  return files;
}

/**
 * Bytes of the files that recording one more unit writes, in a directory that already records `existing` units:
 * measured from the files themselves (those new or changed), whatever the bookkeeping's layout.
 */
async function commitCost(dir: string, existing: number): Promise<number> {
  const ledger = await UnitLedger.open(dir, 'synthetic', WHOLE);
  for (let i = 0; i < existing; i++) await ledger.commit({ key: `synthetic:unit-${String(i).padStart(6, '0')}` }, outcome(i));
  const before = await snapshot(dir);
  await sleep(20); // so that a rewritten file's mtime moves
  await ledger.commit({ key: 'synthetic:unit-last' }, outcome(7));
  let bytes = 0;
  for (const [path, info] of await snapshot(dir)) {
    const old = before.get(path);
    if (!old || old.mtimeMs !== info.mtimeMs || old.size !== info.size) bytes += info.size;
  }
  return bytes;
}

test('bookkeeping is O(1) per unit: one commit writes the same bytes after 50 or after 1,000 units', async (t) => {
  const root = await tempDir(t);
  const small = await commitCost(join(root, 'small'), 50);
  const large = await commitCost(join(root, 'large'), 1_000);
  assert.ok(small > 0 && small < 300, `${small} bytes`);
  assert.equal(large, small, `after 1,000 units a commit wrote ${large} bytes, after 50 ${small}`);
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
