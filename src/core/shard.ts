// Sharding without a coordinator (docs/architecture.md "Sharding"): which shard this process is (--shard, a Kubernetes
// Indexed Job, a Slurm array) and, for keys outside a run's dealt list, which shard a key hashes to.
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
  if (env.SLURM_ARRAY_TASK_ID !== undefined && env.SLURM_ARRAY_TASK_COUNT !== undefined) return slurmShard(env);
  if (options.shards !== undefined) throw new ShardError('--shards n needs JOB_COMPLETION_INDEX, or use --shard i/n');
  return WHOLE;
}

/**
 * A Slurm array task's shard. `--array=0-63:2` runs ids 0, 2, …, 62 with SLURM_ARRAY_TASK_STEP=2: the shard is the
 * task's position in the range, (id − min) / step. Ids that are not such a range (`--array=1,4,9`) cannot be mapped
 * without the list, which a task does not see, so they are refused rather than guessed.
 */
function slurmShard(env: NodeJS.ProcessEnv): Shard {
  const id = Number(env.SLURM_ARRAY_TASK_ID);
  const count = Number(env.SLURM_ARRAY_TASK_COUNT);
  const first = Number(env.SLURM_ARRAY_TASK_MIN ?? 0);
  const step = Number(env.SLURM_ARRAY_TASK_STEP ?? 1);
  if (!Number.isInteger(step) || step < 1)
    throw new ShardError(`SLURM_ARRAY_TASK_STEP must be an integer ≥ 1, got "${env.SLURM_ARRAY_TASK_STEP}"`);
  if (env.SLURM_ARRAY_TASK_MAX !== undefined) {
    const last = Number(env.SLURM_ARRAY_TASK_MAX);
    // The array's top id, or the MAX of its directive (0-63:2 tops at 62): either way floor((max − min) / step) + 1 tasks.
    if (Math.floor((last - first) / step) + 1 !== count) {
      throw new ShardError(
        `the Slurm array ${first}-${last}:${step} does not hold ${count} tasks: use --array=MIN-MAX[:STEP] (a range), ` +
          'or pass --shard i/n',
      );
    }
  }
  if ((id - first) % step !== 0) {
    throw new ShardError(`SLURM_ARRAY_TASK_ID ${id} is not SLURM_ARRAY_TASK_MIN ${first} plus a multiple of SLURM_ARRAY_TASK_STEP ${step}`);
  }
  return checkShard((id - first) / step, count);
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
