import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/train/backend.ts';
import { createDit } from '../../src/train/dit.ts';
import { createReference } from '../../src/train/reference.ts';
import { createRng } from '../../src/train/rng.ts';
import { maxAbsDiff, normalTensor, randomizeParameters, TEXT_LENGTH, tinyConfig } from './helpers.ts';

await selectBackend();

const Q = 'blocks.0.attn.q.weight';

function inputs(seed: number) {
  const rng = createRng(seed);
  return {
    x: normalTensor<tf.Tensor4D>(rng, [2, 4, 8, 8]),
    t: tf.tensor1d([10, 700]),
    text: normalTensor<tf.Tensor3D>(rng, [2, TEXT_LENGTH, tinyConfig.textWidth]),
  };
}

const values = (t: tf.Tensor): Float32Array => t.dataSync().slice() as Float32Array;

test('none keeps the starting weights; hard copies θ every K steps', () => {
  const model = createDit(tinyConfig, 1);
  randomizeParameters(model, 2);
  const start = values(model.parameters.get(Q)!);
  const frozen = createReference(model, { mode: 'none' });
  const hard = createReference(model, { mode: 'hard', every: 2 });
  randomizeParameters(model, 3);
  const trained = values(model.parameters.get(Q)!);
  assert.ok(maxAbsDiff(start, trained) > 0.01);

  assert.equal(hard.afterStep(1), false);
  assert.deepEqual(hard.weights()!.get(Q)!.data, start);
  assert.equal(hard.afterStep(2), true);
  assert.deepEqual(hard.weights()!.get(Q)!.data, trained);
  for (const step of [1, 2, 10]) assert.equal(frozen.afterStep(step), false);
  assert.deepEqual(frozen.weights()!.get(Q)!.data, start);

  // The reference predicts with its own weights: after the hard copy it agrees with the model exactly.
  const { x, t, text } = inputs(4);
  const ours = model.predict(x, t, text);
  const theirs = hard.predict(x, t, text);
  assert.deepEqual(theirs.dataSync(), ours.dataSync());
  const old = frozen.predict(x, t, text);
  assert.ok(maxAbsDiff(old.dataSync(), ours.dataSync()) > 1e-3);
  tf.dispose([x, t, text, ours, theirs, old]);
  for (const r of [frozen, hard]) r.dispose();
  model.dispose();
});

test('soft moves the reference to α·θ + (1 − α)·θ_ref at every step', () => {
  const model = createDit(tinyConfig, 5);
  randomizeParameters(model, 6);
  const soft = createReference(model, { mode: 'soft', alpha: 0.25 });
  let expected = values(model.parameters.get(Q)!);
  for (let step = 1; step <= 3; step++) {
    randomizeParameters(model, 10 + step);
    const theta = values(model.parameters.get(Q)!);
    assert.equal(soft.afterStep(step), true);
    expected = expected.map((r, i) => 0.25 * theta[i]! + 0.75 * r);
    assert.ok(maxAbsDiff(soft.weights()!.get(Q)!.data, expected) < 1e-6, `step ${step}`);
  }
  soft.dispose();
  model.dispose();
});

test('LoRA: reference = base with adapters off; a hard update merges the adapters without changing the model', () => {
  const config = { ...tinyConfig, lora: { rank: 2, alpha: 3 } };
  const model = createDit(config, 7);
  randomizeParameters(model, 8);
  const reference = createReference(model, { mode: 'hard', every: 5 });
  assert.equal(reference.ownsWeights, false);
  assert.equal(reference.weights(), null);
  const { x, t, text } = inputs(9);
  const before = values(model.predict(x, t, text));
  const baseBefore = values(reference.predict(x, t, text));
  assert.ok(maxAbsDiff(before, baseBefore) > 1e-3, 'the adapters matter before the merge');
  assert.equal(model.adaptersEnabled(), true, 'reference.predict restores the adapters');

  // W + (alpha/rank)·A·B for one projection, by hand.
  const a = model.parameters.get('blocks.0.attn.q.lora_A')!.arraySync() as number[][];
  const b = model.parameters.get('blocks.0.attn.q.lora_B')!.arraySync() as number[][];
  const w = model.parameters.get(Q)!.arraySync() as number[][];
  const merged = w.map((row, i) => row.map((value, j) => value + 1.5 * (a[i]![0]! * b[0]![j]! + a[i]![1]! * b[1]![j]!)));

  assert.equal(reference.afterStep(4), false);
  assert.equal(reference.afterStep(5), true);
  assert.ok(maxAbsDiff(values(model.parameters.get(Q)!), merged.flat()) < 1e-6);
  for (const name of model.trainableNames().filter((n) => n.endsWith('lora_B'))) {
    assert.equal(Math.max(...values(model.parameters.get(name)!).map(Math.abs)), 0, name);
  }
  const after = values(model.predict(x, t, text));
  const baseAfter = values(reference.predict(x, t, text));
  assert.ok(maxAbsDiff(after, before) < 1e-5, `merged model output moved by ${maxAbsDiff(after, before)}`);
  assert.ok(maxAbsDiff(baseAfter, after) < 1e-5, 'after the merge the reference is the model');
  tf.dispose([x, t, text]);
  model.dispose();
});

test('LoRA soft update merges the fraction α and keeps the rest in the adapters', () => {
  const config = { ...tinyConfig, lora: { rank: 2, alpha: 2 } };
  const model = createDit(config, 11);
  randomizeParameters(model, 12);
  const reference = createReference(model, { mode: 'soft', alpha: 0.5, every: 2 });
  const { x, t, text } = inputs(13);
  const before = values(model.predict(x, t, text));
  const bBefore = values(model.parameters.get('blocks.0.cross_attn.o.lora_B')!);
  const baseBefore = values(reference.predict(x, t, text));
  assert.equal(reference.afterStep(1), false);
  assert.equal(reference.afterStep(2), true);
  assert.ok(maxAbsDiff(values(model.predict(x, t, text)), before) < 1e-5);
  assert.ok(
    maxAbsDiff(
      values(model.parameters.get('blocks.0.cross_attn.o.lora_B')!),
      bBefore.map((v) => v * 0.5),
    ) < 1e-7,
  );
  const baseAfter = values(reference.predict(x, t, text));
  assert.ok(maxAbsDiff(baseAfter, baseBefore) > 1e-4 && maxAbsDiff(baseAfter, before) > 1e-4, 'the reference is half way');
  tf.dispose([x, t, text]);
  model.dispose();
});

test('bad reference options are refused', () => {
  const model = createDit(tinyConfig, 0);
  assert.throws(() => createReference(model, { mode: 'hard' }), /every/);
  assert.throws(() => createReference(model, { mode: 'soft' }), /alpha/);
  assert.throws(() => createReference(model, { mode: 'soft', alpha: 1.5 }), /alpha/);
  assert.throws(() => createReference(model, { mode: 'hard', every: 0 }), /every/);
  model.dispose();
});
