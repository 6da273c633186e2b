import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expectedDataset, hostileScenario, writePickapicShard } from '../support/pickapic-fixture.ts';
import { tempDir } from '../support/tmp.ts';

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/bdpo.cjs');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `bdpo …` as a user runs it: a separate process, no terminal. */
function bdpo(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BDPO_DEBUG: '', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

const lines = (text: string) => text.split('\n').filter((line) => line !== '');

// Each `bdpo` start costs a second or more of CPU, so the runs of a test go side by side.

test('--help of bdpo, ingest and inspect: exit 0, usage on stdout, nothing on stderr', async () => {
  const runs = await Promise.all([bdpo(['--help']), bdpo(['ingest', '--help']), bdpo(['inspect', '--help'])]);
  const [top, ingest, inspect] = runs;
  for (const run of runs) {
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '');
  }
  assert.match(top!.stdout, /usage: bdpo <command>/);
  assert.match(top!.stdout, /^\s+ingest\s/m);
  assert.match(top!.stdout, /^\s+inspect\s/m);
  assert.match(ingest!.stdout, /bdpo ingest pickapic <shard\.parquet\|folder>… --out DIR/);
  assert.match(ingest!.stdout, /--shard i\/n/);
  assert.match(inspect!.stdout, /usage: bdpo inspect DIR/);
});

test('bad arguments and unreadable inputs: exit 2 or 1 with one line on stderr, no stack trace', async (t) => {
  const root = await tempDir(t);
  const out = join(root, 'out');
  const cases: Array<[string, string[], number, RegExp]> = [
    ['unknown option', ['ingest', 'parti', 'x.tsv', '--out', out, '--bogus'], 2, /--bogus/],
    ['missing --out', ['ingest', 'pickapic', root], 2, /--out is required/],
    ['unknown source', ['ingest', 'laion', root, '--out', out], 2, /unknown source "laion"/],
    ['nonexistent input', ['ingest', 'pickapic', join(root, 'nope.parquet'), '--out', out], 1, /nope\.parquet: no such file or folder/],
  ];
  const runs = await Promise.all(cases.map(([, args]) => bdpo(args)));
  // Compared as one table, so that a failure shows every case at once.
  const seen = cases.map(([label, , , message], i) => ({
    label,
    code: runs[i]!.code,
    stderrLines: lines(runs[i]!.stderr).length,
    stackTrace: /^\s+at /m.test(runs[i]!.stderr),
    saysWhat: message.test(runs[i]!.stderr) && runs[i]!.stderr.startsWith('bdpo '),
    stderr: runs[i]!.stderr,
  }));
  const wanted = cases.map(([label, , code], i) => ({
    label,
    code,
    stderrLines: 1,
    stackTrace: false,
    saysWhat: true,
    stderr: seen[i]!.stderrLines === 1 ? seen[i]!.stderr : '(one line)',
  }));
  assert.deepEqual(seen, wanted);
});

test('ingest --json prints the summary as JSON; inspect prints counts, rejects, label balance and tie rate', async (t) => {
  const root = await tempDir(t);
  const { rows, expected } = await hostileScenario();
  await mkdir(join(root, 'in'));
  const name = 'train-00000-of-00002.parquet';
  await writePickapicShard(join(root, 'in', name), rows, { writer: 'duckdb', rowGroupSize: 6 });
  const want = expectedDataset([{ name, split: 'train', rows, expected }]);
  const out = join(root, 'out');

  const ingest = await bdpo(['ingest', 'pickapic', join(root, 'in'), '--out', out, '--json']);
  assert.equal(ingest.code, 0, ingest.stderr);
  assert.equal(ingest.stderr, '', 'no progress bar without a terminal');
  const summary = JSON.parse(ingest.stdout) as {
    source: string;
    shard: { index: number; count: number };
    counts: unknown;
    tables: unknown;
    unitsWritten: number;
  };
  assert.equal(summary.source, 'pickapic');
  assert.deepEqual(summary.shard, { index: 0, count: 1 });
  assert.deepEqual(summary.counts, want.counts);
  assert.deepEqual(summary.tables, { prompts: 4, images: 9, pairs: 6, rejects: 12 });
  assert.equal(summary.unitsWritten, 3);

  const text = await bdpo(['inspect', out]);
  assert.equal(text.code, 0, text.stderr);
  // Six pairs: labels 1, 0, 0.5, 1, unlabelled, 0 → a 2, b 2, tie 1, unlabelled 1; a preferred 2 of 4 decided
  // (50.0%), tie rate 1 of 5 labelled (20.0%).
  assert.match(text.stdout, /prompts\s+4 \(pickapic 4\)/);
  assert.match(text.stdout, /images\s+9,/);
  assert.match(text.stdout, /pairs\s+6 by split: train 6/);
  assert.match(text.stdout, /human labels: a 2, b 2, tie 1, unlabelled 1; a preferred 50\.0% of decided, tie rate 20\.0% of labelled/);
  assert.match(
    text.stdout,
    /rejects\s+12: bad_label 3, bad_image 2, duplicate_pair 2, empty_image 2, missing_prompt 2, identical_images 1/,
  );
  assert.match(text.stdout, /run ingest pickapic \[shard 0\/1\]: read 18 = taken 6 \+ rejected 12/);
});
