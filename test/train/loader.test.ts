// PairLoader over a hand-made dataset: consensus files written with the consensus stage's column specs (kept and
// dropped pairs, ties kept under `half` and dropped ones, two splits, several row groups), and latent / text caches
// whose values name the row they belong to (latent of image i = [i, i + 1/8, …], text of prompt j = [j, j + 1/8, …],
// all exact in float16), so every looked-up tensor can be checked against its id. The eligible pairs come from
// DuckDB reading the consensus files.
import assert from 'node:assert/strict';
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { sha256Hex } from '../../src/core/ids.ts';
import { writeParquetPart } from '../../src/io/parquet.ts';
import { consensusSpecs } from '../../src/core/schema.ts';
import { LATENT_SPECS, TEXT_SPECS } from '../../src/core/schema.ts';
import { encodeFloat16 } from '../../src/io/float16-bytes.ts';
import { PairLoader, type LoaderBatch } from '../../src/train/loader.ts';
import { MissingDataError } from '../../src/io/tensor-store.ts';
import type { PairLoaderOptions } from '../../src/train/pair-order.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';

const IMAGES = 120;
const PROMPTS = 30;
const LATENT = [2, 2, 2];
const TEXT = [3, 2];
const METRICS = ['m1', 'm2'];
/** Consensus files: name, pairs, row group size. The last holds no kept pair at all. */
const FILES: Array<[string, number, number]> = [
  ['part-a.parquet', 70, 100_000],
  ['part-b.parquet', 45, 16],
  ['part-c.parquet', 61, 100_000],
  ['part-d.parquet', 4, 100_000],
];

const imageIdOf = (i: number): string => sha256Hex(`image ${i}`);
const promptIdOf = (j: number): string => sha256Hex(`prompt ${j}`);

interface Pair {
  pair_id: string;
  prompt: number;
  a: number;
  b: number;
  label: number | null;
  soft: number | null;
  kept: boolean;
  split: string;
}

let root: string;
let dir: string;
/** Every pair written, in file order then row order. */
let written: Pair[];
/** Eligible pairs (kept, with a label) as DuckDB reads them. */
let eligible: Map<string, { label: number; soft: number | null; split: string; image_a: string; image_b: string; prompt_id: string }>;
const imageIndex = new Map<string, number>();
const promptIndex = new Map<string, number>();

/** g % 10 decides the pair's fate: 0–5 and 9 decided (kept), 6 a tie kept as ½, 7 a tie dropped, 8 a missing score. */
function pairAt(g: number, file: number): Pair {
  const kind = g % 10;
  const decided = kind <= 5 || kind === 9;
  const a = (2 * g) % IMAGES;
  const b = (2 * g + 1 + (g % 7)) % IMAGES;
  return {
    pair_id: sha256Hex(`pair ${g}`),
    prompt: g % PROMPTS,
    a,
    b: b === a ? (b + 1) % IMAGES : b,
    label: file === 3 ? null : decided ? g % 2 : kind === 6 ? 0.5 : null,
    soft: kind === 8 ? null : (g % 5) / 4,
    kept: file !== 3 && (decided || kind === 6),
    split: g % 3 === 0 ? 'validation_unique' : 'train',
  };
}

async function writeConsensus(target: string, pairs: Pair[], file: string, rowGroupSize: number): Promise<void> {
  const n = pairs.length;
  await writeParquetPart(
    target,
    `consensus/r/${file}`,
    consensusSpecs(METRICS),
    {
      pair_id: pairs.map((p) => p.pair_id),
      prompt_id: pairs.map((p) => promptIdOf(p.prompt)),
      image_a: pairs.map((p) => imageIdOf(p.a)),
      image_b: pairs.map((p) => imageIdOf(p.b)),
      human_pref: pairs.map(() => null),
      split: pairs.map((p) => p.split),
      p_m1: pairs.map(() => 0.5),
      vote_m1: new Int32Array(n),
      p_m2: pairs.map(() => 0.5),
      vote_m2: new Int32Array(n),
      votes_a: new Int32Array(n),
      votes_b: new Int32Array(n),
      label: pairs.map((p) => p.label),
      soft: pairs.map((p) => p.soft),
      margin: pairs.map(() => 0),
      disagreement: pairs.map(() => 0),
      kept: pairs.map((p) => p.kept),
      tie: pairs.map((p) => p.label === 0.5),
      reason: pairs.map(() => 'decided'),
    },
    { rowGroupSize },
  );
}

const latentOf = (i: number): number[] => Array.from({ length: 8 }, (_, k) => i + k / 8);
const textOf = (j: number): number[] => Array.from({ length: 6 }, (_, k) => j + k / 8);
const EMPTY_TEXT = [-1, -2, -3, -4, -5, -6];

async function writeLatents(target: string, file: string, images: number[], rowGroupSize: number): Promise<void> {
  await writeParquetPart(
    target,
    `latents/${file}`,
    LATENT_SPECS,
    {
      image_id: images.map(imageIdOf),
      shape: images.map(() => LATENT.join('x')),
      latent: images.map((i) => encodeFloat16(latentOf(i))),
    },
    { rowGroupSize },
  );
}

before(async () => {
  root = await makeTempDir('bdpo-loader-');
  dir = join(root, 'data');
  written = [];
  let g = 0;
  for (const [f, [file, n, rowGroupSize]] of FILES.entries()) {
    const pairs = Array.from({ length: n }, () => pairAt(g++, f));
    written.push(...pairs);
    await writeConsensus(dir, pairs, file, rowGroupSize);
  }
  // Images in two parts, the second out of order and holding image 3 a second time.
  await writeLatents(
    dir,
    'part-0.parquet',
    Array.from({ length: 60 }, (_, i) => i),
    8,
  );
  await writeLatents(dir, 'part-1.parquet', [3, ...Array.from({ length: 60 }, (_, i) => 119 - i)], 5);
  const prompts = Array.from({ length: PROMPTS }, (_, j) => j);
  await writeParquetPart(
    dir,
    'text/part-0.parquet',
    TEXT_SPECS,
    {
      prompt_id: ['', ...prompts.map(promptIdOf)],
      shape: ['', ...prompts].map(() => TEXT.join('x')),
      hidden: [encodeFloat16(EMPTY_TEXT), ...prompts.map((j) => encodeFloat16(textOf(j)))],
    },
    { rowGroupSize: 7 },
  );
  for (let i = 0; i < IMAGES; i++) imageIndex.set(imageIdOf(i), i);
  for (let j = 0; j < PROMPTS; j++) promptIndex.set(promptIdOf(j), j);

  const duck = await DuckDBInstance.create(':memory:', { threads: '1' });
  const db = await duck.connect();
  const rows = (
    await db.runAndReadAll(`SELECT pair_id, label, soft, split, image_a, image_b, prompt_id
    FROM read_parquet('${join(dir, 'consensus/r/*.parquet')}') WHERE kept AND label IS NOT NULL`)
  ).getRowObjectsJS();
  eligible = new Map(rows.map((r) => [r.pair_id as string, r as never]));
  db.closeSync();
  duck.closeSync();
  assert.equal(eligible.size, written.filter((p) => p.kept).length);
});

after(async () => {
  if (root) await removeDir(root);
});

const BASE: PairLoaderOptions = { dir: '', rule: 'r', batchSize: 7, seed: 1, shuffleBuffer: 16, epochs: 1 };

async function collect(loader: PairLoader, limit = Infinity): Promise<LoaderBatch[]> {
  const out: LoaderBatch[] = [];
  while (out.length < limit) {
    const batch = await loader.next();
    if (batch === null) break;
    out.push(batch);
  }
  return out;
}

async function run(options: Partial<PairLoaderOptions>): Promise<LoaderBatch[]> {
  const loader = await PairLoader.open({ ...BASE, dir, ...options });
  try {
    return await collect(loader);
  } finally {
    await loader.close();
  }
}

const idsOf = (batches: LoaderBatch[]): string[] => batches.flatMap((b) => b.pairIds);

describe('order', () => {
  test('every eligible pair exactly once per epoch; batches never span epochs; epochs differ in order', async () => {
    const batches = await run({ epochs: 3 });
    const perEpoch = [0, 1, 2].map((e) => batches.filter((b) => b.epoch === e));
    for (const epoch of perEpoch) {
      const ids = idsOf(epoch);
      assert.equal(ids.length, eligible.size);
      assert.deepEqual([...ids].sort(), [...eligible.keys()].sort());
      // Full batches, and a short last one.
      epoch.slice(0, -1).forEach((b) => assert.equal(b.pairIds.length, 7));
      assert.equal(epoch.at(-1)!.pairIds.length, eligible.size % 7 || 7);
    }
    assert.deepEqual(
      batches.map((b) => b.index),
      batches.map((_, i) => i),
    );
    assert.notDeepEqual(idsOf(perEpoch[0]!), idsOf(perEpoch[1]!));
    // Shuffled, not merely rotated: the order differs from the files' order.
    assert.notDeepEqual(
      idsOf(perEpoch[0]!),
      written.filter((p) => p.kept).map((p) => p.pair_id),
    );
  });

  test('the same seed gives the same batches; another seed another order', async () => {
    const a = await run({ seed: 5, epochs: 2, captionDropout: 0.3 });
    const b = await run({ seed: 5, epochs: 2, captionDropout: 0.3 });
    assert.deepEqual(a, b);
    const c = await run({ seed: 6, epochs: 2, captionDropout: 0.3 });
    assert.notDeepEqual(idsOf(a), idsOf(c));
    assert.deepEqual([...idsOf(a)].sort(), [...idsOf(c)].sort());
  });

  test('without a shuffle buffer: files in name order, rows in order, every epoch', async () => {
    const batches = await run({ shuffleBuffer: 0, epochs: 2, batchSize: 10 });
    const expected = written.filter((p) => p.kept).map((p) => p.pair_id);
    assert.deepEqual(idsOf(batches.filter((b) => b.epoch === 0)), expected);
    assert.deepEqual(idsOf(batches.filter((b) => b.epoch === 1)), expected);
  });

  test('dropLast drops the short last batch of each epoch', async () => {
    const batches = await run({ dropLast: true, epochs: 2, batchSize: 8 });
    assert.equal(batches.length, 2 * Math.floor(eligible.size / 8));
    assert.ok(batches.every((b) => b.pairIds.length === 8));
  });
});

describe('batch contents', () => {
  test('latents, text and labels belong to each pair; ties only where the rule kept them', async () => {
    const batches = await run({ epochs: 1, batchSize: 9 });
    let ties = 0;
    for (const batch of batches) {
      const n = batch.pairIds.length;
      assert.deepEqual(batch.latentShape, [n, ...LATENT]);
      assert.deepEqual(batch.textShape, [n, ...TEXT]);
      batch.pairIds.forEach((id, k) => {
        const pair = eligible.get(id)!;
        assert.equal(batch.label[k], pair.label);
        assert.equal(batch.promptIds[k], pair.prompt_id);
        assert.deepEqual([...batch.latentsA.subarray(k * 8, (k + 1) * 8)], latentOf(imageIndex.get(pair.image_a)!));
        assert.deepEqual([...batch.latentsB.subarray(k * 8, (k + 1) * 8)], latentOf(imageIndex.get(pair.image_b)!));
        assert.deepEqual([...batch.text.subarray(k * 6, (k + 1) * 6)], textOf(promptIndex.get(pair.prompt_id)!));
        assert.equal(batch.captionDropped[k], 0);
        if (batch.label[k] === 0.5) ties++;
      });
    }
    assert.equal(ties, written.filter((p) => p.kept && p.label === 0.5).length);
    assert.ok(ties > 0);
  });

  test('useSoft: y is the soft column', async () => {
    const batches = await run({ useSoft: true });
    for (const batch of batches) batch.pairIds.forEach((id, k) => assert.equal(batch.label[k], eligible.get(id)!.soft));
  });

  test('split filter: only the held-out split', async () => {
    const batches = await run({ splits: ['validation_unique'] });
    const expected = [...eligible].filter(([, p]) => p.split === 'validation_unique').map(([id]) => id);
    assert.ok(expected.length > 20);
    assert.deepEqual(idsOf(batches).sort(), expected.sort());
    await assert.rejects(
      run({ splits: ['no-such-split'] }),
      (e: Error) => e instanceof MissingDataError && /no kept pair in split/.test(e.message),
    );
  });

  test('caption dropout: rate within tolerance, dropped rows carry the empty prompt', async () => {
    const p = 0.3;
    const batches = await run({ captionDropout: p, epochs: 6, seed: 9 });
    let dropped = 0;
    let total = 0;
    for (const batch of batches) {
      batch.pairIds.forEach((id, k) => {
        const row = [...batch.text.subarray(k * 6, (k + 1) * 6)];
        if (batch.captionDropped[k]) {
          dropped++;
          assert.deepEqual(row, EMPTY_TEXT);
        } else {
          assert.deepEqual(row, textOf(promptIndex.get(eligible.get(id)!.prompt_id)!));
        }
        total++;
      });
    }
    assert.equal(total, 6 * eligible.size);
    const sd = Math.sqrt((p * (1 - p)) / total);
    assert.ok(Math.abs(dropped / total - p) < 4 * sd, `rate ${dropped / total} over ${total}`);
  });

  test('a tiny cache (every lookup reads its row group) gives the same batches', async () => {
    const big = await run({});
    const small = await run({ cacheBytes: 1, prefetch: false });
    assert.deepEqual(small, big);
  });
});

describe('resume', () => {
  test('the batches after resume(state) equal the uninterrupted sequence, wherever it stops', async () => {
    const options = { epochs: 2, batchSize: 5, seed: 42, captionDropout: 0.25 };
    const full = await run(options);
    const boundary = full.findIndex((b) => b.epoch === 1);
    assert.ok(boundary > 3);
    const stops = [0, 1, 4, boundary - 2, boundary - 1, boundary, boundary + 1, full.length - 1, full.length];
    for (const [i, k] of stops.entries()) {
      const loader = await PairLoader.open({ ...BASE, dir, ...options });
      const head = await collect(loader, k);
      assert.deepEqual(head, full.slice(0, k));
      // Through JSON, as a checkpoint would store it.
      const state = JSON.parse(JSON.stringify(loader.state()));
      await loader.close();
      const resumed = await PairLoader.resume(state, { prefetch: i % 2 === 0 });
      const rest = await collect(resumed);
      await resumed.close();
      assert.deepEqual(rest, full.slice(k), `stopped after ${k} batches`);
    }
  });

  test('state() is the position after the last returned batch, not after the prefetched one', async () => {
    const loader = await PairLoader.open({ ...BASE, dir, epochs: 1 });
    await loader.next();
    await new Promise((resolve) => setTimeout(resolve, 20)); // let the prefetch finish
    const state = loader.state();
    assert.equal(state.batches, 1);
    assert.equal(state.buffer.length, 16);
    const second = await loader.next();
    const resumed = await PairLoader.resume(state);
    assert.deepEqual(await resumed.next(), second);
    await loader.close();
    await resumed.close();
  });

  test('a state is refused over changed consensus files', async () => {
    const copy = join(root, 'changed');
    await cp(dir, copy, { recursive: true });
    const loader = await PairLoader.open({ ...BASE, dir: copy });
    await loader.next();
    const state = loader.state();
    await loader.close();
    await writeConsensus(copy, [pairAt(0, 0), pairAt(1, 0)], 'part-d.parquet', 16);
    await assert.rejects(PairLoader.resume(state), /changed since this loader state was saved/);
  });
});

test('a pair whose latent is not cached is an error naming the encode step', async () => {
  const copy = join(root, 'missing');
  await cp(dir, copy, { recursive: true });
  await rm(join(copy, 'latents/part-1.parquet'));
  await assert.rejects(
    run({ dir: copy, batchSize: 1000 }),
    (e: Error) => e instanceof MissingDataError && /latents\/ has no row for image .*bdpo encode/.test(e.message),
  );
  await assert.rejects(run({ dir: copy, rule: 'nope' }), /no consensus\/nope\/part-\*\.parquet/);
});

test('throughput (printed, not asserted)', async () => {
  const started = performance.now();
  const batches = await run({ epochs: 8, batchSize: 16, captionDropout: 0.1 });
  const seconds = (performance.now() - started) / 1000;
  const pairs = batches.reduce((n, b) => n + b.pairIds.length, 0);
  console.log(`loader: ${pairs} pairs in ${batches.length} batches, ${seconds.toFixed(2)} s, ${(pairs / seconds).toFixed(0)} pairs/s`);
  assert.equal(pairs, 8 * eligible.size);
});
