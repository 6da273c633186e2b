// `bdpo encode` and `bdpo export`: argument parsing over the training stage's data library.
import { runEncode, SD_SCALING_FACTOR, type EncodeSummary } from '../train/encode.ts';
import { EXPORT_FORMATS, runExport, type ExportFormat, type ExportSummary } from '../train/export.ts';
import { createProgress, type Progress } from '../progress.ts';
import { listing } from '../format.ts';
import { BATCH_SIZE, COUNT, integerOption, numberOption, parseCommand, requireOption, RUN_OPTIONS, RUN_OPTIONS_HELP, runOptions, stringOption, UsageError, type Parsed } from './args.ts';

const ENCODE_USAGE = `usage: bdpo encode DIR --vae <vae-encoder.onnx> --text <text-encoder.onnx> [--rule R] [--resolution 64] [--tokenizer tokenizer.json] [--shard i/n] [--json]

Caches what training needs, so that it never touches an image or a text model: VAE latents of the images of the
kept pairs of consensus/<R> (of every pair without --rule) into latents/part-*.parquet, and text-encoder hidden
states of their prompts (plus the empty prompt) into text/part-*.parquet, float16. Re-runs skip finished parts.
  --vae FILE                  VAE encoder: pixel_values [n, 3, H, W] in [-1, 1] → latent_mean
  --text FILE                 text encoder: input_ids [n, 77] → last_hidden_state
  --tokenizer FILE            tokenizer.json or vocab.json (default: beside --text, or ../tokenizer/)
  --rule R                    folder under consensus/ (default: every pair in pairs/)
  --resolution N              short side resize + centre crop, a multiple of 8 (default 64)
  --scaling-factor X          latent scale (default ${SD_SCALING_FACTOR}, SD 1.x/2.x)
  --batch-size N              images per VAE batch (default 8)
${RUN_OPTIONS_HELP}`;

const EXPORT_USAGE = `usage: bdpo export DIR --rule R --out <folder | file.parquet> [--format diffusers-dpo] [--split s,…] [--keep-ties] [--json]

Writes the kept pairs of consensus/<R> in Pick-a-Pic v2's layout, which the public Diffusion-DPO trainers read:
caption, jpg_0, jpg_1 (the original image bytes), label_0 (1: jpg_0 preferred, 0: jpg_1), label_1, model_0, model_1,
and the consensus columns (pair_id, split, soft, margin, disagreement, votes_a, votes_b, p_<metric>). --out is a
folder in HF datasets' layout: data/<split>-<k>-of-<n>.parquet (one split per file group, row groups of ≤ 256 rows,
bounded memory) and a dataset card README.md listing the splits; or one file of every split when it ends in
.parquet (built in memory: for small exports). An existing --out folder is replaced only when it is empty or an
earlier export; any other folder, or one holding the dataset, is refused.
  --split s,…                 only these splits (e.g. train)
  --keep-ties                 also export ties (label_0 = 0.5, from --ties half); the trainers train them as jpg_0 wins
                              (default: tied pairs are left out and counted)
  --rows-per-part N           pairs per part file (default 4096; a part also closes at 256 MiB of images)`;

function one(parsed: Parsed, usage: string): string {
  if (parsed.positionals.length !== 1) throw new UsageError(usage.split('\n')[0]!);
  return parsed.positionals[0]!;
}

export async function encodeCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(
    argv,
    {
      vae: { type: 'string' },
      text: { type: 'string' },
      tokenizer: { type: 'string' },
      rule: { type: 'string' },
      resolution: { type: 'string' },
      'scaling-factor': { type: 'string' },
      'batch-size': { type: 'string' },
      ...RUN_OPTIONS,
      json: { type: 'boolean' },
    },
    ENCODE_USAGE,
  );
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
  return 0;
}

export function formatEncodeSummary(s: EncodeSummary): string {
  const c = s.counts;
  const line = (name: string, t: EncodeSummary['latents']): string =>
    `  ${name.padEnd(8)} ${t.shape ?? '—'}: ${t.encoded} encoded, ${t.done} done before, ${t.reused} reused from other rules; parts ${t.partsWritten} written / ${t.partsSkipped} already done`;
  return [
    `encode ${s.dir} (${s.selection}) [shard ${s.shard.index}/${s.shard.count}] at ${s.resolution} px, scale ${s.scalingFactor}, on ${s.provider}`,
    line('latents', s.latents),
    line('text', s.text),
    `  images read ${c.read} = encoded ${c.taken} + rejected ${c.rejected}${c.rejected ? ` (${listing(c.byReason)})` : ''}`,
    `  ${s.seconds.toFixed(1)} s, ${s.imagesPerSecond.toFixed(1)} images/s`,
  ].join('\n');
}

export async function exportCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(
    argv,
    {
      rule: { type: 'string' },
      out: { type: 'string' },
      format: { type: 'string' },
      split: { type: 'string' },
      'rows-per-part': { type: 'string' },
      'keep-ties': { type: 'boolean' },
      json: { type: 'boolean' },
    },
    EXPORT_USAGE,
  );
  if (parsed === 'help') {
    console.log(EXPORT_USAGE);
    return 0;
  }
  const dir = one(parsed, EXPORT_USAGE);
  const format = stringOption(parsed, 'format') ?? 'diffusers-dpo';
  if (!(EXPORT_FORMATS as readonly string[]).includes(format)) throw new UsageError(`--format must be one of ${EXPORT_FORMATS.join(', ')}, got "${format}"`);
  const split = stringOption(parsed, 'split');
  const rowsPerPart = integerOption(parsed, 'rows-per-part', COUNT);
  const summary: ExportSummary = await runExport(dir, {
    rule: requireOption(parsed, 'rule', EXPORT_USAGE),
    out: requireOption(parsed, 'out', EXPORT_USAGE),
    format: format as ExportFormat,
    ...(split === undefined ? {} : { splits: split.split(',').map((s) => s.trim()).filter((s) => s.length > 0) }),
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
