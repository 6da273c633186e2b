// Diffusion-DPO step time against a plain ε-MSE step of the same model on the same images (2 per pair), per
// config and batch size. Run: node --import tsx bench/train.ts [backend] [steps]
import * as tf from '@tensorflow/tfjs';
import { selectBackend, type BackendChoice } from '../src/train/backend.ts';
import { createDit, type DitConfig } from '../src/train/dit.ts';
import { createRng } from '../src/train/rng.ts';
import { Trainer, type ImageBatch, type PairBatch } from '../src/train/trainer-step.ts';

const backend = await selectBackend((process.argv[2] ?? 'auto') as BackendChoice);
const steps = Number(process.argv[3] ?? 21);
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
      `${label.padEnd(17)} ${String(pairs).padStart(5)} ${String(parameters).padStart(8)}  ${cell(dpo)} ${cell(mse)} ${(dpo.wall / mse.wall).toFixed(2)} (${(dpo.cpu / mse.cpu).toFixed(2)})`,
    );
    tf.dispose([pairBatch.a, pairBatch.b, pairBatch.textStates, imageBatch.x0, imageBatch.textStates]);
    trainer.dispose();
    model.dispose();
  }
}
console.log(`tensors alive at the end: ${tf.memory().numTensors}`);
