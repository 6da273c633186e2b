// The encoder writes, for every column kind it takes, the bytes the library's ParquetWriter writes for the same values
// (a file's recorded sha256 depends on it): each case below is written both ways and compared byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteWriter, ParquetWriter } from 'hyparquet-writer';
import type { SchemaElement } from 'hyparquet-writer';
import { parquetReadObjects } from 'hyparquet';
import { ByteColumn, NullableDoubles, TextCodes, writeFlatParquet, type ColumnData } from '../../src/io/parquet-encoder.ts';
import { snappyCompress, snappyCompressView } from '../../src/io/snappy.ts';
import { uniformGenerator } from '../../tools/onnx-builder/seeded-random.ts';

const random = uniformGenerator(11);
const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)]!;

interface Case {
  element: Omit<SchemaElement, 'name'>;
  /** What the encoder is given. */
  ours: ColumnData;
  /** The same values as the library's writer takes them (views for a ByteColumn). */
  library?: ArrayLike<unknown>;
}

function byteColumn(values: readonly Uint8Array[]): ByteColumn {
  const offsets = new Int32Array(values.length + 1);
  let total = 0;
  values.forEach((v, i) => {
    offsets[i] = total;
    total += v.length;
  });
  offsets[values.length] = total;
  // Start the values a few bytes into the buffer, as a slice of an Arrow body would.
  const bytes = new Uint8Array(total + 3);
  values.forEach((v, i) => bytes.set(v, offsets[i]! + 3));
  return new ByteColumn(
    offsets.map((o) => o + 3),
    bytes,
  );
}

const views = (column: ByteColumn): Uint8Array[] =>
  Array.from({ length: column.length }, (_, i) => column.bytes.subarray(column.offsets[i]!, column.offsets[i + 1]!));

/** The values as the library's writer takes them: views for bytes, arrays with nulls for the others. */
const libraryForm = (data: ColumnData): ArrayLike<unknown> =>
  data instanceof ByteColumn ? views(data) : data instanceof NullableDoubles || data instanceof TextCodes ? data.toArray() : data;

function writeBoth(columns: Record<string, Case>, rowGroupSize: number): { ours: Uint8Array; library: Uint8Array } {
  const schema: SchemaElement[] = [
    { name: 'schema', num_children: Object.keys(columns).length },
    ...Object.entries(columns).map(([name, c]) => ({ name, ...c.element }) as SchemaElement),
  ];
  const kvMetadata = [{ key: 'rule', value: 'majority' }];
  const library = new ByteWriter();
  const writer = new ParquetWriter({
    writer: library,
    schema,
    codec: 'SNAPPY',
    compressors: { SNAPPY: snappyCompress },
    createdBy: 'test',
    kvMetadata,
  });
  writer.write({
    columnData: Object.entries(columns).map(([name, c]) => ({
      name,
      data: (c.library ?? libraryForm(c.ours)) as never,
    })),
    rowGroupSize,
  });
  writer.finish();
  const ours = new ByteWriter();
  writeFlatParquet(
    ours,
    schema,
    Object.entries(columns).map(([name, c]) => ({ name, data: c.ours })),
    { rowGroupSize, compress: snappyCompressView, compressors: { SNAPPY: snappyCompress }, createdBy: 'test', kvMetadata },
  );
  return { ours: ours.getBytes().slice(), library: library.getBytes().slice() };
}

function assertSameBytes(columns: Record<string, Case>, rowGroupSize = 100_000): Uint8Array {
  const { ours, library } = writeBoth(columns, rowGroupSize);
  assert.equal(ours.length, library.length, 'file length');
  const first = ours.findIndex((b, i) => b !== library[i]);
  assert.equal(first, -1, `first differing byte at ${first}`);
  return ours;
}

const required = { repetition_type: 'REQUIRED' } as const;
const optional = { repetition_type: 'OPTIONAL' } as const;
const double = (r: typeof required | typeof optional) => ({ type: 'DOUBLE', ...r }) as const;
const utf8 = (r: typeof required | typeof optional) => ({ type: 'BYTE_ARRAY', converted_type: 'UTF8', ...r }) as const;

const SIZES = [0, 1, 7, 8, 9, 16, 17, 999, 1000, 1001, 4097];
const ascii = (n: number, alphabet = '0123456789abcdef') =>
  Uint8Array.from({ length: n }, () => alphabet.charCodeAt(Math.floor(random() * alphabet.length)));

test('doubles: typed, with nulls, NaN, ±0, few and many distinct values, one and several pages', () => {
  for (const n of [...SIZES, 140_000]) {
    const distinct = Float64Array.from({ length: n }, () => random() * 2 - 1);
    const few = Float64Array.from({ length: n }, () => pick([0, 0.5, 1, -0, Number.NaN, 0.25]));
    const withNulls = Array.from({ length: n }, () => pick([null, 0.5, 1, Number.NaN, -0, random()]));
    const mostlyNull = Array.from({ length: n }, () => (random() < 0.97 ? null : random()));
    const allNull = Array.from({ length: n }, () => null);
    const runs = Float64Array.from({ length: n }, (_, i) => Math.floor(i / 37) % 3);
    // The sampled rows mostly distinct, the rest one value: the sample does not reject, the whole column decides.
    const sampledApart = new Float64Array(n);
    const samples = Math.min(n, 1000);
    for (let i = 0; i < samples; i++) {
      if (random() < 0.7) sampledApart[samples === 1 ? 0 : Math.floor((i * (n - 1)) / (samples - 1))] = random();
    }
    assertSameBytes({
      distinct: { element: double(required), ours: distinct },
      distinctOptional: { element: double(optional), ours: distinct },
      few: { element: double(required), ours: few },
      withNulls: { element: double(optional), ours: withNulls },
      mostlyNull: { element: double(optional), ours: mostlyNull },
      allNull: { element: double(optional), ours: allNull },
      runs: { element: double(optional), ours: runs },
      sampledApart: { element: double(required), ours: sampledApart },
      asArray: { element: double(required), ours: Array.from(distinct) },
      zeros: { element: double(required), ours: new Float64Array(n) },
      negativeZeros: { element: double(required), ours: new Float64Array(n).fill(-0) },
      infinities: { element: double(optional), ours: Array.from({ length: n }, () => pick([Infinity, -Infinity, null, 3])) },
    });
  }
});

test('int32s and booleans: dictionaries of every bit width, runs, plain and RLE booleans', () => {
  for (const n of [...SIZES, 300_000]) {
    const cases: Record<string, Case> = {
      votes: { element: { type: 'INT32', ...required }, ours: Int32Array.from({ length: n }, () => pick([0, 1, 1, 0, -1])) },
      wide: {
        element: { type: 'INT32', ...required },
        ours: Int32Array.from({ length: n }, () => Math.floor(random() * 2 ** 31) * pick([1, -1])),
      },
      medium: { element: { type: 'INT32', ...optional }, ours: Int32Array.from({ length: n }, () => Math.floor(random() * 300)) },
      counting: { element: { type: 'INT32', ...required }, ours: Int32Array.from({ length: n }, (_, i) => i >> 4) },
      kept: { element: { type: 'BOOLEAN', ...required }, ours: Array.from({ length: n }, () => random() < 0.8) },
      tie: { element: { type: 'BOOLEAN', ...optional }, ours: Array.from({ length: n }, (_, i) => i % 50 < 3) },
      allTrue: { element: { type: 'BOOLEAN', ...required }, ours: Array.from({ length: n }, () => true) },
    };
    assertSameBytes(cases);
    assertSameBytes(cases, 333);
  }
});

test('text and binary as Arrow buffers: hex ids across pages, dictionaries, empty and long values', () => {
  for (const n of [...SIZES, 100_000]) {
    const ids = byteColumn(Array.from({ length: n }, () => ascii(64)));
    const splits = byteColumn(Array.from({ length: n }, () => new TextEncoder().encode(pick(['train', 'test', 'validation_unique']))));
    const varied = byteColumn(Array.from({ length: n }, () => ascii(Math.floor(random() * 40), 'ab')));
    const binary = byteColumn(
      Array.from({ length: n }, () => Uint8Array.from({ length: Math.floor(random() * 5) }, () => Math.floor(random() * 256))),
    );
    const cases: Record<string, Case> = {
      pair_id: { element: utf8(required), ours: ids },
      prompt_id: { element: utf8(optional), ours: ids },
      split: { element: utf8(required), ours: splits },
      varied: { element: utf8(required), ours: varied },
      binary: { element: { type: 'BYTE_ARRAY', ...optional }, ours: binary },
      empty: { element: utf8(required), ours: byteColumn(Array.from({ length: n }, () => new Uint8Array(0))) },
    };
    assertSameBytes(cases);
    if (n > 1000) assertSameBytes(cases, 30_000);
  }
  // Values of a megabyte and more: a page per value.
  const big = byteColumn(Array.from({ length: 5 }, (_, i) => ascii(600_000 * (i + 1))));
  assertSameBytes({ big: { element: utf8(required), ours: big } });
});

test('text as codes into labels: ASCII and not, nulls, strings the library orders as equal, few and many labels', () => {
  const reasons = ['agree', 'tie', 'missing', 'margin', 'tie-human'];
  const odd = ['train', '', 'é', 'ü-test', '🙂', '\ud800', '\ufffd', 'z', 'ab', 'a'];
  const long = Array.from({ length: 3000 }, (_, i) => `${i}-${'é'.repeat(700)}`);
  const surrogates = ['\ufffd', '\ud800'];
  for (const n of [...SIZES, 120_000]) {
    const codes = (labels: readonly string[], nulls: boolean) =>
      Int32Array.from({ length: n }, () => (nulls && random() < 0.2 ? -1 : Math.floor(random() * labels.length)));
    assertSameBytes({
      reason: { element: utf8(required), ours: new TextCodes(Uint8Array.from(codes(reasons, false)), reasons) },
      split: { element: utf8(optional), ours: new TextCodes(codes(odd, true), odd) },
      allNull: { element: utf8(optional), ours: new TextCodes(new Int32Array(n).fill(-1), odd) },
      one: { element: utf8(required), ours: new TextCodes(new Int32Array(n), ['only']) },
      surrogates: { element: utf8(required), ours: new TextCodes(codes(surrogates, false), surrogates) },
      long: { element: utf8(optional), ours: new TextCodes(codes(long, true), long) },
      unique: {
        element: utf8(required),
        ours: new TextCodes(
          Int32Array.from({ length: n }, (_, i) => i % 3000),
          long,
        ),
      },
    });
  }
});

test('a sweep of sizes and cardinalities finds the dictionary decision wherever it falls', () => {
  const chars = ['a', 'é', '€', '🙂', '\ud800', '\ufffd'];
  const word = () => Array.from({ length: Math.floor(random() * 12) }, () => pick(chars)).join('');
  for (let round = 0; round < 300; round++) {
    const n = 1 + Math.floor(random() ** 2 * 6000);
    const k = 1 + Math.floor(random() * n);
    const labels = [...new Set(Array.from({ length: k }, word))];
    const nulls = random() < 0.3;
    const codes = Int32Array.from({ length: n }, () => (nulls && random() < 0.1 ? -1 : Math.floor(random() ** 3 * labels.length)));
    const doubles = Float64Array.from({ length: k }, () => random());
    const ints = Int32Array.from({ length: k }, () => Math.floor(random() * 2 ** 20));
    const ids = Array.from({ length: k }, () => ascii(1 + Math.floor(random() * 30)));
    const at = (i: number) => Math.abs(codes[i]!) % k;
    assertSameBytes(
      {
        text: { element: utf8(nulls ? optional : required), ours: new TextCodes(codes, labels) },
        double: { element: double(optional), ours: Float64Array.from({ length: n }, (_, i) => doubles[at(i)]!) },
        int: { element: { type: 'INT32', ...required }, ours: Int32Array.from({ length: n }, (_, i) => ints[at(i)]!) },
        bytes: { element: utf8(required), ours: byteColumn(Array.from({ length: n }, (_, i) => ids[at(i)]!)) },
      },
      1 + Math.floor(random() * n),
    );
  }
});

test('doubles with NaN for null', () => {
  for (const n of [...SIZES, 140_000]) {
    const values = Float64Array.from({ length: n }, () => pick([Number.NaN, 0.5, 1, 0, -0, random()]));
    assertSameBytes({
      label: { element: double(optional), ours: new NullableDoubles(values) },
      none: { element: double(optional), ours: new NullableDoubles(new Float64Array(n).fill(0.25)) },
    });
  }
  assert.throws(() => writeOurs(double(required), new NullableDoubles(Float64Array.of(1, Number.NaN))), /expected number value, got null/);
});

test('columns the library writes (strings, int64, float, int8, nullable int32 arrays) sit beside ours unchanged', async () => {
  for (const n of [0, 5, 2000]) {
    const bytes = assertSameBytes(
      {
        reason: { element: utf8(required), ours: Array.from({ length: n }, () => pick(['agree', 'tie', 'missing', 'é — ünïcödé'])) },
        text: { element: utf8(optional), ours: Array.from({ length: n }, () => pick([null, 'a prompt', '🙂 two'])) },
        count: { element: { type: 'INT64', ...required }, ours: Array.from({ length: n }, () => BigInt(Math.floor(random() * 1e6))) },
        small: {
          element: { type: 'INT32', converted_type: 'INT_8', ...required },
          ours: Array.from({ length: n }, () => pick([0, 1, -1])),
        },
        single: { element: { type: 'FLOAT', ...required }, ours: Float32Array.from({ length: n }, () => random()) },
        maybe: { element: { type: 'INT32', ...optional }, ours: Array.from({ length: n }, () => pick([null, 1, 2])) },
        score: { element: double(required), ours: Float64Array.from({ length: n }, () => random()) },
        id: { element: utf8(required), ours: byteColumn(Array.from({ length: n }, () => ascii(64))) },
      },
      700,
    );
    const rows = await parquetReadObjects({ file: bytes.buffer as ArrayBuffer });
    assert.equal(rows.length, n);
  }
});

test('the comparison can fail: one changed value changes the bytes', () => {
  const values = Float64Array.from({ length: 100 }, () => random());
  const changed = values.slice();
  changed[50] = changed[50]! + 1e-9;
  const { ours } = writeBoth({ p: { element: double(required), ours: values } }, 100);
  const { library } = writeBoth({ p: { element: double(required), ours: changed } }, 100);
  assert.notDeepEqual(ours, library);
});

function writeOurs(element: Omit<SchemaElement, 'name'>, data: ColumnData): void {
  const schema: SchemaElement[] = [{ name: 'schema', num_children: 1 }, { name: 'v', ...element } as SchemaElement];
  writeFlatParquet(new ByteWriter(), schema, [{ name: 'v', data }], {
    rowGroupSize: 10,
    compress: snappyCompressView,
    compressors: { SNAPPY: snappyCompress },
    createdBy: 'test',
    kvMetadata: [],
  });
}

test("bad input gets the library writer's own errors", () => {
  assert.throws(() => writeOurs(double(required), [1, null, 2]), /expected number value, got null/);
  assert.throws(() => writeOurs({ type: 'BOOLEAN', ...required }, [true, 1]), /expected boolean/);
  assert.throws(() => writeOurs(double(required), byteColumn([ascii(3)])), /bytes given for a DOUBLE column/);
});
