import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/train/backend.ts';
import { isCheckpoint, loadCheckpoint, saveCheckpoint } from '../../src/train/checkpoint.ts';
import { createDit, type DitConfig } from '../../src/train/dit.ts';
import { AdamW } from '../../src/train/optimizer.ts';
import { createRng } from '../../src/train/rng.ts';
import { Trainer, type TrainerOptions } from '../../src/train/trainer-step.ts';
import { BrightnessTask, disposePairs, maxAbsDiff, randomizeParameters, tinyConfig } from './helpers.ts';

await selectBackend();

test('AdamW matches a float64 hand implementation, decoupled decay and clipping included', () => {
  const p = tf.variable(tf.tensor1d([1, -2, 0.5]));
  const optimizer = new AdamW(new Map([['p', p]]), { learningRate: 0.1, weightDecay: 0.1, maxGradNorm: 0.3 });
  const gradients = [
    [0.5, -0.1, 0],
    [0.05, 0.2, -0.01],
    [-1, 1, 2],
  ];
  const expected = [1, -2, 0.5];
  const m = [0, 0, 0];
  const v = [0, 0, 0];
  gradients.forEach((raw, index) => {
    const step = index + 1;
    const norm = Math.hypot(...raw);
    const g = norm > 0.3 ? raw.map((x) => (x * 0.3) / (norm + 1e-6)) : raw;
    for (let i = 0; i < 3; i++) {
      m[i] = 0.9 * m[i]! + 0.1 * g[i]!;
      v[i] = 0.999 * v[i]! + 0.001 * g[i]! ** 2;
      const mHat = m[i]! / (1 - 0.9 ** step);
      const vHat = v[i]! / (1 - 0.999 ** step);
      expected[i] = expected[i]! * (1 - 0.1 * 0.1) - (0.1 * mHat) / (Math.sqrt(vHat) + 1e-8);
    }
    const grad = tf.tensor1d(raw);
    const reported = optimizer.apply(new Map([['p', grad]]));
    grad.dispose();
    assert.ok(Math.abs(reported - norm) < 1e-6);
    assert.ok(maxAbsDiff(p.dataSync(), expected) < 1e-6, `step ${step}: ${p.dataSync()} vs ${expected}`);
  });
  // Its state restores into a fresh optimiser, which then takes the same next step.
  const q = tf.variable(p.clone());
  const twin = new AdamW(new Map([['p', q]]), { learningRate: 0.1, weightDecay: 0.1, maxGradNorm: 0.3 });
  twin.setState(optimizer.state());
  assert.equal(twin.stepCount, 3);
  const g = tf.tensor1d([0.3, -0.2, 0.1]);
  optimizer.apply(new Map([['p', g]]));
  twin.apply(new Map([['p', g]]));
  assert.deepEqual(q.dataSync(), p.dataSync());
  assert.throws(() => optimizer.apply(new Map()), /no gradient for p/);
  tf.dispose([p, q, g]);
  optimizer.dispose();
  twin.dispose();
});

const task = new BrightnessTask(tinyConfig, 4, 31);
const batchFor = (step: number, pairs = 4) => task.pairs(createRng(1000 + step), pairs, 'true');

function maxParameterDiff(a: Trainer, b: Trainer): number {
  let worst = 0;
  for (const [name, variable] of a.model.parameters) {
    worst = Math.max(worst, maxAbsDiff(variable.dataSync(), b.model.parameters.get(name)!.dataSync()));
  }
  return worst;
}

test('the first DPO step sees z = 0 (model = reference): loss ln 2; a trainer without reference refuses DPO', () => {
  const trainer = new Trainer(createDit(tinyConfig, 1), { seed: 2, learningRate: 1e-3 });
  const batch = batchFor(0);
  const result = trainer.dpoStep(batch);
  assert.ok(Math.abs(result.loss - Math.LN2) < 1e-6, String(result.loss));
  assert.equal(result.implicitAccuracy, 0);
  assert.equal(result.step, 1);
  assert.ok(result.gradNorm > 0);
  assert.ok(Math.abs(result.modelMse - result.referenceMse) < 1e-9);
  const second = trainer.dpoStep(batch);
  assert.ok(second.loss !== Math.LN2 && second.modelMse !== second.referenceMse, 'the model moved away from the reference');
  const mseOnly = new Trainer(createDit(tinyConfig, 1), { seed: 2, learningRate: 1e-3, reference: null });
  assert.throws(() => mseOnly.dpoStep(batch), /reference/);
  assert.throws(() => trainer.dpoStep({ ...batch, label: [1, 2, 0, 0] }), /not a probability/);
  disposePairs(batch);
  for (const t of [trainer, mseOnly]) {
    t.dispose();
    t.model.dispose();
  }
});

test('gradient accumulation over micro-batches gives the gradient of the full batch', () => {
  const gradientsWith = (microBatch?: number): Map<string, Float32Array> => {
    const model = createDit(tinyConfig, 3);
    randomizeParameters(model, 4);
    const trainer = new Trainer(model, { seed: 4, learningRate: 1e-3, ...(microBatch ? { microBatch } : {}), reference: { mode: 'none' } });
    // Move the model off the reference so the DPO gradient is not the z = 0 special case.
    randomizeParameters(model, 5, 0.16);
    const batch = batchFor(0, 5);
    const { gradients } = trainer.dpoGradients(batch);
    disposePairs(batch);
    const out = new Map([...gradients].map(([name, g]) => [name, g.dataSync().slice() as Float32Array]));
    tf.dispose([...gradients.values()]);
    trainer.dispose();
    model.dispose();
    return out;
  };
  const whole = gradientsWith();
  let scale = 0;
  for (const g of whole.values()) for (const x of g) scale = Math.max(scale, Math.abs(x));
  assert.ok(scale > 1e-3);
  for (const micro of [2, 3]) {
    const split = gradientsWith(micro);
    let diff = 0;
    for (const [name, g] of whole) diff = Math.max(diff, maxAbsDiff(g, split.get(name)!));
    assert.ok(diff < 1e-5 * scale, `micro-batch ${micro}: max gradient difference ${diff} (scale ${scale})`);
  }
});

test('micro-batching does not change the random draws: the same steps reach nearly the same weights', () => {
  // Adam divides by √v, so float rounding in near-zero gradients shows up at the size of the learning rate;
  // a large ε (with a small β, so gradients stay O(1)) makes the update proportional to the gradient.
  const run = (microBatch?: number): Trainer => {
    const trainer = new Trainer(createDit(tinyConfig, 3), {
      seed: 4,
      learningRate: 0.05,
      epsilon: 10,
      beta: 50,
      ...(microBatch ? { microBatch } : {}),
      reference: { mode: 'none' },
    });
    for (let step = 0; step < 2; step++) {
      const batch = batchFor(step);
      trainer.dpoStep(batch);
      trainer.mseStep({ x0: batch.a, textStates: batch.textStates });
      disposePairs(batch);
    }
    return trainer;
  };
  const whole = run();
  const split = run(3);
  const other = run(3);
  const batch = batchFor(99);
  other.dpoStep(batch);
  disposePairs(batch);
  const diff = maxParameterDiff(whole, split);
  assert.ok(diff < 1e-7, `max parameter difference ${diff}`);
  assert.ok(maxParameterDiff(whole, other) > 5e-5, 'another step moves the weights: the comparison can fail');
  for (const t of [whole, split, other]) {
    t.dispose();
    t.model.dispose();
  }
});

async function resumeCase(config: DitConfig, options: TrainerOptions): Promise<{ diff: number; files: string[] }> {
  const total = 6;
  const split = 3;
  const stepOnce = (trainer: Trainer, step: number): void => {
    const batch = batchFor(step);
    trainer.dpoStep(batch);
    disposePairs(batch);
  };
  const straight = new Trainer(createDit(config, 5), options);
  for (let step = 0; step < total; step++) stepOnce(straight, step);

  const dir = await mkdtemp(join(tmpdir(), 'bdpo-ckpt-'));
  try {
    const first = new Trainer(createDit(config, 5), options);
    for (let step = 0; step < split; step++) stepOnce(first, step);
    await saveCheckpoint(dir, { config, options, state: first.state() });
    first.dispose();
    first.model.dispose();
    assert.equal(await isCheckpoint(dir), true);

    const checkpoint = await loadCheckpoint(dir);
    assert.equal(checkpoint.state.step, split);
    // A different initial seed: everything that matters must come from the checkpoint.
    const resumed = new Trainer(createDit(checkpoint.config, 77), checkpoint.options);
    resumed.loadState(checkpoint.state);
    for (let step = split; step < total; step++) stepOnce(resumed, step);
    assert.equal(resumed.step, total);
    let diff = maxParameterDiff(straight, resumed);
    const refA = straight.reference!.weights();
    const refB = resumed.reference!.weights();
    if (refA && refB) for (const [name, value] of refA) diff = Math.max(diff, maxAbsDiff(value.data, refB.get(name)!.data));
    const files = (await readdir(dir)).sort();
    resumed.dispose();
    resumed.model.dispose();
    straight.dispose();
    straight.model.dispose();
    return { diff, files };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('resuming from a checkpoint reaches the weights of the uninterrupted run (full model, hard reference)', async () => {
  const { diff, files } = await resumeCase(tinyConfig, {
    seed: 6,
    learningRate: 1e-3,
    microBatch: 2,
    maxGradNorm: 1,
    reference: { mode: 'hard', every: 2 },
  });
  assert.deepEqual(files, ['model.safetensors', 'optimizer.safetensors', 'reference.safetensors', 'trainer.json']);
  assert.equal(diff, 0);
});

test('resuming works the same with LoRA and a soft reference', async () => {
  const { diff, files } = await resumeCase(
    { ...tinyConfig, lora: { rank: 2, alpha: 2 } },
    { seed: 7, learningRate: 1e-3, reference: { mode: 'soft', alpha: 0.5, every: 2 } },
  );
  assert.deepEqual(files, ['model.safetensors', 'optimizer.safetensors', 'trainer.json']);
  assert.equal(diff, 0);
});
