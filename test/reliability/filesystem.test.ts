// What the stages write and delete on disk, with real processes where it matters: export refuses an --out it does
// not own, staging folders of dead processes are swept, a training run folder is locked, and the manifest lock says
// what it waits for and breaks locks that cannot be ours.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, mkdir, readdir, readFile, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ingestPickapic } from '../../src/ingest/pickapic.ts';
import { listParts, readRows } from '../../src/io/arrow-table.ts';
import { writeParquetPart } from '../../src/io/parquet.ts';
import { runConsensus } from '../../src/consensus/run.ts';
import { readManifest } from '../../src/core/manifest.ts';
import { consensusSpecs, LATENT_SPECS, SCORE_SPECS, TEXT_SPECS, type MetricInfo } from '../../src/core/schema.ts';
import { ExportError, runExport } from '../../src/export/export.ts';
import { encodeFloat16 } from '../../src/io/float16-bytes.ts';
import { sha256Hex } from '../../src/core/ids.ts';
import { seededRandom } from '../support/pickapic-fixture.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';

const REPO = new URL('../..', import.meta.url).pathname;
// Resolved here: a child may run in a folder with no node_modules above it.
const TSX = import.meta.resolve('tsx');
const BDPO = join(REPO, 'bin/bdpo.cjs');
const SAMPLE = join(REPO, 'data/pickapic');

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Runs `bdpo …` in a child process; killed (and reported as such) after `limitMs`. */
function bdpo(args: string[], options: { cwd?: string; limitMs?: number; onStderr?: (text: string) => void } = {}): Promise<Finished> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX, BDPO, ...args], {
      cwd: options.cwd ?? REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      options.onStderr?.(stderr);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.limitMs ?? 15_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, seconds: (performance.now() - started) / 1000 });
    });
  });
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.on('close', resolve));
  return child.pid!;
}

const exists = (path: string): Promise<boolean> =>
  stat(path).then(
    () => true,
    () => false,
  );

let root: string;
let dir: string;

before(async () => {
  root = await makeTempDir('bdpo-fs-');
  dir = join(root, 'ds');
  await ingestPickapic([SAMPLE], { out: dir });
  const random = seededRandom(5);
  const keys: Array<[string, string]> = [];
  for await (const row of readRows(dir, 'images')) keys.push([row.image_id, row.prompt_id]);
  for (const m of ['m1', 'm2', 'm3']) {
    await writeParquetPart(dir, `scores/${m}/part-0.parquet`, SCORE_SPECS, {
      image_id: keys.map((k) => k[0]),
      prompt_id: keys.map((k) => k[1]),
      score: keys.map(() => random()),
      metric_version: keys.map(() => 'v1'),
    });
    const info: MetricInfo = { name: m, kind: 'clip', version: 'v1', score: 'cos', temperature: 1 };
    await writeFile(join(dir, 'scores', m, 'metric.json'), JSON.stringify(info));
  }
  await runConsensus(dir, { rule: 'majority' });
});

after(async () => {
  if (root) await removeDir(root);
});

describe('export never deletes what it did not write', () => {
  test('--out naming the folder that holds the dataset is refused, and the dataset stays', async () => {
    const before = await readdir(dir);
    const result = await bdpo(['export', 'ds', '--rule', 'majority', '--out', '.'], { cwd: root });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /--out .* holds the dataset directory/);
    assert.deepEqual(await readdir(dir), before);
    await assert.rejects(
      runExport(dir, { rule: 'majority', out: dir }),
      (e: Error) => e instanceof ExportError && /outside the dataset/.test(e.message),
    );
  });

  test('a non-empty folder that is not an export of ours is refused by name; an earlier export of ours is replaced', async () => {
    const notes = join(root, 'notes');
    await mkdir(notes);
    await writeFile(join(notes, 'notes.txt'), 'mine');
    await assert.rejects(
      runExport(dir, { rule: 'majority', out: notes }),
      (e: Error) => e instanceof ExportError && e.message.includes(notes) && /not an export/.test(e.message),
    );
    assert.equal(await readFile(join(notes, 'notes.txt'), 'utf8'), 'mine');
    assert.deepEqual(await readdir(root).then((names) => names.filter((n) => n.includes('notes'))), ['notes'], 'no staging left');

    // A folder holding part files that some other tool wrote is not ours either.
    const foreign = join(root, 'foreign');
    const row = { image_id: ['a'], prompt_id: ['b'], score: [1], metric_version: ['v'] };
    await writeParquetPart(foreign, 'part-00000.parquet', SCORE_SPECS, row);
    await assert.rejects(runExport(dir, { rule: 'majority', out: foreign }), /not an export/);

    const out = join(root, 'export');
    await runExport(dir, { rule: 'majority', out, rowsPerPart: 3 });
    const second = await runExport(dir, { rule: 'majority', out, rowsPerPart: 100 });
    assert.deepEqual(
      [
        ...(await readdir(join(out, 'data'))).map((name) => `data/${name}`),
        ...(await readdir(out)).filter((name) => name !== 'data'),
      ].sort(),
      second.files.slice().sort(),
    );
    // An empty folder is fine too.
    const empty = join(root, 'empty');
    await mkdir(empty);
    await runExport(dir, { rule: 'majority', out: empty });
  });
});

describe('staging folders', () => {
  test('consensus sweeps the staging folders of dead processes for its rule, and only those', async () => {
    const consensus = join(dir, 'consensus');
    const dead = await deadPid();
    const stale = [`.majority.${dead}.tmp`, `.majority.${process.pid}-1.tmp`, `.majority.${dead}-77.abcd0123.old`];
    // A live legacy name cannot be told from a run in progress; another rule's staging is not ours to sweep.
    const kept = [`.majority.${process.ppid}.tmp`, `.majority.ties-half.${dead}.tmp`, `.majorityx.${dead}.tmp`];
    for (const name of [...stale, ...kept]) {
      await mkdir(join(consensus, name), { recursive: true });
      await writeFile(join(consensus, name, 'part-00000.parquet'), 'half a part');
    }
    await runConsensus(dir, { rule: 'majority' });
    const names = await readdir(consensus);
    for (const name of stale) assert.ok(!names.includes(name), `${name} swept`);
    for (const name of kept) assert.ok(names.includes(name), `${name} kept`);
    assert.ok(names.includes('majority'));
  });

  test('a consensus that fails part way removes its staging folder and keeps the previous output', async () => {
    const copy = join(root, 'broken-ds');
    await cp(dir, copy, { recursive: true });
    const parts = await listParts(copy, 'pairs');
    assert.ok(parts.length >= 2, 'two pairs parts');
    await truncate(join(copy, parts.at(-1)!), 100);
    const before = await readdir(join(copy, 'consensus', 'majority'));
    const namesBefore = new Set(await readdir(join(copy, 'consensus')));
    await assert.rejects(runConsensus(copy, { rule: 'majority' }));
    const names = await readdir(join(copy, 'consensus'));
    assert.deepEqual(
      names.filter((n) => !namesBefore.has(n)),
      [],
      'no staging folder left',
    );
    assert.deepEqual(await readdir(join(copy, 'consensus', 'majority')), before);
  });

  test('an export sweeps the staging folder a killed export left beside --out', async () => {
    const out = join(root, 'swept');
    const dead = await deadPid();
    const leftover = join(root, `.swept.${dead}.tmp`);
    await mkdir(leftover);
    await writeFile(join(leftover, 'part-00000.parquet'), 'half');
    const other = join(root, `.unrelated.${dead}.tmp`);
    await mkdir(other);
    await runExport(dir, { rule: 'majority', out });
    assert.ok(!(await exists(leftover)), 'stale staging removed');
    assert.ok(await exists(other), 'another target’s staging is not ours');
  });
});

// A tiny trainable dataset (consensus/pref, latents/, text/), laid out as `bdpo encode` writes it.
async function writeTrainData(data: string): Promise<void> {
  const random = seededRandom(3);
  const pairs = 64;
  const latents = Array.from({ length: 2 * pairs }, () => encodeFloat16(Float32Array.from({ length: 256 }, () => random() - 0.5)));
  const ids = latents.map((_, i) => sha256Hex(`image ${i}`));
  const prompt = sha256Hex('prompt 0');
  const labels = Array.from({ length: pairs }, (_, i) => i % 2);
  await writeParquetPart(data, 'consensus/pref/part-00000.parquet', consensusSpecs(['m1']), {
    pair_id: labels.map((_, i) => sha256Hex(`pair ${i}`)),
    prompt_id: labels.map(() => prompt),
    image_a: labels.map((_, i) => ids[2 * i]!),
    image_b: labels.map((_, i) => ids[2 * i + 1]!),
    human_pref: labels.map(() => null),
    split: labels.map((_, i) => (i < 48 ? 'train' : 'validation_unique')),
    p_m1: labels,
    vote_m1: Int32Array.from(labels, (l) => (l === 1 ? 1 : -1)),
    votes_a: Int32Array.from(labels),
    votes_b: Int32Array.from(labels, (l) => 1 - l),
    label: labels,
    soft: labels,
    margin: labels.map(() => 0),
    disagreement: labels.map(() => 0),
    kept: labels.map(() => true),
    tie: labels.map(() => false),
    reason: labels.map(() => 'decided'),
  });
  await writeParquetPart(data, 'latents/part-0.parquet', LATENT_SPECS, { image_id: ids, shape: ids.map(() => '4x8x8'), latent: latents });
  await writeParquetPart(data, 'text/part-0.parquet', TEXT_SPECS, {
    prompt_id: ['', prompt],
    shape: ['4x16', '4x16'],
    hidden: [encodeFloat16(new Float32Array(64)), encodeFloat16(Float32Array.from({ length: 64 }, () => random()))],
  });
  await writeFile(join(data, 'latents/encoder.json'), JSON.stringify({ resolution: 64, scalingFactor: 0.18215, output: 'latent_mean' }));
  await writeFile(join(data, 'text/encoder.json'), JSON.stringify({ maxLength: 4, output: 'last_hidden_state' }));
}

test('a second train --out RUN while one runs fails at once, naming the folder and the holder', async () => {
  const data = join(root, 'train-data');
  await writeTrainData(data);
  const config = join(root, 'train.json');
  const tiny = JSON.parse(await readFile(join(REPO, 'data/train/tiny.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(config, JSON.stringify({ ...tiny, steps: 2000, pretrainMseSteps: 0, validateEvery: 0, checkpointEvery: 0 }));
  const run = join(root, 'RUN');
  const first = spawn(process.execPath, ['--import', TSX, BDPO, 'train', data, '--rule', 'pref', '--out', run, '--config', config], {
    stdio: 'ignore',
  });
  try {
    const deadline = Date.now() + 30_000;
    while (
      !(await readFile(join(run, 'metrics.jsonl'), 'utf8').then(
        (t) => t.length > 0,
        () => false,
      ))
    ) {
      assert.ok(Date.now() < deadline && first.exitCode === null, 'the first run started');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const second = await bdpo(['train', data, '--rule', 'pref', '--out', run, '--config', config], { limitMs: 20_000 });
    assert.equal(second.code, 1, second.stderr);
    assert.ok(second.stderr.includes(run), second.stderr);
    assert.ok(second.stderr.includes(`host ${hostname()}, pid ${first.pid}`), second.stderr);
    assert.ok(first.exitCode === null, 'the first run goes on');
  } finally {
    first.kill('SIGKILL');
    await new Promise((resolve) => (first.exitCode !== null || first.signalCode !== null ? resolve(null) : first.on('close', resolve)));
  }
  // Killed, it left its lock behind: a new run (resumed or not) is not blocked by a dead process.
  const resumeArgs = ['train', data, '--rule', 'pref', '--out', run, '--config', config, '--steps', '1', '--resume'];
  const third = await bdpo(resumeArgs, { limitMs: 30_000 });
  assert.equal(third.code, 0, third.stderr);
  const lines = (await readFile(join(run, 'metrics.jsonl'), 'utf8')).trim().split('\n');
  const steps = lines
    .map((l) => JSON.parse(l) as { phase: string; step: number })
    .filter((l) => l.phase === 'train')
    .map((l) => l.step);
  assert.deepEqual(steps, [...new Set(steps)], 'no metrics line twice');
});

describe('the manifest lock', () => {
  const lockOf = (d: string): string => join(d, 'manifest.json.lock');
  const ingestInto = async (name: string, lock: string | null, age = 0): Promise<{ result: Finished; out: string }> => {
    const out = join(root, name);
    await mkdir(out, { recursive: true });
    if (lock !== null) {
      await writeFile(lockOf(out), lock);
      const when = new Date(Date.now() - age);
      await utimes(lockOf(out), when, when);
    }
    return { result: await bdpo(['ingest', 'pickapic', SAMPLE, '--out', out]), out };
  };

  test('garbage in the lock file is broken at once, and the CLI says so', async () => {
    const { result, out } = await ingestInto('garbage', 'garbage\u0000');
    assert.equal(result.code, 0, result.stderr);
    assert.ok(result.seconds < 10, `${result.seconds} s`);
    assert.ok(result.stderr.includes(lockOf(out)) && /not a lock/.test(result.stderr), result.stderr);
    assert.ok(!(await exists(lockOf(out))));
    assert.equal((await readManifest(out)).runs.length, 1);
  });

  test('a lock naming a live process that did not write it is broken at once', async () => {
    // The old "host pid" line and a lock whose start time is not the live process's: neither can be a holder's.
    const legacy = await ingestInto('legacy', `${hostname()} ${process.pid}\n`);
    assert.equal(legacy.result.code, 0, legacy.result.stderr);
    assert.ok(legacy.result.seconds < 10, `${legacy.result.seconds} s`);
    assert.ok(legacy.result.stderr.includes(lockOf(legacy.out)), legacy.result.stderr);
    const reused = JSON.stringify({ host: hostname(), pid: process.ppid, start: '1', token: 'x', since: '' });
    const other = await ingestInto('reused', reused);
    assert.equal(other.result.code, 0, other.result.stderr);
    assert.ok(other.result.seconds < 10, `${other.result.seconds} s`);
    assert.match(other.result.stderr, new RegExp(`pid ${process.ppid} is now another process`));
  });

  /** Resolves once the child's stderr matches `pattern` (its messages come at once, not after a fixed delay). */
  const seen = (pattern: RegExp): { onStderr: (text: string) => void; done: Promise<void> } => {
    let found!: () => void;
    const done = new Promise<void>((resolve) => (found = resolve));
    return { onStderr: (text) => (pattern.test(text) ? found() : undefined), done };
  };
  const within = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> =>
    Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms))]);

  test('a lock from another host is waited on with a message naming it and its holder, then taken once stale', async () => {
    const out = join(root, 'elsewhere');
    await mkdir(out, { recursive: true });
    await writeFile(lockOf(out), JSON.stringify({ host: 'elsewhere.invalid', pid: 4242, start: '9', token: 't', since: '' }));
    const waiting = seen(/waiting for the lock .*manifest\.json\.lock.*held by host elsewhere\.invalid, pid 4242/);
    const child = bdpo(['ingest', 'pickapic', SAMPLE, '--out', out], { onStderr: waiting.onStderr });
    await within(waiting.done, 12_000, 'the waiting message');
    // Only its age frees another host's lock.
    const old = new Date(Date.now() - 61_000);
    await utimes(lockOf(out), old, old);
    const result = await child;
    assert.equal(result.code, 0, result.stderr);
    assert.ok(result.stderr.includes(lockOf(out)), result.stderr);
    assert.match(result.stderr, /removed the lock .*held by host elsewhere\.invalid, pid 4242 for over 60 s/);
  });

  test('a live holder is waited for, with a message, and the lock is taken when it lets go', async () => {
    const out = join(root, 'held');
    await mkdir(out, { recursive: true });
    const { acquireLock } = await import('../../src/io/lock.ts');
    const lock = await acquireLock(lockOf(out), { wait: false });
    const waiting = seen(new RegExp(`waiting for the lock .*manifest\\.json\\.lock.*pid ${process.pid}`));
    const child = bdpo(['ingest', 'pickapic', SAMPLE, '--out', out], { onStderr: waiting.onStderr });
    try {
      await within(waiting.done, 12_000, 'the waiting message');
      assert.ok(!(await exists(join(out, 'manifest.json'))), 'the child waits');
    } finally {
      await lock.release();
    }
    const result = await child;
    assert.equal(result.code, 0, result.stderr);
    assert.equal((await readManifest(out)).runs.length, 1);
  });
});
