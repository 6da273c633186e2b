// `bdpo tables DIR [--out DIR2] [--images-bytes]`.
import { stat } from 'node:fs/promises';
import { formatTablesSummary, runTables } from '../tables.ts';
import { parseCommand, UsageError } from './args.ts';

const USAGE = `usage: bdpo tables DIR [--out DIR2] [--images-bytes] [--json]

Parquet copies of the Arrow IPC tables, for SQL engines (DuckDB, Spark) that read Parquet but not Arrow IPC:
DIR2/{prompts,pairs,rejects,images}/part-*.parquet, one per Arrow part, same columns (docs/schema.md).
  --out DIR2        where the copies go (default DIR/tables)
  --images-bytes    keep the image bytes in images/ (default: image_id, prompt_id, mime, width, height,
                    source_ref, model, seed)
A re-run rewrites only the parts whose Arrow source changed.`;

export async function tablesCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, { out: { type: 'string' }, 'images-bytes': { type: 'boolean' }, json: { type: 'boolean' } }, USAGE);
  if (parsed === 'help') {
    console.log(USAGE);
    return 0;
  }
  const dir = parsed.positionals[0];
  if (dir === undefined || parsed.positionals.length > 1) throw new UsageError(USAGE.split('\n')[0]!);
  const info = await stat(dir).catch(() => null);
  if (!info?.isDirectory()) throw new Error(`${dir}: not a dataset directory`);
  const out = parsed.values.out as string | undefined;
  const summary = await runTables(dir, { out, imageBytes: parsed.values['images-bytes'] === true });
  console.log(parsed.values.json ? JSON.stringify(summary, null, 2) : formatTablesSummary(summary));
  return 0;
}
