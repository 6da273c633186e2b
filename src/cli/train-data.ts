// `bdpo encode` and `bdpo export`: argument parsing over the training stage's data library.
import { threadsLine } from './threads.ts';
import { runEncode, type EncodeSummary } from '../encode/index.ts';
import { EXPORT_FORMATS, runExport, type ExportFormat, type ExportSummary } from '../export/index.ts';
import { createProgress, type Progress } from './progress.ts';
import { listing } from '../core/format.ts';
import {
  BATCH_SIZE,
  COUNT,
  integerOption,
  numberOption,
  parseCommand,
  requireOption,
  RUN_OPTIONS,
  runOptions,
  stringOption,
  UsageError,
  type Parsed,
} from './args.ts';
import { ENCODE_USAGE, EXPORT_USAGE } from './help.ts';

function one(parsed: Parsed, usage: string): string {
  if (parsed.positionals.length !== 1) throw new UsageError(usage.split('\n')[0]!);
  return parsed.positionals[0]!;
}

export async function encodeCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, {
    vae: { type: 'string' },
    text: { type: 'string' },
    tokenizer: { type: 'string' },
    rule: { type: 'string' },
    resolution: { type: 'string' },
    'scaling-factor': { type: 'string' },
    'batch-size': { type: 'string' },
    ...RUN_OPTIONS,
    json: { type: 'boolean' },
  });
  if (parsed === 'help') {
    console.log(ENCODE_USAGE);
    return 0;
  }
  const dir = one(parsed, ENCODE_USAGE);
  const run = runOptions(parsed);
  const resolution = integerOption(parsed, 'resolution', { min: 8, max: 4096, multipleOf: 8 });
  const scalingFactor = numberOption(parsed, 'scaling-factor', { min: 0, max: 1000, above: true });
  const batchSize = integerOption(parsed, 'batch-size', BATCH_SIZE);
  const optional = <T>(name: string, value: T | undefined): Record<string, T> => (value === undefined ? {} : { [name]: value });
  const enabled = !parsed.values.json && Boolean(process.stderr.isTTY);
  let progress: Progress | undefined;
  let summary: EncodeSummary;
  try {
    summary = await runEncode(dir, {
      vae: requireOption(parsed, 'vae', ENCODE_USAGE),
      text: requireOption(parsed, 'text', ENCODE_USAGE),
      ...optional('tokenizer', stringOption(parsed, 'tokenizer')),
      ...optional('rule', stringOption(parsed, 'rule')),
      ...optional('resolution', resolution),
      ...optional('scalingFactor', scalingFactor),
      ...optional('batchSize', batchSize),
      ...run,
      onProgress: (p) => {
        progress ??= createProgress('encode', p.unitsTotal, { enabled });
        progress.update(p.unitsDone, { rows: p.images + p.prompts });
      },
    });
  } finally {
    progress?.stop();
  }
  if (parsed.values.json) {
    console.log(JSON.stringify(summary, null, 2));
    return 0;
  }
  console.log(formatEncodeSummary(summary));
  console.log(threadsLine(run, true));
  return 0;
}

export function formatEncodeSummary(s: EncodeSummary): string {
  const c = s.counts;
  const line = (name: string, t: EncodeSummary['latents']): string =>
    `  ${name.padEnd(8)} ${t.shape ?? '—'}: ${t.encoded} encoded, ${t.done} done before, ${t.reused} reused from other rules; ` +
    `parts ${t.partsWritten} written / ${t.partsSkipped} already done`;
  return [
    `encode ${s.dir} (${s.selection}) [shard ${s.shard.index}/${s.shard.count}] ` +
      `at ${s.resolution} px, scale ${s.scalingFactor}, on ${s.provider}`,
    line('latents', s.latents),
    line('text', s.text),
    `  images read ${c.read} = encoded ${c.taken} + rejected ${c.rejected}${c.rejected ? ` (${listing(c.byReason)})` : ''}`,
    `  ${s.seconds.toFixed(1)} s, ${s.imagesPerSecond.toFixed(1)} images/s`,
  ].join('\n');
}

export async function exportCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, {
    rule: { type: 'string' },
    out: { type: 'string' },
    format: { type: 'string' },
    split: { type: 'string' },
    'rows-per-part': { type: 'string' },
    'keep-ties': { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (parsed === 'help') {
    console.log(EXPORT_USAGE);
    return 0;
  }
  const dir = one(parsed, EXPORT_USAGE);
  const format = stringOption(parsed, 'format') ?? 'diffusers-dpo';
  if (!(EXPORT_FORMATS as readonly string[]).includes(format))
    throw new UsageError(`--format must be one of ${EXPORT_FORMATS.join(', ')}, got "${format}"`);
  const split = stringOption(parsed, 'split');
  const rowsPerPart = integerOption(parsed, 'rows-per-part', COUNT);
  const summary: ExportSummary = await runExport(dir, {
    rule: requireOption(parsed, 'rule', EXPORT_USAGE),
    out: requireOption(parsed, 'out', EXPORT_USAGE),
    format: format as ExportFormat,
    ...(split === undefined
      ? {}
      : {
          splits: split
            .split(',')
            .map((s) => s.trim())
            .filter((s) => s.length > 0),
        }),
    ...(rowsPerPart === undefined ? {} : { rowsPerPart }),
    keepTies: parsed.values['keep-ties'] === true,
  });
  const ties = summary.byLabel['0.5'] ?? 0;
  if (ties > 0) console.error(`${ties} tied pairs exported with label_0 = 0.5: diffusers and DiffusionDPO train them as jpg_0 wins`);
  if (parsed.values.json) {
    console.log(JSON.stringify(summary, null, 2));
    return 0;
  }
  const labels = Object.entries(summary.byLabel)
    .sort((x, y) => Number(y[0]) - Number(x[0]))
    .map(([label, n]) => `label_0=${label}: ${n}`)
    .join(', ');
  console.log(
    [
      `export ${summary.dir} consensus/${summary.rule} → ${summary.out} (${summary.format})`,
      `  ${summary.pairs} pairs (${labels}) in ${summary.files.length} file(s), ${(summary.imageBytes / 1e6).toFixed(1)} MB of images`,
      ...(Object.keys(summary.bySplit).length > 0 ? [`  splits: ${listing(summary.bySplit)}`] : []),
      ...(summary.tiesLeftOut > 0 ? [`  ${summary.tiesLeftOut} tied pairs left out (--keep-ties exports them as label_0 = 0.5)`] : []),
      `  metrics: ${summary.metrics.join(', ') || '—'}; ${summary.seconds.toFixed(1)} s`,
    ].join('\n'),
  );
  return 0;
}
