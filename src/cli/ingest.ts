// `bdpo ingest pickapic|hpd|parti|images`: parses arguments and calls the ingest library.
import { ingestGenerations, ingestHpd, ingestParti, ingestPickapic, type IngestOptions, type IngestSummary } from '../ingest/index.ts';
import { createProgress } from './progress.ts';
import { threadsLine } from './threads.ts';
import {
  COUNT,
  WORKERS,
  integerOption,
  parseCommand,
  requireOption,
  shardOption,
  stringOption,
  UsageError,
  type OptionSpec,
  type Parsed,
} from './args.ts';
import { listing } from '../core/format.ts';
import { INGEST_USAGE as USAGE } from './help.ts';

const COMMON: OptionSpec = {
  out: { type: 'string', short: 'o' },
  shard: { type: 'string' },
  shards: { type: 'string' },
  'max-pixels': { type: 'string' },
  'no-decode': { type: 'boolean' },
  workers: { type: 'string' },
  json: { type: 'boolean' },
};

export async function ingestCommand(argv: string[]): Promise<number> {
  const [source, ...rest] = argv;
  if (source === undefined || source === '--help' || source === '-h') {
    console.log(USAGE);
    return source === undefined ? 2 : 0;
  }
  const extra: OptionSpec =
    source === 'pickapic'
      ? { split: { type: 'string' } }
      : source === 'images'
        ? { prompts: { type: 'string' }, model: { type: 'string' } }
        : {};
  const parsed = parseCommand(rest, { ...COMMON, ...extra });
  if (parsed === 'help') {
    console.log(USAGE);
    return 0;
  }
  const options = ingestOptions(parsed);
  const progress = createProgress(`ingest ${source}`, 1, { enabled: !parsed.values.json && Boolean(process.stderr.isTTY) });
  options.onProgress = (p) => progress.update(p.unitsDone, { total: p.unitsTotal, rows: p.rows, bytes: p.bytes });
  let summary: IngestSummary;
  try {
    summary = await runSource(source, parsed, options);
  } finally {
    progress.stop();
  }
  if (parsed.values.json) console.log(JSON.stringify(summary, null, 2));
  else console.log(`${formatIngestSummary(summary)}\n${threadsLine(options, false)}`);
  return 0;
}

function ingestOptions(parsed: Parsed): IngestOptions {
  const options: IngestOptions = {
    out: requireOption(parsed, 'out', USAGE),
    shard: shardOption(parsed),
    decode: !parsed.values['no-decode'],
  };
  const maxPixels = integerOption(parsed, 'max-pixels', COUNT);
  if (maxPixels !== undefined) options.maxPixels = maxPixels;
  const workers = integerOption(parsed, 'workers', WORKERS);
  if (workers !== undefined) options.workers = workers;
  return options;
}

async function runSource(source: string, parsed: Parsed, options: IngestOptions): Promise<IngestSummary> {
  const inputs = parsed.positionals;
  const one = (): string => {
    if (inputs.length !== 1) throw new UsageError(`bdpo ingest ${source} takes one input, got ${inputs.length}`);
    return inputs[0]!;
  };
  switch (source) {
    case 'pickapic': {
      if (inputs.length === 0) throw new UsageError('bdpo ingest pickapic needs Parquet files or folders');
      const split = stringOption(parsed, 'split');
      return ingestPickapic(inputs, split === undefined ? options : { ...options, split });
    }
    case 'hpd':
      return ingestHpd(one(), options);
    case 'parti':
      return ingestParti(one(), options);
    case 'images': {
      const model = stringOption(parsed, 'model');
      const prompts = requireOption(parsed, 'prompts', USAGE);
      return ingestGenerations(one(), model === undefined ? { ...options, prompts } : { ...options, prompts, model });
    }
    default:
      throw new UsageError(`unknown source "${source}": pickapic, hpd, parti or images`);
  }
}

export function formatIngestSummary(s: IngestSummary): string {
  const c = s.counts;
  return [
    `ingest ${s.source} → ${s.out} [shard ${s.shard.index}/${s.shard.count}]`,
    `  read ${c.read} = taken ${c.taken} + rejected ${c.rejected}`,
    ...(c.rejected > 0 ? [`  rejected by reason: ${listing(c.byReason)}`] : []),
    `  wrote: prompts ${s.tables.prompts}, images ${s.tables.images}, pairs ${s.tables.pairs}, rejects ${s.tables.rejects}`,
    `  units: ${s.unitsWritten} written, ${s.unitsSkipped} already done`,
  ].join('\n');
}
