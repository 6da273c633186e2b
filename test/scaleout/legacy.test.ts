// A directory written before per-unit records (units only in manifest.json, keyed by shard layout) is still read,
// and is migrated the first time a stage opens it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { readManifest, type Manifest } from '../../src/core/manifest.ts';
import { readRows } from '../../src/io/arrow-table.ts';
import { cleanRows, noiseImages, writePickapicShard } from '../support/pickapic-fixture.ts';
import { tempDir } from '../support/tmp.ts';

test('a legacy manifest: its 1/1 records count as done, another layout is redone and replaced', async (t) => {
  const root = await tempDir(t);
  const pool = await noiseImages(8, 90);
  const input = join(root, 'train-00000-of-00001.parquet');
  await writePickapicShard(input, cleanRows(pool, 30, 4), { writer: 'hyparquet', rowGroupSize: 10 });
  const out = join(root, 'out');
  const first = await ingestPickapic([input], { out });
  assert.equal(first.unitsWritten, 3);
  const pairsBefore: string[] = [];
  for await (const pair of readRows(out, 'pairs')) pairsBefore.push(pair.pair_id);

  // Make it what earlier versions wrote: no record files, units keyed `<key>:s<i>of<n>` in the manifest. The last
  // unit is said to have run under a layout of 2 shards (its rows then were only those of one shard's ids).
  const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as Manifest;
  const keys = Object.keys(manifest.units).sort();
  const legacy: Manifest['units'] = {};
  for (const [i, key] of keys.entries()) {
    const layout = i === keys.length - 1 ? 's0of2' : 's0of1';
    legacy[`${key}:${layout}`] = { ...manifest.units[key]!, shard: layout };
  }
  delete manifest.unitRecords;
  manifest.units = legacy;
  await writeFile(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  await rm(join(out, 'meta/units'), { recursive: true });

  // Readers check parts against the legacy manifest's records.
  const pairsRead: string[] = [];
  for await (const pair of readRows(out, 'pairs')) pairsRead.push(pair.pair_id);
  assert.deepEqual(pairsRead, pairsBefore);

  const again = await ingestPickapic([input], { out });
  assert.deepEqual([again.unitsWritten, again.unitsSkipped], [1, 2], 'the 1/1 records are done; the 1/2 one is redone');
  const records = (await readdir(join(out, 'meta/units/ingest'))).filter((n) => n.endsWith('.json'));
  assert.equal(records.length, 3, 'migrated: one record file per unit, the superseded layout gone');
  const after = await readManifest(out);
  assert.equal(after.unitRecords, 'meta/units');
  assert.deepEqual(Object.keys(after.units).sort(), [keys[2]!, `${keys[0]}:s0of1`, `${keys[1]}:s0of1`].sort());
  assert.deepEqual(again.counts, first.counts);
});
