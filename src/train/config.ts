// The JSON config of a training run (`bdpo train --config train.json`): every key checked, defaults filled in, and
// one-line errors that name the key. Which keys may change when a run is resumed is decided here too: the ones that
// steer the run (how long, how often to log, validate and checkpoint) may; the ones that decide the weights may not.
import { readFile } from 'node:fs/promises';
import { describeJsonSyntaxError } from '../io/json-file.ts';
import { validateDitConfig, type DitConfig } from './dit.ts';
import { validateReferenceOptions, type ReferenceOptions } from './reference.ts';
import { DEFAULT_BETA } from './dpo.ts';
import type { TrainerOptions } from './trainer-step.ts';
import { BdpoError } from '../core/errors.ts';

export class ConfigError extends BdpoError {
  override name = 'ConfigError';
}

/**
 * When the denoiser degrades: at every validation the model's MSE on the monitored pairs is compared with that of
 * the DPO starting point (the model after MSE pre-training) on the same pairs and noise. Past `factor` times it,
 * `stop` saves a checkpoint and ends the run (exit code 1 from the CLI); `warn` logs and goes on. The comparison is
 * with the starting point, not with the live reference, because a hard reference copies the collapse along with the
 * weights and would hide it.
 */
export interface MseGuard {
  factor: number;
  action: 'stop' | 'warn';
}

export interface TrainConfig {
  /** Free text, ignored. */
  description?: string;
  model: DitConfig;
  beta: number;
  learningRate: number;
  weightDecay: number;
  /** Clip the global gradient norm (null: no clipping). */
  maxGradNorm: number | null;
  /** Pairs per optimiser step. */
  batchSize: number;
  /** Pairs per forward/backward pass (gradient accumulation); null: the whole batch. */
  microBatch: number | null;
  /** DPO steps in all (pre-training not counted). */
  steps: number;
  seed: number;
  reference: ReferenceOptions;
  shuffleBuffer: number;
  captionDropout: number;
  /** Train on the consensus `soft` column (vote share) instead of the hard label. */
  useSoft: boolean;
  /** Splits trained on; null: every split (then validationSplits must be empty). */
  trainSplits: string[] | null;
  /** Held-out splits; [] or none present in the data: nothing is held out. */
  validationSplits: string[];
  /** Steps between checkpoints; 0: only at the end. */
  checkpointEvery: number;
  /** Steps between validations; 0: only at the end. */
  validateEvery: number;
  /** Held-out pairs evaluated (the first of a seeded shuffle); 0: no validation and no MSE guard. */
  validationPairs: number;
  /** Steps averaged into each metrics.jsonl line. */
  logEvery: number;
  /** Newest checkpoints kept on disk; null: all. */
  keepCheckpoints: number | null;
  /** Plain ε-MSE steps before DPO, so the reference is a working denoiser (0 for a real pre-trained model). */
  pretrainMseSteps: number;
  pretrainLearningRate: number;
  /** Pairs per pre-training step (both images of each are trained on). */
  pretrainBatchSize: number;
  mseGuard: MseGuard | null;
}

/** Keys that may differ between a run and its resumption: none of them changes the weights (microBatch only rounding). */
export const RESUMABLE_KEYS: ReadonlySet<keyof TrainConfig> = new Set<keyof TrainConfig>([
  'description',
  'steps',
  'logEvery',
  'checkpointEvery',
  'validateEvery',
  'validationPairs',
  'keepCheckpoints',
  'mseGuard',
  'microBatch',
]);

const MODEL_KEYS = [
  'latentChannels',
  'latentSize',
  'patch',
  'width',
  'depth',
  'heads',
  'textWidth',
  'mlpRatio',
  'lora',
  'posEmbed',
  'timeFreqDim',
];
const TOP_KEYS = [
  'description',
  'model',
  'beta',
  'learningRate',
  'weightDecay',
  'maxGradNorm',
  'batchSize',
  'microBatch',
  'steps',
  'seed',
  'reference',
  'shuffleBuffer',
  'captionDropout',
  'useSoft',
  'trainSplits',
  'validationSplits',
  'checkpointEvery',
  'validateEvery',
  'validationPairs',
  'logEvery',
  'keepCheckpoints',
  'pretrainMseSteps',
  'pretrainLearningRate',
  'pretrainBatchSize',
  'mseGuard',
];

// Bounds of the keys that tensors or buffers are allocated from: far above any model or run this toolkit trains,
// low enough that a typo is this message and not an allocation failure deep inside TensorFlow.js.
const MAX_DIM = 1024;
const MAX_WIDTH = 16_384;
const MAX_BATCH = 65_536;
const MAX_PAIRS_HELD = 1 << 24;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

class Reader {
  constructor(
    private readonly source: string,
    private readonly object: Json,
    private readonly prefix: string,
  ) {}

  fail(key: string, message: string): never {
    throw new ConfigError(`${this.source}: ${this.prefix}${key} ${message}`);
  }

  checkKeys(known: readonly string[]): void {
    for (const key of Object.keys(this.object)) {
      if (!known.includes(key)) throw new ConfigError(`${this.source}: unknown key "${this.prefix}${key}" (known: ${known.join(', ')})`);
    }
  }

  has(key: string): boolean {
    return this.object[key] !== undefined;
  }

  raw(key: string): unknown {
    return this.object[key];
  }

  private show(value: unknown): string {
    return JSON.stringify(value) ?? String(value);
  }

  number(key: string, fallback: number | undefined, check: (x: number) => boolean, requirement: string): number {
    const value = this.object[key];
    if (value === undefined) {
      if (fallback === undefined) this.fail(key, `is required (${requirement})`);
      return fallback;
    }
    if (typeof value !== 'number' || !Number.isFinite(value) || !check(value))
      this.fail(key, `must be ${requirement}, got ${this.show(value)}`);
    return value;
  }

  nullableNumber(key: string, fallback: number | null, check: (x: number) => boolean, requirement: string): number | null {
    if (this.object[key] === null) return null;
    if (this.object[key] === undefined) return fallback;
    return this.number(key, undefined, check, `${requirement} or null`);
  }

  /** An integer ≥ min; a `max` bounds the sizes that something is allocated from (a typo must not be a crash). */
  integer(key: string, fallback: number | undefined, min: number, max?: number): number {
    const requirement = max !== undefined ? `an integer in ${min}..${max}` : min === 0 ? 'a non-negative integer' : `an integer ≥ ${min}`;
    return this.number(key, fallback, (x) => Number.isInteger(x) && x >= min && (max === undefined || x <= max), requirement);
  }

  boolean(key: string, fallback: boolean): boolean {
    const value = this.object[key];
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') this.fail(key, `must be true or false, got ${this.show(value)}`);
    return value;
  }

  strings(key: string, fallback: string[] | null, allowNull: boolean): string[] | null {
    const value = this.object[key];
    if (value === undefined) return fallback;
    if (value === null && allowNull) return null;
    if (!Array.isArray(value) || value.some((s) => typeof s !== 'string' || s.length === 0)) {
      this.fail(key, `must be a list of split names${allowNull ? ' or null' : ''}, got ${this.show(value)}`);
    }
    return [...(value as string[])];
  }

  object_(key: string): Reader | null {
    const value = this.object[key];
    if (value === undefined || value === null) return null;
    if (!isObject(value)) this.fail(key, `must be an object, got ${this.show(value)}`);
    return new Reader(this.source, value, `${this.prefix}${key}.`);
  }
}

function parseModel(top: Reader): DitConfig {
  const r = top.object_('model');
  if (r === null) top.fail('model', 'is required (the DiT: latentChannels, latentSize, patch, width, depth, heads, textWidth, mlpRatio)');
  r.checkKeys(MODEL_KEYS);
  const size = (key: string, max: number): number => r.integer(key, undefined, 1, max);
  const model: DitConfig = {
    latentChannels: size('latentChannels', MAX_DIM),
    latentSize: size('latentSize', MAX_DIM),
    patch: size('patch', MAX_DIM),
    width: size('width', MAX_WIDTH),
    depth: size('depth', MAX_DIM),
    heads: size('heads', MAX_DIM),
    textWidth: size('textWidth', MAX_WIDTH),
    mlpRatio: r.number('mlpRatio', 4, (x) => x > 0 && x <= 64, 'a number in (0, 64]'),
  };
  if (r.has('timeFreqDim')) model.timeFreqDim = r.integer('timeFreqDim', undefined, 2, MAX_WIDTH);
  if (r.has('posEmbed')) {
    const pos = r.raw('posEmbed');
    if (pos !== 'sincos' && pos !== 'learned') r.fail('posEmbed', `must be "sincos" or "learned", got ${JSON.stringify(pos)}`);
    model.posEmbed = pos as 'sincos' | 'learned';
  }
  const lora = r.object_('lora');
  if (lora !== null) {
    lora.checkKeys(['rank', 'alpha']);
    model.lora = {
      rank: lora.integer('rank', undefined, 1, MAX_WIDTH),
      alpha: lora.number('alpha', undefined, (x) => x > 0, 'a positive number'),
    };
  }
  try {
    validateDitConfig(model);
  } catch (error) {
    top.fail('model', `is invalid: ${(error as Error).message.replace(/^dit config: /, '')}`);
  }
  return model;
}

function parseReference(top: Reader): ReferenceOptions {
  const r = top.object_('reference');
  if (r === null) return { mode: 'none' };
  r.checkKeys(['mode', 'every', 'alpha']);
  const mode = r.raw('mode') ?? 'none';
  if (mode !== 'none' && mode !== 'hard' && mode !== 'soft')
    r.fail('mode', `must be "none", "hard" or "soft", got ${JSON.stringify(mode)}`);
  const options: ReferenceOptions = { mode: mode as ReferenceOptions['mode'] };
  if (r.has('every')) options.every = r.integer('every', undefined, 1);
  if (r.has('alpha')) options.alpha = r.number('alpha', undefined, (x) => x > 0 && x <= 1, 'a number in (0, 1]');
  try {
    validateReferenceOptions(options);
  } catch (error) {
    top.fail('reference', `is invalid: ${(error as Error).message}`);
  }
  return options;
}

function parseGuard(top: Reader): MseGuard | null {
  if (top.raw('mseGuard') === null) return null;
  const r = top.object_('mseGuard');
  if (r === null) return { factor: 1.5, action: 'stop' };
  r.checkKeys(['factor', 'action']);
  const factor = r.number('factor', 1.5, (x) => x > 1, 'a number > 1');
  const action = r.raw('action') ?? 'stop';
  if (action !== 'stop' && action !== 'warn') r.fail('action', `must be "stop" or "warn", got ${JSON.stringify(action)}`);
  return { factor, action: action as MseGuard['action'] };
}

/** Checks a parsed JSON value and fills in the defaults; `source` names the file in error messages. */
export function parseTrainConfig(value: unknown, source = 'config'): TrainConfig {
  if (!isObject(value)) throw new ConfigError(`${source}: a training config is a JSON object`);
  const r = new Reader(source, value, '');
  r.checkKeys(TOP_KEYS);
  if (r.has('description') && typeof r.raw('description') !== 'string') r.fail('description', 'must be a string');
  const model = parseModel(r);
  const learningRate = r.number('learningRate', 1e-4, (x) => x > 0, 'a positive number');
  const batchSize = r.integer('batchSize', 8, 1, MAX_BATCH);
  const microBatch = r.nullableNumber(
    'microBatch',
    null,
    (x) => Number.isInteger(x) && x >= 1 && x <= MAX_BATCH,
    `an integer in 1..${MAX_BATCH}`,
  );
  if (microBatch !== null && microBatch > batchSize) r.fail('microBatch', `(${microBatch}) must not exceed batchSize (${batchSize})`);
  const trainSplits = r.strings('trainSplits', ['train'], true);
  const validationSplits = r.strings('validationSplits', ['validation_unique'], false)!;
  if (trainSplits === null && validationSplits.length > 0) {
    r.fail(
      'trainSplits',
      'is null (every split), which would train on the validation splits too: list the training splits, or set validationSplits to []',
    );
  }
  const overlap = trainSplits?.filter((s) => validationSplits.includes(s)) ?? [];
  if (overlap.length > 0) r.fail('validationSplits', `share ${overlap.join(', ')} with trainSplits: held-out pairs must not be trained on`);
  const config: TrainConfig = {
    model,
    beta: r.number('beta', DEFAULT_BETA, (x) => x > 0, 'a positive number'),
    learningRate,
    weightDecay: r.number('weightDecay', 1e-2, (x) => x >= 0, 'a number ≥ 0'),
    maxGradNorm: r.nullableNumber('maxGradNorm', 1, (x) => x > 0, 'a positive number'),
    batchSize,
    microBatch,
    steps: r.integer('steps', undefined, 0),
    seed: r.number('seed', 0, (x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32, 'an integer in [0, 2^32)'),
    reference: parseReference(r),
    shuffleBuffer: r.integer('shuffleBuffer', 1024, 0, MAX_PAIRS_HELD),
    captionDropout: r.number('captionDropout', 0, (x) => x >= 0 && x <= 1, 'a probability in [0, 1]'),
    useSoft: r.boolean('useSoft', false),
    trainSplits,
    validationSplits,
    checkpointEvery: r.integer('checkpointEvery', 500, 0),
    validateEvery: r.integer('validateEvery', 100, 0),
    validationPairs: r.integer('validationPairs', 256, 0, MAX_PAIRS_HELD),
    logEvery: r.integer('logEvery', 10, 1),
    keepCheckpoints: r.nullableNumber('keepCheckpoints', null, (x) => Number.isInteger(x) && x >= 1, 'a positive integer'),
    pretrainMseSteps: r.integer('pretrainMseSteps', 0, 0),
    pretrainLearningRate: r.number('pretrainLearningRate', learningRate, (x) => x > 0, 'a positive number'),
    pretrainBatchSize: r.integer('pretrainBatchSize', batchSize, 1, MAX_BATCH),
    mseGuard: parseGuard(r),
  };
  if (r.has('description')) config.description = r.raw('description') as string;
  return config;
}

export async function readTrainConfig(path: string): Promise<TrainConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(
      `${path}: cannot read the training config (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ConfigError(`${path}: not valid JSON (${describeJsonSyntaxError(text)})`);
  }
  return parseTrainConfig(value, path);
}

/** The keys outside RESUMABLE_KEYS whose values differ: a resumed run must not change them. */
export function weightKeysThatDiffer(a: TrainConfig, b: TrainConfig): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)] as Array<keyof TrainConfig>);
  return [...keys].filter((key) => !RESUMABLE_KEYS.has(key) && JSON.stringify(a[key]) !== JSON.stringify(b[key])).sort();
}

/** What the DPO trainer is built with. */
export function trainerOptions(config: TrainConfig): TrainerOptions {
  return {
    seed: config.seed,
    learningRate: config.learningRate,
    weightDecay: config.weightDecay,
    ...(config.maxGradNorm === null ? {} : { maxGradNorm: config.maxGradNorm }),
    beta: config.beta,
    ...(config.microBatch === null ? {} : { microBatch: config.microBatch }),
    reference: config.reference,
  };
}
