import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveShard, ShardError } from '../../src/core/shard.ts';

// `sbatch --array=0-63:2` starts 32 tasks with ids 0, 2, …, 62: SLURM_ARRAY_TASK_COUNT=32, SLURM_ARRAY_TASK_STEP=2.
const stepped = (id: number, extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
  SLURM_ARRAY_TASK_ID: String(id),
  SLURM_ARRAY_TASK_COUNT: '32',
  SLURM_ARRAY_TASK_MIN: '0',
  SLURM_ARRAY_TASK_MAX: '62',
  SLURM_ARRAY_TASK_STEP: '2',
  ...extra,
});

test('a Slurm array with a step: task ids 0, 2, …, 62 are shards 0 … 31 of 32, each once', () => {
  const seen = new Set<number>();
  for (let id = 0; id <= 62; id += 2) {
    const shard = resolveShard({}, stepped(id));
    assert.equal(shard.count, 32);
    assert.equal(shard.index, id / 2, `task ${id}`);
    seen.add(shard.index);
  }
  assert.equal(seen.size, 32, 'every shard has exactly one task');
});

test('a Slurm array with a step and a first id: --array=10-40:5 gives shards 0 … 6 of 7', () => {
  const env = (id: number): NodeJS.ProcessEnv => ({
    SLURM_ARRAY_TASK_ID: String(id),
    SLURM_ARRAY_TASK_COUNT: '7',
    SLURM_ARRAY_TASK_MIN: '10',
    SLURM_ARRAY_TASK_MAX: '40',
    SLURM_ARRAY_TASK_STEP: '5',
  });
  assert.deepEqual(
    [10, 15, 20, 25, 30, 35, 40].map((id) => resolveShard({}, env(id)).index),
    [0, 1, 2, 3, 4, 5, 6],
  );
});

test('a task id off the step is an error naming the variables, not a wrong shard', () => {
  assert.throws(
    () => resolveShard({}, stepped(3)),
    (error: unknown) => {
      assert.ok(error instanceof ShardError);
      assert.match((error as Error).message, /SLURM_ARRAY_TASK_STEP/);
      return true;
    },
  );
  assert.throws(() => resolveShard({}, stepped(2, { SLURM_ARRAY_TASK_STEP: 'x' })), ShardError);
});

test('a Slurm array of ids that are not a range (--array=1,4,9) is refused with a clear error', () => {
  // Slurm sets no step for a list: its ids cannot be mapped to 0..n-1 without the list, which the task cannot see.
  assert.throws(
    () => resolveShard({}, { SLURM_ARRAY_TASK_ID: '9', SLURM_ARRAY_TASK_COUNT: '3', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_MAX: '9' }),
    /--array=.*range|--shard/,
  );
});
