import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ingestGenerations, parseGenerationName } from '../../src/ingest/generations.ts';
import { InputError } from '../../src/core/errors.ts';
import { noiseImage, promptIdOf, readDataset, sha256, truncatedJpeg } from '../support/pickapic-fixture.ts';
import { tempDir } from '../support/tmp.ts';

const PROMPTS = ['a red cube on a table', 'two  cats playing chess ', 'a lighthouse at dusk'];

interface Folder {
  root: string;
  folder: string;
  tsv: string;
  json: string;
  files: Record<string, Uint8Array>;
}

/** A model's folder as a generation script leaves it: good images, a stray name, an index past the list, a cut file. */
async function makeFolder(root: string, model = 'sdxl-turbo', seedBase = 0): Promise<Folder> {
  const folder = join(root, model);
  await mkdir(folder, { recursive: true });
  const files: Record<string, Uint8Array> = {
    '00000.jpg': await noiseImage(seedBase + 1, { width: 40, height: 24 }),
    '00001.png': await noiseImage(seedBase + 2, { width: 16, height: 20, format: 'png' }),
    '1_3.png': await noiseImage(seedBase + 3, { width: 16, height: 16, format: 'png' }),
    '2_0.jpg': await noiseImage(seedBase + 4),
    '2_1.jpg': await truncatedJpeg(seedBase + 5),
    '00007.jpg': await noiseImage(seedBase + 6),
    'cat.jpg': await noiseImage(seedBase + 7),
    'notes.txt': new TextEncoder().encode('seed sweep, cfg 7'),
    '.DS_Store': new Uint8Array([0, 0, 0, 1]),
  };
  for (const [name, bytes] of Object.entries(files)) await writeFile(join(folder, name), bytes);
  await mkdir(join(folder, 'thumbnails'));
  const tsv = join(root, 'prompts.tsv');
  await writeFile(tsv, `Prompt\tCategory\n${PROMPTS.map((p, i) => `${p}\t${i === 1 ? 'Animals' : 'Artifacts'}`).join('\n')}\n`);
  const json = join(root, 'prompts.json');
  await writeFile(json, JSON.stringify([PROMPTS[0], { prompt: PROMPTS[1], category: 'Animals' }, PROMPTS[2]]));
  return { root, folder, tsv, json, files };
}

test('parseGenerationName: <index>[_<seed>].jpg|jpeg|png|webp', () => {
  assert.deepEqual(parseGenerationName('00012.jpg'), { index: 12, seed: null });
  assert.deepEqual(parseGenerationName('12_3.png'), { index: 12, seed: 3 });
  assert.deepEqual(parseGenerationName('0_0.JPEG'), { index: 0, seed: 0 });
  assert.deepEqual(parseGenerationName('7.webp'), { index: 7, seed: null });
  for (const bad of ['cat.jpg', '12-3.png', '12.gif', 'a12.jpg', '12_.png', '_3.png', '12_3_1.png', '12.jpg.txt']) {
    assert.equal(parseGenerationName(bad), null, bad);
  }
});

test('a generations folder with a TSV and with a JSON prompt list: rows, seeds, prompt ids and rejects', async (t) => {
  const root = await tempDir(t);
  const { folder, tsv, json, files } = await makeFolder(root);
  const taken: Array<[string, number, number | null, string, number, number]> = [
    ['00000.jpg', 0, null, 'image/jpeg', 40, 24],
    ['00001.png', 1, null, 'image/png', 16, 20],
    ['1_3.png', 1, 3, 'image/png', 16, 16],
    ['2_0.jpg', 2, 0, 'image/jpeg', 32, 32],
  ];

  for (const [label, list, model] of [
    ['tsv', tsv, undefined],
    ['json', json, 'SDXL Turbo 1.0'],
  ] as const) {
    const out = join(root, `out-${label}`);
    const summary = await ingestGenerations(folder, { prompts: list, out, ...(model ? { model } : {}) });
    // 3 listed prompts + 8 visible files (the hidden file and the subfolder are not inputs).
    assert.deepEqual(
      summary.counts,
      {
        read: 11,
        taken: 7,
        rejected: 4,
        byReason: { unrecognised_name: 2, missing_prompt: 1, bad_image: 1 },
      },
      label,
    );
    const got = await readDataset(out);
    assert.deepEqual(
      got.images,
      taken.map(([name, index, seed, mime, width, height]) => ({
        image_id: sha256(files[name]!),
        prompt_id: promptIdOf(PROMPTS[index]!),
        bytes: files[name],
        mime,
        width,
        height,
        source_ref: `sdxl-turbo/${name}`,
        model: model ?? 'sdxl-turbo',
        seed,
      })),
      label,
    );
    assert.deepEqual(
      got.prompts,
      PROMPTS.map((text, index) => ({
        prompt_id: promptIdOf(text),
        text: text.trim().replace(/\s+/g, ' '),
        source: 'images',
        split: null,
        category: index === 1 ? 'Animals' : label === 'tsv' ? 'Artifacts' : null,
        challenge: null,
        note: null,
        prompt_index: index,
      })),
      label,
    );
    assert.deepEqual(got.pairs, []);
    assert.deepEqual(
      got.rejects.map((r) => [r.source_ref, r.reason]),
      [
        ['sdxl-turbo/00007.jpg', 'missing_prompt'],
        ['sdxl-turbo/2_1.jpg', 'bad_image'],
        ['sdxl-turbo/cat.jpg', 'unrecognised_name'],
        ['sdxl-turbo/notes.txt', 'unrecognised_name'],
      ],
      label,
    );
    assert.match(got.rejects[0]!.detail, /prompt 7 is not in the list \(3 prompts\)/);
  }
});

test('two models generated from one prompt list, ingested into one directory: each prompt stored once', async (t) => {
  const root = await tempDir(t);
  const a = await makeFolder(root, 'model-a', 0);
  await makeFolder(root, 'model-b', 100);
  const out = join(root, 'out');
  await ingestGenerations(a.folder, { prompts: a.tsv, out });
  await ingestGenerations(join(root, 'model-b'), { prompts: a.tsv, out });
  const got = await readDataset(out);
  assert.equal(got.images.length, 8);
  assert.deepEqual(
    got.images.map((i) => `${i.model}/${i.seed}`),
    ['model-a/null', 'model-a/null', 'model-a/3', 'model-a/0', 'model-b/null', 'model-b/null', 'model-b/3', 'model-b/0'],
  );
  const ids = got.prompts.map((p) => p.prompt_id);
  assert.equal(new Set(ids).size, 3);
  assert.equal(ids.length, 3, `prompts.arrow holds ${ids.length} rows for 3 distinct prompts`);
});

test('a missing folder or prompt list, or a list that is not a JSON array: a clear error', async (t) => {
  const root = await tempDir(t);
  const { folder, tsv } = await makeFolder(root);
  const out = join(root, 'out');
  await assert.rejects(ingestGenerations(join(root, 'nope'), { prompts: tsv, out }), (error: unknown) => {
    assert.ok(error instanceof InputError);
    assert.match(error.message, /nope: cannot list \(ENOENT\)/);
    return true;
  });
  await assert.rejects(ingestGenerations(folder, { prompts: join(root, 'nope.tsv'), out }), /nope\.tsv: cannot read/);
  const notArray = join(root, 'list.json');
  await writeFile(notArray, '{"prompt": "a cat"}');
  await assert.rejects(ingestGenerations(folder, { prompts: notArray, out }), /expected a JSON array/);
  await writeFile(notArray, '["a cat",');
  await assert.rejects(ingestGenerations(folder, { prompts: notArray, out }), /not valid JSON/);
});
