// The reader's de-duplication over parts written by hand (no id lists beside them): keys compared by their words,
// hex ids and other ids alike, images by (image, prompt, model, seed); and a plan handed over by another thread is
// used only while the directory is as it was when the plan was made.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { droppedRows, readerDuplicatePlan, readPart, writeRowsPart } from '../../src/io/arrow-table.ts';
import { adoptDuplicatePlan } from '../../src/io/part-dedupe.ts';
import { sha256Hex } from '../../src/core/ids.ts';
import type { ImageRow, PairRow } from '../../src/core/schema.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';

const pair = (id: string): PairRow => ({
  pair_id: id,
  prompt_id: sha256Hex('prompt'),
  image_a: sha256Hex(`a ${id}`),
  image_b: sha256Hex(`b ${id}`),
  human_pref: 1,
  split: 'train',
  source_ref: `ref ${id}`,
});
const image = (id: string, seed: number | null, model: string | null = null): ImageRow => ({
  image_id: id,
  prompt_id: sha256Hex('prompt'),
  bytes: new Uint8Array(0),
  mime: 'image/png',
  width: 1,
  height: 1,
  source_ref: `${id} ${seed}`,
  model,
  seed,
});

test('parts without id lists: a later copy of a pair or an image is dropped, hex ids and others alike', async () => {
  const dir = await makeTempDir('bdpo-dedupe-');
  try {
    const [h1, h2, h3] = ['one', 'two', 'three'].map((s) => sha256Hex(s)) as [string, string, string];
    // Two hex ids that share their first 32 digits are different ids.
    const near = `${h1.slice(0, 63)}${h1.endsWith('0') ? '1' : '0'}`;
    await writeRowsPart(dir, 'pairs', 'x-0', [pair(h1), pair('pair-1'), pair(h2)]);
    await writeRowsPart(dir, 'pairs', 'x-1', [pair(h3), pair(h1), pair('pair-1'), pair('pair-2'), pair(near)]);
    assert.deepEqual(await droppedRows(dir, 'pairs/part-x-0.arrow'), []);
    assert.deepEqual(await droppedRows(dir, 'pairs/part-x-1.arrow'), [1, 2]);
    const kept = (await readPart(dir, 'pairs/part-x-1.arrow')).getChild('pair_id')!.toArray();
    assert.deepEqual([...kept], [h3, 'pair-2', near]);

    const img = sha256Hex('image');
    await writeRowsPart(dir, 'images', 'x-0', [image(img, 1), image(img, 2), image(img, null, 'm')]);
    await writeRowsPart(dir, 'images', 'x-1', [image(img, 2), image(img, 3), image(img, null, 'm'), image(img, null)]);
    assert.deepEqual(await droppedRows(dir, 'images/part-x-1.arrow'), [0, 2]);
  } finally {
    await removeDir(dir);
  }
});

test('a plan handed over is used while the directory is unchanged, and recomputed once it changes', async () => {
  const dir = await makeTempDir('bdpo-dedupe-');
  try {
    await writeRowsPart(dir, 'pairs', 'x-0', [pair('a'), pair('b')]);
    await writeRowsPart(dir, 'pairs', 'x-1', [pair('c'), pair('a')]);
    const plan = await readerDuplicatePlan(dir);
    assert.deepEqual(plan.duplicates.get('pairs/part-x-1.arrow'), [1]);
    // A plan that says otherwise, under the current signature: the reader follows it, which shows it is used.
    adoptDuplicatePlan(dir, { signature: plan.signature, duplicates: new Map([['pairs/part-x-1.arrow', [0]]]) });
    assert.deepEqual(await droppedRows(dir, 'pairs/part-x-1.arrow'), [0]);
    // The folder changes: the handed-over plan no longer describes it and is recomputed.
    const later = new Date(Date.now() + 5000);
    await utimes(join(dir, 'pairs'), later, later);
    assert.deepEqual(await droppedRows(dir, 'pairs/part-x-1.arrow'), [1]);
  } finally {
    await removeDir(dir);
  }
});
