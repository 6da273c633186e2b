// `bdpo label`, `bdpo consensus`, `bdpo calibrate`: argument parsing over the label library.
import { runLabel, type LabelSummary } from '../label/index.ts';
import {
  ConsensusOptionError,
  runCalibrate,
  runConsensus,
  type CalibrationSummary,
  type ConsensusOptionName,
  type ConsensusSummary,
} from '../consensus/index.ts';
import { createProgress } from './progress.ts';
import { threadsLine } from './threads.ts';
import { listing } from '../core/format.ts';
import {
  BATCH_SIZE,
  integerOption,
  numberOption,
  parseCommand,
  RUN_OPTIONS,
  runOptions,
  SEED,
  stringOption,
  UsageError,
  type Parsed,
} from './args.ts';
import { LABEL_USAGE, CONSENSUS_USAGE, CALIBRATE_USAGE } from './help.ts';

function one(parsed: Parsed, usage: string): string {
  if (parsed.positionals.length < 1) throw new UsageError(usage.split('\n')[0]!);
  return parsed.positionals[0]!;
}

export async function labelCommand(argv: string[]): Promise<number> {
  // `--metrics a.json b.json` reads naturally; parseArgs wants one value per flag, so fold the list first.
  const folded: string[] = [];
  let inMetrics = false;
  for (const arg of argv) {
    if (arg === '--metrics') inMetrics = true;
    else if (arg.startsWith('-')) inMetrics = false;
    if (inMetrics && arg !== '--metrics') folded.push('--metrics');
    if (arg !== '--metrics') folded.push(arg);
  }
  const parsed = parseCommand(folded, {
    metrics: { type: 'string', multiple: true },
    'batch-size': { type: 'string' },
    ...RUN_OPTIONS,
    json: { type: 'boolean' },
  });
  if (parsed === 'help') {
    console.log(LABEL_USAGE);
    return 0;
  }
  const dir = one(parsed, LABEL_USAGE);
  const metrics = (parsed.values.metrics as string[] | undefined) ?? [];
  if (metrics.length === 0) throw new UsageError('--metrics is required (one or more metric JSON files)');
  const run = runOptions(parsed);
  const batchSize = integerOption(parsed, 'batch-size', BATCH_SIZE) ?? 16;
  const progress = createProgress('label', 1, { enabled: !parsed.values.json && Boolean(process.stderr.isTTY) });
  let summary: LabelSummary;
  try {
    summary = await runLabel(dir, {
      metrics,
      batchSize,
      ...run,
      onProgress: (p) => progress.update(p.partsDone, { total: p.partsTotal, rows: p.images, unit: 'images' }),
    });
  } finally {
    progress.stop();
  }
  if (parsed.values.json) {
    console.log(JSON.stringify(summary, null, 2));
    return 0;
  }
  const c = summary.counts;
  console.log(`label ${dir} [shard ${summary.shard.index}/${summary.shard.count}] on ${summary.metrics[0]?.provider ?? '?'}`);
  for (const m of summary.metrics) {
    console.log(
      `  ${m.name.padEnd(12)} ${m.kind.padEnd(10)} ${m.version}: ${m.scored} scored, ` +
        `parts ${m.partsWritten} written / ${m.partsSkipped} already done`,
    );
  }
  console.log(`  images read ${c.read} = scored ${c.taken} + rejected ${c.rejected}${c.rejected ? ` (${listing(c.byReason)})` : ''}`);
  console.log(`  ${summary.seconds.toFixed(1)} s, ${summary.imagesPerSecond.toFixed(1)} images/s (all metrics)`);
  console.log(threadsLine(run, true));
  return 0;
}

export async function consensusCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, {
    rule: { type: 'string' },
    ties: { type: 'string' },
    margin: { type: 'string' },
    weights: { type: 'string' },
    seed: { type: 'string' },
    metrics: { type: 'string' },
    uncalibrated: { type: 'boolean' },
    name: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (parsed === 'help') {
    console.log(CONSENSUS_USAGE);
    return 0;
  }
  const dir = one(parsed, CONSENSUS_USAGE);
  const margin = numberOption(parsed, 'margin', { min: 0, max: 0.5, below: true });
  const seed = integerOption(parsed, 'seed', SEED);
  const rule = stringOption(parsed, 'rule');
  if (rule === undefined || rule.trim() === '') {
    throw new UsageError('--rule is required: majority, mean-prob, vanilla, normalized, random, human or single:<metric>');
  }
  const name = stringOption(parsed, 'name');
  // The library checks this too, but only after reading the scores, and as a plain error.
  if (name !== undefined && !/^[a-z0-9][a-z0-9_.=-]*$/i.test(name))
    throw new UsageError(`--name must be a plain folder name, got "${name}"`);
  const weightsText = stringOption(parsed, 'weights');
  const ties = stringOption(parsed, 'ties');
  const metrics = stringOption(parsed, 'metrics');
  let summary: ConsensusSummary;
  try {
    summary = await runConsensus(dir, {
      rule,
      ...(ties === undefined ? {} : { ties }),
      ...(margin === undefined ? {} : { margin }),
      ...(weightsText === undefined ? {} : { weights: parseWeights(weightsText) }),
      ...(seed === undefined ? {} : { seed }),
      ...(name === undefined ? {} : { name }),
      ...(metrics === undefined ? {} : { metrics: metrics.split(',').map((m) => m.trim()) }),
      calibrated: !parsed.values.uncalibrated,
    });
  } catch (error) {
    // Which metric names exist is known only once the scores are read, so the library checks names; the flag is ours.
    if (error instanceof ConsensusOptionError && error.option !== undefined) {
      throw new UsageError(`--${CONSENSUS_FLAGS[error.option]}: ${error.message}`);
    }
    throw error;
  }
  console.log(parsed.values.json ? JSON.stringify(summary, null, 2) : formatConsensusSummary(summary));
  return 0;
}

const CONSENSUS_FLAGS: Record<ConsensusOptionName, string> = {
  rule: 'rule',
  ties: 'ties',
  margin: 'margin',
  weights: 'weights',
  seed: 'seed',
};

function weightsError(message: string): UsageError {
  return new UsageError(`--weights: weights: ${message}`);
}

/**
 * `--weights pickscore=2,hps=1` → { pickscore: 2, hps: 1 }: finite weights ≥ 0, each metric once. Whether the
 * metrics exist is the library's check (it knows the scored metrics).
 */
export function parseWeights(text: string): Record<string, number> {
  const weights: Record<string, number> = {};
  for (const item of text.split(',')) {
    const entry = item.trim();
    if (entry === '') continue;
    const eq = entry.indexOf('=');
    if (eq < 0) throw weightsError(`'${entry}' is not metric=weight`);
    const name = entry.slice(0, eq).trim();
    if (Object.hasOwn(weights, name)) throw weightsError(`metric '${name}' given twice`);
    const given = entry.slice(eq + 1);
    const weight = DECIMAL_TEXT.test(given.trim()) ? Number(given.trim()) : Number.NaN;
    if (!Number.isFinite(weight)) throw new UsageError(`--weights: weight of '${name}': '${given}' is not a number`);
    if (weight < 0) throw weightsError(`weight of '${name}' must be ≥ 0, got ${weight}`);
    weights[name] = weight;
  }
  if (Object.keys(weights).length === 0) throw weightsError(`'${text}' names no metric`);
  return weights;
}

// Plain decimal only: Number() would also take "", " ", "0x10" and "Infinity".
const DECIMAL_TEXT = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

export function formatConsensusSummary(s: ConsensusSummary): string {
  const pct = (x: number | null): string => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);
  const taus = Object.entries(s.temperatures).map(
    ([m, t]) => `${m} τ=${Number(t.tau.toPrecision(4))}${t.source === 'calibrated' ? ' (fitted)' : ''}`,
  );
  return [
    `consensus ${s.rule}, ties ${s.ties}, margin δ=${s.margin} → ${s.dir}/${s.output}`,
    `  metrics: ${taus.join(', ')}`,
    `  pairs ${s.pairs}: kept ${s.kept}, tie rate ${pct(s.tieRate)} (${s.tiesCount} ties)`,
    `  by reason: ${listing(s.byReason)}`,
    `  agreement with decided human labels (kept pairs): ${pct(s.humanAgreement)}${
      s.humanAgreementExcluded > 0 ? ` (${s.humanAgreementExcluded} ties resolved by the human label left out)` : ''
    }`,
  ].join('\n');
}

export async function calibrateCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, { metrics: { type: 'string' }, split: { type: 'string', multiple: true }, json: { type: 'boolean' } });
  if (parsed === 'help') {
    console.log(CALIBRATE_USAGE);
    return 0;
  }
  const dir = one(parsed, CALIBRATE_USAGE);
  const metrics = stringOption(parsed, 'metrics');
  const splits = ((parsed.values.split as string[] | undefined) ?? []).flatMap((s) => s.split(',')).map((s) => s.trim());
  if (splits.some((s) => s === '')) throw new UsageError('--split needs a split name (e.g. --split train)');
  const summary = await runCalibrate(dir, {
    ...(metrics === undefined ? {} : { metrics: metrics.split(',').map((m) => m.trim()) }),
    ...(splits.length === 0 ? {} : { splits }),
  });
  if (parsed.values.json) {
    console.log(JSON.stringify(summary, null, 2));
    return 0;
  }
  console.log(formatCalibrationSummary(summary));
  return 0;
}

export function formatCalibrationSummary(summary: CalibrationSummary): string {
  const on = summary.splits.length === 0 ? 'every pair (no split)' : `split ${summary.splits.join(', ')}`;
  const why = {
    given: 'as asked',
    train: 'the default: train only, so test pairs stay out of sample',
    all: 'the default: DIR has no train split',
  };
  const lines = [`calibrate ${summary.dir} → ${summary.file}, fitted on ${on} (${why[summary.splitChoice]})`];
  for (const [name, fit] of Object.entries(summary.metrics)) {
    const tau = fit.tau === null ? `kept τ=${fit.defaultTau}` : `τ=${Number(fit.tau.toPrecision(4))} (was ${fit.defaultTau})`;
    const gain =
      fit.gainPerPair === null
        ? (fit.note ?? 'fitted τ not used')
        : `log-lik ${fit.logLikDefault.toFixed(2)} → ${fit.logLikFitted.toFixed(2)} (+${fit.gainPerPair.toFixed(4)} nats/pair)`;
    lines.push(`  ${name.padEnd(12)} ${fit.status.padEnd(15)} n=${fit.n} ${tau}; ${gain}`);
  }
  return lines.join('\n');
}
