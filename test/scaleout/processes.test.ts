// n = 3 real `bdpo` processes at once into one directory, as the pods of a Kubernetes Indexed Job run: one is
// SIGKILLed mid-run and restarted; the union must be one unsharded run, as every reader sees it and byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listParts, readRows } from '../../src/io/arrow-table.ts';
import { readManifest } from '../../src/core/manifest.ts';
import { loadScoreTable } from '../../src/core/score-table.ts';
import type { TableName } from '../../src/core/schema.ts';
import { cleanRows, noiseImages, writePickapicShard } from '../support/pickapic-fixture.ts';
import { writeMetricsFixture } from '../support/metrics-fixture.ts';
import { tempDir } from '../support/tmp.ts';

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/bdpo.cjs');

interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function bdpo(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; ended: Promise<Ended> } {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const ended = new Promise<Ended>((done) => child.on('close', (code, signal) => done({ code, signal, stderr })));
  return { child, ended };
}

const sha = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

async function rowsOf(dir: string, table: TableName): Promise<string[]> {
  const rows: string[] = [];
  for await (const row of readRows(dir, table)) {
    rows.push(JSON.stringify(row, (_key, value: unknown) => (value instanceof Uint8Array ? `sha256:${sha(value)}` : value)));
  }
  return rows.sort();
}

/** Every part file (tables and scores) by name, with its bytes' sha256. */
async function partFiles(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const table of ['prompts', 'images', 'pairs', 'rejects']) {
    for (const file of await listParts(dir, table)) files.set(file, sha(await readFile(join(dir, file))));
  }
  for (const metric of await readdir(join(dir, 'scores')).catch(() => [] as string[])) {
    for (const file of await listParts(dir, `scores/${metric}`, '.parquet')) files.set(file, sha(await readFile(join(dir, file))));
  }
  return files;
}

async function recordKeys(dir: string, stage: string): Promise<string[]> {
  const folder = join(dir, 'meta/units', stage);
  const keys: string[] = [];
  for (const name of await readdir(folder).catch(() => [] as string[])) {
    if (!name.endsWith('.json') || name.startsWith('.')) continue;
    keys.push((JSON.parse(await readFile(join(folder, name), 'utf8')) as { key: string }).key);
  }
  return keys;
}

test('3 bdpo processes into one directory, one killed and restarted: the union is one unsharded run', { timeout: 120_000 }, async (t) => {
  const root = await tempDir(t);
  const pool = await noiseImages(24, 300);
  // Two files of 4 row groups each: 8 units; every 17th row repeats an earlier one, so some duplicates cross units.
  const inputs = join(root, 'in');
  await writePickapicShard(join(inputs, 'train-00000-of-00002.parquet'), cleanRows(pool, 48, 11), {
    writer: 'hyparquet',
    rowGroupSize: 12,
  });
  await writePickapicShard(join(inputs, 'train-00001-of-00002.parquet'), cleanRows(pool, 48, 12), {
    writer: 'hyparquet',
    rowGroupSize: 12,
  });
  const metrics = await writeMetricsFixture(join(root, 'metrics'));
  const metricArgs = ['--metrics', metrics.metrics.pickscore, metrics.metrics.aesthetic, '--workers', '1'];

  const whole = join(root, 'whole');
  const shared = join(root, 'shared');
  const indexed = (i: number) => ({ JOB_COMPLETION_INDEX: String(i) });
  const ingestArgs = ['ingest', 'pickapic', inputs, '--out', shared, '--shards', '3'];
  // The unsharded reference runs beside the three shards (they all start at once, as the pods of a Job).
  const reference = bdpo(['ingest', 'pickapic', inputs, '--out', whole]);
  const shards = [0, 1, 2].map((i) => bdpo(ingestArgs, indexed(i)));

  // Shard 1 is killed once it has recorded one of its units, before it has recorded all of them.
  const unitKey = (file: string, group: number) => `ingest:pickapic:${file}-rg000${group}`;
  // Shards are dealt every third unit of the sorted unit keys.
  const ownedBy1 = ['train-00000-of-00002', 'train-00001-of-00002']
    .flatMap((file) => [0, 1, 2, 3].map((g) => unitKey(file, g)))
    .sort()
    .filter((_key, position) => position % 3 === 1);
  assert.ok(ownedBy1.length >= 2, `shard 1 owns ${ownedBy1.length} units: the fixture must give it at least two`);
  let killedAfter = 0;
  while (shards[1]!.child.exitCode === null) {
    killedAfter = (await recordKeys(shared, 'ingest')).filter((key) => ownedBy1.includes(key)).length;
    if (killedAfter >= 1) {
      shards[1]!.child.kill('SIGKILL');
      break;
    }
    await sleep(5);
  }
  const ends = await Promise.all([reference.ended, ...shards.map((s) => s.ended)]);
  assert.equal(ends[0]!.code, 0, ends[0]!.stderr);
  assert.equal(ends[1]!.code, 0, ends[1]!.stderr);
  assert.equal(ends[3]!.code, 0, ends[3]!.stderr);
  assert.equal(ends[2]!.signal, 'SIGKILL', `shard 1 ended on its own after ${killedAfter} units: make the fixture bigger`);
  const recordedAtKill = (await recordKeys(shared, 'ingest')).filter((key) => ownedBy1.includes(key)).length;
  assert.ok(recordedAtKill >= 1 && recordedAtKill < ownedBy1.length, `killed mid-run: ${recordedAtKill} of ${ownedBy1.length} units`);

  // Restart the killed shard; then all three label at once (and the reference beside them).
  const restarted = await bdpo(ingestArgs, indexed(1)).ended;
  assert.equal(restarted.code, 0, restarted.stderr);
  const labels = await Promise.all([
    bdpo(['label', whole, ...metricArgs]).ended,
    ...[0, 1, 2].map((i) => bdpo(['label', shared, ...metricArgs, '--shards', '3'], indexed(i)).ended),
  ]);
  for (const run of labels) assert.equal(run.code, 0, run.stderr);

  // Byte for byte: the same part files under the same names (a resumed shard writes what an uninterrupted one does).
  const [wholeFiles, sharedFiles] = [await partFiles(whole), await partFiles(shared)];
  assert.deepEqual([...sharedFiles.keys()].sort(), [...wholeFiles.keys()].sort());
  for (const [file, digest] of wholeFiles) assert.equal(sharedFiles.get(file), digest, file);

  // As every reader sees it: rows by id in every table, rejects by reason, and the scores.
  for (const table of ['prompts', 'images', 'pairs', 'rejects'] as const) {
    assert.deepEqual(await rowsOf(shared, table), await rowsOf(whole, table), table);
  }
  const reasons = async (dir: string) => {
    const byReason: Record<string, number> = {};
    for await (const row of readRows(dir, 'rejects')) byReason[row.reason] = (byReason[row.reason] ?? 0) + 1;
    return byReason;
  };
  const wholeReasons = await reasons(whole);
  assert.ok((wholeReasons.duplicate_pair ?? 0) > 0, 'the fixture has duplicate pairs');
  assert.deepEqual(await reasons(shared), wholeReasons);
  const [wholeScores, sharedScores] = [await loadScoreTable(whole), await loadScoreTable(shared)];
  assert.equal(sharedScores.images, wholeScores.images);
  for await (const image of readRows(whole, 'images')) {
    for (let m = 0; m < wholeScores.metrics.length; m++) {
      assert.equal(sharedScores.score(m, image.image_id, image.prompt_id), wholeScores.score(m, image.image_id, image.prompt_id));
    }
  }

  // Counts add up: read = taken + rejected for every shard's run; the shards' rows read sum to the unsharded run's.
  const runs = (await readManifest(shared)).runs.filter((run) => run.stage === 'ingest pickapic');
  assert.deepEqual(runs.map((run) => run.shard.index).sort(), [0, 1, 2], 'the killed run recorded no run');
  for (const run of runs) assert.equal(run.counts.read, run.counts.taken + run.counts.rejected);
  const [wholeRun] = (await readManifest(whole)).runs;
  assert.equal(
    runs.reduce((n, run) => n + run.counts.read, 0),
    wholeRun!.counts.read,
  );
  // One record per unit, whichever shard ran it; the manifest's units summarise them.
  assert.deepEqual((await recordKeys(shared, 'ingest')).sort(), (await recordKeys(whole, 'ingest')).sort());
  assert.deepEqual(Object.keys((await readManifest(shared)).units).sort(), Object.keys((await readManifest(whole)).units).sort());
});
