import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { checkEntryPath, indexJsonArray, ingestHpd, readChunk, type HpdOptions } from '../../src/ingest/hpd.ts';
import { InputError } from '../../src/core/errors.ts';
import { checkImage } from '../../src/models/image-check.ts';
import { readRows } from '../../src/io/arrow-table.ts';
import { readManifest, type InputFile } from '../../src/core/manifest.ts';
import type { TableName, TableRows } from '../../src/core/schema.ts';
import {
  noiseJpeg,
  pngHeaderOnly,
  removeTempDirs,
  sha256,
  tempDir,
  testImage,
  writeHpdFolder,
  type FixtureFile,
} from '../support/hpd-fixture.ts';

after(removeTempDirs);

async function rowsOf<T extends TableName>(dir: string, table: T): Promise<TableRows[T][]> {
  const rows: TableRows[T][] = [];
  for await (const row of readRows(dir, table)) rows.push(row);
  return rows;
}

function byRef<T extends { source_ref: string }>(rows: T[]): Map<string, T> {
  const map = new Map(rows.map((row) => [row.source_ref, row]));
  assert.equal(map.size, rows.length, 'source refs are unique');
  return map;
}

// ---------------------------------------------------------------------------------------------------------------
// A small valid folder: 4 train pairs, 2 test groups (k = 3 and a tie), 2 benchmark lists × 2 models.

const ANIME = ['an anime girl', 'an anime boy', 'a red cube'];
const PHOTO = ['a photo of a dog', 'a photo of a cat'];

async function validFolder(): Promise<{ root: string; img: Record<string, Buffer> }> {
  const img: Record<string, Buffer> = {};
  const files: Record<string, FixtureFile> = {};
  const add = async (path: string, n: number, format: 'jpeg' | 'png' = 'jpeg'): Promise<void> => {
    img[path] = await testImage(n, format);
    files[path] = img[path]!;
  };
  for (let i = 0; i < 4; i++) await add(`train/t${i}.jpg`, i);
  for (let i = 0; i < 5; i++) await add(`test/u${i}.png`, 4 + i, 'png');
  let n = 10;
  for (const model of ['ModelA', 'ModelB']) {
    for (const [style, list] of [
      ['anime', ANIME],
      ['photo', PHOTO],
    ] as const) {
      for (let i = 0; i < list.length; i++) await add(`benchmark_imgs/${model}/${style}/0000${i}.jpg`, n++);
    }
  }
  const root = await writeHpdFolder(join(await tempDir('hpd-valid'), 'hpd'), {
    train: [
      { prompt: 'a red cube', image_path: ['t0.jpg', 't1.jpg'], human_preference: [1, 0] },
      { prompt: 'a red cube', image_path: ['t1.jpg', 't2.jpg'], human_preference: [0, 1] },
      // docs/design.md §3's key name, and a path that repeats its split folder.
      { prompt: 'a blue cat', file_path: ['train/t2.jpg', 't3.jpg'], human_preference: [0, 1] },
      { prompt: '  a blue   cat', image_path: ['t0.jpg', 't3.jpg'], human_preference: [0.5, 0.5] },
    ],
    test: [
      { prompt: 'a green tree', image_path: ['u0.png', 'u1.png', 'u2.png'], rank: [2, 1, 3], raw_annotations: [[2, 1, 3]] },
      { prompt: 'a yellow boat', image_path: ['test/u3.png', 'u4.png'], rank: [1, 1], raw_annotations: [] },
    ],
    benchmark: { anime: ANIME, photo: PHOTO },
    files,
  });
  return { root, img };
}

test('a valid HPD folder: pairs from preferences and ranks, benchmark prompts and images, counts', async () => {
  const { root, img } = await validFolder();
  const out = await tempDir('hpd-valid-out');
  const summary = await ingestHpd(root, { out });

  // 4 train entries + 3 + 1 test pairs + 5 benchmark prompts + 10 benchmark images, all taken.
  assert.deepEqual(summary.counts, { read: 23, taken: 23, rejected: 0, byReason: {} });
  assert.deepEqual(summary.tables, { prompts: 8, images: 21, pairs: 8, rejects: 0 });
  assert.equal(summary.source, 'hpd');

  const prompts = await rowsOf(out, 'prompts');
  const text = new Map(prompts.map((p) => [p.prompt_id, p.text]));
  const prompt = new Map(prompts.map((p) => [p.text, p]));
  assert.equal(prompts.length, 8);
  assert.equal(text.size, 8);

  const id = (path: string): string => sha256(img[path]!);
  const pairs = byRef(await rowsOf(out, 'pairs'));
  const expectedPairs: Array<[string, string, string, number, string, string]> = [
    ['train.json#0', 'train/t0.jpg', 'train/t1.jpg', 1, 'train', 'a red cube'],
    ['train.json#1', 'train/t1.jpg', 'train/t2.jpg', 0, 'train', 'a red cube'],
    ['train.json#2', 'train/t2.jpg', 'train/t3.jpg', 0, 'train', 'a blue cat'],
    ['train.json#3', 'train/t0.jpg', 'train/t3.jpg', 0.5, 'train', 'a blue cat'],
    // ranks [2, 1, 3]: image 1 is best, image 2 worst; pairs keep the group's order.
    ['test.json#0:0-1', 'test/u0.png', 'test/u1.png', 0, 'test', 'a green tree'],
    ['test.json#0:0-2', 'test/u0.png', 'test/u2.png', 1, 'test', 'a green tree'],
    ['test.json#0:1-2', 'test/u1.png', 'test/u2.png', 1, 'test', 'a green tree'],
    ['test.json#1:0-1', 'test/u3.png', 'test/u4.png', 0.5, 'test', 'a yellow boat'],
  ];
  assert.deepEqual([...pairs.keys()].sort(), expectedPairs.map(([ref]) => ref).sort());
  for (const [ref, a, b, pref, split, promptText] of expectedPairs) {
    const pair = pairs.get(ref)!;
    assert.equal(pair.image_a, id(a), `${ref} image a`);
    assert.equal(pair.image_b, id(b), `${ref} image b`);
    assert.equal(pair.human_pref, pref, `${ref} human_pref`);
    assert.equal(pair.split, split);
    assert.equal(text.get(pair.prompt_id), promptText);
  }

  // Prompts: a prompt that is also a benchmark prompt keeps the benchmark list's category and index.
  const expectedPrompts: Array<[string, string, string | null, number | null]> = [
    ['an anime girl', 'benchmark', 'anime', 0],
    ['an anime boy', 'benchmark', 'anime', 1],
    ['a red cube', 'benchmark', 'anime', 2],
    ['a photo of a dog', 'benchmark', 'photo', 0],
    ['a photo of a cat', 'benchmark', 'photo', 1],
    ['a blue cat', 'train', null, null],
    ['a green tree', 'test', null, null],
    ['a yellow boat', 'test', null, null],
  ];
  for (const [promptText, split, category, index] of expectedPrompts) {
    const row = prompt.get(promptText);
    assert.ok(row, promptText);
    assert.deepEqual([row.source, row.split, row.category, row.prompt_index], ['hpd', split, category, index], promptText);
  }

  // Images: ids are the sha256 of the file bytes; one row per (image, prompt), however many pairs use it.
  const images = await rowsOf(out, 'images');
  assert.equal(images.length, 21);
  for (const row of images) assert.equal(row.image_id, sha256(row.bytes), row.source_ref);
  assert.equal(new Set(images.map((r) => `${r.image_id}:${r.prompt_id}`)).size, 21);
  assert.equal(images.filter((r) => r.image_id === id('train/t1.jpg')).length, 1, 't1 is in two pairs, stored once');
  assert.equal(images.filter((r) => r.image_id === id('train/t0.jpg')).length, 2, 't0 is used with two prompts');
  const t0 = images.find((r) => r.image_id === id('train/t0.jpg'))!;
  assert.deepEqual([t0.mime, t0.width, t0.height, t0.model, t0.seed], ['image/jpeg', 8, 8, null, null]);
  const u2 = images.find((r) => r.image_id === id('test/u2.png'))!;
  assert.deepEqual([u2.mime, u2.width, u2.height, u2.source_ref], ['image/png', 14, 8, 'test/u2.png']);

  const bench = images.filter((r) => r.source_ref.startsWith('benchmark_imgs/'));
  assert.equal(bench.length, 10);
  for (const row of bench) {
    const [, model, style, name] = row.source_ref.split('/');
    const index = Number(name!.slice(0, 5));
    assert.equal(row.model, model);
    assert.equal(row.seed, null);
    assert.equal(row.image_id, id(row.source_ref));
    assert.equal(text.get(row.prompt_id), (style === 'anime' ? ANIME : PHOTO)[index]);
  }

  assert.equal((await rowsOf(out, 'rejects')).length, 0);

  const manifest = await readManifest(out);
  const keys = [
    'bench+anime+c00000',
    'bench+photo+c00000',
    'bench+anime+ModelA+c00000',
    'bench+photo+ModelA+c00000',
    'bench+anime+ModelB+c00000',
    'bench+photo+ModelB+c00000',
    'test-c00000',
    'train-c00000',
  ].map((key) => `ingest:hpd:${key}`);
  assert.deepEqual(Object.keys(manifest.units).sort(), keys.sort());
  const run = manifest.runs.at(-1)!;
  assert.equal(run.stage, 'ingest hpd');
  assert.deepEqual(
    run.inputs.map((input) => input.path.slice(root.length + 1)),
    ['benchmark/anime.json', 'benchmark/photo.json', 'test.json', 'train.json'],
  );
  const trainJson = await readFile(join(root, 'train.json'));
  assert.equal((run.inputs[3] as InputFile).sha256, sha256(trainJson));
  assert.equal(run.inputs[3]!.bytes, trainJson.byteLength);
});

// ---------------------------------------------------------------------------------------------------------------
// Hostile entries: each is exactly one reject with the expected reason, and nothing outside the root is read.

const MAX_FILE_BYTES = 4096;

async function hostileFolder(): Promise<{ root: string; img: Record<string, Buffer> }> {
  const base = await tempDir('hpd-hostile');
  const root = join(base, 'hpd');
  const img: Record<string, Buffer> = {
    good0: await testImage(20),
    good1: await testImage(21),
    g0: await testImage(23, 'png'),
    g1: await testImage(24, 'png'),
    bench0: await testImage(25),
    secret: await testImage(30),
    big: await noiseJpeg(64),
  };
  assert.ok(img.big!.byteLength > MAX_FILE_BYTES && img.good0!.byteLength < MAX_FILE_BYTES);
  const truncated = await noiseJpeg(24);
  const pair = (prompt: string, a: string, b: string): object => ({
    prompt,
    image_path: [a, b],
    human_preference: [1, 0],
  });
  await writeHpdFolder(join(base, 'outside'), { files: { 'secret.jpg': img.secret! } });
  await writeHpdFolder(root, {
    train: [
      pair('a good pair', 'good0.jpg', 'good1.jpg'), // 0 taken
      pair('p1', '../../etc/passwd', 'good1.jpg'), // 1
      pair('p2', 'good0.jpg', '/etc/passwd'), // 2
      pair('p3', 'link.jpg', 'good1.jpg'), // 3 symlink to a file outside the root
      pair('p4', '../../outside/secret.jpg', 'good1.jpg'), // 4 a real image, but outside
      pair('p5', '../test/g0.png', 'good1.jpg'), // 5 inside the root, but not under train/
      pair('p6', 'good0.jpg', 'nope.jpg'), // 6
      pair('p7', 'truncated.jpg', 'good1.jpg'), // 7
      pair('p8', 'good0.jpg', 'text.jpg'), // 8
      pair('p9', 'empty.jpg', 'good1.jpg'), // 9
      pair('p10', 'bomb.png', 'good1.jpg'), // 10
      { prompt: 'p11', image_path: 'good0.jpg', human_preference: [1, 0] }, // 11
      { prompt: 'p12', image_path: ['good0.jpg', 'good1.jpg'], human_preference: [1, 0, 0] }, // 12
      pair('', 'good0.jpg', 'good1.jpg'), // 13
      { image_path: ['good0.jpg', 'good1.jpg'], human_preference: [1, 0] }, // 14
      { prompt: 'p15', image_path: [7, 'good1.jpg'], human_preference: [1, 0] }, // 15
      { prompt: 'p16', image_path: ['good0.jpg', 'good1.jpg'], human_preference: [1, 1] }, // 16
      null, // 17
      pair('same twice', 'good0.jpg', 'good0.jpg'), // 18
      pair('a good pair', 'good0.jpg', 'good1.jpg'), // 19 duplicate of 0
      pair('an aliased image', 'alias.jpg', 'good0.jpg'), // 20 taken: a symlink that stays inside the root
      pair('p21', 'fifo.jpg', 'good1.jpg'), // 21
      pair('p22', '..\\..\\outside\\secret.jpg', 'good1.jpg'), // 22
      pair('p23', 'train/../../outside/secret.jpg', 'good1.jpg'), // 23
      pair('p24', 'good0.jpg', 'big.jpg'), // 24
      pair('p25', 'dangling.jpg', 'good1.jpg'), // 25
    ],
    test: [
      { prompt: 'a hostile group', image_path: ['g0.png', '../../etc/passwd', 'g1.png'], rank: [1, 2, 3] },
      { prompt: 'ranks too short', image_path: ['g0.png', 'g1.png'], rank: [1] },
      { prompt: 'one image', image_path: ['g0.png'], rank: [1] },
      { prompt: 'z', image_path: ['g1.png', 'g0.png'], rank: [1, 2] },
    ],
    benchmark: { mixed: ['a fine prompt', 42, '', 'another fine prompt'] },
    files: {
      'train/good0.jpg': img.good0!,
      'train/good1.jpg': img.good1!,
      'train/truncated.jpg': truncated.subarray(0, truncated.byteLength - 300),
      'train/text.jpg': 'this is not an image\n',
      'train/empty.jpg': new Uint8Array(0),
      'train/bomb.png': pngHeaderOnly(40000, 40000),
      'train/big.jpg': img.big!,
      'train/link.jpg': { symlink: join(base, 'outside', 'secret.jpg') },
      'train/alias.jpg': { symlink: '../test/g0.png' },
      'train/dangling.jpg': { symlink: join(base, 'no-such-file.jpg') },
      'test/g0.png': img.g0!,
      'test/g1.png': img.g1!,
      // The layout docs/design.md §3 names (one list, images directly in the model folder).
      'benchmark_imgs/M1/00000.jpg': img.bench0!,
      'benchmark_imgs/M1/00001.jpg': await testImage(26),
      'benchmark_imgs/M1/00002.jpg': await testImage(27),
      'benchmark_imgs/M1/00009.jpg': await testImage(28),
      'benchmark_imgs/M1/3.jpg': await testImage(29),
      'benchmark_imgs/M1/notes.txt': 'made with M1\n',
      'benchmark_imgs/M1/.DS_Store': 'hidden',
    },
  });
  execFileSync('mkfifo', [join(root, 'train', 'fifo.jpg')]);
  return { root, img };
}

const HOSTILE_REJECTS: Record<string, string> = {
  'train.json#1': 'path_outside_root',
  'train.json#2': 'path_outside_root',
  'train.json#3': 'path_outside_root',
  'train.json#4': 'path_outside_root',
  'train.json#5': 'path_outside_root',
  'train.json#6': 'missing_file',
  'train.json#7': 'bad_image',
  'train.json#8': 'bad_image',
  'train.json#9': 'empty_image',
  'train.json#10': 'too_many_pixels',
  'train.json#11': 'malformed_entry',
  'train.json#12': 'malformed_entry',
  'train.json#13': 'missing_prompt',
  'train.json#14': 'malformed_entry',
  'train.json#15': 'malformed_entry',
  'train.json#16': 'bad_label',
  'train.json#17': 'malformed_entry',
  'train.json#18': 'identical_images',
  'train.json#19': 'duplicate_pair',
  'train.json#21': 'missing_file',
  'train.json#22': 'path_outside_root',
  'train.json#23': 'path_outside_root',
  'train.json#24': 'bad_image',
  'train.json#25': 'missing_file',
  'test.json#0:0-1': 'path_outside_root',
  'test.json#0:1-2': 'path_outside_root',
  'test.json#1': 'malformed_entry',
  'test.json#2': 'malformed_entry',
  'benchmark/mixed.json#1': 'malformed_entry',
  'benchmark/mixed.json#2': 'missing_prompt',
  'benchmark_imgs/M1/00001.jpg': 'missing_prompt',
  'benchmark_imgs/M1/00002.jpg': 'missing_prompt',
  'benchmark_imgs/M1/00003.jpg': 'missing_file',
  'benchmark_imgs/M1/00009.jpg': 'missing_prompt',
  'benchmark_imgs/M1/3.jpg': 'unrecognised_name',
  'benchmark_imgs/M1/notes.txt': 'unrecognised_name',
};

const HOSTILE_OPTIONS = { maxFileBytes: MAX_FILE_BYTES } satisfies Partial<HpdOptions>;
// Byte-identical outputs at the default concurrency: reject details name the failing step, not libvips' shared
// error text (which images decoded at once can swap).
const ONE_AT_A_TIME = HOSTILE_OPTIONS;

test('hostile entries: each is one reject with the expected reason, and the totals add up', async () => {
  const { root, img } = await hostileFolder();
  const out = await tempDir('hpd-hostile-out');
  const summary = await ingestHpd(root, { out, ...HOSTILE_OPTIONS });

  const rejects = byRef(await rowsOf(out, 'rejects'));
  assert.deepEqual(
    Object.fromEntries([...rejects].map(([ref, row]) => [ref, row.reason]).sort()),
    Object.fromEntries(Object.entries(HOSTILE_REJECTS).sort()),
  );
  for (const row of rejects.values()) assert.equal(row.stage, 'ingest');
  assert.match(rejects.get('train.json#1')!.detail, /image_path\[0\] "\.\.\/\.\.\/etc\/passwd": climbs out of train\//);
  assert.match(rejects.get('train.json#2')!.detail, /image_path\[1\] "\/etc\/passwd": absolute path/);
  assert.match(rejects.get('train.json#3')!.detail, /outside the dataset root/);
  assert.match(rejects.get('train.json#10')!.detail, /40000×40000/);
  assert.match(rejects.get('train.json#21')!.detail, /not a regular file/);
  assert.match(rejects.get('train.json#24')!.detail, /file larger than 4096 bytes/);
  assert.match(rejects.get('test.json#0:1-2')!.detail, /image_path\[1\]/);
  // Control for the pixel bomb: the same bytes with a small header do not decode, so the reject came from the header.
  assert.equal((await checkImage(pngHeaderOnly(4, 4))).ok, false);

  // Taken: train #0 and #20, test #0:0-2 and #3:0-1, benchmark prompts #0 and #3, benchmark image 00000.
  const byReason: Record<string, number> = {};
  for (const reason of Object.values(HOSTILE_REJECTS)) byReason[reason] = (byReason[reason] ?? 0) + 1;
  // 26 train entries + 3 + 1 + 1 + 1 test rows + 4 prompts + 4 expected images + 3 other files.
  assert.deepEqual(summary.counts, { read: 43, taken: 7, rejected: 36, byReason });

  const pairs = byRef(await rowsOf(out, 'pairs'));
  assert.deepEqual([...pairs.keys()].sort(), ['test.json#0:0-2', 'test.json#3:0-1', 'train.json#0', 'train.json#20']);
  assert.equal(pairs.get('test.json#0:0-2')!.human_pref, 1);
  assert.equal(pairs.get('train.json#20')!.image_a, sha256(img.g0!), 'the in-root symlink is followed');

  const images = await rowsOf(out, 'images');
  const ids = new Set(images.map((row) => row.image_id));
  assert.equal(images.length, 9);
  assert.deepEqual([...ids].sort(), ['good0', 'good1', 'g0', 'g1', 'bench0'].map((name) => sha256(img[name]!)).sort());
  assert.ok(!ids.has(sha256(img.secret!)), 'the image outside the root was never taken');
  const bench = images.find((row) => row.image_id === sha256(img.bench0!))!;
  assert.deepEqual([bench.model, bench.source_ref], ['M1', 'benchmark_imgs/M1/00000.jpg']);

  const prompts = await rowsOf(out, 'prompts');
  assert.deepEqual(prompts.map((p) => p.text).sort(), [
    'a fine prompt',
    'a good pair',
    'a hostile group',
    'an aliased image',
    'another fine prompt',
    'z',
  ]);
  const fine = prompts.find((p) => p.text === 'another fine prompt')!;
  assert.deepEqual([fine.split, fine.category, fine.prompt_index], ['benchmark', 'mixed', 3]);
});

test('determinism: the same folder ingested twice gives byte-identical parts', async () => {
  const { root } = await hostileFolder();
  const outs = [await tempDir('hpd-det-a'), await tempDir('hpd-det-b')];
  for (const out of outs) await ingestHpd(root, { out, ...ONE_AT_A_TIME });
  const listing = async (dir: string): Promise<string[]> => {
    const files: string[] = [];
    for (const table of ['prompts', 'images', 'pairs', 'rejects', '.state/ingest']) {
      const names = await readdir(join(dir, table)).catch(() => []);
      files.push(...names.map((name) => `${table}/${name}`));
    }
    return files.sort();
  };
  const [first, second] = [await listing(outs[0]!), await listing(outs[1]!)];
  assert.deepEqual(first, second);
  assert.ok(first.filter((file) => file.endsWith('.arrow')).length >= 4);
  for (const file of first) {
    assert.ok((await readFile(join(outs[0]!, file))).equals(await readFile(join(outs[1]!, file))), file);
  }
});

test('sharding: shards 0/3, 1/3, 2/3 together hold exactly the rows of one unsharded run', async () => {
  const { root } = await hostileFolder();
  const whole = await tempDir('hpd-whole');
  const sharded = await tempDir('hpd-sharded');
  const wholeSummary = await ingestHpd(root, { out: whole, ...ONE_AT_A_TIME });
  const summaries = [];
  for (let index = 0; index < 3; index++) {
    summaries.push(await ingestHpd(root, { out: sharded, shard: { index, count: 3 }, ...ONE_AT_A_TIME }));
  }

  const key = (row: object): string => JSON.stringify(row, (_, value: unknown) => (value instanceof Uint8Array ? sha256(value) : value));
  for (const table of ['prompts', 'images', 'pairs', 'rejects'] as const) {
    const expected = (await rowsOf(whole, table)).map(key).sort();
    const actual = (await rowsOf(sharded, table)).map(key).sort();
    assert.ok(expected.length > 0, table);
    assert.deepEqual(actual, expected, table);
  }
  const nonEmpty = summaries.filter((s) => s.counts.read > 0).length;
  assert.ok(nonEmpty >= 2, 'rows are spread over the shards');
  const sum = { read: 0, taken: 0, rejected: 0, byReason: {} as Record<string, number> };
  for (const s of summaries) {
    sum.read += s.counts.read;
    sum.taken += s.counts.taken;
    sum.rejected += s.counts.rejected;
    for (const [reason, n] of Object.entries(s.counts.byReason)) sum.byReason[reason] = (sum.byReason[reason] ?? 0) + n;
  }
  assert.deepEqual(sum, wholeSummary.counts);
  assert.equal(sum.read, 43);
});

test('train.json in chunks of 512 entries: unit keys, source refs past the first chunk, resume', async () => {
  const a = await testImage(40);
  const b = await testImage(41);
  const entries = Array.from({ length: 600 }, (_, i) => ({
    prompt: `prompt ${i}`,
    image_path: i % 2 === 0 ? ['a.jpg', 'b.jpg'] : ['b.jpg', 'a.jpg'],
    human_preference: i % 3 === 0 ? [1, 0] : [0, 1],
  }));
  const root = await writeHpdFolder(join(await tempDir('hpd-chunks'), 'hpd'), {
    train: entries,
    files: { 'train/a.jpg': a, 'train/b.jpg': b },
  });
  const out = await tempDir('hpd-chunks-out');
  const first = await ingestHpd(root, { out });
  assert.deepEqual(first.counts, { read: 600, taken: 600, rejected: 0, byReason: {} });
  assert.deepEqual([first.unitsWritten, first.unitsSkipped], [2, 0]);

  const manifest = await readManifest(out);
  const rowsIn = (key: string): number | undefined =>
    manifest.units[`ingest:hpd:${key}`]?.parts.find((part) => part.file.startsWith('pairs/'))?.rows;
  assert.equal(rowsIn('train-c00000'), 512);
  assert.equal(rowsIn('train-c00001'), 88);

  const pairs = byRef(await rowsOf(out, 'pairs'));
  const p513 = pairs.get('train.json#513')!; // odd: (b, a); 513 = 3·171: preferred first
  assert.deepEqual([p513.image_a, p513.image_b, p513.human_pref], [sha256(b), sha256(a), 1]);
  const p514 = pairs.get('train.json#514')!;
  assert.deepEqual([p514.image_a, p514.image_b, p514.human_pref], [sha256(a), sha256(b), 0]);

  const again = await ingestHpd(root, { out });
  assert.deepEqual([again.unitsWritten, again.unitsSkipped], [0, 2]);
  assert.deepEqual(again.counts, first.counts);
  assert.equal((await rowsOf(out, 'pairs')).length, 600);
});

test('JSON arrays are indexed by byte range: strings, escapes, nesting, BOM and multi-byte text', async () => {
  const values = ['a,]\\"[', { x: [1, { y: '}]' }], z: '\\' }, 3, null, [], 'ü€😀', { '': [[[]]] }];
  const text = `\uFEFF [ ${values.map((v) => JSON.stringify(v)).join(' ,\n')} ]\n`;
  const dir = await tempDir('hpd-json');
  await writeHpdFolder(dir, { train: text });
  const file = await indexJsonArray(join(dir, 'train.json'), 'train.json', 3);
  assert.equal(file.count, 7);
  assert.deepEqual(
    file.chunks.map((c) => [c.first, c.count]),
    [
      [0, 3],
      [3, 3],
      [6, 1],
    ],
  );
  const read: unknown[] = [];
  for (const chunk of file.chunks) read.push(...(await readChunk(file, chunk)));
  assert.deepEqual(read, values);

  await writeHpdFolder(dir, { test: '[]' });
  assert.equal((await indexJsonArray(join(dir, 'test.json'), 'test.json', 3)).count, 0);

  // The file is read 1 MiB at a time: an escape, an escaped quote and a closing quote on the boundary.
  for (const shift of [-2, -1, 0, 1]) {
    const pad = 'a'.repeat((1 << 20) - 3 + shift);
    const long = `${pad}\\"]\\\\`; // ends with an escaped quote, a bracket and an escaped backslash
    const json = `["${long.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}", {"k": "]"}, 7]`;
    await writeHpdFolder(dir, { train: json });
    const big = await indexJsonArray(join(dir, 'train.json'), 'train.json', 2);
    assert.equal(big.count, 3, `shift ${shift}`);
    const entries = [...(await readChunk(big, big.chunks[0]!)), ...(await readChunk(big, big.chunks[1]!))];
    assert.deepEqual(entries, JSON.parse(json), `shift ${shift}`);
  }
});

test('bad inputs are one clear InputError naming the file, before anything is written', async () => {
  const cases: Array<[string, RegExp]> = [
    ['{"prompt": "a"}', /train\.json: not a JSON array \(the top level is not an array/],
    ['[{"prompt": "a"}, {"prompt": ', /train\.json: not a JSON array \(the file ends before the array is closed/],
    ['[{"prompt": }]', /train\.json: not valid JSON in entries 0–0/],
    ['[1, 2,]', /train\.json: not a JSON array \(a trailing comma/],
    ['[1] [2]', /train\.json: not a JSON array \(content after the array/],
  ];
  for (const [json, message] of cases) {
    const root = await writeHpdFolder(join(await tempDir('hpd-bad'), 'hpd'), { train: json });
    const out = join(await tempDir('hpd-bad-out'), 'out');
    await assert.rejects(ingestHpd(root, { out }), (error: Error) => error instanceof InputError && message.test(error.message));
    assert.equal(
      await stat(out).then(
        () => true,
        () => false,
      ),
      false,
      `nothing written for ${json}`,
    );
  }

  const empty = await tempDir('hpd-empty');
  await assert.rejects(
    ingestHpd(empty, { out: join(empty, 'out') }),
    (error: Error) => error instanceof InputError && /no train\.json, test\.json or benchmark\/\*\.json/.test(error.message),
  );
  await assert.rejects(
    ingestHpd(join(empty, 'nope'), { out: join(empty, 'out') }),
    (error: Error) => error instanceof InputError && /no such folder/.test(error.message),
  );

  const ambiguous = await writeHpdFolder(join(await tempDir('hpd-ambiguous'), 'hpd'), {
    benchmark: { anime: ['a'], photo: ['b'] },
    files: { 'benchmark_imgs/M/00000.jpg': await testImage(1) },
  });
  await assert.rejects(
    ingestHpd(ambiguous, { out: join(ambiguous, 'out') }),
    (error: Error) =>
      error instanceof InputError && /benchmark_imgs\/M: images directly in the model folder but 2 benchmark lists/.test(error.message),
  );
});

test('entry paths are checked without touching the disk', () => {
  const ok = (raw: unknown, candidates: string[]): void => assert.deepEqual(checkEntryPath('train', raw), { ok: true, candidates });
  const refused = (raw: unknown, reason: string): void => {
    const check = checkEntryPath('train', raw);
    assert.equal(check.ok ? 'ok' : check.reason, reason, String(raw));
  };
  ok('a.jpg', ['a.jpg']);
  ok('sub/a.jpg', ['sub/a.jpg']);
  ok('train/a.jpg', ['train/a.jpg', 'a.jpg']);
  ok('./x/../a.jpg', ['a.jpg']);
  ok('sub\\a.jpg', ['sub/a.jpg']);
  refused('../a.jpg', 'path_outside_root');
  refused('x/../../a.jpg', 'path_outside_root');
  refused('train/../../a.jpg', 'path_outside_root');
  refused('/etc/passwd', 'path_outside_root');
  refused('C:\\data\\a.jpg', 'path_outside_root');
  refused('\\\\server\\share\\a.jpg', 'path_outside_root');
  refused('..\\..\\a.jpg', 'path_outside_root');
  refused('', 'malformed_entry');
  refused('.', 'malformed_entry');
  refused(5, 'malformed_entry');
  refused('a\0.jpg', 'malformed_entry');
});
