import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdir, writeFile, mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { readManifest } from '../../src/core/manifest.ts';
import {
  cleanOutcomes,
  cleanRows,
  datasetFiles,
  expectedDataset,
  hostileScenario,
  noiseImages,
  writePickapicShard,
  type PickapicRow,
} from '../support/pickapic-fixture.ts';
import { tempDir } from '../support/tmp.ts';

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/bdpo.cjs');
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function finished(child: ChildProcess): Promise<Finished> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((done, fail) => {
    child.on('error', fail);
    child.on('close', (code, signal) => done({ code, signal, stdout, stderr }));
  });
}

function bdpo(args: string[]): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

test('SIGKILL after the first unit, re-run: skips the finished units and ends byte-identical to an uninterrupted run', {
  timeout: 60_000,
}, async (t) => {
  const root = await tempDir(t);
  // Well-formed rows and the rejects that do not involve the image decoder, in 12 row groups of 20 rows.
  const pool = await noiseImages(60, 900);
  const { rows: hostile, expected: hostileExpected } = await hostileScenario();
  const kept = [0, 4, 5, 7, 8, 11, 12, 13, 14];
  const rows: PickapicRow[] = [...cleanRows(pool, 231, 5), ...kept.map((i) => hostile[i]!)];
  const input = join(root, 'train-00000-of-00001.parquet');
  await writePickapicShard(input, rows, { writer: 'arrow-rs', codec: 'zstd', rowGroupSize: 20 });
  const units = 12;

  const reference = join(root, 'uninterrupted');
  const whole = await ingestPickapic([input], { out: reference });
  assert.equal(whole.unitsWritten, units);

  // Interrupted run: killed as soon as a unit's record file is in place (a unit is recorded by its own file).
  const recordFiles = async (dir: string): Promise<number> =>
    (await readdir(join(dir, 'meta/units/ingest')).catch(() => [] as string[])).filter((n) => n.endsWith('.json') && !n.startsWith('.'))
      .length;
  const out = join(root, 'resumed');
  const child = bdpo(['ingest', 'pickapic', input, '--out', out]);
  const ended = finished(child);
  let doneAtKill = 0;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && child.exitCode === null) {
    doneAtKill = await recordFiles(out);
    if (doneAtKill >= 1) {
      child.kill('SIGKILL');
      break;
    }
    await sleep(2);
  }
  const killed = await ended;
  assert.equal(killed.signal, 'SIGKILL', `the run ended on its own (${killed.stderr}); make the fixture bigger`);
  const recorded = await recordFiles(out);
  assert.ok(recorded >= 1 && recorded < units, `${recorded} of ${units} units were recorded when killed`);
  assert.equal((await readManifest(out)).runs.length, 0, 'a killed run records no run');

  const again = await finished(bdpo(['ingest', 'pickapic', input, '--out', out, '--json']));
  assert.equal(again.code, 0, again.stderr);
  const summary = JSON.parse(again.stdout) as { unitsWritten: number; unitsSkipped: number; counts: unknown };
  assert.equal(summary.unitsSkipped, recorded);
  assert.ok(summary.unitsSkipped > 0 && summary.unitsWritten > 0);
  assert.equal(summary.unitsSkipped + summary.unitsWritten, units);
  assert.deepEqual(summary.counts, whole.counts, 'counts of skipped units come from the manifest');

  // Independent expectation of the counts.
  const want = expectedDataset([
    {
      name: 'train-00000-of-00001.parquet',
      split: 'train',
      rows,
      expected: [...cleanOutcomes(rows.slice(0, 231)), ...kept.map((i) => hostileExpected[i]!)],
    },
  ]);
  assert.deepEqual(whole.counts, want.counts);

  const resumed = await datasetFiles(out);
  const uninterrupted = await datasetFiles(reference);
  assert.deepEqual([...resumed.keys()], [...uninterrupted.keys()]);
  for (const [file, bytes] of uninterrupted) assert.ok(bytes.equals(resumed.get(file)!), `${file} differs`);
  // The same records, but for when each part was written.
  const unitRecords = async (dir: string) =>
    JSON.stringify((await readManifest(dir)).units, (key, value) => (key === 'mtimeMs' ? undefined : value));
  assert.equal(await unitRecords(out), await unitRecords(reference));
});

test('a manifest lock left by a killed process does not stall the next run', { timeout: 30_000 }, async (t) => {
  const root = await tempDir(t);
  const out = join(root, 'out');
  await mkdir(out);
  // The lock of a process that no longer exists, as SIGKILL during a manifest update leaves it.
  const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  await writeFile(join(out, 'manifest.json.lock'), `${gone.stdout}\n`);
  const list = join(root, 'prompts.tsv');
  await writeFile(list, 'Prompt\tCategory\na red cube\tArtifacts\na blue sphere\tArtifacts\n');

  const child = bdpo(['ingest', 'parti', list, '--out', out]);
  const ended = finished(child);
  const limit = 8_000;
  const timer = setTimeout(() => child.kill('SIGKILL'), limit);
  const result = await ended;
  clearTimeout(timer);
  assert.equal(
    result.signal,
    null,
    `still waiting for the dead process's lock after ${limit / 1000} s (a lock is only broken when 60 s old)`,
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(Object.keys((await readManifest(out)).units).length, 1);
});

test('a re-run after an input file changed: its units are redone and no row of the old content remains', async (t) => {
  const root = await tempDir(t);
  const pool = await noiseImages(12, 1200);
  const input = join(root, 'train-00000-of-00001.parquet');
  await writePickapicShard(input, cleanRows(pool, 30, 1), { writer: 'duckdb', rowGroupSize: 10 });
  const out = join(root, 'out');
  const first = await ingestPickapic([input], { out });
  assert.equal(first.unitsWritten, 3);

  // The file is replaced by a newer export: other rows, two row groups instead of three.
  const newer = cleanRows(pool, 20, 2);
  await writePickapicShard(input, newer, { writer: 'duckdb', rowGroupSize: 10 });
  const second = await ingestPickapic([input], { out });
  assert.deepEqual([second.unitsWritten, second.unitsSkipped], [2, 0]);

  const fresh = join(root, 'fresh');
  await ingestPickapic([input], { out: fresh });
  const want = await datasetFiles(fresh);
  const got = await datasetFiles(out);
  assert.deepEqual([...got.keys()], [...want.keys()], 'the parts are those of the new content only');
  for (const [file, bytes] of want) assert.ok(bytes.equals(got.get(file)!), `${file} differs`);
});
