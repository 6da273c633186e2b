// Arrow columns handed to the Parquet encoder: the same values as Arrow's own get(i), over parts of several record
// batches, with nulls, non-ASCII text and bytes that are not UTF-8.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Float64, makeData, makeVector, Utf8, vectorFromArray, type Vector } from 'apache-arrow';
import { doublesOf, textCodes, textColumn } from '../../src/io/arrow-columns.ts';
import { ByteColumn } from '../../src/io/parquet-encoder.ts';

const strings = (values: Array<string | null>): Vector => vectorFromArray(values, new Utf8());
const asArrow = (vector: Vector): unknown[] => Array.from({ length: vector.length }, (_, i) => vector.get(i));
const decoded = (column: ByteColumn): string[] =>
  Array.from({ length: column.length }, (_, i) =>
    new TextDecoder().decode(column.bytes.subarray(column.offsets[i]!, column.offsets[i + 1]!)),
  );

test('ASCII text without nulls goes as its buffers, over one batch or several; other text as strings', () => {
  const one = strings(['aa', '', 'bcd']);
  const several = one.concat(strings(['x']), strings(['yz', 'w']));
  assert.equal(several.data.length, 3);
  for (const vector of [one, several]) {
    const column = textColumn(vector);
    assert.ok(column instanceof ByteColumn);
    assert.deepEqual(decoded(column), asArrow(vector));
  }
  assert.deepEqual(textColumn(one.concat(strings(['é']))), ['aa', '', 'bcd', 'é']);
  assert.deepEqual(textColumn(one.concat(strings([null]))), ['aa', '', 'bcd', null]);
});

test('text as codes: each distinct value once, nulls −1, invalid UTF-8 decoded as Arrow decodes it', () => {
  // Two different invalid byte sequences that both decode to U+FFFD share one label.
  const bytes = Uint8Array.of(0x74, 0x72, 0xff, 0x74, 0x72, 0xfe, 0x74, 0x72, 0xff);
  const odd = makeVector(makeData({ type: new Utf8(), length: 3, valueOffsets: Int32Array.of(0, 3, 6, 9), data: bytes }));
  const vector = strings(['train', null, 'test', 'train']).concat(odd, strings([null, 'é', 'test']));
  const coded = textCodes(vector);
  assert.deepEqual(coded.toArray(), asArrow(vector));
  assert.equal(new Set(coded.labels).size, coded.labels.length);
  assert.deepEqual([...coded.labels].sort(), ['test', 'train', 'tr\ufffd', 'é'].sort());
});

test('doubles from the value buffers, NaN for null, over several batches', () => {
  const vector = vectorFromArray([1, null, 0.5], new Float64()).concat(vectorFromArray([null, -0, 2], new Float64()));
  const values = doublesOf(vector);
  assert.deepEqual(
    Array.from(values, (x) => (Number.isNaN(x) ? null : x)),
    asArrow(vector),
  );
  assert.ok(Object.is(values[4], -0));
});
