// Argument parsing for every command: node's parseArgs in strict mode, a --help text per command, and one error type
// that the entry point turns into a single line and exit code 2.
import { stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { InputError, UsageError } from '../core/errors.ts';
import { resolveShard, ShardError, type Shard } from '../core/shard.ts';
import type { Device } from '../models/session.ts';

// Re-exported: every command module reads its option helpers and this error from here.
export { UsageError } from '../core/errors.ts';

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

export function parseCommand(argv: string[], options: OptionSpec): Parsed | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(`${(error as Error).message.split('\n')[0]} (see --help)`);
  }
  if (parsed.values.help) return 'help';
  return parsed as Parsed;
}

export function stringOption(parsed: Parsed, name: string): string | undefined {
  const value = parsed.values[name];
  return typeof value === 'string' ? value : undefined;
}

export function requireOption(parsed: Parsed, name: string, usage: string): string {
  const value = stringOption(parsed, name);
  if (value === undefined || value === '') throw new UsageError(`--${name} is required (${usage.split('\n')[0]!.replace(/^usage: /, '')})`);
  return value;
}

/** Bounds of an integer option (inclusive); `multipleOf` for sizes that must divide evenly. */
export interface IntegerRange {
  min: number;
  max: number;
  multipleOf?: number;
}

/** Bounds of a real-valued option; `above`: the lower bound itself is excluded, `below`: likewise the upper. */
export interface NumberRange {
  min: number;
  max: number;
  above?: boolean;
  below?: boolean;
}

// The ranges the commands share. Upper bounds keep a typo from allocating or looping without end.
export const BATCH_SIZE: IntegerRange = { min: 1, max: 1024 };
export const THREADS: IntegerRange = { min: 1, max: 1024 };
/** Image worker threads; 0 stands for the default, one per core. */
export const WORKERS: IntegerRange = { min: 0, max: 1024 };
export const SHARD_COUNT: IntegerRange = { min: 1, max: 1_000_000 };
export const SEED: IntegerRange = { min: 0, max: 0xffffffff };
export const COUNT: IntegerRange = { min: 1, max: Number.MAX_SAFE_INTEGER };

// Plain decimal only: Number() would also take "", " ", "0x10" and "Infinity".
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

function decimal(text: string): number {
  return DECIMAL.test(text.trim()) ? Number(text) : Number.NaN;
}

function describeInteger(range: IntegerRange): string {
  const kind = range.multipleOf === undefined ? 'an integer' : `a multiple of ${range.multipleOf}`;
  return range.max >= Number.MAX_SAFE_INTEGER ? `${kind} ≥ ${range.min}` : `${kind} in ${range.min}..${range.max}`;
}

/** An integer option within `range`; anything else is a UsageError naming the flag and the value as given. */
export function integerOption(parsed: Parsed, name: string, range: IntegerRange): number | undefined {
  const text = stringOption(parsed, name);
  if (text === undefined) return undefined;
  const value = decimal(text);
  const fits =
    Number.isSafeInteger(value) &&
    value >= range.min &&
    value <= range.max &&
    (range.multipleOf === undefined || value % range.multipleOf === 0);
  if (!fits) throw new UsageError(`--${name} must be ${describeInteger(range)}, got "${text}"`);
  return value;
}

/** A finite number option within `range`; anything else is a UsageError naming the flag and the value as given. */
export function numberOption(parsed: Parsed, name: string, range: NumberRange): number | undefined {
  const text = stringOption(parsed, name);
  if (text === undefined) return undefined;
  const value = decimal(text);
  const fits =
    Number.isFinite(value) &&
    (range.above ? value > range.min : value >= range.min) &&
    (range.below ? value < range.max : value <= range.max);
  if (!fits) {
    const interval = `${range.above ? '(' : '['}${range.min}, ${range.max}${range.below ? ')' : ']'}`;
    throw new UsageError(`--${name} must be a number in ${interval}, got "${text}"`);
  }
  return value;
}

/** The options every model-running, sharded stage takes (label, encode). */
export const RUN_OPTIONS: OptionSpec = {
  device: { type: 'string' },
  threads: { type: 'string' },
  workers: { type: 'string' },
  shard: { type: 'string' },
  shards: { type: 'string' },
};

export const RUN_OPTIONS_HELP = `  --device auto|cpu|cuda      auto: CUDA when onnxruntime-node's CUDA provider is installed, else CPU
  --threads N                 ONNX Runtime intra-op threads (default: all cores)
  --workers N                 image decode/preprocess worker threads (default or 0: all cores)
  --shard i/n, --shards n     shard i of n (0-based); defaults from JOB_COMPLETION_INDEX (+ --shards n)
                              or SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT`;

export function shardOption(parsed: Parsed): Shard {
  const shards = integerOption(parsed, 'shards', SHARD_COUNT);
  const shard = stringOption(parsed, 'shard');
  try {
    return resolveShard({ shard, shards });
  } catch (error) {
    if (!(error instanceof ShardError)) throw error;
    // A bad --shard is a usage error; one that comes from the scheduler's environment names its variables itself.
    throw new UsageError(shard === undefined ? error.message : `--shard "${shard}": ${error.message.replace(/^--shard /, '')}`);
  }
}

export function runOptions(parsed: Parsed): { device: Device; intraOpNumThreads?: number; workers?: number; shard: Shard } {
  const device = stringOption(parsed, 'device') ?? 'auto';
  if (device !== 'auto' && device !== 'cpu' && device !== 'cuda') {
    throw new UsageError(`--device must be auto, cpu or cuda, got "${device}"`);
  }
  const threads = integerOption(parsed, 'threads', THREADS);
  const workers = integerOption(parsed, 'workers', WORKERS);
  return {
    device,
    ...(threads === undefined ? {} : { intraOpNumThreads: threads }),
    ...(workers === undefined ? {} : { workers }),
    shard: shardOption(parsed),
  };
}

/** The one positional DIR of a command that reads a dataset directory: a usage error without it, an input error if
 * it is not a folder. */
export async function datasetDirArgument(parsed: Parsed, usage: string): Promise<string> {
  const dir = parsed.positionals[0];
  if (dir === undefined || parsed.positionals.length > 1) throw new UsageError(usage.split('\n')[0]!);
  const info = await stat(dir).catch(() => null);
  if (!info?.isDirectory()) throw new InputError(`${dir}: not a dataset directory`);
  return dir;
}
