// `bdpo inspect DIR`.
import { stat } from 'node:fs/promises';
import { formatDatasetSummary, inspectDataset } from '../inspect/inspect.ts';
import { parseCommand, UsageError } from './args.ts';
import { INSPECT_USAGE as USAGE } from './help.ts';

export async function inspectCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, { json: { type: 'boolean' } }, USAGE);
  if (parsed === 'help') {
    console.log(USAGE);
    return 0;
  }
  const dir = parsed.positionals[0];
  if (dir === undefined || parsed.positionals.length > 1) throw new UsageError(USAGE.split('\n')[0]!);
  const info = await stat(dir).catch(() => null);
  if (!info?.isDirectory()) throw new Error(`${dir}: not a dataset directory`);
  const summary = await inspectDataset(dir);
  console.log(parsed.values.json ? JSON.stringify(summary, null, 2) : formatDatasetSummary(summary));
  return 0;
}
