import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ingestPickapic, splitFromFileName } from '../../src/ingest/pickapic.ts';
import { InputError } from '../../src/core/errors.ts';
import { ParquetFileError } from '../../src/io/parquet.ts';
import { readManifest } from '../../src/core/manifest.ts';
import {
  cleanOutcomes,
  cleanRows,
  datasetFiles,
  expectedDataset,
  hostileScenario,
  noiseImages,
  readDataset,
  rejectKeys,
  withDuckdb,
  sqlString,
  truncatedJpeg,
  writePickapicShard,
  type Scenario,
  type ShardOptions,
  type ShardSpec,
} from '../support/pickapic-fixture.ts';
import { tempDir } from '../support/tmp.ts';

const TRAIN = 'train-00000-of-00002.parquet';

const WRITERS: Array<{ label: string; options: ShardOptions }> = [
  { label: 'duckdb zstd v2', options: { writer: 'duckdb', codec: 'zstd', pageVersion: 2 } },
  { label: 'duckdb snappy v1', options: { writer: 'duckdb', codec: 'snappy', pageVersion: 1 } },
  { label: 'duckdb gzip v1', options: { writer: 'duckdb', codec: 'gzip', pageVersion: 1 } },
  { label: 'arrow-rs zstd v2 dictionary', options: { writer: 'arrow-rs', codec: 'zstd', pageVersion: 2, dictionary: true } },
  { label: 'arrow-rs snappy v1 plain', options: { writer: 'arrow-rs', codec: 'snappy', pageVersion: 1, dictionary: false } },
  { label: 'arrow-rs gzip v2 plain', options: { writer: 'arrow-rs', codec: 'gzip', pageVersion: 2, dictionary: false } },
  { label: 'hyparquet-writer snappy', options: { writer: 'hyparquet' } },
];

let scenario: Scenario | undefined;
async function hostile(): Promise<Scenario> {
  scenario ??= await hostileScenario();
  return scenario;
}

// The reader yields the rejects of the parts, then a duplicate_pair row for each pair an earlier unit holds too.
const bySourceRef = <T extends { source_ref: string; reason: string }>(rows: readonly T[]): T[] =>
  [...rows].sort((x, y) => x.source_ref.localeCompare(y.source_ref) || x.reason.localeCompare(y.reason));

test('hostile shard from every writer and codec: labels, ids, one image row per (image, prompt), rejects by reason', async (t) => {
  const root = await tempDir(t);
  const { rows, expected } = await hostile();
  const want = expectedDataset([{ name: TRAIN, split: 'train', rows, expected }]);
  // Hand count of the scenario: 6 taken, 12 rejected.
  assert.deepEqual(want.counts, {
    read: 18,
    taken: 6,
    rejected: 12,
    byReason: { missing_prompt: 2, empty_image: 2, bad_image: 2, identical_images: 1, bad_label: 3, duplicate_pair: 2 },
  });
  assert.deepEqual(
    want.pairs.map((p) => p.human_pref),
    [1, 0, 0.5, 1, null, 0],
  );
  assert.equal(want.images.length, 9); // red cube: 0 1 2, blue sphere: 3 4, unlabelled: 8 9, green cone: 6 7
  assert.equal(want.prompts.length, 4);

  let reference: Map<string, Buffer> | undefined;
  for (const { label, options } of WRITERS) {
    const input = join(root, label.replaceAll(' ', '_'));
    const out = join(root, `${label.replaceAll(' ', '_')}-out`);
    await mkdir(input);
    await writePickapicShard(join(input, TRAIN), rows, { ...options, rowGroupSize: 6 });
    const summary = await ingestPickapic([join(input, TRAIN)], { out });

    assert.deepEqual(summary.counts, want.counts, label);
    assert.equal(summary.counts.read, summary.counts.taken + summary.counts.rejected);
    assert.deepEqual(summary.tables, { prompts: 4, images: 9, pairs: 6, rejects: 12 }, label);
    assert.deepEqual([summary.unitsWritten, summary.unitsSkipped], [3, 0], label);

    const got = await readDataset(out);
    assert.deepEqual(got.pairs, want.pairs, `${label}: pairs`);
    assert.deepEqual(got.images, want.images, `${label}: images`);
    assert.deepEqual(got.prompts, want.prompts, `${label}: prompts`);
    assert.deepEqual(bySourceRef(rejectKeys(got.rejects)), bySourceRef(want.rejects), `${label}: rejects`);
    assert.ok(
      got.rejects.every((r) => r.detail.length > 0 && !r.detail.includes('\n')),
      `${label}: details`,
    );
    assert.match(got.rejects.find((r) => r.source_ref === `${TRAIN}#9`)!.detail, /jpg_1/);

    // One unit, and one part per table that has rows, per row group.
    const manifest = await readManifest(out);
    const stem = 'pickapic-train-00000-of-00002';
    assert.deepEqual(
      Object.keys(manifest.units).sort(),
      [0, 1, 2].map((g) => `ingest:pickapic:train-00000-of-00002-rg000${g}`),
    );
    const files = await datasetFiles(out);
    const parts = (table: string) => [...files.keys()].filter((f) => f.startsWith(`${table}/`));
    assert.deepEqual(
      parts('pairs'),
      [0, 1, 2].map((g) => `pairs/part-${stem}-rg000${g}.arrow`),
    );
    assert.deepEqual(
      parts('rejects'),
      [0, 1, 2].map((g) => `rejects/part-${stem}-rg000${g}.arrow`),
    );
    const pairsPerGroup = [0, 1, 2].map(
      (g) => manifest.units[`ingest:pickapic:train-00000-of-00002-rg000${g}`]!.parts.find((p) => p.file.startsWith('pairs/'))!.rows,
    );
    // As written: a unit de-duplicates within itself, so the third group also holds a pair of the first, which the
    // reader yields as a duplicate_pair reject (checked with the rejects above).
    assert.deepEqual(pairsPerGroup, [4, 1, 2]);

    // Same rows in the same row groups: the dataset is the same bytes whichever program wrote the shard.
    if (reference === undefined) reference = files;
    else assert.deepEqual(files, reference, `${label}: part files differ from ${WRITERS[0]!.label}'s`);
  }
});

test('split from the published file names; several shards and a folder; --split for other names', async (t) => {
  const root = await tempDir(t);
  assert.equal(splitFromFileName('/data/train-00000-of-00645.parquet'), 'train');
  assert.equal(splitFromFileName('validation_unique-00000-of-00001.parquet'), 'validation_unique');
  assert.equal(splitFromFileName('validation-00003-of-00004.parquet'), 'validation');
  assert.equal(splitFromFileName('test_unique.parquet'), 'test_unique');
  assert.equal(splitFromFileName('trainee-00000.parquet'), null);
  assert.equal(splitFromFileName('my-shard.parquet'), null);

  const pool = await noiseImages(10, 300);
  const folder = join(root, 'pickapic');
  await mkdir(folder);
  const train0 = cleanRows(pool, 20, 1);
  const train1 = cleanRows(pool, 20, 2);
  const valid = cleanRows(pool, 20, 3);
  const extra = cleanRows(pool, 5, 4);
  await writePickapicShard(join(folder, 'train-00000-of-00002.parquet'), train0, { writer: 'duckdb' });
  await writePickapicShard(join(folder, 'train-00001-of-00002.parquet'), train1, { writer: 'arrow-rs', rowGroupSize: 8 });
  await writePickapicShard(join(folder, 'validation_unique-00000-of-00001.parquet'), valid, { writer: 'hyparquet' });
  await writePickapicShard(join(root, 'extra.parquet'), extra, { writer: 'duckdb' });
  assert.ok(await readdir(folder).then((names) => names.length === 3));

  const out = join(root, 'out');
  const summary = await ingestPickapic([join(root, 'extra.parquet'), folder], { out, split: 'test' });
  // Inputs are taken in file-name order (extra < train-… < validation_unique-…); duplicates span files.
  const seen = new Set<string>();
  const shards: ShardSpec[] = [
    { name: 'extra.parquet', split: 'test', rows: extra, expected: cleanOutcomes(extra, seen) },
    { name: 'train-00000-of-00002.parquet', split: 'train', rows: train0, expected: cleanOutcomes(train0, seen) },
    { name: 'train-00001-of-00002.parquet', split: 'train', rows: train1, expected: cleanOutcomes(train1, seen) },
    { name: 'validation_unique-00000-of-00001.parquet', split: 'validation_unique', rows: valid, expected: cleanOutcomes(valid, seen) },
  ];
  const want = expectedDataset(shards);
  assert.deepEqual(summary.counts, want.counts);
  assert.ok(want.counts.byReason.duplicate_pair! >= 3, 'the fixture repeats rows');
  const got = await readDataset(out);
  assert.deepEqual(got.pairs, want.pairs);
  assert.deepEqual(got.images, want.images);
  assert.deepEqual(got.prompts, want.prompts);
  assert.deepEqual(bySourceRef(rejectKeys(got.rejects)), bySourceRef(want.rejects));
  const bySplit: Record<string, number> = {};
  for (const pair of got.pairs) bySplit[pair.split!] = (bySplit[pair.split!] ?? 0) + 1;
  assert.deepEqual(Object.keys(bySplit).sort(), ['test', 'train', 'validation_unique']);
  assert.equal(summary.unitsWritten, 1 + 1 + 3 + 1);

  const manifest = await readManifest(out);
  assert.equal(manifest.runs.length, 1);
  assert.deepEqual(
    manifest.runs[0]!.inputs.map((i) => i.path.split('/').pop()),
    ['extra.parquet', 'train-00000-of-00002.parquet', 'train-00001-of-00002.parquet', 'validation_unique-00000-of-00001.parquet'],
  );
});

test('same inputs, two fresh directories: byte-identical parts, whatever the number of image workers', async (t) => {
  const root = await tempDir(t);
  const { rows } = await hostile();
  const pool = await noiseImages(8, 500);
  // Many undecodable images in one row group, decoded side by side: their reject details must not depend on which
  // decode finished first.
  const broken = await Promise.all(Array.from({ length: 40 }, (_, i) => truncatedJpeg(700 + i)));
  const brokenRows = cleanRows(pool, 80, 9).map((row, i) => ({
    ...row,
    caption: `broken ${i}`,
    jpg_1: i % 2 === 0 ? broken[i / 2]! : new TextEncoder().encode(`not an image ${i}`),
  }));
  await writePickapicShard(join(root, 'train-00000-of-00003.parquet'), rows, { writer: 'arrow-rs', rowGroupSize: 5 });
  await writePickapicShard(join(root, 'train-00001-of-00003.parquet'), cleanRows(pool, 40), { writer: 'duckdb' });
  await writePickapicShard(join(root, 'train-00002-of-00003.parquet'), brokenRows, { writer: 'hyparquet' });
  const inputs = [0, 1, 2].map((i) => join(root, `train-0000${i}-of-00003.parquet`));
  await ingestPickapic(inputs, { out: join(root, 'one'), workers: 1 });
  await ingestPickapic(inputs, { out: join(root, 'two'), workers: 3 });
  const details = async (dir: string) => (await readDataset(join(root, dir))).rejects.map((r) => `${r.source_ref}: ${r.detail}`);
  assert.deepEqual(await details('two'), await details('one'));
  const one = await datasetFiles(join(root, 'one'));
  const two = await datasetFiles(join(root, 'two'));
  // Hostile shard in groups of 5: four tables in each of its four groups (a unit stores what it takes, whatever other
  // units hold: the reader resolves that); the clean shard: four tables; the broken shard: rejects only; and one
  // state file per unit.
  assert.equal(one.size, 4 * 4 + 4 + 1 + 6);
  assert.deepEqual([...two.keys()], [...one.keys()]);
  for (const [file, bytes] of one) assert.ok(bytes.equals(two.get(file)!), `${file} differs`);
  // The same records, but for when each part was written.
  const units = (m: Awaited<ReturnType<typeof readManifest>>) =>
    JSON.stringify(m.units, (key, value) => (key === 'mtimeMs' ? undefined : value));
  assert.equal(units(await readManifest(join(root, 'two'))), units(await readManifest(join(root, 'one'))));
});

test('options: --no-decode trusts headers (takes the truncated JPEG); max pixels rejects before decoding', async (t) => {
  const root = await tempDir(t);
  const { rows } = await hostile();
  const input = join(root, TRAIN);
  await writePickapicShard(input, rows, { writer: 'hyparquet' });

  const fast = await ingestPickapic([input], { out: join(root, 'no-decode'), decode: false });
  assert.equal(fast.counts.taken, 7);
  assert.equal(fast.counts.byReason.bad_image, 1, 'bytes that are not an image fail even the header read');
  const taken = (await readDataset(join(root, 'no-decode'))).pairs.map((p) => p.source_ref);
  assert.ok(taken.includes(`${TRAIN}#9`));

  // 32 × 32 = 1024 pixels > 1000: every row that reaches the image check is rejected by size, except the one
  // whose first image is empty and the one whose first image is not an image at all.
  const small = await ingestPickapic([input], { out: join(root, 'max-pixels'), maxPixels: 1000 });
  assert.deepEqual(small.counts, {
    read: 18,
    taken: 0,
    rejected: 18,
    byReason: { missing_prompt: 2, bad_label: 3, empty_image: 1, bad_image: 1, too_many_pixels: 11 },
  });
});

test('not Parquet, not Pick-a-Pic, missing or ambiguous inputs: a clear error and nothing written', async (t) => {
  const root = await tempDir(t);
  const out = join(root, 'out');
  const text = join(root, 'train-00000-of-00001.parquet');
  await writeFile(text, 'caption,jpg_0,jpg_1\nhello,,\n');
  await assert.rejects(ingestPickapic([text], { out }), (error: unknown) => {
    assert.ok(error instanceof ParquetFileError);
    assert.match(error.message, /train-00000-of-00001\.parquet: not a readable Parquet file/);
    return true;
  });

  const other = join(root, 'other.parquet');
  await withDuckdb((db) => db.run(`COPY (SELECT 'a cat' AS caption, 1.0 AS label_0) TO ${sqlString(other)} (FORMAT parquet)`));
  await assert.rejects(ingestPickapic([other], { out }), (error: unknown) => {
    assert.ok(error instanceof InputError);
    assert.match(error.message, /not a Pick-a-Pic shard \(no column jpg_0, jpg_1\)/);
    return true;
  });

  await assert.rejects(ingestPickapic([join(root, 'nope.parquet')], { out }), /nope\.parquet: no such file or folder/);
  await mkdir(join(root, 'empty'));
  await assert.rejects(ingestPickapic([join(root, 'empty')], { out }), /folder has no \.parquet files/);
  await mkdir(join(root, 'b'));
  const { rows } = await hostile();
  await writePickapicShard(join(root, 'b', 'other.parquet'), rows.slice(0, 2), { writer: 'duckdb' });
  await assert.rejects(ingestPickapic([other, join(root, 'b')], { out }), /two inputs share the name other\.parquet/);
  assert.deepEqual(await readdir(out).catch(() => []), [], 'a refused input writes nothing');
});

test('a shard with no rows (no row groups) into a new directory: a run with zero counts, not a crash', async (t) => {
  const root = await tempDir(t);
  for (const writer of ['duckdb', 'hyparquet'] as const) {
    const input = join(root, `${writer}-train-00000-of-00001.parquet`);
    await writePickapicShard(input, [], { writer });
    const out = join(root, `${writer}-out`);
    const summary = await ingestPickapic([input], { out });
    assert.deepEqual(summary.counts, { read: 0, taken: 0, rejected: 0, byReason: {} }, writer);
    assert.equal(summary.unitsWritten, 0);
    const manifest = await readManifest(out);
    assert.equal(manifest.runs.length, 1, writer);
    assert.equal(manifest.runs[0]!.inputs[0]!.path, input);
  }
});
