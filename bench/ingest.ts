// Ingest throughput and memory on Pick-a-Pic-like shards much larger than one row group.
//
//   node --import tsx bench/ingest.ts [--shards 4] [--rows 2000] [--group 200] [--size 512]
//   node --import tsx bench/ingest.ts --scaling [--shards 1] [--rows 400] [--group 50] [--rounds 2]
//
// Builds the shards once (cached under bench/.cache/): 512×512 JPEGs of ≈ 50–100 KB, each a smooth random colour
// field with fine noise, varied per image by a few pixels and re-encoded so that every image hashes differently;
// written by DuckDB with zstd, in row groups of --group rows. Then measures, in the same run and on the same bytes:
//   1. baseline: reading the shards row group by row group with our Parquet module (the floor for any ingest),
//   2. ingest, decoding every image (the default),
//   3. ingest with --no-decode (headers only),
// and the peak RSS of a child process ingesting one shard and all shards, next to the shard and row-group sizes.
// With --scaling, instead: the per-core rate of image verification (checkImage with its full decode, one image at a
// time on one thread), then for workers = 1 … cores the verification rate of the image pool alone and of a whole
// ingest, each as a ratio to workers × the per-core rate (the goal is ≥ 0.9).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { DuckDBInstance, timestampValue } from '@duckdb/node-api';
import { openParquet, readRowGroup } from '../src/io/parquet.ts';
import { ingestPickapic, PICKAPIC_REQUIRED } from '../src/ingest/pickapic.ts';
import { imageId } from '../src/core/ids.ts';
import { readManifest } from '../src/core/manifest.ts';
import { checkImage } from '../src/models/image-check.ts';
import { ImagePool } from '../src/models/image-pool.ts';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const SELF = fileURLToPath(import.meta.url);

interface Config {
  shards: number;
  rows: number;
  group: number;
  size: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Shards

/** mulberry32, so the shards are the same bytes on every machine. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BASES = 200;

/** Raw RGB of a base picture: an 8×8 random colour field blown up (bicubic) plus per-pixel noise. */
async function basePixels(seed: number, size: number): Promise<Buffer> {
  const random = seeded(seed);
  const field = Buffer.alloc(8 * 8 * 3);
  for (let i = 0; i < field.length; i++) field[i] = Math.floor(random() * 256);
  const pixels = await sharp(field, { raw: { width: 8, height: 8, channels: 3 } })
    .resize(size, size, { kernel: 'cubic' })
    .raw()
    .toBuffer();
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.max(0, Math.min(255, pixels[i]! + Math.floor((random() - 0.5) * 40)));
  return pixels;
}

/** Image number k: base k mod BASES with a few pixels changed, encoded as JPEG. */
async function variant(base: Buffer, k: number, size: number): Promise<Uint8Array> {
  const random = seeded(1_000_003 * (k + 1));
  const pixels = Buffer.from(base);
  for (let j = 0; j < 24; j++) {
    const at = Math.floor(random() * pixels.length);
    pixels[at] = pixels[at]! ^ 0xff;
  }
  return new Uint8Array(
    await sharp(pixels, { raw: { width: size, height: size, channels: 3 } })
      .jpeg({ quality: 90 })
      .toBuffer(),
  );
}

function shardNames(config: Config): string[] {
  const n = String(config.shards).padStart(5, '0');
  return Array.from({ length: config.shards }, (_, i) => `train-${String(i).padStart(5, '0')}-of-${n}.parquet`);
}

async function ensureShards(config: Config): Promise<string[]> {
  const dir = join(HERE, '.cache', `ingest-pickapic-${config.shards}x${config.rows}-rg${config.group}-${config.size}px`);
  const files = shardNames(config).map((name) => join(dir, name));
  if (existsSync(join(dir, 'done.json'))) return files;
  await mkdir(dir, { recursive: true });
  const started = performance.now();
  process.stderr.write(`building ${config.shards} shards × ${config.rows} rows of ${config.size}² JPEGs in ${dir} …\n`);
  const bases = await Promise.all(Array.from({ length: BASES }, (_, i) => basePixels(i + 1, config.size)));
  // Each row compares two images; each image appears in two rows with the same caption (as a ranking does).
  let imageNumber = 0;
  for (const [s, file] of files.entries()) {
    const unique = config.rows;
    const images: Uint8Array[] = [];
    for (let start = 0; start < unique; start += 16) {
      const batch = Array.from({ length: Math.min(16, unique - start) }, (_, j) => imageNumber + start + j);
      images.push(...(await Promise.all(batch.map((k) => variant(bases[k % BASES]!, k, config.size)))));
    }
    imageNumber += unique;
    await writeShard(file, images, config, s);
    process.stderr.write(`  ${file}: ${((await stat(file)).size / 1e6).toFixed(0)} MB\n`);
  }
  await writeFile(join(dir, 'done.json'), JSON.stringify({ ...config, seconds: (performance.now() - started) / 1000 }));
  return files;
}

async function writeShard(path: string, images: Uint8Array[], config: Config, shardIndex: number): Promise<void> {
  const instance = await DuckDBInstance.create(':memory:', { threads: '1' });
  const db = await instance.connect();
  try {
    await db.run(`CREATE TABLE shard (caption VARCHAR, jpg_0 BLOB, jpg_1 BLOB, label_0 DOUBLE, label_1 DOUBLE,
      has_label BOOLEAN, are_different BOOLEAN, image_0_uid VARCHAR, image_1_uid VARCHAR, model_0 VARCHAR,
      model_1 VARCHAR, user_id BIGINT, ranking_id BIGINT, created_at TIMESTAMP)`);
    const appender = await db.createAppender('shard');
    const models = ['stable-diffusion-xl-beta', 'dreamlike-photoreal-2.0', 'stable-diffusion-2.1'];
    for (let i = 0; i < config.rows; i++) {
      // Row i compares images i and i + 1; rows 2t and 2t + 1 share a caption, so image 2t + 1 is stored once.
      const block = Math.floor(i / 2);
      const a = i;
      const b = i % 2 === 0 ? i + 1 : (i + 1) % config.rows;
      const label = [1, 0, 0.5, 1, 0][i % 5]!;
      appender.appendVarchar(`shard ${shardIndex} prompt ${block}: a photo of something ${block % 97}`);
      appender.appendBlob(images[a]!);
      appender.appendBlob(images[b]!);
      appender.appendDouble(label);
      appender.appendDouble(1 - label);
      appender.appendBoolean(i % 50 !== 0);
      appender.appendBoolean(true);
      appender.appendVarchar(`uid-${shardIndex}-${a}`);
      appender.appendVarchar(`uid-${shardIndex}-${b}`);
      appender.appendVarchar(models[a % 3]!);
      appender.appendVarchar(models[b % 3]!);
      appender.appendBigInt(BigInt(1000 + (block % 400)));
      appender.appendBigInt(BigInt(shardIndex * 1_000_000 + block));
      appender.appendTimestamp(timestampValue(BigInt(Date.UTC(2023, 3, 1) + i * 1000) * 1000n));
      appender.endRow();
    }
    appender.closeSync();
    // DuckDB ends a row group only between the chunks it is fed; one filtered scan per group makes each its own.
    const groups: string[] = [];
    for (let start = 0; start < config.rows; start += config.group) {
      groups.push(`SELECT * FROM shard WHERE rowid >= ${start} AND rowid < ${start + config.group}`);
    }
    await db.run(
      `COPY (${groups.join(' UNION ALL ')}) TO '${path.replaceAll("'", "''")}'
       (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${config.group})`,
    );
  } finally {
    db.closeSync();
    instance.closeSync();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Measurements

interface Timing {
  seconds: number;
  rows: number;
}

async function readOnly(
  files: string[],
  hashImages = false,
): Promise<Timing & { imageBytes: number; groups: number; maxGroupBytes: number }> {
  const started = performance.now();
  let rows = 0;
  let imageBytes = 0;
  let groups = 0;
  let maxGroupBytes = 0;
  const columns = [...PICKAPIC_REQUIRED, 'label_1', 'has_label', 'are_different', 'model_0', 'model_1', 'ranking_id'];
  for (const file of files) {
    const source = await openParquet(file);
    for (const group of source.rowGroups) {
      const cells = await readRowGroup(source, group, columns);
      let groupBytes = 0;
      for (const row of cells) {
        for (const image of [row.jpg_0 as Uint8Array, row.jpg_1 as Uint8Array]) {
          groupBytes += image.byteLength;
          if (hashImages) imageId(image);
        }
      }
      rows += cells.length;
      imageBytes += groupBytes;
      maxGroupBytes = Math.max(maxGroupBytes, groupBytes);
      groups++;
    }
  }
  return { seconds: (performance.now() - started) / 1000, rows, imageBytes, groups, maxGroupBytes };
}

async function ingestTimed(
  files: string[],
  decode: boolean,
  workers?: number,
): Promise<Timing & { taken: number; images: number; partBytes: number }> {
  const out = join(tmpdir(), `bdpo-bench-ingest-${process.pid}-${decode ? 'decode' : 'nodecode'}`);
  await rm(out, { recursive: true, force: true });
  const started = performance.now();
  const summary = await ingestPickapic(files, { out, decode, ...(workers === undefined ? {} : { workers }) });
  const seconds = (performance.now() - started) / 1000;
  const units = Object.values((await readManifest(out)).units);
  const partBytes = units.flatMap((unit) => unit.parts).reduce((sum, part) => sum + part.bytes, 0);
  await rm(out, { recursive: true, force: true });
  return { seconds, rows: summary.counts.read, taken: summary.counts.taken, images: summary.tables.images, partBytes };
}

/** sha256 throughput of this machine (MB/s): content ids and the manifest's checksums all go through it. */
function sha256Rate(): number {
  const block = Buffer.alloc(64e6, 0x5a);
  const started = performance.now();
  createHash('sha256').update(block).digest();
  return 64 / ((performance.now() - started) / 1000);
}

/** Peak RSS (MB) of a fresh process doing `mode` on the files: VmHWM, which counts native (libvips, zstd) memory. */
function peakRss(mode: 'read' | 'ingest', files: string[]): number {
  const child = spawnSync(process.execPath, [...process.execArgv, SELF, '--child', mode, ...files], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (child.status !== 0) throw new Error(`child ${mode} failed: ${child.stderr}`);
  return (JSON.parse(child.stdout.trim().split('\n').pop()!) as { peakMB: number }).peakMB;
}

async function child(mode: string, files: string[]): Promise<void> {
  if (mode === 'read') await readOnly(files);
  else await ingestTimed(files, true);
  const status = await readFile('/proc/self/status', 'utf8').catch(() => '');
  const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
  const kb = hwm ? Number(hwm[1]) : process.resourceUsage().maxRSS;
  process.stdout.write(`${JSON.stringify({ peakMB: kb / 1024 })}\n`);
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      shards: { type: 'string', default: '4' },
      rows: { type: 'string', default: '2000' },
      group: { type: 'string', default: '200' },
      size: { type: 'string', default: '512' },
      child: { type: 'string' },
      scaling: { type: 'boolean', default: false },
      rounds: { type: 'string', default: '2' },
    },
    allowPositionals: true,
  });
  if (values.child) return child(values.child, positionals);
  // --scaling defaults to one smaller shard: its images are decoded once per worker count and round.
  const given = (name: 'shards' | 'rows' | 'group', scalingDefault: string): number =>
    Number(values.scaling && !process.argv.some((arg) => arg.startsWith(`--${name}`)) ? scalingDefault : values[name]);
  const config: Config = {
    shards: given('shards', '1'),
    rows: given('rows', '400'),
    group: given('group', '50'),
    size: Number(values.size),
  };
  if (values.scaling) return scaling(await ensureShards(config), Number(values.rounds));
  const files = await ensureShards(config);
  const fileBytes = (await Promise.all(files.map((f) => stat(f)))).reduce((s, st) => s + st.size, 0);
  await readOnly(files); // warm the page cache, so every step reads from memory alike

  const base = await readOnly(files);
  const hashed = await readOnly(files, true);
  const decoded = await ingestTimed(files, true);
  const headers = await ingestTimed(files, false);
  const shaRate = sha256Rate();

  const mb = fileBytes / 1e6;
  const row = (label: string, t: Timing): string =>
    `${label.padEnd(24)}${t.seconds.toFixed(2).padStart(8)} s${Math.round(t.rows / t.seconds)
      .toString()
      .padStart(9)}` + `${(mb / t.seconds).toFixed(0).padStart(9)}${(t.seconds / base.seconds).toFixed(2).padStart(10)}`;
  const shardMB = fileBytes / files.length / 1e6;
  // Hashed by an ingest: every input file (the manifest's checksum), every image (its id), every part written.
  const hashedMB = (fileBytes + base.imageBytes + headers.partBytes) / 1e6;
  const lines = [
    `machine: ${cpus().length} cores, load average ${loadavg()[0]!.toFixed(1)} at the start`,
    `shards: ${files.length} × ${config.rows} rows, row groups of ${config.group} (${base.groups} groups), ` +
      `${config.size}×${config.size} JPEG (mean ${(base.imageBytes / base.rows / 2 / 1e3).toFixed(0)} KB), ` +
      `${mb.toFixed(0)} MB on disk (DuckDB, zstd); largest row group holds ${(base.maxGroupBytes / 1e6).toFixed(0)} MB of images`,
    '',
    `${'step'.padEnd(24)}${'time'.padStart(10)}${'rows/s'.padStart(9)}${'MB/s'.padStart(9)}${'× read'.padStart(10)}`,
    row('read only (baseline)', base),
    row('read + sha256 of images', hashed),
    row('ingest, decode', decoded),
    row('ingest, --no-decode', headers),
    '',
    `ingest took ${decoded.taken} of ${decoded.rows} rows, stored ${decoded.images} images (--no-decode: ${headers.taken} rows)`,
    `sha256 runs at ${shaRate.toFixed(0)} MB/s here; an ingest hashes ${hashedMB.toFixed(0)} MB (input files, images, ` +
      `parts): ≈ ${(hashedMB / shaRate).toFixed(1)} s of its time`,
  ];
  console.log(lines.join('\n'));

  const rss = [
    ['read only, 1 shard', peakRss('read', files.slice(0, 1)), shardMB],
    ['ingest, 1 shard', peakRss('ingest', files.slice(0, 1)), shardMB],
    [`ingest, ${files.length} shards`, peakRss('ingest', files), mb],
  ] as const;
  console.log(`\n${'peak RSS (child process)'.padEnd(26)}${'RSS'.padStart(9)}${'input'.padStart(10)}`);
  for (const [label, peak, input] of rss) {
    console.log(`${label.padEnd(26)}${`${peak.toFixed(0)} MB`.padStart(9)}${`${input.toFixed(0)} MB`.padStart(10)}`);
  }
}

/** CPU seconds (user + system, all threads of this process) and wall seconds of `action`. */
async function timed<T>(action: () => Promise<T>): Promise<{ result: T; wall: number; cpu: number }> {
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const result = await action();
  const wall = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpuBefore);
  return { result, wall, cpu: (used.user + used.system) / 1e6 };
}

async function scaling(files: string[], rounds: number): Promise<void> {
  const images: Uint8Array[] = [];
  for (const file of files) {
    const source = await openParquet(file);
    for (const group of source.rowGroups) {
      for (const row of await readRowGroup(source, group, ['jpg_0', 'jpg_1']))
        images.push(row.jpg_0 as Uint8Array, row.jpg_1 as Uint8Array);
    }
  }
  const cores = availableParallelism();
  const options = { maxPixels: 89_478_485, decode: true };
  console.log(
    `ingest verification scaling: ${images.length} JPEGs from ${files.length} shard(s), workers 1…${cores}, ${rounds} rounds; ` +
      `UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? 'unset (4)'}; load average ${loadavg()[0]!.toFixed(2)}`,
  );
  // The per-core rate: one image at a time on this thread, in images per CPU-second (libuv's decode thread included).
  let perCore = 0;
  for (let round = 0; round < rounds; round++) {
    const serial = await timed(async () => {
      for (const bytes of images) if (!(await checkImage(bytes, options)).ok) throw new Error('a bench image did not verify');
    });
    perCore = Math.max(perCore, images.length / serial.cpu);
  }
  console.log(`per-core verification (checkImage with decode, one at a time): ${perCore.toFixed(1)} images per CPU-second`);
  const counts = Array.from({ length: cores }, (_, i) => i + 1);
  const poolRate = new Map<number, number>();
  const ingestRate = new Map<number, number>();
  for (let round = 0; round < rounds; round++) {
    for (const workers of counts) {
      const pool = new ImagePool(workers);
      try {
        await pool.checkImage(images[0]!, options); // workers started and compiled: not part of the count
        const run = await timed(() => Promise.all(images.map((bytes) => pool.checkImage(bytes, options))));
        poolRate.set(workers, Math.max(poolRate.get(workers) ?? 0, images.length / run.wall));
      } finally {
        await pool.dispose();
      }
      const ingest = await ingestTimed(files, true, workers);
      ingestRate.set(workers, Math.max(ingestRate.get(workers) ?? 0, (2 * ingest.rows) / ingest.seconds));
    }
  }
  for (const workers of counts) {
    const bound = workers * perCore;
    const pool = poolRate.get(workers)!;
    const ingest = ingestRate.get(workers)!;
    console.log(
      `workers ${String(workers).padStart(2)}: pool ${pool.toFixed(1).padStart(7)} images/s (${(pool / bound).toFixed(3)} of ` +
        `${workers} × per-core; goal ≥ 0.9); whole ingest ${ingest.toFixed(1).padStart(7)} images/s (${(ingest / bound).toFixed(3)})`,
    );
  }
  console.log(`load average after: ${loadavg()[0]!.toFixed(2)}`);
}

await main();
