// `bdpo tables DIR [--out DIR2] [--images-bytes]`.
import { runTables, type TablesSummary } from '../tables/index.ts';
import { datasetDirArgument, parseCommand } from './args.ts';
import { TABLES_USAGE as USAGE } from './help.ts';

export async function tablesCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, { out: { type: 'string' }, 'images-bytes': { type: 'boolean' }, json: { type: 'boolean' } });
  if (parsed === 'help') {
    console.log(USAGE);
    return 0;
  }
  const dir = await datasetDirArgument(parsed, USAGE);
  const out = parsed.values.out as string | undefined;
  const summary = await runTables(dir, { out, imageBytes: parsed.values['images-bytes'] === true });
  console.log(parsed.values.json ? JSON.stringify(summary, null, 2) : formatTablesSummary(summary));
  return 0;
}

export function formatTablesSummary(summary: TablesSummary): string {
  const lines = [`Parquet copies of ${summary.dir} in ${summary.out}${summary.imageBytes ? ' (images with bytes)' : ''}`];
  for (const [table, s] of Object.entries(summary.tables)) {
    lines.push(
      `  ${table.padEnd(8)} ${s.parts} parts: ${s.written} written (${s.rowsWritten} rows), ${s.skipped} current, ${s.removed} removed`,
    );
  }
  return lines.join('\n');
}
