// End to end: a reference pre-trained by MSE, then Diffusion-DPO on a synthetic, prompt-conditional preference
// (see BrightnessTask). Held-out implicit accuracy must rise with the true labels, stay at chance with random
// labels and fall with flipped labels — the controls that show the loss learns the labels and nothing else.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/train/backend.ts';
import { createDit } from '../../src/train/dit.ts';
import { createRng } from '../../src/train/rng.ts';
import { evaluateDpo, Trainer, type DpoEvaluation, type PairBatch } from '../../src/train/trainer-step.ts';
import { BrightnessTask, disposePairs, tinyConfig } from './helpers.ts';

await selectBackend();

const task = new BrightnessTask(tinyConfig, 8, 1);
const model = createDit(tinyConfig, 1);
let pretrained: Map<string, tf.Tensor>;
let heldOut: PairBatch;
let pretrainLoss = Number.NaN;

before(() => {
  const trainer = new Trainer(model, { seed: 2, learningRate: 2e-3, reference: null });
  const data = createRng(3);
  for (let step = 0; step < 100; step++) {
    const batch = task.images(data, 16);
    pretrainLoss = trainer.mseStep(batch).loss;
    tf.dispose([batch.x0, batch.textStates]);
  }
  trainer.dispose();
  pretrained = new Map([...model.parameters].map(([name, v]) => [name, tf.clone(v)]));
  heldOut = task.pairs(createRng(99), 128, 'true');
});

function trainDpo(labels: 'true' | 'random' | 'flipped', steps = 40): { final: DpoEvaluation; curve: string } {
  for (const [name, variable] of model.parameters) variable.assign(pretrained.get(name)!);
  const trainer = new Trainer(model, { seed: 4, learningRate: 3e-4, beta: 5000, reference: { mode: 'none' } });
  const data = createRng(5);
  const curve: string[] = [];
  let final: DpoEvaluation | undefined;
  for (let step = 1; step <= steps; step++) {
    const batch = task.pairs(data, 8, labels);
    trainer.dpoStep(batch);
    disposePairs(batch);
    if (step % 10 === 0) {
      final = evaluateDpo(model, trainer.reference!, heldOut, createRng(7), { beta: 5000 });
      curve.push(`${step}: ${final.implicitAccuracy.toFixed(2)}`);
    }
  }
  trainer.dispose();
  return { final: final!, curve: curve.join(', ') };
}

test('the MSE pre-training learned to denoise', () => {
  // An untrained (all-zero) ε̂ scores 1.0; the task's latents are predictable enough to get well below.
  assert.ok(pretrainLoss < 0.4, `MSE after pre-training ${pretrainLoss}`);
});

test('true labels: held-out implicit accuracy rises well above ½ and the denoiser stays good', (t) => {
  const { final, curve } = trainDpo('true');
  t.diagnostic(`accuracy by step ${curve}; model MSE ${final.modelMse.toFixed(4)} vs reference ${final.referenceMse.toFixed(4)}`);
  assert.ok(final.implicitAccuracy >= 0.75, curve);
  assert.ok(final.rewardMargin > 0);
  assert.ok(final.modelMse < 1.2 * final.referenceMse, `model MSE ${final.modelMse} vs reference ${final.referenceMse}`);
});

test('random labels: held-out accuracy stays near ½', (t) => {
  const { final, curve } = trainDpo('random');
  t.diagnostic(`accuracy by step ${curve}`);
  assert.ok(final.implicitAccuracy > 0.35 && final.implicitAccuracy < 0.65, curve);
});

test('flipped labels: held-out accuracy falls below ½', (t) => {
  const { final, curve } = trainDpo('flipped');
  t.diagnostic(`accuracy by step ${curve}`);
  assert.ok(final.implicitAccuracy <= 0.3, curve);
  assert.ok(final.rewardMargin < 0);
});
