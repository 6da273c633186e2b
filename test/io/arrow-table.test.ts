import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import { encodeRows, listParts, partFile, readPart, readRows, writeRowsPart } from '../../src/io/arrow-table.ts';
import type { ImageRow, PairRow, PromptRow, RejectRow } from '../../src/core/schema.ts';
import { tempDir } from '../support/tmp.ts';

const prompts: PromptRow[] = [
  { prompt_id: 'p1', text: 'a cat', source: 'parti', split: 'eval', category: 'Animals', challenge: 'Basic', note: null, prompt_index: 0 },
  { prompt_id: 'p2', text: 'ünïcödé ✓', source: 'pickapic', split: null, category: null, challenge: null, note: '', prompt_index: null },
];
const images: ImageRow[] = [
  {
    image_id: 'i1',
    prompt_id: 'p1',
    bytes: new Uint8Array([0xff, 0xd8, 0, 1, 2]),
    mime: 'image/jpeg',
    width: 512,
    height: 384,
    source_ref: 'a#0:jpg_0',
    model: null,
    seed: null,
  },
  {
    image_id: 'i2',
    prompt_id: 'p1',
    bytes: new Uint8Array(0),
    mime: 'image/png',
    width: 1,
    height: 1,
    source_ref: 'm/1_3.png',
    model: 'sdxl',
    seed: 3,
  },
];
const pairs: PairRow[] = [1, 0, 0.5, null].map((pref, i) => ({
  pair_id: `q${i}`,
  prompt_id: 'p1',
  image_a: 'i1',
  image_b: 'i2',
  human_pref: pref,
  split: i === 3 ? null : 'train',
  source_ref: `x#${i}`,
}));
const rejects: RejectRow[] = [{ source_ref: 'x#9', stage: 'ingest', reason: 'bad_image', detail: 'VipsJpeg: premature end' }];

/** IPC *file* format: "ARROW1" + 2 bytes padding at the start, "ARROW1" at the end (the stream format has neither). */
function assertFileFormat(bytes: Uint8Array): void {
  const text = (from: number, to: number): string => Buffer.from(bytes.subarray(from, to)).toString('latin1');
  assert.equal(text(0, 6), 'ARROW1');
  assert.equal(text(bytes.byteLength - 6, bytes.byteLength), 'ARROW1');
}

test("encodeRows: Arrow IPC file bytes with the schema module's columns, types and nulls; deterministic", () => {
  const bytes = encodeRows('prompts', prompts);
  assertFileFormat(bytes);
  assert.deepEqual(encodeRows('prompts', prompts), bytes, 'same rows, same bytes');
  const table = tableFromIPC(bytes);
  assert.deepEqual(
    table.schema.fields.map((f) => [f.name, String(f.type), f.nullable]),
    [
      ['prompt_id', 'Utf8', false],
      ['text', 'Utf8', false],
      ['source', 'Utf8', false],
      ['split', 'Utf8', true],
      ['category', 'Utf8', true],
      ['challenge', 'Utf8', true],
      ['note', 'Utf8', true],
      ['prompt_index', 'Int32', true],
    ],
  );
  assert.deepEqual(
    table.toArray().map((row) => ({ ...row.toJSON() })),
    prompts,
  );

  const imageTable = tableFromIPC(encodeRows('images', images));
  assert.deepEqual(
    imageTable.schema.fields.map((f) => String(f.type)),
    ['Utf8', 'Utf8', 'Binary', 'Utf8', 'Int32', 'Int32', 'Utf8', 'Utf8', 'Int32'],
  );
  assert.deepEqual(imageTable.getChild('bytes')!.get(0), images[0]!.bytes);
  assert.equal(imageTable.getChild('bytes')!.get(1)!.byteLength, 0, 'an empty binary is empty, not null');
  assert.equal(imageTable.getChild('seed')!.get(0), null);

  const pairTable = tableFromIPC(encodeRows('pairs', pairs));
  assert.equal(String(pairTable.schema.fields[4]!.type), 'Float64');
  assert.deepEqual(pairTable.getChild('human_pref')!.toArray().length, 4);
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => pairTable.getChild('human_pref')!.get(i)),
    [1, 0, 0.5, null],
  );
  assert.equal(tableFromIPC(encodeRows('rejects', [])).numRows, 0);
});

test('encodeRows refuses a null in a non-nullable column', () => {
  const bad = [{ ...pairs[0]!, image_a: null as unknown as string }];
  assert.throws(() => encodeRows('pairs', bad), /pairs\.image_a is not nullable/);
});

test('writeRowsPart, listParts, readPart, readRows: parts in name order, temp files ignored', async (t) => {
  const dir = await tempDir(t);
  assert.deepEqual(await listParts(dir, 'pairs'), [], 'no folder, no parts');
  const second = await writeRowsPart(dir, 'pairs', 'b', pairs.slice(2));
  const first = await writeRowsPart(dir, 'pairs', 'a', pairs.slice(0, 2));
  await writeRowsPart(dir, 'rejects', 'a', rejects);
  await writeRowsPart(dir, 'images', 'a', images);
  assert.equal(first.file, 'pairs/part-a.arrow');
  assert.equal(partFile('pairs', 'a'), 'pairs/part-a.arrow');
  assert.equal(partFile('scores/pickscore', '00001', 'parquet'), 'scores/pickscore/part-00001.parquet');
  const onDisk = await readFile(join(dir, second.file));
  assert.deepEqual(second, {
    file: 'pairs/part-b.arrow',
    rows: 2,
    bytes: onDisk.byteLength,
    sha256: createHash('sha256').update(onDisk).digest('hex'),
  });
  assertFileFormat(onDisk);

  // Leftovers of an interrupted write and unrelated files are not parts.
  await writeFile(join(dir, 'pairs', '.part-c.arrow.1234.deadbeef.tmp'), 'partial');
  await writeFile(join(dir, 'pairs', 'README.txt'), 'hello');
  assert.deepEqual(await listParts(dir, 'pairs'), ['pairs/part-a.arrow', 'pairs/part-b.arrow']);
  assert.deepEqual(await listParts(dir, 'pairs', '.parquet'), []);

  assert.equal((await readPart(dir, 'pairs/part-b.arrow')).numRows, 2);
  const back: PairRow[] = [];
  for await (const row of readRows(dir, 'pairs')) back.push({ ...row });
  assert.deepEqual(back, pairs);
  const imageRows: ImageRow[] = [];
  for await (const row of readRows(dir, 'images')) imageRows.push({ ...row, bytes: new Uint8Array(row.bytes) });
  assert.deepEqual(imageRows, images);
  const rejectRows: RejectRow[] = [];
  for await (const row of readRows(dir, 'rejects')) rejectRows.push({ ...row });
  assert.deepEqual(rejectRows, rejects);
});
