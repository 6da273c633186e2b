// Why the Parquet module uses hyparquet and not parquetjs-lite: both libraries write and read the same consensus-
// shaped rows in one run (times and ratio), and parquetjs-lite is asked to open files other writers produce.
//   node --import tsx bench/parquet.ts [--rows 1000000]
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { DuckDBInstance } from '@duckdb/node-api';
import { openParquet, readRowGroupColumns, writeParquetPart, type ColumnSpec } from '../src/io/parquet.ts';

const require = createRequire(import.meta.url);
// parquetjs-lite ships no types; the few calls used here are typed at this boundary.
interface LiteWriter {
  appendRow(row: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
}
interface LiteCursor {
  next(): Promise<Record<string, unknown> | null>;
}
interface LiteReader {
  getCursor(): LiteCursor;
  close(): Promise<void>;
}
const lite = require('parquetjs-lite') as {
  ParquetSchema: new (fields: Record<string, { type: string; optional?: boolean }>) => unknown;
  ParquetWriter: { openFile(schema: unknown, path: string): Promise<LiteWriter> };
  ParquetReader: { openFile(path: string): Promise<LiteReader> };
};

const rowsArg = process.argv.indexOf('--rows');
const ROWS = rowsArg > 0 ? Number(process.argv[rowsArg + 1]) : 1_000_000;
const DIR = join('bench', '.cache', 'parquet');
const METRICS = ['pickscore', 'hps', 'clip', 'aesthetic'];

const specs: ColumnSpec[] = [
  { name: 'pair_id', type: 'string', nullable: false },
  ...METRICS.map((m): ColumnSpec => ({ name: `p_${m}`, type: 'double', nullable: true })),
  { name: 'votes_a', type: 'int32', nullable: false },
  { name: 'label', type: 'double', nullable: true },
  { name: 'kept', type: 'boolean', nullable: false },
];

function columns(): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = { pair_id: [], votes_a: [], label: [], kept: [] };
  for (const m of METRICS) out[`p_${m}`] = [];
  let seed = 1;
  const random = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < ROWS; i++) {
    out.pair_id!.push(i.toString(16).padStart(64, '0'));
    let votes = 0;
    for (const m of METRICS) {
      const p = random();
      out[`p_${m}`]!.push(p);
      if (p > 0.5) votes++;
    }
    out.votes_a!.push(votes);
    out.label!.push(votes > 2 ? 1 : votes < 2 ? 0 : null);
    out.kept!.push(votes !== 2);
  }
  return out;
}

async function time<T>(run: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const start = performance.now();
  const value = await run();
  return { seconds: (performance.now() - start) / 1000, value };
}

async function main(): Promise<void> {
  await rm(DIR, { recursive: true, force: true });
  await mkdir(DIR, { recursive: true });
  const data = columns();
  const names = specs.map((s) => s.name);

  const hyWrite = await time(() => writeParquetPart(DIR, 'hyparquet.parquet', specs, data));
  const hyRead = await time(async () => {
    const source = await openParquet(join(DIR, 'hyparquet.parquet'));
    let n = 0;
    for (const group of source.rowGroups) n += (await readRowGroupColumns(source, group, names)).pair_id!.length;
    return n;
  });

  const schema = new lite.ParquetSchema({
    pair_id: { type: 'UTF8' },
    ...Object.fromEntries(METRICS.map((m) => [`p_${m}`, { type: 'DOUBLE', optional: true }])),
    votes_a: { type: 'INT32' },
    label: { type: 'DOUBLE', optional: true },
    kept: { type: 'BOOLEAN' },
  });
  const liteWrite = await time(async () => {
    const writer = await lite.ParquetWriter.openFile(schema, join(DIR, 'lite.parquet'));
    for (let i = 0; i < ROWS; i++) {
      const row: Record<string, unknown> = {};
      for (const name of names) if (data[name]![i] !== null) row[name] = data[name]![i];
      await writer.appendRow(row);
    }
    await writer.close();
  });
  const liteRead = await time(async () => {
    const reader = await lite.ParquetReader.openFile(join(DIR, 'lite.parquet'));
    const cursor = reader.getCursor();
    let n = 0;
    while (await cursor.next()) n++;
    await reader.close();
    return n;
  });

  // Files as other writers make them: DuckDB (zstd, dictionary pages, v2 encodings) and DuckDB snappy.
  const db = await DuckDBInstance.create(':memory:');
  const sql = await db.connect();
  const foreign: Array<[string, string]> = [
    ['DuckDB, zstd, parquet v2 encodings', `(FORMAT parquet, COMPRESSION zstd, PARQUET_VERSION v2)`],
    ['DuckDB, snappy, v1', `(FORMAT parquet, COMPRESSION snappy)`],
  ];
  const opens: string[] = [];
  for (const [label, options] of foreign) {
    const path = join(DIR, `${label.replace(/\W+/g, '-')}.parquet`);
    await sql.run(`COPY (SELECT * FROM read_parquet('${join(DIR, 'hyparquet.parquet')}') LIMIT 100000) TO '${path}' ${options}`);
    let liteResult: string;
    try {
      const reader = await lite.ParquetReader.openFile(path);
      const cursor = reader.getCursor();
      let n = 0;
      while (await cursor.next()) n++;
      await reader.close();
      liteResult = `read ${n} rows`;
    } catch (error) {
      const message = error instanceof Error ? error.message || error.name : String(error);
      liteResult = `fails (${message.split('\n')[0]!.slice(0, 80) || 'no message'})`;
    }
    const source = await openParquet(path);
    let n = 0;
    for (const group of source.rowGroups) n += (await readRowGroupColumns(source, group, ['pair_id'])).pair_id!.length;
    opens.push(`| ${label} | hyparquet: read ${n} rows | parquetjs-lite: ${liteResult} |`);
  }

  console.log(`${ROWS.toLocaleString('en')} consensus-shaped rows (pair_id, 4 × p, votes_a, label, kept)\n`);
  console.log('| library | write | read | write ratio | read ratio |');
  console.log('|---|---|---|---|---|');
  console.log(
    `| ours: writeParquetPart (the encoder, hyparquet-writer for the rest), hyparquet reads | ${hyWrite.seconds.toFixed(1)} s | ${hyRead.seconds.toFixed(1)} s | 1.0 | 1.0 |`,
  );
  console.log(
    `| parquetjs-lite 0.8.7 | ${liteWrite.seconds.toFixed(1)} s | ${liteRead.seconds.toFixed(1)} s | ` +
      `${(liteWrite.seconds / hyWrite.seconds).toFixed(1)} | ${(liteRead.seconds / hyRead.seconds).toFixed(1)} |`,
  );
  console.log(`\nrows read back: hyparquet ${hyRead.value}, parquetjs-lite ${liteRead.value}\n`);
  console.log('| file from another writer | ours | parquetjs-lite |');
  console.log('|---|---|---|');
  for (const line of opens) console.log(line);
}

await main();
