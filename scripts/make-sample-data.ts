// Builds the bundled samples under data/ from real photographs (Debian's python3-skimage data folder), in the real
// layouts of each source: a Pick-a-Pic v2 shard pair (Parquet written by DuckDB), an HPDv2 folder, generations of two
// "models" over PartiPrompts prompts. Run once: `node --import tsx scripts/make-sample-data.ts`; the output is
// committed, so neither tests nor the demo need skimage or DuckDB at run time.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { DuckDBInstance } from '@duckdb/node-api';
import { readPromptList } from '../src/ingest/prompt-list.ts';

const SKIMAGE = '/usr/lib/python3/dist-packages/skimage/data';
const DATA = 'data';

interface Photo {
  file: string;
  caption: string;
}

const PHOTOS: Photo[] = [
  { file: 'astronaut.png', caption: 'a portrait of an astronaut in a white suit in front of a flag' },
  { file: 'coffee.png', caption: 'a cup of coffee on a saucer, top view' },
  { file: 'chelsea.png', caption: 'a tabby cat looking to the side' },
  { file: 'rocket.jpg', caption: 'a rocket on the launch pad at dusk' },
  { file: 'motorcycle_left.png', caption: 'a red motorcycle parked in a garage' },
  { file: 'hubble_deep_field.jpg', caption: 'deep space full of galaxies' },
  { file: 'retina.jpg', caption: 'a macro photograph of an eye' },
  { file: 'coins.png', caption: 'old coins on a table, black and white photo' },
];

/** A variant of a photo: a crop, a brightness change and a resize, so pairs differ in visible ways. */
async function variant(photo: Photo, which: number, size = 192): Promise<Buffer> {
  const image = sharp(join(SKIMAGE, photo.file));
  const meta = await image.metadata();
  const w = meta.width!;
  const h = meta.height!;
  const crop = Math.floor(Math.min(w, h) * (0.7 + 0.1 * (which % 3)));
  const left = Math.floor(((w - crop) * ((which * 37) % 100)) / 100);
  const top = Math.floor(((h - crop) * ((which * 61) % 100)) / 100);
  const brightness = [1, 0.7, 1.25, 0.85][which % 4]!;
  return sharp(join(SKIMAGE, photo.file))
    .extract({ left, top, width: crop, height: crop })
    .resize(size, size)
    .modulate({ brightness })
    .toColourspace('srgb')
    .jpeg({ quality: 80 })
    .toBuffer();
}

async function pickapic(): Promise<void> {
  const dir = join(DATA, 'pickapic');
  await mkdir(dir, { recursive: true });
  const db = await DuckDBInstance.create(':memory:');
  const sql = await db.connect();
  const columns = `caption VARCHAR, jpg_0 BLOB, jpg_1 BLOB, label_0 DOUBLE, label_1 DOUBLE, has_label BOOLEAN,
    are_different BOOLEAN, image_0_uid VARCHAR, image_1_uid VARCHAR, model_0 VARCHAR, model_1 VARCHAR,
    user_id BIGINT, ranking_id BIGINT, created_at TIMESTAMP`;
  const models = ['SDXL 0.9', 'SD 2.1', 'Dreamlike Photoreal 2.0', 'SDXL Beta'];
  for (const [split, photos, offset] of [
    ['train', PHOTOS.slice(0, 6), 0],
    ['validation_unique', PHOTOS.slice(6), 100],
  ] as const) {
    await sql.run(`CREATE OR REPLACE TABLE t (${columns})`);
    let ranking = offset;
    for (const [p, photo] of photos.entries()) {
      // Three rankings per prompt: a decided pair each way and a tie; the first prompt also gets an unlabelled pair.
      const labels: Array<[number | null, number | null, boolean]> = [
        [1, 0, true],
        [0, 1, true],
        [0.5, 0.5, true],
      ];
      if (p === 0) labels.push([null, null, false]);
      for (const [r, [label0, label1, hasLabel]] of labels.entries()) {
        const a = await variant(photo, r);
        const b = await variant(photo, r + 1);
        await insert(sql, {
          caption: photo.caption,
          a,
          b,
          label0,
          label1,
          hasLabel,
          ranking: ranking++,
          models: [models[r % 4]!, models[(r + 1) % 4]!],
        });
      }
    }
    if (split === 'train') {
      // Rows a real shard can hold and a tool must survive: a truncated image, the same image twice, no caption.
      const good = await variant(PHOTOS[0]!, 2);
      await insert(sql, {
        caption: 'a truncated upload',
        a: good,
        b: good.subarray(0, good.length >> 1),
        label0: 1,
        label1: 0,
        hasLabel: true,
        ranking: ranking++,
        models: ['SD 2.1', 'SD 2.1'],
      });
      await insert(sql, {
        caption: 'the same image twice',
        a: good,
        b: good,
        label0: 0.5,
        label1: 0.5,
        hasLabel: true,
        ranking: ranking++,
        models: ['SD 2.1', 'SD 2.1'],
      });
      await insert(sql, {
        caption: null,
        a: good,
        b: await variant(PHOTOS[1]!, 3),
        label0: 1,
        label1: 0,
        hasLabel: true,
        ranking: ranking++,
        models: ['SD 2.1', 'SD 2.1'],
      });
    }
    await sql.run(`COPY t TO '${join(dir, `${split}-00000-of-00001.parquet`)}' (FORMAT parquet, COMPRESSION zstd)`);
  }
}

async function insert(
  sql: Awaited<ReturnType<DuckDBInstance['connect']>>,
  row: {
    caption: string | null;
    a: Buffer;
    b: Buffer;
    label0: number | null;
    label1: number | null;
    hasLabel: boolean;
    ranking: number;
    models: [string, string];
  },
): Promise<void> {
  const blob = (bytes: Buffer): string => `from_hex('${bytes.toString('hex')}')`;
  const text = (value: string | null): string => (value === null ? 'NULL' : `'${value.replaceAll("'", "''")}'`);
  await sql.run(
    `INSERT INTO t VALUES (${text(row.caption)}, ${blob(row.a)}, ${blob(row.b)}, ${row.label0 ?? 'NULL'}, ${row.label1 ?? 'NULL'},
      ${row.hasLabel}, ${!row.a.equals(row.b)}, 'uid-${row.ranking}-0', 'uid-${row.ranking}-1', ${text(row.models[0])},
      ${text(row.models[1])}, ${1000 + (row.ranking % 7)}, ${row.ranking}, ` +
      `TIMESTAMP '2023-05-01 12:00:00' + INTERVAL ${row.ranking} MINUTE)`,
  );
}

async function hpd(): Promise<void> {
  const root = join(DATA, 'hpd');
  for (const sub of ['train', 'test', 'benchmark', 'benchmark_imgs']) await mkdir(join(root, sub), { recursive: true });
  const train: unknown[] = [];
  for (const [p, photo] of PHOTOS.slice(0, 4).entries()) {
    for (let k = 0; k < 2; k++) {
      const names = [`${p}${k}0.jpg`, `${p}${k}1.jpg`];
      await writeFile(join(root, 'train', names[0]!), await variant(photo, 2 * k));
      await writeFile(join(root, 'train', names[1]!), await variant(photo, 2 * k + 1));
      train.push({ prompt: photo.caption, image_path: names, human_preference: k === 0 ? [1, 0] : [0, 1] });
    }
  }
  // Entries a shared annotation file can carry: a path that climbs out of the root and a file that is not there.
  train.push({ prompt: 'an escape attempt', image_path: ['../../../etc/passwd', '000.jpg'], human_preference: [1, 0] });
  train.push({ prompt: 'a missing image', image_path: ['000.jpg', 'does-not-exist.jpg'], human_preference: [0, 1] });
  await writeFile(join(root, 'train.json'), `${JSON.stringify(train, null, 1)}\n`);

  const test: unknown[] = [];
  for (const [g, photo] of PHOTOS.slice(4, 7).entries()) {
    const names = [0, 1, 2].map((i) => `${g}${i}.jpg`);
    for (const [i, name] of names.entries()) await writeFile(join(root, 'test', name), await variant(photo, i));
    test.push({ prompt: photo.caption, image_path: names, rank: g === 2 ? [1, 1, 2] : [2, 1, 3], raw_annotations: [] });
  }
  await writeFile(join(root, 'test.json'), `${JSON.stringify(test, null, 1)}\n`);

  const styles: Record<string, Photo[]> = { photo: PHOTOS.slice(0, 3), paintings: PHOTOS.slice(3, 5) };
  for (const [style, photos] of Object.entries(styles)) {
    await writeFile(
      join(root, 'benchmark', `${style}.json`),
      `${JSON.stringify(
        photos.map((x) => x.caption),
        null,
        1,
      )}\n`,
    );
    for (const [m, model] of ['SDXL-base-0.9', 'VQGAN'].entries()) {
      await mkdir(join(root, 'benchmark_imgs', model, style), { recursive: true });
      for (const [i, photo] of photos.entries()) {
        await writeFile(join(root, 'benchmark_imgs', model, style, `${String(i).padStart(5, '0')}.jpg`), await variant(photo, m + 2, 160));
      }
    }
  }
}

async function generations(): Promise<void> {
  const root = join(DATA, 'generations');
  await mkdir(root, { recursive: true });
  // Eight PartiPrompts prompts, one per photo, kept in the PartiPrompts TSV layout.
  const parti = await readPromptList(join(DATA, 'parti', 'PartiPrompts.tsv'));
  const chosen = [0, 100, 300, 500, 700, 900, 1100, 1300].map((i) => parti[i]!);
  const tsv = ['Prompt\tCategory\tChallenge\tNote', ...chosen.map((e) => [e.text, e.category, e.challenge, e.note ?? ''].join('\t'))];
  await writeFile(join(root, 'prompts.tsv'), `${tsv.join('\n')}\n`);
  for (const [m, model] of ['model-a', 'model-b'].entries()) {
    await mkdir(join(root, model), { recursive: true });
    for (const [i, photo] of PHOTOS.entries()) {
      for (const seed of [0, 1]) {
        await writeFile(join(root, model, `${i}_${seed}.jpg`), await variant(photo, m * 2 + seed, 160));
      }
    }
  }
}

await rm(join(DATA, 'pickapic'), { recursive: true, force: true });
await rm(join(DATA, 'hpd'), { recursive: true, force: true });
await rm(join(DATA, 'generations'), { recursive: true, force: true });
// data/parti/PartiPrompts.tsv is the real file, committed as it is: this script leaves it alone.
await pickapic();
await hpd();
await generations();
console.log('sample data written under data/');
