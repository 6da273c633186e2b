// Argument parsing for every command: node's parseArgs in strict mode, a --help text per command, and one error type
// that the entry point turns into a single line and exit code 2.
import { parseArgs } from 'node:util';
import { resolveShard, type Shard } from '../shard.ts';
import type { Device } from '../onnx/session.ts';

export class UsageError extends Error {}

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

export function parseCommand(argv: string[], options: OptionSpec, usage: string): Parsed | 'help' {
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

export function numberOption(parsed: Parsed, name: string): number | undefined {
  const value = stringOption(parsed, name);
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isFinite(number)) throw new UsageError(`--${name} must be a number, got "${value}"`);
  return number;
}

/** The options every model-running, sharded stage takes (label, encode). */
export const RUN_OPTIONS: OptionSpec = {
  device: { type: 'string' },
  threads: { type: 'string' },
  shard: { type: 'string' },
  shards: { type: 'string' },
};

export const RUN_OPTIONS_HELP = `  --device auto|cpu|cuda      auto: CUDA when onnxruntime-node's CUDA provider is installed, else CPU
  --threads N                 ONNX Runtime intra-op threads (default: all cores)
  --shard i/n, --shards n     shard i of n (0-based); defaults from JOB_COMPLETION_INDEX (+ --shards n)
                              or SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT`;

export function shardOption(parsed: Parsed): Shard {
  return resolveShard({ shard: stringOption(parsed, 'shard'), shards: stringOption(parsed, 'shards') });
}

export function runOptions(parsed: Parsed): { device: Device; intraOpNumThreads?: number; shard: Shard } {
  const device = stringOption(parsed, 'device') ?? 'auto';
  if (device !== 'auto' && device !== 'cpu' && device !== 'cuda') {
    throw new UsageError(`--device must be auto, cpu or cuda, got "${device}"`);
  }
  const threads = numberOption(parsed, 'threads');
  return { device, ...(threads === undefined ? {} : { intraOpNumThreads: threads }), shard: shardOption(parsed) };
}
