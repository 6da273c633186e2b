// `bdpo consensus` and `bdpo calibrate`: labels from cached scores, no model. Consensus reads every pairs part, looks
// up each metric's scores of both images, and writes consensus/<rule>/part-*.parquet. A rule's folder is replaced
// whole (built beside it, then renamed), so readers never see a mix of two runs.
import { mkdir, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { checkPart, listParts, readerDuplicatePlan, readPart } from '../io/arrow-table.ts';
import { replaceFolder, writeFileAtomic } from '../io/atomic.ts';
import { resolveInside } from '../io/paths.ts';
import { consensusOptionsLocation, ruleFolder } from '../core/dataset-meta.ts';
import { labelPart, type PartJob, type PartTally } from './part.ts';
import { doublesOf, textCodes } from '../io/arrow-columns.ts';
import { columnWords } from '../core/id-words.ts';
import { PartPool } from './part-pool.ts';
import { readManifest, runRecord, recordRun } from '../core/manifest.ts';
import { JsonFileError, readJsonFile } from '../io/json-file.ts';
import { WHOLE } from '../core/shard.ts';
import {
  compileConsensus,
  ConsensusOptionError,
  formatRule,
  formatTiePolicy,
  formatWeights,
  parseConsensusOptions,
  type ConsensusOptions,
  type TieChoice,
} from './consensus.ts';
import { CalibrationSample, calibrationRecord, usedTau, type CalibrationRecord, type TemperatureFit } from './calibrate.ts';
import { loadScoreTable, ScoreLookup, type ScoreTable } from '../core/score-table.ts';

export interface ConsensusRunOptions {
  /** `majority` | `mean-prob` | `vanilla` | `normalized` | `random` | `human` | `single:<metric>`. */
  rule: string;
  ties?: TieChoice;
  margin?: number;
  weights?: Record<string, number>;
  seed?: number;
  /** Metric names to use; default every scored metric. */
  metrics?: string[];
  /** Use temperatures fitted by `calibrate` when present (default true). */
  calibrated?: boolean;
  /** Output folder under consensus/ (default: derived from the rule and its options). */
  name?: string;
  /**
   * Threads labelling pairs parts: 1 labels them in this thread; default one per core once the pairs parts are
   * big enough to repay a worker's start-up (≥ 2 parts, ≥ 16 MB), else 1. The output is the same either way.
   */
  workers?: number;
}

export interface ConsensusSummary {
  dir: string;
  rule: string;
  ties: string;
  margin: number;
  metrics: string[];
  temperatures: Record<string, { tau: number; source: 'metric' | 'calibrated' }>;
  pairs: number;
  tiesCount: number;
  tieRate: number | null;
  kept: number;
  byReason: Record<string, number>;
  /**
   * Among kept pairs with a decided human label and a decided consensus label: share that agree. Ties resolved by
   * the human label (--ties human) are left out: they agree by construction.
   */
  humanAgreement: number | null;
  /** Pairs left out of humanAgreement because their label is the human label (reason tie-human). */
  humanAgreementExcluded: number;
  output: string;
  seconds: number;
}

export const CALIBRATION_FILE = 'calibration.json';

interface CalibrationFile {
  metrics: Record<string, Pick<TemperatureFit, 'status' | 'tau'>>;
  /** The splits whose pairs the fit used; absent in files written before the fit chose splits (it used all). */
  splits?: string[];
}

/** calibration.json, or null when there is none; a file that is there but unreadable is an error, not "none". */
async function readCalibration(dir: string): Promise<CalibrationFile | null> {
  const path = join(dir, CALIBRATION_FILE);
  let parsed: unknown;
  try {
    parsed = await readJsonFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const metrics = (parsed as { metrics?: unknown } | null)?.metrics;
  if (typeof metrics !== 'object' || metrics === null || Array.isArray(metrics)) {
    throw new JsonFileError(`${path}: "metrics" is not an object (rerun bdpo calibrate, or delete the file)`);
  }
  return parsed as CalibrationFile;
}

/** Below this many bytes of pairs parts, starting worker threads (≈ 0.5 s each, tsx included) costs more than it saves. */
const WORKER_MIN_BYTES = 16 * 1024 * 1024;

async function workersFor(dir: string, parts: readonly string[], asked: number | undefined): Promise<number> {
  if (asked !== undefined) {
    if (!Number.isSafeInteger(asked) || asked < 1) throw new RangeError(`workers must be an integer ≥ 1, got ${asked}`);
    return Math.min(asked, parts.length);
  }
  if (parts.length < 2) return 1;
  let bytes = 0;
  for (const file of parts) bytes += (await stat(join(dir, file))).size;
  return bytes >= WORKER_MIN_BYTES ? Math.min(availableParallelism(), parts.length) : 1;
}

export async function runConsensus(dir: string, options: ConsensusRunOptions): Promise<ConsensusSummary> {
  const started = new Date();
  // The manifest is updated at the end: a bad one must fail the run before the output folder is replaced.
  await readManifest(dir);
  const pairParts = await listParts(dir, 'pairs');
  const workers = await workersFor(dir, pairParts, options.workers);
  const pool = workers > 1 ? new PartPool(workers) : null;
  try {
    return await consensusWith(dir, options, started, pairParts, pool);
  } finally {
    await pool?.close();
  }
}

async function consensusWith(
  dir: string,
  options: ConsensusRunOptions,
  started: Date,
  pairParts: readonly string[],
  pool: PartPool | null,
): Promise<ConsensusSummary> {
  // Before the score table: the plan's key set is garbage by the time the table is allocated. Workers are handed it
  // rather than each reading every pairs part's ids again.
  const duplicates = pool ? await readerDuplicatePlan(dir) : undefined;
  const table = await loadScoreTable(
    dir,
    options.metrics,
    pool ? { readFile: (from, file) => pool.scores(from, file), filesAhead: pool.size } : {},
  );
  const metrics = table.metrics.map((m) => m.name);
  const calibration = options.calibrated === false ? null : await readCalibration(dir);
  const temperatures: ConsensusSummary['temperatures'] = {};
  for (const info of table.metrics) {
    const fitted = calibration?.metrics[info.name];
    temperatures[info.name] =
      fitted !== undefined && usedTau(fitted) !== null
        ? { tau: usedTau(fitted)!, source: 'calibrated' }
        : { tau: info.temperature, source: 'metric' };
  }
  const consensusOptions: ConsensusOptions = parseConsensusOptions(
    {
      rule: options.rule,
      ...(options.ties === undefined ? {} : { ties: options.ties }),
      ...(options.margin === undefined ? {} : { margin: options.margin }),
      ...(options.weights === undefined ? {} : { weights: options.weights }),
      ...(options.seed === undefined ? {} : { seed: options.seed }),
    },
    { metrics, temperatures: Object.fromEntries(Object.entries(temperatures).map(([name, t]) => [name, t.tau])) },
  );
  // Options are checked here, once, before anything is written (each part compiles its own plan from them).
  compileConsensus(consensusOptions, table.stats);
  const rule = formatRule(consensusOptions.rule);
  const weightsText = options.weights === undefined ? undefined : formatWeights(options.weights);
  const name =
    options.name ??
    ruleFolder(rule, {
      ties: formatTiePolicy(consensusOptions.ties),
      margin: consensusOptions.margin,
      ...(weightsText ? { weights: weightsText } : {}),
      ...(consensusOptions.rule.kind === 'random' ? { seed: consensusOptions.seed ?? 0 } : {}),
    });
  if (!/^[a-z0-9][a-z0-9_.=-]*$/i.test(name)) throw new ConsensusOptionError(`output name must be a plain folder name, got "${name}"`);
  const folder = join('consensus', name);
  // A damaged pairs part is found before the staging folder exists, not after half of it is written.
  for (const file of pairParts) await checkPart(dir, file);

  const summary: ConsensusSummary = {
    dir,
    rule,
    ties: formatTiePolicy(consensusOptions.ties),
    margin: consensusOptions.margin,
    metrics,
    temperatures,
    pairs: 0,
    tiesCount: 0,
    tieRate: null,
    kept: 0,
    byReason: {},
    humanAgreement: null,
    humanAgreementExcluded: 0,
    output: folder,
    seconds: 0,
  };
  let agree = 0;
  let compared = 0;
  await mkdir(join(dir, 'consensus'), { recursive: true });
  await replaceFolder(
    resolveInside(dir, folder),
    async (staging) => {
      const jobs: PartJob[] = pairParts.map((file) => ({
        dir,
        file,
        staging,
        options: consensusOptions,
        stats: table.stats,
        table: table.shared,
        metadata: { rule, ties: summary.ties, margin: String(summary.margin) },
        ...(duplicates ? { duplicates } : {}),
      }));
      let tallies: PartTally[];
      if (pool === null) {
        tallies = [];
        for (const job of jobs) tallies.push(await labelPart(job));
      } else {
        const labelled = jobs.map((job) => pool.label(job));
        labelled.forEach((tally) => tally.catch(() => {})); // awaited together below
        try {
          tallies = await Promise.all(labelled);
        } catch (error) {
          // No worker may still be writing into the staging folder while it is cleaned up.
          await pool.close();
          throw error;
        }
      }
      for (const tally of tallies) {
        summary.pairs += tally.pairs;
        summary.tiesCount += tally.ties;
        summary.kept += tally.kept;
        for (const [reason, count] of tally.reasons) summary.byReason[reason] = (summary.byReason[reason] ?? 0) + count;
        agree += tally.agree;
        compared += tally.compared;
        summary.humanAgreementExcluded += tally.humanAgreementExcluded;
      }
      const voted = summary.pairs - (summary.byReason.missing ?? 0);
      summary.tieRate = voted > 0 ? summary.tiesCount / voted : null;
      summary.humanAgreement = compared > 0 ? agree / compared : null;
    },
    {
      // Everything under consensus/ of the dataset directory is this stage's output.
      isOurs: async () => true,
      refuse: (target, why) => new Error(`${target}: cannot be replaced: ${why}`),
    },
  );
  // Outside the swapped folder (engines reading consensus/<rule>/* as one dataset take only Parquet), written once
  // the parts are in place, so the options never describe a folder that is not there.
  // Which pairs the fitted τ saw, so the audit can say whether its calibration numbers are in-sample; a file
  // from before calibrate chose splits fitted on every pair.
  const calibrated = Object.values(temperatures).some((t) => t.source === 'calibrated');
  const calibratedOn = calibrated ? { calibratedOn: calibration?.splits ?? 'all' } : {};
  const written = { ...consensusOptions, rule, ties: summary.ties, temperatures, ...calibratedOn };
  const optionsFile = consensusOptionsLocation(dir, name);
  await writeFileAtomic(optionsFile.path, Buffer.from(`${JSON.stringify(written, null, 2)}\n`));
  summary.seconds = (Date.now() - started.getTime()) / 1000;
  // Weights and seed are recorded as text, as they were when they came in as flag text: readers of older manifests
  // compare the two.
  const seedText = options.seed === undefined ? null : String(options.seed);
  const recorded = { rule, ties: summary.ties, margin: summary.margin, weights: weightsText ?? null, seed: seedText, temperatures };
  await recordRun(
    dir,
    runRecord(
      'consensus',
      recorded,
      [],
      { read: summary.pairs, taken: summary.kept, rejected: summary.pairs - summary.kept, byReason: summary.byReason },
      started,
      WHOLE,
    ),
  );
  return summary;
}

export interface CalibrationSummary {
  dir: string;
  metrics: Record<string, CalibrationRecord>;
  /** The splits whose labelled pairs were fitted on. */
  splits: string[];
  /** How they were chosen: named by --split, the train split by default, or every split when there is no train split. */
  splitChoice: 'given' | 'train' | 'all';
  file: string;
}

/** A split the default fit uses: `train` and its variants (train_unique, train-2023). */
const isTrainSplit = (split: string): boolean => /^train(?:$|[^a-z])/i.test(split);

/**
 * Fits each metric's τ by maximum likelihood against the human labels of the chosen splits, into calibration.json.
 * By default only the train split(s) when the dataset has one, so the audit's calibration of test pairs is out of
 * sample; else every split.
 */
export async function runCalibrate(dir: string, options: { metrics?: string[]; splits?: string[] } = {}): Promise<CalibrationSummary> {
  const table: ScoreTable = await loadScoreTable(dir, options.metrics);
  const samples = table.metrics.map(() => new CalibrationSample());
  const files = await listParts(dir, 'pairs');
  const present = new Set<string>();
  for (const file of files) {
    const splits = textCodes((await readPart(dir, file)).getChild('split')!);
    const used = new Uint8Array(splits.labels.length);
    for (const code of splits.codes) if (code >= 0) used[code] = 1;
    splits.labels.forEach((split, code) => used[code] === 1 && present.add(split));
  }
  const known = [...present].sort();
  let chosen: string[];
  let splitChoice: CalibrationSummary['splitChoice'];
  if (options.splits && options.splits.length > 0) {
    const unknown = options.splits.filter((s) => !present.has(s));
    if (unknown.length > 0) {
      const here = known.join(', ') || 'none';
      throw new ConsensusOptionError(`${join(dir, 'pairs')}: no pair has split "${unknown[0]}" (splits here: ${here})`);
    }
    chosen = [...new Set(options.splits)].sort();
    splitChoice = 'given';
  } else if (known.some(isTrainSplit)) {
    chosen = known.filter(isTrainSplit);
    splitChoice = 'train';
  } else {
    chosen = known;
    splitChoice = 'all';
  }
  const wanted = new Set(chosen);
  const lookup = new ScoreLookup(table.shared);
  for (const file of files) {
    const part = await readPart(dir, file);
    const n = part.numRows;
    const promptWords = columnWords(part.getChild('prompt_id')!, n);
    const wordsA = columnWords(part.getChild('image_a')!, n);
    const wordsB = columnWords(part.getChild('image_b')!, n);
    const human = doublesOf(part.getChild('human_pref')!);
    const splits = textCodes(part.getChild('split')!);
    const chosenCode = splits.labels.map((split) => wanted.has(split));
    for (let i = 0; i < n; i++) {
      const y = human[i]!;
      // A null label (NaN here) is no sample, as the sample itself would leave it out.
      if (Number.isNaN(y)) continue;
      const code = splits.codes[i]!;
      // With no split named and none present, every pair counts (a null split is no reason to leave a pair out).
      if (splitChoice !== 'all' && (code < 0 || !chosenCode[code])) continue;
      const prompt = lookup.promptOf(promptWords, i * 4);
      const rowA = lookup.rowOfPrompt(wordsA, i * 4, prompt);
      const rowB = lookup.rowOfPrompt(wordsB, i * 4, prompt);
      for (let m = 0; m < samples.length; m++) {
        const d = lookup.score(m, rowA) - lookup.score(m, rowB);
        samples[m]!.addOne(d, y);
      }
    }
  }
  const metrics: Record<string, CalibrationRecord> = {};
  table.metrics.forEach((info, m) => {
    metrics[info.name] = calibrationRecord(samples[m]!.fit(info.temperature));
  });
  const file = { splits: chosen, splitChoice, metrics };
  await writeFileAtomic(join(dir, CALIBRATION_FILE), Buffer.from(`${JSON.stringify(file, null, 2)}\n`));
  return { dir, metrics, splits: chosen, splitChoice, file: CALIBRATION_FILE };
}

export { ruleFolder } from '../core/dataset-meta.ts';
