// Hostile ingest inputs: names that would climb out of --out, wrongly typed Parquet columns, entries of a generations
// folder that are not regular files, and text that is not valid UTF-8. Every input is a real file of its format.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ingestGenerations } from '../../src/ingest/generations.ts';
import { ingestHpd } from '../../src/ingest/hpd.ts';
import { ingestParti } from '../../src/ingest/parti.ts';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { InputError } from '../../src/core/errors.ts';
import { writeRowsPart } from '../../src/io/arrow-table.ts';
import { writeParquetPart, type ColumnSpec } from '../../src/io/parquet.ts';
import { noiseImage, noiseImages, promptIdOf, readDataset } from '../support/pickapic-fixture.ts';
import { tempDir } from '../support/tmp.ts';

/** Every file under a folder, relative to it, sorted. */
async function filesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isDirectory()) found.push(join(entry.parentPath ?? entry.path, entry.name).slice(dir.length + 1));
  }
  return found.sort();
}

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const concat = (...parts: Array<Uint8Array | number[]>): Buffer => Buffer.concat(parts.map((p) => Buffer.from(p)));
/** "a café table" with é as the Latin-1 byte 0xE9: not UTF-8. */
const LATIN1_CAFE = concat(utf8('a caf'), [0xe9], utf8(' table'));
/** The same prompt with a genuine U+FFFD, encoded correctly as EF BF BD: valid text that must be kept. */
const REAL_FFFD_CAFE = 'a caf\uFFFD table';

// ---------------------------------------------------------------------------------------------------------------
// Item 2: names from input reach paths only as single safe segments

test('ingest images --model with ../ segments writes nothing outside --out; the model column keeps the name', async (t) => {
  const root = await tempDir(t);
  const folder = join(root, 'in', 'gens');
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, '00000.jpg'), await noiseImage(11));
  const prompts = join(root, 'in', 'prompts.json');
  await writeFile(prompts, JSON.stringify(['a red cube']));
  const out = join(root, 'out');
  const model = 'x/../../../ESC';

  const summary = await ingestGenerations(folder, { out, prompts, model });

  assert.deepEqual((await readdir(root)).sort(), ['in', 'out'], 'nothing written beside --out');
  assert.deepEqual(await filesUnder(join(root, 'in')), ['gens/00000.jpg', 'prompts.json']);
  for (const file of await filesUnder(out)) {
    assert.match(
      file,
      /^(manifest\.json|README\.md|(prompts|images|pairs|rejects)\/part-[^/]+\.arrow|\.state\/ingest\/[^/]+\.json|meta\/units\/ingest\/[^/]+\.json)$/,
      file,
    );
  }
  assert.equal(summary.counts.taken, 2);
  const { images } = await readDataset(out);
  assert.deepEqual(
    images.map((image) => image.model),
    [model],
  );
});

test('safeName keeps plain names byte-identical and turns any other name into one distinct safe segment', async () => {
  // Imported here so that the other tests of this file run (and fail on their own) before the module exists.
  const { safeName, resolveInside } = await import('../../src/io/paths.ts');
  for (const plain of ['model-a', 'sdxl-turbo', 'train-00000-of-00645', 'stable-diffusion-2.1', 'PartiPrompts']) {
    assert.equal(safeName(plain), plain);
  }
  const hostile = ['x/../../../ESC', '..', '.', '', 'a/b', 'a_b', 'a\\b', 'nul\0byte', 'é', 'x'.repeat(300), '.hidden', 'a b'];
  const made = hostile.map((name) => safeName(name));
  for (const [i, name] of made.entries()) {
    assert.match(name, /^[A-Za-z0-9._~-]{1,64}$/, JSON.stringify(hostile[i]));
    assert.ok(name !== '.' && name !== '..');
    assert.equal(safeName(hostile[i]!), name, 'deterministic');
  }
  assert.equal(new Set(made).size, made.length, 'two names never share a segment');
  assert.throws(() => resolveInside('/data/out', '../x'), /outside/);
  assert.throws(() => resolveInside('/data/out', 'images/../../x'), /outside/);
  assert.throws(() => resolveInside('/data/out', '/etc/passwd'), /outside/);
  assert.equal(resolveInside('/data/out', 'images/part-a.arrow'), join('/data/out', 'images/part-a.arrow'));
});

test('the part writers refuse a part name that would land outside the dataset directory', async (t) => {
  const root = await tempDir(t);
  const dir = join(root, 'out');
  await mkdir(dir);
  const row = { source_ref: 'r', stage: 'ingest', reason: 'bad_image' as const, detail: 'd' };
  await assert.rejects(writeRowsPart(dir, 'rejects', '../../../../ESC', [row]), /outside/);
  const specs: ColumnSpec[] = [{ name: 'x', type: 'int32', nullable: false }];
  await assert.rejects(writeParquetPart(dir, 'scores/../../ESC.parquet', specs, { x: [1] }), /outside/);
  assert.deepEqual((await readdir(root)).sort(), ['out']);
  assert.deepEqual(await filesUnder(dir), []);
});

// ---------------------------------------------------------------------------------------------------------------
// Item 11: Pick-a-Pic columns of the wrong type are an error naming the file, the column and both types

interface ShardColumn {
  spec: ColumnSpec;
  values: unknown[];
}

async function writeShard(path: string, columns: ShardColumn[]): Promise<void> {
  const slash = path.lastIndexOf('/');
  await writeParquetPart(
    path.slice(0, slash),
    path.slice(slash + 1),
    columns.map((c) => c.spec),
    Object.fromEntries(columns.map((c) => [c.spec.name, c.values])),
  );
}

async function pickapicColumns(overrides: Record<string, ShardColumn>): Promise<ShardColumn[]> {
  const images = await noiseImages(4, 300);
  const base: ShardColumn[] = [
    { spec: { name: 'caption', type: 'string', nullable: true }, values: ['a red cube', 'a blue ball'] },
    { spec: { name: 'jpg_0', type: 'binary', nullable: true }, values: [images[0], images[1]] },
    { spec: { name: 'jpg_1', type: 'binary', nullable: true }, values: [images[2], images[3]] },
    { spec: { name: 'label_0', type: 'double', nullable: true }, values: [1, 0] },
    { spec: { name: 'label_1', type: 'double', nullable: true }, values: [0, 1] },
  ];
  const names = new Set(base.map((c) => c.spec.name));
  return [...base.map((c) => overrides[c.spec.name] ?? c), ...Object.values(overrides).filter((c) => !names.has(c.spec.name))];
}

test('Pick-a-Pic: label_0 stored as a string is an error naming the file, the column, expected and found type', async (t) => {
  const root = await tempDir(t);
  const cases: Array<[string, Record<string, ShardColumn>, RegExp]> = [
    ['label_0', { label_0: { spec: { name: 'label_0', type: 'string', nullable: true }, values: ['1', '0'] } }, /string/],
    [
      'label_0',
      {
        label_0: { spec: { name: 'label_0', type: 'string', nullable: true }, values: ['1', '0'] },
        has_label: { spec: { name: 'has_label', type: 'boolean', nullable: true }, values: [true, true] },
      },
      /string/,
    ],
    ['caption', { caption: { spec: { name: 'caption', type: 'int32', nullable: true }, values: [1, 2] } }, /int32/],
    ['jpg_1', { jpg_1: { spec: { name: 'jpg_1', type: 'string', nullable: true }, values: ['x', 'y'] } }, /string/],
    ['label_1', { label_1: { spec: { name: 'label_1', type: 'binary', nullable: true }, values: [utf8('0'), utf8('1')] } }, /binary/],
    ['has_label', { has_label: { spec: { name: 'has_label', type: 'string', nullable: true }, values: ['yes', 'yes'] } }, /string/],
    ['model_0', { model_0: { spec: { name: 'model_0', type: 'double', nullable: true }, values: [1, 2] } }, /double/],
  ];
  for (const [index, [column, overrides, found]] of cases.entries()) {
    const file = join(root, `train-${index}.parquet`);
    await writeShard(file, await pickapicColumns(overrides));
    const out = join(root, `out-${index}`);
    await assert.rejects(ingestPickapic([file], { out, decode: false }), (error: Error) => {
      assert.ok(error instanceof InputError, `${column}: ${error.message}`);
      assert.ok(error.message.includes(file), error.message);
      assert.match(error.message, new RegExp(`\\b${column}\\b`));
      assert.match(error.message, /expected/);
      assert.match(error.message, found);
      return true;
    });
    assert.deepEqual(await readdir(out).catch(() => []), [], 'nothing written');
  }
  // The published types still read.
  const good = join(root, 'train-good.parquet');
  await writeShard(good, await pickapicColumns({}));
  const summary = await ingestPickapic([good], { out: join(root, 'out-good'), decode: false });
  assert.equal(summary.counts.taken, 2);
});

// ---------------------------------------------------------------------------------------------------------------
// Item 12: symlinks and FIFOs in a generations folder are rejects, not silently skipped

test('ingest images: symlinks out of the folder, broken symlinks and FIFOs are rejects naming the entry', async (t) => {
  const root = await tempDir(t);
  const folder = join(root, 'gens');
  await mkdir(folder);
  await writeFile(join(folder, '00000.jpg'), await noiseImage(21));
  await writeFile(join(root, 'elsewhere.jpg'), await noiseImage(22));
  await symlink(join(root, 'elsewhere.jpg'), join(folder, '00001.jpg'));
  await symlink('00000.jpg', join(folder, '00002.jpg'));
  await symlink(join(root, 'nothing-here.jpg'), join(folder, '1_1.jpg'));
  execFileSync('mkfifo', [join(folder, '1_2.jpg')]);
  const prompts = join(root, 'prompts.json');
  await writeFile(prompts, JSON.stringify(['p zero', 'p one', 'p two']));
  const out = join(root, 'out');

  const summary = await ingestGenerations(folder, { out, prompts, model: 'm' });

  const { images, rejects } = await readDataset(out);
  assert.deepEqual(images.map((image) => image.source_ref).sort(), ['gens/00000.jpg', 'gens/00002.jpg']);
  const byRef = Object.fromEntries(rejects.map((r) => [r.source_ref, r]));
  assert.deepEqual(Object.keys(byRef).sort(), ['gens/00001.jpg', 'gens/1_1.jpg', 'gens/1_2.jpg']);
  assert.equal(byRef['gens/00001.jpg']!.reason, 'path_outside_root');
  assert.equal(byRef['gens/1_1.jpg']!.reason, 'missing_file');
  assert.equal(byRef['gens/1_2.jpg']!.reason, 'missing_file');
  assert.match(byRef['gens/00001.jpg']!.detail, /00001\.jpg/);
  assert.match(byRef['gens/1_1.jpg']!.detail, /1_1\.jpg/);
  assert.match(byRef['gens/1_2.jpg']!.detail, /1_2\.jpg.*(FIFO|not a regular file)/);
  // 3 prompts + 5 folder entries, each taken or rejected.
  assert.deepEqual(summary.counts, { read: 8, taken: 5, rejected: 3, byReason: { path_outside_root: 1, missing_file: 2 } });
});

// ---------------------------------------------------------------------------------------------------------------
// Item 13: invalid UTF-8 is a bad_text reject naming the byte offset; a genuine U+FFFD is kept

function assertBadTextAt(reject: { reason: string; detail: string } | undefined, offset: number): void {
  assert.ok(reject, 'a reject');
  assert.equal(reject.reason, 'bad_text');
  assert.match(reject.detail, new RegExp(`byte ${offset}\\b`), reject.detail);
}

test('PartiPrompts TSV: a line with invalid UTF-8 is rejected, not merged with the line holding a real U+FFFD', async (t) => {
  const root = await tempDir(t);
  const tsv = join(root, 'parti.tsv');
  const header = 'Prompt\tCategory\n';
  const bytes = concat(utf8(header), LATIN1_CAFE, utf8('\tPeople\n'), utf8(`${REAL_FFFD_CAFE}\tPeople\n`), utf8('a dog\tAnimals\n'));
  await writeFile(tsv, bytes);
  const out = join(root, 'out');
  const summary = await ingestParti(tsv, { out });
  const { prompts, rejects } = await readDataset(out);
  assert.deepEqual(prompts.map((p) => p.text).sort(), [REAL_FFFD_CAFE, 'a dog'].sort());
  assert.equal(rejects.length, 1);
  assert.equal(rejects[0]!.source_ref, 'parti.tsv:2');
  assertBadTextAt(rejects[0], header.length + 'a caf'.length);
  assert.deepEqual(summary.counts, { read: 3, taken: 2, rejected: 1, byReason: { bad_text: 1 } });
});

test('generations prompt list (JSON): an entry with invalid UTF-8 is rejected and its images are not taken', async (t) => {
  const root = await tempDir(t);
  const folder = join(root, 'gens');
  await mkdir(folder);
  await writeFile(join(folder, '00000.jpg'), await noiseImage(31));
  await writeFile(join(folder, '00001.jpg'), await noiseImage(32));
  const prompts = join(root, 'prompts.json');
  const head = '["';
  await writeFile(prompts, concat(utf8(head), LATIN1_CAFE, utf8(`", ${JSON.stringify(REAL_FFFD_CAFE)}]`)));
  const out = join(root, 'out');
  const summary = await ingestGenerations(folder, { out, prompts, model: 'm' });
  const { prompts: stored, images, rejects } = await readDataset(out);
  assert.deepEqual(
    stored.map((p) => p.text),
    [REAL_FFFD_CAFE],
  );
  assert.deepEqual(
    images.map((i) => i.source_ref),
    ['gens/00001.jpg'],
  );
  const byRef = Object.fromEntries(rejects.map((r) => [r.source_ref, r]));
  assertBadTextAt(byRef['prompts.json:0'], head.length + 'a caf'.length);
  assert.equal(byRef['gens/00000.jpg']?.reason, 'missing_prompt');
  assert.equal(summary.counts.read, 4);
  assert.equal(summary.counts.taken + summary.counts.rejected, 4);
});

test('HPD train.json: invalid UTF-8 and a lone surrogate escape are bad_text rejects; a real U+FFFD is kept', async (t) => {
  const root = await tempDir(t);
  await mkdir(join(root, 'train'));
  const images = await noiseImages(6, 400);
  for (const [i, bytes] of images.entries()) await writeFile(join(root, 'train', `${i}.jpg`), bytes);
  const entry = (prompt: Uint8Array, a: number, b: number): Buffer =>
    concat(utf8('{"prompt":"'), prompt, utf8(`","image_path":["${a}.jpg","${b}.jpg"],"human_preference":[1,0]}`));
  const first = entry(LATIN1_CAFE, 0, 1);
  const json = concat(
    utf8('['),
    first,
    utf8(','),
    entry(utf8(REAL_FFFD_CAFE), 2, 3),
    utf8(','),
    entry(utf8('a lone \\ud800 surrogate'), 4, 5),
    utf8(']'),
  );
  await writeFile(join(root, 'train.json'), json);
  const out = join(root, 'out');
  const summary = await ingestHpd(root, { out, decode: false });
  const { prompts, pairs, rejects } = await readDataset(out);
  assert.deepEqual(
    prompts.map((p) => p.text),
    [REAL_FFFD_CAFE],
  );
  assert.deepEqual(
    pairs.map((p) => p.prompt_id),
    [promptIdOf(REAL_FFFD_CAFE)],
  );
  const byRef = Object.fromEntries(rejects.map((r) => [r.source_ref, r]));
  assertBadTextAt(byRef['train.json#0'], 1 + '{"prompt":"a caf'.length);
  assert.equal(byRef['train.json#2']?.reason, 'bad_text');
  assert.deepEqual(summary.counts, { read: 3, taken: 1, rejected: 2, byReason: { bad_text: 2 } });
});

test('Pick-a-Pic: a caption with invalid UTF-8 is rejected, a caption with a real U+FFFD is kept', async (t) => {
  const root = await tempDir(t);
  const images = await noiseImages(6, 500);
  const file = join(root, 'train-00000-of-00001.parquet');
  const captions = [new Uint8Array(LATIN1_CAFE), utf8(REAL_FFFD_CAFE), utf8('a dog')];
  await writeShard(file, [
    { spec: { name: 'caption', type: 'string', nullable: true }, values: captions },
    { spec: { name: 'jpg_0', type: 'binary', nullable: true }, values: [images[0], images[1], images[2]] },
    { spec: { name: 'jpg_1', type: 'binary', nullable: true }, values: [images[3], images[4], images[5]] },
    { spec: { name: 'label_0', type: 'double', nullable: true }, values: [1, 0, 0.5] },
    { spec: { name: 'label_1', type: 'double', nullable: true }, values: [0, 1, 0.5] },
    { spec: { name: 'model_0', type: 'string', nullable: true }, values: ['m0', 'm0', concat(utf8('m'), [0xff])] },
    { spec: { name: 'model_1', type: 'string', nullable: true }, values: ['m1', 'm1', 'm1'] },
  ]);
  const out = join(root, 'out');
  const summary = await ingestPickapic([file], { out, decode: false });
  const { prompts, rejects } = await readDataset(out);
  assert.deepEqual(
    prompts.map((p) => p.text),
    [REAL_FFFD_CAFE],
  );
  const byRef = Object.fromEntries(rejects.map((r) => [r.source_ref, r]));
  assertBadTextAt(byRef['train-00000-of-00001.parquet#0'], 'a caf'.length);
  assert.match(byRef['train-00000-of-00001.parquet#0']!.detail, /caption/);
  assertBadTextAt(byRef['train-00000-of-00001.parquet#2'], 1);
  assert.match(byRef['train-00000-of-00001.parquet#2']!.detail, /model_0/);
  assert.deepEqual(summary.counts, { read: 3, taken: 1, rejected: 2, byReason: { bad_text: 2 } });
});

test('firstInvalidUtf8 agrees with a strict decoder on every kind of ill-formed sequence', async () => {
  const { decodeUtf8, firstInvalidUtf8 } = await import('../../src/io/text.ts');
  const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const valid = (bytes: Uint8Array): boolean => {
    try {
      strict.decode(bytes);
      return true;
    } catch {
      return false;
    }
  };
  const cases: number[][] = [
    [0xc0, 0x80],
    [0xc1, 0xbf],
    [0xe0, 0x80, 0x80],
    [0xed, 0xa0, 0x80],
    [0xf0, 0x80, 0x80, 0x80],
    [0xf4, 0x90, 0x80, 0x80],
    [0xf5, 0x80, 0x80, 0x80],
    [0xe2, 0x82],
    [0x80],
    [0xbf],
    [0xff],
    [0xef, 0xbf, 0xbd],
    [0xf0, 0x9f, 0x98, 0x80],
    [0xed, 0x9f, 0xbf],
  ];
  let seed = 7;
  const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let n = 0; n < 3000; n++) {
    const byte = (): number => (random() < 0.5 ? 0x80 + Math.floor(random() * 128) : Math.floor(random() * 256));
    cases.push(Array.from({ length: 1 + Math.floor(random() * 6) }, byte));
  }
  for (const list of cases) {
    const bytes = concat(utf8('ab'), list, utf8('c'));
    const at = firstInvalidUtf8(bytes);
    assert.equal(at === -1, valid(bytes), `${bytes.toString('hex')}`);
    if (at >= 0) {
      assert.ok(valid(bytes.subarray(0, at)), `prefix before ${at} of ${bytes.toString('hex')} is valid`);
      assert.deepEqual(decodeUtf8(bytes), { ok: false, offset: at });
    }
  }
});
