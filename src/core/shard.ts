// Sharding without a coordinator (docs/design.md §7): shard i of n takes the ids whose stable hash falls in its class.
import { sha256Hex } from './ids.ts';
import { UsageError } from './errors.ts';

export interface Shard {
  index: number;
  count: number;
}

export const WHOLE: Shard = { index: 0, count: 1 };

export class ShardError extends UsageError {}

/** Parses "i/n" (0-based i). */
export function parseShard(text: string): Shard {
  const match = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!match) throw new ShardError(`--shard must look like i/n (0-based), e.g. 0/4; got "${text}"`);
  return checkShard(Number(match[1]), Number(match[2]));
}

function checkShard(index: number, count: number): Shard {
  if (!Number.isInteger(count) || count < 1) throw new ShardError(`shard count must be ≥ 1, got ${count}`);
  if (!Number.isInteger(index) || index < 0 || index >= count) {
    throw new ShardError(`shard index must be in 0..${count - 1}, got ${index}`);
  }
  return { index, count };
}

/**
 * The shard this process runs: --shard wins; else a Kubernetes Indexed Job's JOB_COMPLETION_INDEX with --shards n;
 * else a Slurm array's task id and count; else the whole input.
 */
export function resolveShard(
  options: { shard?: string | undefined; shards?: string | number | undefined },
  env: NodeJS.ProcessEnv = process.env,
): Shard {
  if (options.shard !== undefined) return parseShard(options.shard);
  if (env.JOB_COMPLETION_INDEX !== undefined) {
    if (options.shards === undefined) {
      throw new ShardError("JOB_COMPLETION_INDEX is set: pass --shards n (the Job's completions) as well");
    }
    return checkShard(Number(env.JOB_COMPLETION_INDEX), Number(options.shards));
  }
  if (env.SLURM_ARRAY_TASK_ID !== undefined && env.SLURM_ARRAY_TASK_COUNT !== undefined) {
    const first = Number(env.SLURM_ARRAY_TASK_MIN ?? 0);
    return checkShard(Number(env.SLURM_ARRAY_TASK_ID) - first, Number(env.SLURM_ARRAY_TASK_COUNT));
  }
  if (options.shards !== undefined) throw new ShardError('--shards n needs JOB_COMPLETION_INDEX, or use --shard i/n');
  return WHOLE;
}

/** Which shard owns a key: content ids (hex sha256) are used as they are, other keys are hashed first. */
export function ownerOf(key: string, count: number): number {
  if (count === 1) return 0;
  const hex = /^[0-9a-f]{16,}$/.test(key) ? key : sha256Hex(key);
  return Number(BigInt(`0x${hex.slice(0, 13)}`) % BigInt(count));
}

export function owns(shard: Shard, key: string): boolean {
  return shard.count === 1 || ownerOf(key, shard.count) === shard.index;
}

export function shardLabel(shard: Shard): string {
  return `s${shard.index}of${shard.count}`;
}
