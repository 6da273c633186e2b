import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Binary, Bool, Float64, Int64, Int8, Table, Utf8, vectorFromArray } from 'apache-arrow';
import {
  openParquet,
  readRowGroup,
  readRowGroupColumns,
  writeParquetPart,
  ParquetFileError,
  type ColumnSpec,
  type ParquetRow,
} from '../../src/io/parquet.ts';
import { arrowRsParquet, copyToParquet, sqlString, withDuckdb, type Codec } from '../support/pickapic-fixture.ts';
import { tempDir } from '../support/tmp.ts';
import type { DuckDBConnection } from '@duckdb/node-api';

/** Page type of a column chunk's first page, from its Thrift compact header: field 1 (i32, zigzag varint). */
function pageTypeAt(file: Uint8Array, offset: number): number {
  assert.equal(file[offset], 0x15, 'a page header starts with field 1 of type i32');
  let value = 0;
  let shift = 0;
  for (let i = offset + 1; ; i++) {
    const byte = file[i]!;
    value |= (byte & 0x7f) << shift;
    shift += 7;
    if ((byte & 0x80) === 0) break;
  }
  return (value >>> 1) ^ -(value & 1);
}
const DATA_PAGE = 0;
const DATA_PAGE_V2 = 3;

interface ChunkInfo {
  group: number;
  column: string;
  compression: string;
  encodings: string;
  dictionaryOffset: number | null;
  dataOffset: number;
}

/** Column chunks as DuckDB (the independent reader) describes them. */
async function chunks(db: DuckDBConnection, path: string): Promise<ChunkInfo[]> {
  const reader = await db.runAndReadAll(
    `SELECT row_group_id, path_in_schema, compression, encodings, dictionary_page_offset, data_page_offset
     FROM parquet_metadata(${sqlString(path)}) ORDER BY row_group_id, column_id`,
  );
  return reader.getRowsJS().map((r) => ({
    group: Number(r[0]),
    column: String(r[1]),
    compression: String(r[2]),
    encodings: String(r[3]),
    dictionaryOffset: r[4] === null ? null : Number(r[4]),
    dataOffset: Number(r[5]),
  }));
}

// ---------------------------------------------------------------------------------------------------------------
// DuckDB-written files

/** Row i of the DuckDB test table, by the same formulas as the SQL below. */
function duckRow(i: number): ParquetRow {
  return {
    id: i,
    kind: i % 7 === 0 ? null : `cat-${i % 5}`,
    score: i % 11 === 0 ? null : i * 0.25,
    flag: i % 13 === 0 ? null : i % 3 === 0,
    small: (i % 100) - 50,
    big: BigInt(i) * 1_000_000_007n,
    payload: i % 17 === 0 ? null : new Uint8Array([0xff, 0x00, ...new TextEncoder().encode(`payload-${i}`)]),
  };
}
const DUCK_ROWS = 5000;
const DUCK_SQL = `CREATE TABLE t AS SELECT
    i::INTEGER AS id,
    CASE WHEN i % 7 = 0 THEN NULL ELSE 'cat-' || (i % 5) END AS kind,
    CASE WHEN i % 11 = 0 THEN NULL ELSE i * 0.25 END::DOUBLE AS score,
    CASE WHEN i % 13 = 0 THEN NULL ELSE i % 3 = 0 END AS flag,
    CAST(i % 100 - 50 AS TINYINT) AS small,
    i::BIGINT * 1000000007 AS big,
    CASE WHEN i % 17 = 0 THEN NULL ELSE '\\xFF\\x00'::BLOB || encode('payload-' || i) END AS payload
  FROM range(${DUCK_ROWS}) r(i) ORDER BY i`;

test('reads DuckDB files: zstd, snappy, gzip × Parquet v1, v2 encodings; dictionary pages; nulls; 3 row groups', async (t) => {
  const dir = await tempDir(t);
  await withDuckdb(async (db) => {
    await db.run(DUCK_SQL);
    for (const codec of ['zstd', 'snappy', 'gzip'] as const) {
      for (const pageVersion of [1, 2] as const) {
        const path = join(dir, `duck-${codec}-v${pageVersion}.parquet`);
        await copyToParquet(db, 't', DUCK_ROWS, path, { codec, pageVersion, rowGroupSize: 2048 });
        const label = `${codec} v${pageVersion}`;

        // The file is what the test says it is: codec, page version, a dictionary for the repetitive strings.
        const bytes = new Uint8Array(await readFile(path));
        const info = await chunks(db, path);
        assert.ok(
          info.every((c) => c.compression === codec.toUpperCase()),
          label,
        );
        // DuckDB's "v2" switches encodings (delta, RLE dictionary) but keeps v1 page headers; arrow-rs below
        // writes real v2 pages.
        const encodings = (column: string): string[] => info.filter((c) => c.column === column).map((c) => c.encodings);
        const v2 = pageVersion === 2;
        assert.deepEqual(encodings('kind'), Array(3).fill(v2 ? 'RLE_DICTIONARY' : 'PLAIN_DICTIONARY'), label);
        assert.deepEqual(encodings('id'), Array(3).fill(v2 ? 'DELTA_BINARY_PACKED' : 'PLAIN'), label);
        assert.deepEqual(encodings('payload'), Array(3).fill(v2 ? 'DELTA_LENGTH_BYTE_ARRAY' : 'PLAIN'), label);
        for (const chunk of info) {
          if (chunk.column === 'kind') assert.notEqual(chunk.dictionaryOffset, null, label);
          if (chunk.column === 'payload') assert.equal(chunk.dictionaryOffset, null, label);
          assert.equal(pageTypeAt(bytes, chunk.dataOffset), DATA_PAGE, label);
        }

        const source = await openParquet(path);
        assert.equal(source.numRows, DUCK_ROWS);
        assert.deepEqual(source.columns, ['id', 'kind', 'score', 'flag', 'small', 'big', 'payload']);
        assert.deepEqual(
          source.rowGroups.map((g) => [g.index, g.rowStart, g.numRows]),
          [
            [0, 0, 2048],
            [1, 2048, 2048],
            [2, 4096, 904],
          ],
        );
        let seen = 0;
        for (const group of source.rowGroups) {
          const rows = await readRowGroup(source, group);
          assert.equal(rows.length, group.numRows);
          rows.forEach((row, k) => assert.deepEqual(row, duckRow(group.rowStart + k), `${label} row ${group.rowStart + k}`));
          seen += rows.length;
        }
        assert.equal(seen, DUCK_ROWS);

        // A column subset (unknown names ignored), and the column-major form.
        const last = source.rowGroups[2]!;
        const subset = await readRowGroup(source, last, ['score', 'no_such_column']);
        assert.deepEqual(subset[0], { score: 4096 * 0.25 });
        assert.deepEqual(subset[903], { score: 4999 * 0.25 });
        const columns = await readRowGroupColumns(source, last, ['big', 'flag']);
        const expected = Array.from({ length: 904 }, (_, k) => duckRow(4096 + k));
        assert.deepEqual(
          Array.from(columns.big!),
          expected.map((row) => row.big),
        );
        assert.deepEqual(
          Array.from(columns.flag!),
          expected.map((row) => row.flag),
        );
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// arrow-rs-written files

const ARROW_ROWS = 50;
function arrowRow(i: number): ParquetRow {
  return {
    text: i % 6 === 0 ? null : ['alpha', 'βeta ✓', '', 'gamma'][i % 4]!,
    bytes: i % 5 === 0 ? null : i % 5 === 1 ? new Uint8Array(0) : new Uint8Array([i, 0, 255 - i]),
    tiny: i % 9 === 0 ? null : ((i * 37) % 256) - 128,
    flag: i % 4 === 0 ? null : i % 3 === 1,
    value: i % 8 === 0 ? null : [0, -0.5, 1e-300, 2.5e300, -1, Math.PI][i % 6]! * (i + 1),
    wide: i % 10 === 0 ? null : 2n ** 62n + BigInt(i),
  };
}

function arrowTable(): Table {
  const rows = Array.from({ length: ARROW_ROWS }, (_, i) => arrowRow(i));
  const column = (name: string) => rows.map((row) => row[name] ?? null);
  return new Table({
    text: vectorFromArray(column('text'), new Utf8()),
    bytes: vectorFromArray(column('bytes'), new Binary()),
    tiny: vectorFromArray(column('tiny'), new Int8()),
    flag: vectorFromArray(column('flag'), new Bool()),
    value: vectorFromArray(column('value'), new Float64()),
    wide: vectorFromArray(column('wide'), new Int64()),
  });
}

test('reads arrow-rs files: every codec, dictionary on and off, page v1 and v2, 4 row groups, nulls', async (t) => {
  const dir = await tempDir(t);
  const table = arrowTable();
  await withDuckdb(async (db) => {
    for (const codec of ['zstd', 'snappy', 'gzip', 'uncompressed'] as Codec[]) {
      for (const dictionary of [true, false]) {
        for (const pageVersion of [1, 2] as const) {
          const label = `${codec} dictionary ${dictionary} v${pageVersion}`;
          const path = join(dir, `arrow-${codec}-${dictionary}-${pageVersion}.parquet`);
          const bytes = arrowRsParquet(table, { codec, dictionary, pageVersion, rowGroupSize: 16 });
          await writeFile(path, bytes);
          const text = (await chunks(db, path)).filter((c) => c.column === 'text');
          assert.equal(text.length, 4);
          for (const chunk of text) {
            assert.equal(chunk.dictionaryOffset !== null, dictionary, label);
            assert.equal(chunk.compression, codec.toUpperCase(), label);
            assert.equal(pageTypeAt(bytes, chunk.dataOffset), pageVersion === 2 ? DATA_PAGE_V2 : DATA_PAGE, label);
          }

          const source = await openParquet(path);
          assert.deepEqual(
            source.rowGroups.map((g) => g.numRows),
            [16, 16, 16, 2],
            label,
          );
          const rows: ParquetRow[] = [];
          for (const group of source.rowGroups) rows.push(...(await readRowGroup(source, group)));
          assert.equal(rows.length, ARROW_ROWS);
          rows.forEach((row, i) => assert.deepEqual(row, arrowRow(i), `${label} row ${i}`));
        }
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Our writer, read back by DuckDB

const SPECS: ColumnSpec[] = [
  { name: 'name', type: 'string', nullable: false },
  { name: 'note', type: 'string', nullable: true },
  { name: 'blob', type: 'binary', nullable: true },
  { name: 'p', type: 'double', nullable: true },
  { name: 'f', type: 'float', nullable: false },
  { name: 'n32', type: 'int32', nullable: true },
  { name: 'n64', type: 'int64', nullable: true },
  { name: 'vote', type: 'int8', nullable: true },
  { name: 'kept', type: 'boolean', nullable: true },
];
const OUR_ROWS = 23;
interface OurRow {
  name: string;
  note: string | null;
  blob: Uint8Array | null;
  p: number | null;
  f: number;
  n32: number | null;
  n64: bigint | null;
  vote: number | null;
  kept: boolean | null;
}
function ourRow(i: number): OurRow {
  return {
    name: `row ${i} — ü`,
    note: i % 3 === 0 ? null : i % 3 === 1 ? '' : `note ${i}`,
    blob: i % 4 === 0 ? null : i % 4 === 1 ? new Uint8Array(0) : new Uint8Array([0, i, 255, 0]),
    p: i % 5 === 0 ? null : [0.5, -0, 1 / 3, -1e-310, 1.7976931348623157e308][i % 5]!,
    f: i / 8, // exact in float32
    n32: i % 6 === 0 ? null : -2147483648 + i * 1000003,
    n64: i % 7 === 0 ? null : 9007199254740993n * BigInt(i % 2 === 0 ? 1 : -1) + BigInt(i),
    vote: i % 2 === 0 ? null : [-128, -1, 0, 1, 127][i % 5]!,
    kept: i % 8 === 0 ? null : i % 3 !== 0,
  };
}

test('our writer: DuckDB reads back every column type with identical values, nulls and row groups', async (t) => {
  const dir = await tempDir(t);
  const rows = Array.from({ length: OUR_ROWS }, (_, i) => ourRow(i));
  const columns: Record<string, unknown[]> = {};
  for (const spec of SPECS) columns[spec.name] = rows.map((row) => row[spec.name as keyof OurRow]);
  const result = await writeParquetPart(dir, 'scores/part-00000.parquet', SPECS, columns, {
    rowGroupSize: 10,
    metadata: { metric: 'pickscore', 'tool.version': '0.1.0' },
  });
  const path = join(dir, 'scores/part-00000.parquet');
  const file = await readFile(path);
  assert.deepEqual(result, {
    file: 'scores/part-00000.parquet',
    rows: OUR_ROWS,
    bytes: file.byteLength,
    sha256: createHash('sha256').update(file).digest('hex'),
  });
  assert.deepEqual(await readdir(join(dir, 'scores')), ['part-00000.parquet'], 'no temporary file is left behind');

  await withDuckdb(async (db) => {
    const types = await db.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${sqlString(path)})`);
    assert.deepEqual(
      types.getRowsJS().map((r) => [r[0], r[1]]),
      [
        ['name', 'VARCHAR'],
        ['note', 'VARCHAR'],
        ['blob', 'BLOB'],
        ['p', 'DOUBLE'],
        ['f', 'FLOAT'],
        ['n32', 'INTEGER'],
        ['n64', 'BIGINT'],
        ['vote', 'TINYINT'],
        ['kept', 'BOOLEAN'],
      ],
    );
    const read = await db.runAndReadAll(`SELECT * FROM read_parquet(${sqlString(path)})`);
    const back = read.getRowObjectsJS().map(
      (row): Record<string, unknown> => ({
        ...row,
        blob: row.blob === null ? null : new Uint8Array(row.blob as Uint8Array),
      }),
    );
    assert.equal(back.length, OUR_ROWS);
    back.forEach((row, i) => assert.deepEqual(row, ourRow(i), `row ${i}`));
    // -0 survives (deepEqual compares with Object.is), and so does a subnormal.
    assert.ok(Object.is(back[1]!.p, -0));
    assert.equal(back[3]!.p, -1e-310);

    const nulls = await db.runAndReadAll(
      `SELECT count(*) FILTER (WHERE note IS NULL), count(*) FILTER (WHERE blob IS NULL),
              count(*) FILTER (WHERE octet_length(blob) = 0), count(*) FILTER (WHERE kept IS NULL)
       FROM read_parquet(${sqlString(path)})`,
    );
    assert.deepEqual(nulls.getRowsJS()[0]!.map(Number), [8, 6, 6, 3]);

    const groups = await db.runAndReadAll(
      `SELECT DISTINCT row_group_id, row_group_num_rows FROM parquet_metadata(${sqlString(path)}) ORDER BY 1`,
    );
    assert.deepEqual(
      groups.getRowsJS().map((r) => Number(r[1])),
      [10, 10, 3],
    );
    const kv = await db.runAndReadAll(`SELECT decode(key), decode(value) FROM parquet_kv_metadata(${sqlString(path)}) ORDER BY 1`);
    assert.deepEqual(kv.getRowsJS(), [
      ['metric', 'pickscore'],
      ['tool.version', '0.1.0'],
    ]);
  });

  // And our reader agrees with DuckDB.
  const source = await openParquet(path);
  const ours: ParquetRow[] = [];
  for (const group of source.rowGroups) ours.push(...(await readRowGroup(source, group)));
  assert.equal(ours.length, OUR_ROWS);
  ours.forEach((row, i) => assert.deepEqual(row, ourRow(i), `row ${i}`));
});

test('a file that is not Parquet, empty or cut short is a ParquetFileError naming the file', async (t) => {
  const dir = await tempDir(t);
  const good = await writeParquetPart(dir, 'good.parquet', [{ name: 'x', type: 'int32', nullable: false }], {
    x: Int32Array.from({ length: 100 }, (_, i) => i),
  });
  const whole = await readFile(join(dir, good.file));
  const cases: Record<string, Uint8Array> = {
    'text.parquet': new TextEncoder().encode('caption,jpg_0\nhello,world\n'),
    'empty.parquet': new Uint8Array(0),
    'cut.parquet': whole.subarray(0, whole.byteLength - 20),
  };
  for (const [name, bytes] of Object.entries(cases)) {
    const path = join(dir, name);
    await writeFile(path, bytes);
    await assert.rejects(openParquet(path), (error: unknown) => {
      assert.ok(error instanceof ParquetFileError, `${name}: ${String(error)}`);
      assert.ok(error.message.includes(path), error.message);
      assert.ok(!error.message.includes('\n'), 'one line');
      return true;
    });
  }
  await assert.rejects(openParquet(join(dir, 'missing.parquet')), ParquetFileError);
});
