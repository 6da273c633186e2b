// Diffusion-DPO step time against a plain ε-MSE step of the same model on the same images (2 per pair), per
// config and batch size; then the pair loader's batches/s against the trainer's consumption in batches/s, on
// caches written here. Run: node --import tsx bench/train.ts [backend] [steps] [all|steps|loader]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { sha256Hex } from '../src/core/ids.ts';
import { writeParquetPart } from '../src/io/parquet.ts';
import { consensusSpecs, LATENT_SPECS, TEXT_SPECS } from '../src/core/schema.ts';
import { selectBackend, type BackendChoice } from '../src/train/backend.ts';
import { createDit, type DitConfig } from '../src/train/dit.ts';
import { rowGroupRows } from '../src/encode/encode.ts';
import { encodeFloat16 } from '../src/io/float16-bytes.ts';
import { PairLoader } from '../src/train/loader.ts';
import { createRng } from '../src/train/rng.ts';
import { Trainer, type ImageBatch, type PairBatch } from '../src/train/trainer-step.ts';
import { disposePairs, pairTensors } from '../src/train/run-data.ts';

const backend = await selectBackend((process.argv[2] ?? 'auto') as BackendChoice);
const steps = Number(process.argv[3] ?? 21);
const section = process.argv[4] ?? 'all';
console.log(`backend ${backend.name} (${backend.reason})`);

const base = { latentChannels: 4, latentSize: 8, patch: 2, heads: 4, textWidth: 32, mlpRatio: 4 };
const configs: { label: string; config: DitConfig }[] = [
  { label: 'w32 d1', config: { ...base, width: 32, depth: 1 } },
  { label: 'w64 d2', config: { ...base, width: 64, depth: 2 } },
  { label: 'w128 d4', config: { ...base, width: 128, depth: 4 } },
  { label: 'w128 d4 lora r8', config: { ...base, width: 128, depth: 4, lora: { rank: 8, alpha: 8 } } },
];
const textLength = 8;

function randomTensor(shape: number[], seed: number): tf.Tensor {
  const values = createRng(seed).fillNormal(new Float32Array(shape.reduce((n, d) => n * d, 1)));
  return tf.tensor(values, shape);
}

function cpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface Timing {
  wall: number;
  cpu: number;
}

/**
 * Median wall and process-CPU milliseconds per step of each runner, interleaved step by step so that load from
 * other processes hits both alike (CPU time is the fairer number on a shared machine).
 */
function timeInterleaved(runners: (() => void)[]): Timing[] {
  for (let i = 0; i < 3; i++) for (const run of runners) run();
  const samples = runners.map(() => ({ wall: [] as number[], cpu: [] as number[] }));
  for (let i = 0; i < steps; i++) {
    runners.forEach((run, r) => {
      const wall = performance.now();
      const cpu = cpuMs();
      run();
      samples[r]!.wall.push(performance.now() - wall);
      samples[r]!.cpu.push(cpuMs() - cpu);
    });
  }
  return samples.map((s) => ({ wall: median(s.wall), cpu: median(s.cpu) }));
}

if (section === 'all' || section === 'steps') stepRatios();
if (section === 'all' || section === 'loader') await loaderThroughput();
console.log(`tensors alive at the end: ${tf.memory().numTensors}`);

function stepRatios(): void {
  console.log('MSE steps train on the same 2×pairs images. Median ms per step, wall (process CPU).');
  console.log('config            pairs  trained  DPO ms          MSE ms          DPO/MSE (CPU)');
  for (const { label, config } of configs) {
    for (const pairs of [4, 8]) {
      const model = createDit(config, 1);
      const trainer = new Trainer(model, { seed: 1, learningRate: 1e-4, reference: { mode: 'none' } });
      let parameters = 0;
      for (const name of model.trainableNames()) parameters += model.parameters.get(name)!.size;
      const shape = [pairs, 4, 8, 8];
      const pairBatch: PairBatch = {
        a: randomTensor(shape, 2) as tf.Tensor4D,
        b: randomTensor(shape, 3) as tf.Tensor4D,
        textStates: randomTensor([pairs, textLength, config.textWidth], 4) as tf.Tensor3D,
        label: Array.from({ length: pairs }, (_, i) => i % 2),
      };
      const imageBatch: ImageBatch = {
        x0: tf.concat([pairBatch.a, pairBatch.b]) as tf.Tensor4D,
        textStates: tf.concat([pairBatch.textStates, pairBatch.textStates]) as tf.Tensor3D,
      };
      const [dpo, mse] = timeInterleaved([() => trainer.dpoStep(pairBatch), () => trainer.mseStep(imageBatch)]) as [Timing, Timing];
      const cell = (t: Timing): string => `${t.wall.toFixed(1)} (${t.cpu.toFixed(1)})`.padEnd(15);
      console.log(
        `${label.padEnd(17)} ${String(pairs).padStart(5)} ${String(parameters).padStart(8)}  ${cell(dpo)} ${cell(mse)} ` +
          `${(dpo.wall / mse.wall).toFixed(2)} (${(dpo.cpu / mse.cpu).toFixed(2)})`,
      );
      tf.dispose([pairBatch.a, pairBatch.b, pairBatch.textStates, imageBatch.x0, imageBatch.textStates]);
      trainer.dispose();
      model.dispose();
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Loader throughput against trainer consumption

interface LoaderCase {
  label: string;
  latent: [number, number, number];
  text: [number, number];
  pairs: number;
  /** The model the trainer runs; null: loader only (no DiT at that size trains at a useful speed here). */
  model: DitConfig | null;
  cacheBytes?: number;
}

/** consensus/bench (every pair kept, split train), latents/ and text/ as `bdpo encode` writes them. */
async function writeCaches(dir: string, c: LoaderCase): Promise<void> {
  const rng = createRng(7);
  const images = 2 * c.pairs;
  const prompts = Math.max(8, c.pairs >> 3);
  const imageId = (i: number): string => sha256Hex(`image ${i}`);
  const promptId = (j: number): string => sha256Hex(`prompt ${j}`);
  const random = (n: number): Uint8Array => encodeFloat16(rng.fillNormal(new Float32Array(n)));
  const pairIndex = Array.from({ length: c.pairs }, (_, i) => i);
  await writeParquetPart(dir, 'consensus/bench/part-00000.parquet', consensusSpecs(['m']), {
    pair_id: pairIndex.map((i) => sha256Hex(`pair ${i}`)),
    prompt_id: pairIndex.map((i) => promptId(i % prompts)),
    image_a: pairIndex.map((i) => imageId(2 * i)),
    image_b: pairIndex.map((i) => imageId(2 * i + 1)),
    human_pref: pairIndex.map(() => null),
    split: pairIndex.map(() => 'train'),
    p_m: pairIndex.map(() => 1),
    vote_m: new Int32Array(c.pairs).fill(1),
    votes_a: new Int32Array(c.pairs).fill(1),
    votes_b: new Int32Array(c.pairs),
    label: pairIndex.map((i) => i % 2),
    soft: pairIndex.map((i) => i % 2),
    margin: pairIndex.map(() => 1),
    disagreement: pairIndex.map(() => 0),
    kept: pairIndex.map(() => true),
    tie: pairIndex.map(() => false),
    reason: pairIndex.map(() => 'decided'),
  });
  const latentSize = c.latent[0] * c.latent[1] * c.latent[2];
  // Shuffled ids, so that consecutive pairs do not read neighbouring rows (as after a real shuffle buffer).
  const order = Array.from({ length: images }, (_, i) => i).sort((x, y) => sha256Hex(`o${x}`).localeCompare(sha256Hex(`o${y}`)));
  await writeParquetPart(
    dir,
    'latents/part-0.parquet',
    LATENT_SPECS,
    {
      image_id: order.map(imageId),
      shape: order.map(() => c.latent.join('x')),
      latent: order.map(() => random(latentSize)),
    },
    { rowGroupSize: rowGroupRows(2 * latentSize) },
  );
  const textSize = c.text[0] * c.text[1];
  await writeParquetPart(
    dir,
    'text/part-0.parquet',
    TEXT_SPECS,
    {
      prompt_id: ['', ...Array.from({ length: prompts }, (_, j) => promptId(j))],
      shape: Array.from({ length: prompts + 1 }, () => c.text.join('x')),
      hidden: Array.from({ length: prompts + 1 }, () => random(textSize)),
    },
    { rowGroupSize: rowGroupRows(2 * textSize) },
  );
}

async function loaderThroughput(): Promise<void> {
  const pairsPerBatch = 8;
  const base = { latentChannels: 4, latentSize: 8, patch: 2, heads: 4, mlpRatio: 4 };
  const cases: LoaderCase[] = [
    {
      label: 'tiny.json (w32 d1)',
      latent: [4, 8, 8],
      text: [77, 16],
      pairs: 2048,
      model: { ...base, heads: 2, mlpRatio: 2, timeFreqDim: 32, width: 32, depth: 1, textWidth: 16 },
    },
    { label: 'w128 d4', latent: [4, 8, 8], text: [77, 32], pairs: 2048, model: { ...base, width: 128, depth: 4, textWidth: 32 } },
    { label: 'SD 512px rows', latent: [4, 64, 64], text: [77, 768], pairs: 1024, model: null },
    { label: 'SD rows, 4 MiB cache', latent: [4, 64, 64], text: [77, 768], pairs: 1024, model: null, cacheBytes: 4 * 2 ** 20 },
  ];
  const batches = Math.max(steps * 3, 40);
  console.log(`\nPair loader vs trainer, ${pairsPerBatch} pairs a batch, ${batches} batches each (after 3 warm-up batches), same process.`);
  console.log('  loader: batches/s of PairLoader.next() alone (prefetch on, shuffle buffer 1024, data cached by the OS);');
  console.log('  trainer: DPO steps/s on a batch already in memory; fed: steps/s of loader → tensors → DPO step, as bdpo train runs.');
  console.log('case                    latent    text     loader b/s  trainer b/s  loader/trainer  fed b/s  fed/trainer');
  for (const c of cases) {
    const dir = await mkdtemp(join(tmpdir(), 'bdpo-bench-loader-'));
    try {
      await writeCaches(dir, c);
      const open = (): Promise<PairLoader> =>
        PairLoader.open({
          dir,
          rule: 'bench',
          batchSize: pairsPerBatch,
          seed: 1,
          shuffleBuffer: 1024,
          epochs: null,
          ...(c.cacheBytes ? { cacheBytes: c.cacheBytes } : {}),
        });
      const loader = await open();
      for (let i = 0; i < 3; i++) await loader.next();
      let started = performance.now();
      for (let i = 0; i < batches; i++) await loader.next();
      const loaderRate = batches / ((performance.now() - started) / 1000);
      let trainerRate = Number.NaN;
      let fedRate = Number.NaN;
      if (c.model) {
        const model = createDit(c.model, 1);
        const trainer = new Trainer(model, { seed: 1, learningRate: 1e-4, reference: { mode: 'none' } });
        const fixed = pairTensors((await loader.next())!);
        for (let i = 0; i < 3; i++) trainer.dpoStep(fixed);
        started = performance.now();
        for (let i = 0; i < steps; i++) trainer.dpoStep(fixed);
        trainerRate = steps / ((performance.now() - started) / 1000);
        tf.dispose([fixed.a, fixed.b, fixed.textStates]);
        started = performance.now();
        for (let i = 0; i < steps; i++) {
          const batch = pairTensors((await loader.next())!);
          trainer.dpoStep(batch);
          disposePairs(batch);
        }
        fedRate = steps / ((performance.now() - started) / 1000);
        trainer.dispose();
        model.dispose();
      }
      await loader.close();
      const cell = (x: number, width: number, digits = 1): string => (Number.isNaN(x) ? 'n/a' : x.toFixed(digits)).padStart(width);
      console.log(
        `${c.label.padEnd(22)} ${c.latent.join('x').padEnd(9)} ${c.text.join('x').padEnd(8)} ` +
          `${cell(loaderRate, 11)} ${cell(trainerRate, 12)} ${cell(loaderRate / trainerRate, 15)} ` +
          `${cell(fedRate, 8)} ${cell(fedRate / trainerRate, 12, 2)}`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}
