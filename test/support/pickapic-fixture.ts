// Small Pick-a-Pic v2 shards with the published columns, written by three independent Parquet writers (DuckDB,
// arrow-rs compiled to wasm, and our own hyparquet-writer path), plus real images made with sharp and a scenario of
// hostile rows whose fate (taken, or rejected with which reason) is written down by hand.
import { createHash } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import sharp from 'sharp';
import { DuckDBInstance, timestampValue, type DuckDBConnection } from '@duckdb/node-api';
import { Binary, Bool, Float64, Int64, Table, TimestampMillisecond, Utf8, tableToIPC, vectorFromArray } from 'apache-arrow';
import * as arrowRs from 'parquet-wasm/node';
import { writeParquetPart, type ColumnSpec } from '../../src/io/parquet.ts';
import { listParts, readRows } from '../../src/io/arrow-table.ts';
import type { RejectReason, TableName, TableRows } from '../../src/core/schema.ts';

// ---------------------------------------------------------------------------------------------------------------
// Images

/** mulberry32: a tiny seeded generator, so fixtures are the same bytes on every run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface NoiseImageOptions {
  width?: number;
  height?: number;
  format?: 'jpeg' | 'png';
  quality?: number;
}

/** RGB noise from a seed, encoded by libvips: distinct seeds give distinct bytes. */
export async function noiseImage(seed: number, options: NoiseImageOptions = {}): Promise<Uint8Array> {
  const width = options.width ?? 32;
  const height = options.height ?? 32;
  const random = seededRandom(seed);
  const pixels = Buffer.alloc(width * height * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.floor(random() * 256);
  const image = sharp(pixels, { raw: { width, height, channels: 3 } });
  const encoded = options.format === 'png' ? await image.png().toBuffer() : await image.jpeg({ quality: options.quality ?? 80 }).toBuffer();
  return new Uint8Array(encoded);
}

export async function noiseImages(count: number, firstSeed = 1, options: NoiseImageOptions = {}): Promise<Uint8Array[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => noiseImage(firstSeed + i, options)));
}

/** A JPEG cut short: its header (and size) still read, its pixels do not decode. */
export async function truncatedJpeg(seed = 999, size = 64): Promise<Uint8Array> {
  const whole = await noiseImage(seed, { width: size, height: size, quality: 90 });
  return whole.slice(0, Math.floor(whole.byteLength * 0.6));
}

export const NOT_AN_IMAGE = new TextEncoder().encode('<html>this is not a JPEG</html>');

// ---------------------------------------------------------------------------------------------------------------
// Rows

/** One row with the columns of the published Pick-a-Pic v2 shards. */
export interface PickapicRow {
  caption: string | null;
  jpg_0: Uint8Array | null;
  jpg_1: Uint8Array | null;
  label_0: number | null;
  label_1: number | null;
  has_label: boolean | null;
  are_different: boolean | null;
  image_0_uid: string | null;
  image_1_uid: string | null;
  model_0: string | null;
  model_1: string | null;
  user_id: bigint | null;
  ranking_id: bigint | null;
  /** Milliseconds since the epoch; written as a timestamp where the writer has one. */
  created_at: number | null;
}

export const PICKAPIC_COLUMNS = [
  'caption',
  'jpg_0',
  'jpg_1',
  'label_0',
  'label_1',
  'has_label',
  'are_different',
  'image_0_uid',
  'image_1_uid',
  'model_0',
  'model_1',
  'user_id',
  'ranking_id',
  'created_at',
] as const satisfies readonly (keyof PickapicRow)[];

type Kind = 'string' | 'binary' | 'double' | 'boolean' | 'int64' | 'timestamp';
const KINDS: Record<keyof PickapicRow, Kind> = {
  caption: 'string',
  jpg_0: 'binary',
  jpg_1: 'binary',
  label_0: 'double',
  label_1: 'double',
  has_label: 'boolean',
  are_different: 'boolean',
  image_0_uid: 'string',
  image_1_uid: 'string',
  model_0: 'string',
  model_1: 'string',
  user_id: 'int64',
  ranking_id: 'int64',
  created_at: 'timestamp',
};

const MODELS = ['stable-diffusion-xl-beta', 'dreamlike-photoreal-2.0', 'stable-diffusion-2.1'];

/** The model that "made" image number i of a pool: fixed per image, as in the real data. */
export function modelOf(imageNumber: number): string {
  return MODELS[imageNumber % MODELS.length]!;
}

/** A labelled row comparing images number a and b of a pool (label_1 = 1 − label_0). */
export function pairRow(
  caption: string | null,
  pool: readonly Uint8Array[],
  a: number,
  b: number,
  label0: number | null,
  extra: Partial<PickapicRow> = {},
): PickapicRow {
  return {
    caption,
    jpg_0: pool[a] ?? null,
    jpg_1: pool[b] ?? null,
    label_0: label0,
    label_1: label0 === null ? null : 1 - label0,
    has_label: true,
    are_different: a !== b,
    image_0_uid: `uid-${String(a).padStart(4, '0')}`,
    image_1_uid: `uid-${String(b).padStart(4, '0')}`,
    model_0: modelOf(a),
    model_1: modelOf(b),
    user_id: 1000n + BigInt(a % 7),
    ranking_id: 5000n + BigInt(a * 31 + b),
    created_at: Date.UTC(2023, 3, 1) + a * 60_000 + b,
    ...extra,
  };
}

/** What the ingest must do with a row, written by hand. */
export type Expected = { taken: true; pref: number | null } | { taken: false; reason: RejectReason };

export interface Scenario {
  /** Image pool; rows refer to pool[i]. */
  pool: Uint8Array[];
  rows: PickapicRow[];
  expected: Expected[];
}

const take = (pref: number | null): Expected => ({ taken: true, pref });
const no = (reason: RejectReason): Expected => ({ taken: false, reason });

/**
 * 18 rows in three groups of 6, each group with taken and rejected rows: 6 taken (labels 1, 0, a tie, the tie's
 * images the other way round, unlabelled, 0) and 12 rejected, one to three per reason. Rows 14 and 15 repeat
 * row 0 (15 up to whitespace) two row groups later.
 */
export async function hostileScenario(): Promise<Scenario> {
  const pool = await noiseImages(12, 101);
  const truncated = await truncatedJpeg();
  const rows: PickapicRow[] = [];
  const expected: Expected[] = [];
  const add = (row: PickapicRow, outcome: Expected): void => {
    rows.push(row);
    expected.push(outcome);
  };
  add(pairRow('a red cube on a table', pool, 0, 1, 1), take(1)); // 0
  add(pairRow('a red cube on a table', pool, 0, 2, 0), take(0)); // 1: image 0 again, same prompt
  add(pairRow('a blue sphere', pool, 3, 4, 0.5), take(0.5)); // 2: tie
  add(pairRow('a blue sphere', pool, 4, 3, 1), take(1)); // 3: the same images the other way round: another pair
  add(pairRow(null, pool, 10, 11, 1), no('missing_prompt')); // 4
  add(pairRow(' \t ', pool, 10, 11, 1), no('missing_prompt')); // 5
  add(pairRow('an unlabelled pair', pool, 8, 9, 0, { has_label: false, label_1: 0 }), take(null)); // 6
  add(pairRow('an empty second image', pool, 10, 11, 1, { jpg_1: new Uint8Array(0) }), no('empty_image')); // 7
  add(pairRow('a null first image', pool, 10, 11, 1, { jpg_0: null }), no('empty_image')); // 8
  add(pairRow('a truncated second image', pool, 10, 11, 1, { jpg_1: truncated }), no('bad_image')); // 9
  add(pairRow('not an image at all', pool, 10, 11, 1, { jpg_0: NOT_AN_IMAGE }), no('bad_image')); // 10
  add(pairRow('the same image twice', pool, 5, 5, 1), no('identical_images')); // 11
  add(pairRow('both sides win', pool, 10, 11, 1, { label_1: 1 }), no('bad_label')); // 12
  add(pairRow('a label off the scale', pool, 10, 11, 0.3), no('bad_label')); // 13
  add(pairRow('a red cube on a table', pool, 0, 1, 1), no('duplicate_pair')); // 14: row 0 again
  add(pairRow('  a red   cube on a table ', pool, 0, 1, 1), no('duplicate_pair')); // 15: row 0, other spacing
  add(pairRow('a green cone', pool, 6, 7, 0), take(0)); // 16
  add(pairRow('a green cone', pool, 7, 6, null), no('bad_label')); // 17: has_label true without a label
  return { pool, rows, expected };
}

/**
 * `count` valid rows over a pool of images and a small caption vocabulary: labels cycle through 1, 0, tie and
 * unlabelled; every 17th row repeats an earlier one (a duplicate pair).
 */
export function cleanRows(pool: readonly Uint8Array[], count: number, seed = 7): PickapicRow[] {
  const random = seededRandom(seed);
  const rows: PickapicRow[] = [];
  for (let i = 0; i < count; i++) {
    if (i % 17 === 16) {
      rows.push({ ...rows[Math.floor(random() * rows.length)]! });
      continue;
    }
    const a = Math.floor(random() * pool.length);
    let b = Math.floor(random() * (pool.length - 1));
    if (b >= a) b++;
    const label = [1, 0, 0.5, null][i % 4]!;
    const row = pairRow(`prompt number ${i % 23}`, pool, a, b, label === null ? 0 : label);
    if (label === null) Object.assign(row, { has_label: false, label_0: 0, label_1: 0 });
    rows.push(row);
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------------------
// Writers

export type ShardWriter = 'duckdb' | 'arrow-rs' | 'hyparquet';
export type Codec = 'zstd' | 'snappy' | 'gzip' | 'uncompressed';

export interface ShardOptions {
  writer: ShardWriter;
  codec?: Codec;
  /** Rows per row group (default: one group). */
  rowGroupSize?: number;
  /** Data page version (DuckDB's PARQUET_VERSION, arrow-rs' writer version); our writer writes v1. */
  pageVersion?: 1 | 2;
  /** arrow-rs only: dictionary encoding on or off (DuckDB decides for itself). */
  dictionary?: boolean;
}

export async function writePickapicShard(path: string, rows: readonly PickapicRow[], options: ShardOptions): Promise<void> {
  switch (options.writer) {
    case 'duckdb':
      return writeWithDuckdb(path, rows, options);
    case 'arrow-rs':
      return writeFile(path, writeWithArrowRs(rows, options));
    case 'hyparquet':
      return writeWithOurWriter(path, rows, options);
  }
}

export async function withDuckdb<T>(action: (connection: DuckDBConnection) => Promise<T>): Promise<T> {
  // One thread: row order and row-group boundaries then follow insertion order.
  const instance = await DuckDBInstance.create(':memory:', { threads: '1' });
  const connection = await instance.connect();
  try {
    return await action(connection);
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

export function sqlString(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

const DUCKDB_TYPES: Record<Kind, string> = {
  string: 'VARCHAR',
  binary: 'BLOB',
  double: 'DOUBLE',
  boolean: 'BOOLEAN',
  int64: 'BIGINT',
  timestamp: 'TIMESTAMP',
};

async function writeWithDuckdb(path: string, rows: readonly PickapicRow[], options: ShardOptions): Promise<void> {
  await withDuckdb(async (db) => {
    const columns = PICKAPIC_COLUMNS.map((name) => `${name} ${DUCKDB_TYPES[KINDS[name]]}`).join(', ');
    await db.run(`CREATE TABLE shard (${columns})`);
    const appender = await db.createAppender('shard');
    for (const row of rows) {
      for (const name of PICKAPIC_COLUMNS) {
        const value = row[name];
        if (value === null) {
          appender.appendNull();
          continue;
        }
        switch (KINDS[name]) {
          case 'string':
            appender.appendVarchar(value as string);
            break;
          case 'binary':
            appender.appendBlob(value as Uint8Array);
            break;
          case 'double':
            appender.appendDouble(value as number);
            break;
          case 'boolean':
            appender.appendBoolean(value as boolean);
            break;
          case 'int64':
            appender.appendBigInt(value as bigint);
            break;
          case 'timestamp':
            appender.appendTimestamp(timestampValue(BigInt(value as number) * 1000n));
            break;
        }
      }
      appender.endRow();
    }
    appender.closeSync();
    await copyToParquet(db, 'shard', rows.length, path, options);
  });
}

/**
 * COPY a table to Parquet with the given codec, page version and row-group size. DuckDB closes a row group only
 * between the chunks it is fed (2048-row vectors when scanning a table), so for small groups it is fed one filtered
 * scan per group: each arrives as its own chunk and becomes its own row group.
 */
export async function copyToParquet(
  db: DuckDBConnection,
  table: string,
  rowCount: number,
  path: string,
  options: { codec?: Codec; pageVersion?: 1 | 2; rowGroupSize?: number },
): Promise<void> {
  const size = options.rowGroupSize;
  const settings = [
    'FORMAT parquet',
    `COMPRESSION ${options.codec ?? 'zstd'}`,
    `PARQUET_VERSION v${options.pageVersion ?? 1}`,
    ...(size ? [`ROW_GROUP_SIZE ${size}`] : []),
  ].join(', ');
  let query = table;
  if (size && rowCount > size) {
    const groups: string[] = [];
    for (let start = 0; start < rowCount; start += size) {
      groups.push(`SELECT * FROM ${table} WHERE rowid >= ${start} AND rowid < ${start + size}`);
    }
    query = `(${groups.join(' UNION ALL ')})`;
  }
  await db.run(`COPY ${query} TO ${sqlString(path)} (${settings})`);
  const reader = await db.runAndReadAll(
    `SELECT row_group_id, any_value(row_group_num_rows) AS n FROM parquet_metadata(${sqlString(path)})
     GROUP BY row_group_id ORDER BY row_group_id`,
  );
  const groupRows = reader.getRowsJS().map((r) => Number(r[1]));
  const want = rowCount === 0 ? 0 : size ? Math.ceil(rowCount / size) : 1;
  if (groupRows.length !== want || groupRows.reduce((s, n) => s + n, 0) !== rowCount) {
    throw new Error(`DuckDB wrote row groups of ${groupRows.join(', ')} rows; the fixture wanted ${want} groups`);
  }
}

const ARROW_COMPRESSION: Record<Codec, arrowRs.Compression> = {
  zstd: arrowRs.Compression.ZSTD,
  snappy: arrowRs.Compression.SNAPPY,
  gzip: arrowRs.Compression.GZIP,
  uncompressed: arrowRs.Compression.UNCOMPRESSED,
};

/** Parquet bytes from arrow-rs for an apache-arrow table (handed over as an IPC stream). */
export function arrowRsParquet(
  table: Table,
  options: { codec?: Codec; rowGroupSize?: number; pageVersion?: 1 | 2; dictionary?: boolean },
): Uint8Array {
  const wasmTable = arrowRs.Table.fromIPCStream(tableToIPC(table, 'stream'));
  let builder = new arrowRs.WriterPropertiesBuilder()
    .setCompression(ARROW_COMPRESSION[options.codec ?? 'zstd'])
    .setDictionaryEnabled(options.dictionary ?? true)
    .setWriterVersion(options.pageVersion === 2 ? arrowRs.WriterVersion.V2 : arrowRs.WriterVersion.V1)
    .setCreatedBy('arrow-rs fixture');
  if (options.rowGroupSize) builder = builder.setMaxRowGroupSize(options.rowGroupSize);
  // Both arguments are moved into wasm and freed there.
  return arrowRs.writeParquet(wasmTable, builder.build());
}

function writeWithArrowRs(rows: readonly PickapicRow[], options: ShardOptions): Uint8Array {
  const column = <K extends keyof PickapicRow>(name: K): PickapicRow[K][] => rows.map((row) => row[name]);
  const table = new Table({
    caption: vectorFromArray(column('caption'), new Utf8()),
    jpg_0: vectorFromArray(column('jpg_0'), new Binary()),
    jpg_1: vectorFromArray(column('jpg_1'), new Binary()),
    label_0: vectorFromArray(column('label_0'), new Float64()),
    label_1: vectorFromArray(column('label_1'), new Float64()),
    has_label: vectorFromArray(column('has_label'), new Bool()),
    are_different: vectorFromArray(column('are_different'), new Bool()),
    image_0_uid: vectorFromArray(column('image_0_uid'), new Utf8()),
    image_1_uid: vectorFromArray(column('image_1_uid'), new Utf8()),
    model_0: vectorFromArray(column('model_0'), new Utf8()),
    model_1: vectorFromArray(column('model_1'), new Utf8()),
    user_id: vectorFromArray(column('user_id'), new Int64()),
    ranking_id: vectorFromArray(column('ranking_id'), new Int64()),
    created_at: vectorFromArray(column('created_at'), new TimestampMillisecond()),
  });
  return arrowRsParquet(table, options);
}

const OUR_TYPES: Record<Kind, ColumnSpec['type']> = {
  string: 'string',
  binary: 'binary',
  double: 'double',
  boolean: 'boolean',
  int64: 'int64',
  timestamp: 'int64',
};

async function writeWithOurWriter(path: string, rows: readonly PickapicRow[], options: ShardOptions): Promise<void> {
  const specs: ColumnSpec[] = PICKAPIC_COLUMNS.map((name) => ({ name, type: OUR_TYPES[KINDS[name]], nullable: true }));
  const columns: Record<string, unknown[]> = {};
  for (const name of PICKAPIC_COLUMNS) {
    columns[name] = rows.map((row) => {
      const value = row[name];
      return KINDS[name] === 'timestamp' && value !== null ? BigInt(value as number) * 1000n : value;
    });
  }
  await writeParquetPart(dirname(path), basename(path), specs, columns, {
    ...(options.rowGroupSize ? { rowGroupSize: options.rowGroupSize } : {}),
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The expected dataset, computed independently of the code under test from docs/design.md §2's id rules

export const sha256 = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');
export const normalise = (text: string): string => text.normalize('NFC').trim().replace(/\s+/gu, ' ');
export const promptIdOf = (text: string): string => sha256(`prompt\0${normalise(text)}`);
export const pairIdOf = (prompt: string, a: string, b: string): string => sha256(`pair\0${prompt}\0${a}\0${b}`);

/** Outcomes of rows that are all well formed: the only reject is a repeated (prompt, image a, image b). */
export function cleanOutcomes(rows: readonly PickapicRow[], seen = new Set<string>()): Expected[] {
  return rows.map((row) => {
    const key = `${normalise(row.caption!)}\0${sha256(row.jpg_0!)}\0${sha256(row.jpg_1!)}`;
    if (seen.has(key)) return no('duplicate_pair');
    seen.add(key);
    return take(row.has_label === false ? null : row.label_0);
  });
}

export interface ShardSpec {
  /** File name, e.g. train-00000-of-00002.parquet (rows are referenced as name#row). */
  name: string;
  split: string | null;
  rows: readonly PickapicRow[];
  expected: readonly Expected[];
}

export interface ExpectedDataset {
  prompts: TableRows['prompts'][];
  images: TableRows['images'][];
  pairs: TableRows['pairs'][];
  /** Rejects without their free-text detail. */
  rejects: Array<{ source_ref: string; stage: string; reason: string }>;
  counts: { read: number; taken: number; rejected: number; byReason: Record<string, number> };
}

/** What ingesting these shards in this order must produce (images are the 32×32 JPEGs of the pools). */
export function expectedDataset(shards: readonly ShardSpec[]): ExpectedDataset {
  const out: ExpectedDataset = {
    prompts: [],
    images: [],
    pairs: [],
    rejects: [],
    counts: { read: 0, taken: 0, rejected: 0, byReason: {} },
  };
  const prompts = new Set<string>();
  const images = new Set<string>();
  for (const shard of shards) {
    shard.rows.forEach((row, i) => {
      const outcome = shard.expected[i]!;
      const ref = `${shard.name}#${i}`;
      out.counts.read++;
      if (!outcome.taken) {
        out.counts.rejected++;
        out.counts.byReason[outcome.reason] = (out.counts.byReason[outcome.reason] ?? 0) + 1;
        out.rejects.push({ source_ref: ref, stage: 'ingest', reason: outcome.reason });
        return;
      }
      out.counts.taken++;
      const text = normalise(row.caption!);
      const prompt = promptIdOf(text);
      const a = sha256(row.jpg_0!);
      const b = sha256(row.jpg_1!);
      out.pairs.push({
        pair_id: pairIdOf(prompt, a, b),
        prompt_id: prompt,
        image_a: a,
        image_b: b,
        human_pref: outcome.pref,
        split: shard.split,
        source_ref: ref,
      });
      if (!prompts.has(prompt)) {
        prompts.add(prompt);
        out.prompts.push({
          prompt_id: prompt,
          text,
          source: 'pickapic',
          split: shard.split,
          category: null,
          challenge: null,
          note: null,
          prompt_index: null,
        });
      }
      for (const [side, id, bytes, model] of [
        ['jpg_0', a, row.jpg_0!, row.model_0],
        ['jpg_1', b, row.jpg_1!, row.model_1],
      ] as const) {
        if (images.has(`${id}:${prompt}`)) continue;
        images.add(`${id}:${prompt}`);
        out.images.push({
          image_id: id,
          prompt_id: prompt,
          bytes,
          mime: 'image/jpeg',
          width: 32,
          height: 32,
          source_ref: `${ref}:${side}`,
          model,
          seed: null,
        });
      }
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading a dataset directory back

/** Every row of a table, parts in name order; binary cells copied out of the part buffers. */
export async function tableRows<T extends TableName>(dir: string, table: T): Promise<TableRows[T][]> {
  const rows: TableRows[T][] = [];
  for await (const row of readRows(dir, table)) {
    const copy = { ...row } as Record<string, unknown>;
    if (copy.bytes instanceof Uint8Array) copy.bytes = new Uint8Array(copy.bytes);
    rows.push(copy as unknown as TableRows[T]);
  }
  return rows;
}

export interface DatasetTables {
  prompts: TableRows['prompts'][];
  images: TableRows['images'][];
  pairs: TableRows['pairs'][];
  rejects: TableRows['rejects'][];
}

export async function readDataset(dir: string): Promise<DatasetTables> {
  return {
    prompts: await tableRows(dir, 'prompts'),
    images: await tableRows(dir, 'images'),
    pairs: await tableRows(dir, 'pairs'),
    rejects: await tableRows(dir, 'rejects'),
  };
}

/** Rejects without their detail text, for comparison with an ExpectedDataset. */
export function rejectKeys(rows: readonly TableRows['rejects'][]): ExpectedDataset['rejects'] {
  return rows.map(({ source_ref, stage, reason }) => ({ source_ref, stage, reason }));
}

/** The bytes of every file a run wrote (parts and unit state), by path relative to the dataset directory. */
export async function datasetFiles(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const table of ['prompts', 'images', 'pairs', 'rejects'] as const) {
    for (const file of await listParts(dir, table)) files.set(file, await readFile(join(dir, file)));
  }
  const stateDir = join(dir, '.state', 'ingest');
  const states = await readdir(stateDir).catch(() => [] as string[]);
  for (const name of states.filter((n) => n.endsWith('.json')).sort()) {
    files.set(`.state/ingest/${name}`, await readFile(join(stateDir, name)));
  }
  return files;
}
