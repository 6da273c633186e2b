// `bdpo compact DIR`.
import { compactDataset } from '../ingest/index.ts';
import { listing } from '../core/format.ts';
import { datasetDirArgument, parseCommand } from './args.ts';
import { COMPACT_USAGE as USAGE } from './help.ts';

export async function compactCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, { json: { type: 'boolean' } });
  if (parsed === 'help') {
    console.log(USAGE);
    return 0;
  }
  const dir = await datasetDirArgument(parsed, USAGE);
  const summary = await compactDataset(dir);
  if (parsed.values.json) console.log(JSON.stringify(summary, null, 2));
  else {
    console.log(
      `compact ${dir}: ${summary.unitsRewritten} unit(s) rewritten; dropped ${listing(summary.dropped)}` +
        (summary.dropped.pairs > 0 ? ` (the pairs are now duplicate_pair rejects)` : ''),
    );
  }
  return 0;
}
