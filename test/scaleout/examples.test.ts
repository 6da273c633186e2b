// The cluster examples as shipped: the facts the tool relies on, read from the files themselves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveShard } from '../../src/core/shard.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

test('examples/kubernetes: Indexed Jobs whose --shards is their completions; each index is one shard', async () => {
  const text = await readFile(join(ROOT, 'examples/kubernetes/ingest-label-job.yaml'), 'utf8');
  const jobs = text.split(/^---$/m);
  assert.equal(jobs.length, 2, 'an ingest Job and a label Job');
  for (const job of jobs) {
    assert.match(job, /^\s+completionMode: Indexed$/m);
    const completions = Number(/^\s+completions: (\d+)$/m.exec(job)![1]);
    const command = /command:(.*?)(?:resources:)/s.exec(job)![1]!;
    const shards = Number(/--shards"?,?\s*(?:-\s*)?"?(\d+)/.exec(command)![1]);
    assert.equal(shards, completions, 'bdpo must be told the Job size');
    // Kubernetes sets JOB_COMPLETION_INDEX = 0 … completions − 1 in the pods of an Indexed Job.
    const indices = Array.from({ length: completions }, (_, i) => resolveShard({ shards }, { JOB_COMPLETION_INDEX: String(i) }).index);
    assert.deepEqual(indices, [...Array(completions).keys()]);
  }
});

test('examples/slurm: the stepped --array of label.sbatch maps its tasks onto shards 0 … n-1, each once', async () => {
  const text = await readFile(join(ROOT, 'examples/slurm/label.sbatch'), 'utf8');
  const [, min, max, step] = /^#SBATCH --array=(\d+)-(\d+):(\d+)$/m.exec(text)!.map(Number) as [number, number, number, number];
  assert.ok(step > 1, 'the example uses a step, the case that needs SLURM_ARRAY_TASK_STEP');
  const ids: number[] = [];
  for (let id = min; id <= max; id += step) ids.push(id);
  // What Slurm sets in each task of that array.
  const shards = ids.map((id) =>
    resolveShard(
      {},
      {
        SLURM_ARRAY_TASK_ID: String(id),
        SLURM_ARRAY_TASK_COUNT: String(ids.length),
        SLURM_ARRAY_TASK_MIN: String(min),
        SLURM_ARRAY_TASK_MAX: String(max),
        SLURM_ARRAY_TASK_STEP: String(step),
      },
    ),
  );
  assert.deepEqual(
    shards.map((s) => s.index),
    [...ids.keys()],
  );
  assert.ok(shards.every((s) => s.count === ids.length));
  assert.match(text, /bdpo label/);
});
