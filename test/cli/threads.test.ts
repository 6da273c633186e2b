// bin/bdpo.cjs sizes libuv's thread pool before it starts: one decode lane per image worker plus four for file I/O,
// unless the user set UV_THREADPOOL_SIZE; the summary says what was used.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { tempDir } from '../support/tmp.ts';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const BIN = join(REPO, 'bin/bdpo.cjs');

function ingestPickapic(out: string, extra: string[], env: NodeJS.ProcessEnv = {}): string {
  const { UV_THREADPOOL_SIZE: _unset, ...inherited } = process.env;
  const run = spawnSync(process.execPath, [BIN, 'ingest', 'pickapic', join(REPO, 'data/pickapic'), '--out', out, ...extra], {
    cwd: REPO,
    encoding: 'utf8',
    env: { ...inherited, ...env },
  });
  assert.equal(run.status, 0, run.stderr);
  return run.stdout;
}

test('the CLI sizes libuv for the workers asked for, and for one per core by default', async (t) => {
  const root = await tempDir(t);
  assert.match(ingestPickapic(join(root, 'three'), ['--workers', '3']), /threads: 3 image workers, 7 libuv, on \d+ cores/);
  const cores = availableParallelism();
  assert.match(ingestPickapic(join(root, 'default'), []), new RegExp(`threads: ${cores} image workers, ${cores + 4} libuv`));
});

test("the user's UV_THREADPOOL_SIZE is kept", async (t) => {
  const root = await tempDir(t);
  assert.match(ingestPickapic(join(root, 'mine'), ['--workers=2'], { UV_THREADPOOL_SIZE: '9' }), /threads: 2 image workers, 9 libuv/);
});
