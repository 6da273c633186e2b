// The Parquet encoder (src/io/parquet-encoder.ts) against the library's writer it replaces on the hot columns:
// both write the same consensus-shaped part in memory, in one run, several times over; the bench checks the two
// files are the same bytes and prints each one's time and the ratio.
//   node --import tsx bench/parquet-encoder.ts [--rows 100000] [--rounds 5]
import { ByteWriter, ParquetWriter } from 'hyparquet-writer';
import type { SchemaElement } from 'hyparquet-writer';
import { ByteColumn, NullableDoubles, TextCodes, writeFlatParquet, type ColumnData } from '../src/io/parquet-encoder.ts';
import { snappyCompress, snappyCompressView } from '../src/io/snappy.ts';

const flag = (name: string, fallback: number): number => {
  const at = process.argv.indexOf(name);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};
const ROWS = flag('--rows', 100_000);
const ROUNDS = flag('--rounds', 5);
const METRICS = ['aes', 'clip', 'hps', 'pick'];
const REASONS = ['decided', 'tie-dropped', 'tie-half', 'missing'];

let seed = 1;
const random = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
const hexIds = (): ByteColumn => {
  const offsets = Int32Array.from({ length: ROWS + 1 }, (_, i) => i * 64);
  const bytes = Uint8Array.from({ length: ROWS * 64 }, () => '0123456789abcdef'.charCodeAt(Math.floor(random() * 16)));
  return new ByteColumn(offsets, bytes);
};

const columns: Record<string, { element: Omit<SchemaElement, 'name'>; data: ColumnData }> = {};
const utf8 = { type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' } as const;
const nullableDouble = { type: 'DOUBLE', repetition_type: 'OPTIONAL' } as const;
for (const name of ['pair_id', 'prompt_id', 'image_a', 'image_b']) columns[name] = { element: utf8, data: hexIds() };
const votes = new Int32Array(ROWS);
for (const m of METRICS) {
  const p = Float64Array.from({ length: ROWS }, () => (random() < 0.01 ? Number.NaN : random()));
  columns[`p_${m}`] = { element: nullableDouble, data: new NullableDoubles(p) };
  const vote = Int32Array.from(p, (x) => (Number.isNaN(x) ? 0 : x > 0.5 ? 1 : -1));
  columns[`vote_${m}`] = { element: { type: 'INT32', repetition_type: 'OPTIONAL' }, data: vote };
  vote.forEach((v, i) => (votes[i]! += v > 0 ? 1 : 0));
}
columns.votes_a = { element: { type: 'INT32', repetition_type: 'REQUIRED' }, data: votes };
columns.label = {
  element: nullableDouble,
  data: new NullableDoubles(Float64Array.from(votes, (v) => (v > 2 ? 1 : v < 2 ? 0 : Number.NaN))),
};
columns.soft = { element: nullableDouble, data: new NullableDoubles(Float64Array.from(votes, (v) => v / 4)) };
columns.kept = { element: { type: 'BOOLEAN', repetition_type: 'REQUIRED' }, data: Array.from(votes, (v) => v !== 2) };
columns.reason = {
  element: utf8,
  data: new TextCodes(
    Uint8Array.from(votes, (v) => (v === 2 ? 1 : 0)),
    REASONS,
  ),
};

const schema: SchemaElement[] = [
  { name: 'schema', num_children: Object.keys(columns).length },
  ...Object.entries(columns).map(([name, c]) => ({ name, ...c.element }) as SchemaElement),
];
/** The library's input for the same values: a view per id, arrays with null, strings. */
const libraryData = (data: ColumnData): unknown =>
  data instanceof ByteColumn
    ? Array.from({ length: data.length }, (_, i) => data.bytes.subarray(data.offsets[i]!, data.offsets[i + 1]!))
    : data instanceof NullableDoubles || data instanceof TextCodes
      ? data.toArray()
      : data;

// Built once, outside the timing: the writer alone is measured.
const libraryColumns = Object.entries(columns).map(([name, c]) => ({ name, data: libraryData(c.data) as never }));

function library(): Uint8Array {
  const writer = new ByteWriter();
  const parquet = new ParquetWriter({
    writer,
    schema,
    codec: 'SNAPPY',
    compressors: { SNAPPY: snappyCompress },
    createdBy: 'bench',
    kvMetadata: [],
  });
  parquet.write({
    columnData: libraryColumns,
    rowGroupSize: ROWS,
  });
  parquet.finish();
  return writer.getBytes();
}

function ours(): Uint8Array {
  const writer = new ByteWriter();
  writeFlatParquet(
    writer,
    schema,
    Object.entries(columns).map(([name, c]) => ({ name, data: c.data })),
    { rowGroupSize: ROWS, compress: snappyCompressView, compressors: { SNAPPY: snappyCompress }, createdBy: 'bench', kvMetadata: [] },
  );
  return writer.getBytes();
}

const time = (write: () => Uint8Array): { seconds: number; bytes: Uint8Array } => {
  const start = performance.now();
  const bytes = write();
  return { seconds: (performance.now() - start) / 1000, bytes };
};
const theirs: number[] = [];
const mine: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  // Alternating, so both see the same machine.
  const a = time(library);
  const b = time(ours);
  if (Buffer.compare(a.bytes, b.bytes) !== 0) throw new Error('the encoder wrote other bytes than the library');
  theirs.push(a.seconds);
  mine.push(b.seconds);
}
const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
console.log(`${ROWS} consensus-shaped rows, ${Object.keys(columns).length} columns, ${ROUNDS} rounds, same bytes each round`);
console.log(`  library writer  ${median(theirs).toFixed(3)} s (median)`);
console.log(`  our encoder     ${median(mine).toFixed(3)} s (median); ${(median(theirs) / median(mine)).toFixed(2)}× faster`);
