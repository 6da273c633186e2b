// `bdpo inspect DIR`.
import { inspectDataset, type DatasetSummary } from '../inspect/index.ts';
import { listing } from '../core/format.ts';
import { datasetDirArgument, parseCommand } from './args.ts';
import { INSPECT_USAGE as USAGE } from './help.ts';

export async function inspectCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, { json: { type: 'boolean' } });
  if (parsed === 'help') {
    console.log(USAGE);
    return 0;
  }
  const dir = await datasetDirArgument(parsed, USAGE);
  const summary = await inspectDataset(dir);
  console.log(parsed.values.json ? JSON.stringify(summary, null, 2) : formatDatasetSummary(summary));
  return 0;
}

const percent = (x: number | null): string => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);

export function formatDatasetSummary(s: DatasetSummary): string {
  const h = s.pairs.human;
  const lines = [`dataset ${s.dir}`, `  prompts  ${s.prompts.total} (${listing(s.prompts.bySource)})`];
  if (Object.keys(s.prompts.byCategory).length > 0) lines.push(`    categories: ${listing(s.prompts.byCategory)}`);
  lines.push(
    `  images   ${s.images.total}, ${(s.images.bytes / 1e6).toFixed(1)} MB (${listing(s.images.byMime)})`,
    `  pairs    ${s.pairs.total} by split: ${listing(s.pairs.bySplit)}`,
    `    human labels: a ${h.a}, b ${h.b}, tie ${h.tie}, unlabelled ${h.unlabelled}; ` +
      `a preferred ${percent(s.pairs.aRate)} of decided, tie rate ${percent(s.pairs.tieRate)} of labelled`,
    `  rejects  ${s.rejects.total}: ${listing(s.rejects.byReason)}`,
  );
  for (const run of s.runs) {
    const c = run.counts;
    lines.push(
      `  run ${run.stage} [shard ${run.shard}]: read ${c.read} = taken ${c.taken} + rejected ${c.rejected}` +
        (c.rejected > 0 ? ` (${listing(c.byReason)})` : ''),
    );
  }
  if (s.scores.length > 0) lines.push(`  scores   ${s.scores.join(', ')}`);
  if (s.consensus.length > 0) lines.push(`  consensus ${s.consensus.join(', ')}`);
  return lines.join('\n');
}
