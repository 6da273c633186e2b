// A label run stopped in the middle of a batch — by SIGTERM or SIGINT (cleaned up on the way out) or by SIGKILL
// (cleaned up by the next run) — leaves no process, no temporary file and no lock behind once the re-run is done, and
// the re-run continues from the finished units to the very bytes an uninterrupted run writes. Real `bdpo` processes.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { UnitLedger } from '../../src/core/units.ts';
import { WHOLE } from '../../src/core/shard.ts';
import { HOST_TAG, isTempFileName } from '../../src/io/leftovers.ts';
import { cleanRows, noiseImages, writePickapicShard } from '../support/pickapic-fixture.ts';
import { writeMetricsFixture, type MetricsFixture } from '../support/metrics-fixture.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const BIN = join(REPO, 'bin/bdpo.cjs');

let root: string;
let fx: MetricsFixture;
let dataset: string;
let reference: Map<string, Buffer>;

function labelArgs(dir: string): string[] {
  return [BIN, 'label', dir, '--metrics', fx.metrics.clip, fx.metrics.aesthetic, '--batch-size', '2', '--workers', '1', '--threads', '1'];
}

function run(args: string[]): { child: ChildProcess; done: Promise<{ code: number | null; signal: string | null; out: string }> } {
  const child = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const done = new Promise<{ code: number | null; signal: string | null; out: string }>((resolveRun, fail) => {
    child.on('error', fail);
    child.on('close', (code, signal) => resolveRun({ code, signal, out }));
  });
  return { child, done };
}

/** Every file under `dir`, relative, with its bytes. */
async function filesUnder(dir: string, prefix = ''): Promise<Map<string, Buffer>> {
  const found = new Map<string, Buffer>();
  for (const entry of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) for (const [p, b] of await filesUnder(dir, path)) found.set(p, b);
    else found.set(path, await readFile(join(dir, path)));
  }
  return found;
}

const scoreParts = (files: Map<string, Buffer>): Map<string, Buffer> =>
  new Map([...files].filter(([path]) => path.startsWith('scores/') && path.endsWith('.parquet')));

/** Temporary files, lock files and lock-making files: none may outlive a finished re-run. */
const leftovers = (files: Map<string, Buffer>): string[] =>
  [...files.keys()].filter((path) => {
    const name = path.split('/').pop()!;
    return isTempFileName(name) || name.endsWith('.lock') || /\.lock\.\d+\.[0-9a-f]{8}\.(new|broken)$/.test(name);
  });

/** Resolves once the run has recorded its first finished unit: it is then in the middle of its units. */
async function firstRecordedUnit(dir: string, running: Promise<unknown>): Promise<void> {
  let finished = false;
  void running.then(() => (finished = true));
  for (;;) {
    const ledger = await UnitLedger.open(dir, 'label', WHOLE).catch(() => null);
    if (ledger !== null && ledger.records().length > 0) return;
    assert.ok(!finished, 'the run ended before it recorded a unit');
    await new Promise((wait) => setTimeout(wait, 10));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

before(async () => {
  root = await makeTempDir('bdpo-interrupt-');
  fx = await writeMetricsFixture(join(root, 'models'));
  const images = await noiseImages(60, 900, { width: 256, height: 256 });
  const input = join(root, 'train-00000-of-00001.parquet');
  await writePickapicShard(input, cleanRows(images, 120, 3), { writer: 'duckdb', rowGroupSize: 10 });
  dataset = join(root, 'dataset');
  await ingestPickapic([input], { out: dataset });
  const whole = join(root, 'whole');
  await cp(dataset, whole, { recursive: true });
  const uninterrupted = await run(labelArgs(whole)).done;
  assert.equal(uninterrupted.code, 0, uninterrupted.out);
  reference = scoreParts(await filesUnder(whole));
  assert.ok(reference.size >= 20, `${reference.size} score parts`);
});

after(async () => {
  if (root) await removeDir(root);
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} mid-run: exit 128+n, nothing half-written left, the re-run resumes to the same bytes`, async () => {
    const dir = join(root, `stopped-${signal}`);
    await cp(dataset, dir, { recursive: true });
    const first = run(labelArgs(dir));
    await firstRecordedUnit(dir, first.done);
    first.child.kill(signal);
    const stopped = await first.done;
    assert.equal(stopped.code, signal === 'SIGTERM' ? 143 : 130, stopped.out);
    assert.equal(alive(first.child.pid!), false);
    const afterStop = await filesUnder(dir);
    assert.deepEqual(leftovers(afterStop), [], 'a stopped run removes its temporary files and locks');
    assert.ok(scoreParts(afterStop).size < reference.size, 'stopped before the end');

    const again = await run(labelArgs(dir)).done;
    assert.equal(again.code, 0, again.out);
    assert.match(again.out, /[1-9]\d* already done/, 'the finished units are not redone');
    const final = await filesUnder(dir);
    assert.deepEqual(leftovers(final), []);
    assert.deepEqual([...scoreParts(final).keys()].sort(), [...reference.keys()].sort());
    for (const [path, bytes] of reference) assert.ok(scoreParts(final).get(path)!.equals(bytes), `${path} differs`);
  });
}

test('SIGKILL mid-run: the re-run sweeps what the killed process left, breaks its lock and resumes to the same bytes', async () => {
  const dir = join(root, 'killed');
  await cp(dataset, dir, { recursive: true });
  const first = run(labelArgs(dir));
  await firstRecordedUnit(dir, first.done);
  first.child.kill('SIGKILL');
  const killed = await first.done;
  assert.equal(killed.signal, 'SIGKILL');
  const pid = first.child.pid!;
  assert.equal(alive(pid), false);
  // What a kill in the middle of a write or of a manifest update leaves, named as the killed process named it.
  await mkdir(join(dir, 'scores/aesthetic'), { recursive: true });
  const halfWritten = `scores/aesthetic/.part-x.parquet.${HOST_TAG}.${pid}.0badc0de.tmp`;
  await writeFile(join(dir, halfWritten), 'half a Parquet file');
  const lock = { host: hostname(), pid, start: null, token: 'killed', since: new Date().toISOString() };
  await writeFile(join(dir, 'manifest.json.lock'), `${JSON.stringify(lock)}\n`);

  const again = await run(labelArgs(dir)).done;
  assert.equal(again.code, 0, again.out);
  const final = await filesUnder(dir);
  assert.equal(final.has(halfWritten), false, 'the killed writer’s temporary file is swept');
  assert.deepEqual(leftovers(final), []);
  assert.deepEqual([...scoreParts(final).keys()].sort(), [...reference.keys()].sort());
  for (const [path, bytes] of reference) assert.ok(scoreParts(final).get(path)!.equals(bytes), `${path} differs`);
});

test('a temporary file of a live writer, or of another host that may still be writing, is left alone', async () => {
  const dir = join(root, 'live');
  await cp(dataset, dir, { recursive: true });
  await mkdir(join(dir, 'scores/clip'), { recursive: true });
  const ours = `scores/clip/.part-y.parquet.${HOST_TAG}.${process.pid}.0000beef.tmp`;
  const foreign = 'scores/clip/.part-z.parquet.0f0f0f0f.12345.0000cafe.tmp';
  await writeFile(join(dir, ours), 'being written');
  await writeFile(join(dir, foreign), 'being written elsewhere');
  const again = await run(labelArgs(dir)).done;
  assert.equal(again.code, 0, again.out);
  const final = await filesUnder(dir);
  assert.ok(final.has(ours) && final.has(foreign));
});
