import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/train/backend.ts';
import { createDit, patchify, sincosPositions, unpatchify, validateDitConfig } from '../../src/train/dit.ts';
import { dense, denseFrozen, geluTanh, matMul2d } from '../../src/train/ops.ts';
import { createRng } from '../../src/train/rng.ts';
import { maxAbsDiff, normalTensor, randomizeParameters, TEXT_LENGTH, tinyConfig } from './helpers.ts';

await selectBackend();

function inputs(seed: number, batch = 3): { x: tf.Tensor4D; t: tf.Tensor1D; text: tf.Tensor3D } {
  const rng = createRng(seed);
  return {
    x: normalTensor(rng, [batch, 4, 8, 8]),
    t: tf.tensor1d(Array.from({ length: batch }, (_, i) => 100 + 300 * i)),
    text: normalTensor(rng, [batch, TEXT_LENGTH, tinyConfig.textWidth]),
  };
}

const read = (f: () => tf.Tensor): Float32Array => {
  const out = f();
  const values = out.dataSync() as Float32Array;
  out.dispose();
  return values;
};

test('patchify lays out (C, p, p) per token in row-major grid order; unpatchify inverts it', () => {
  const x = tf.tensor4d(
    Float32Array.from({ length: 2 * 2 * 4 * 4 }, (_, i) => i),
    [2, 2, 4, 4],
  );
  const tokens = patchify(x, 2);
  assert.deepEqual(tokens.shape, [2 * 4, 2 * 2 * 2]);
  const values = tokens.arraySync() as number[][];
  // Image 0, token 1 = grid (row 0, col 1): channel 0 rows 0–1, cols 2–3, then channel 1 (offset 16).
  assert.deepEqual(values[1], [2, 3, 6, 7, 18, 19, 22, 23]);
  // Image 1, token 2 = grid (row 1, col 0): offset 32 for the image, rows 2–3, cols 0–1.
  assert.deepEqual(values[4 + 2], [40, 41, 44, 45, 56, 57, 60, 61]);
  const back = unpatchify(tokens, 2, 2, 4, 2);
  assert.deepEqual(back.dataSync(), x.dataSync());
  tf.dispose([x, tokens, back]);
});

test('2-D sin-cos positions follow DiT: column half first, sin then cos, ω_i = 10000^(−i/(D/4))', () => {
  const table = sincosPositions(2, 8);
  const row = (token: number): number[] => [...table.subarray(token * 8, token * 8 + 8)];
  // Token 1 = (row 0, col 1): column half [sin 1, sin 0.01, cos 1, cos 0.01], row half [0, 0, 1, 1].
  const expected = [Math.sin(1), Math.sin(0.01), Math.cos(1), Math.cos(0.01), 0, 0, 1, 1];
  assert.ok(maxAbsDiff(row(1), expected) < 1e-7);
  assert.ok(maxAbsDiff(row(2), [0, 0, 1, 1, Math.sin(1), Math.sin(0.01), Math.cos(1), Math.cos(0.01)]) < 1e-7);
});

test('at initialisation adaLN-zero and the zero head make ε̂ exactly 0; seeds decide every weight', () => {
  const a = createDit(tinyConfig, 3);
  const b = createDit(tinyConfig, 3);
  const c = createDit(tinyConfig, 4);
  const { x, t, text } = inputs(1);
  const out = a.predict(x, t, text);
  assert.deepEqual(out.shape, [3, 4, 8, 8]);
  assert.equal(Math.max(...out.dataSync().map(Math.abs)), 0);
  const q = 'blocks.0.attn.q.weight';
  assert.deepEqual(a.parameters.get(q)!.dataSync(), b.parameters.get(q)!.dataSync());
  assert.ok(maxAbsDiff(a.parameters.get(q)!.dataSync(), c.parameters.get(q)!.dataSync()) > 0.01);
  // Xavier-uniform bound for a 32 × 32 matrix is √(6/64) ≈ 0.306.
  const w = a.parameters.get(q)!.dataSync();
  assert.ok(Math.max(...w.map(Math.abs)) <= Math.sqrt(6 / 64));
  assert.equal(a.trainableNames().length, a.parameters.size);
  tf.dispose([out, x, t, text]);
  for (const m of [a, b, c]) m.dispose();
});

test('timestep, text and latents all reach the output; masked text tokens do not', () => {
  const model = createDit(tinyConfig, 5);
  randomizeParameters(model, 6);
  const { x, t, text } = inputs(2);
  const mask = tf.tensor2d([
    [1, 1, 0, 0],
    [1, 1, 1, 0],
    [1, 1, 1, 1],
  ]);
  const base = read(() => model.predict(x, t, text, mask));
  assert.ok(Math.max(...base.map(Math.abs)) > 0.01);
  // Rewrite the padded positions (mask 0): nothing may change.
  const padding = tf.tensor3d(
    Array.from({ length: 3 }, (_, b) =>
      Array.from({ length: TEXT_LENGTH }, (_, s) => new Array<number>(tinyConfig.textWidth).fill(mask.arraySync()[b]![s] ? 0 : 7)),
    ),
  );
  const keep = tf.tidy(() => tf.reshape(mask, [3, TEXT_LENGTH, 1]));
  const edited = tf.tidy(() => tf.add(tf.mul(text, keep), padding)) as tf.Tensor3D;
  assert.ok(
    maxAbsDiff(
      read(() => model.predict(x, t, edited, mask)),
      base,
    ) < 1e-5,
  );
  // Without the mask the same edit changes the output, and so do other timesteps and other latents.
  assert.ok(
    maxAbsDiff(
      read(() => model.predict(x, t, edited)),
      read(() => model.predict(x, t, text)),
    ) > 1e-3,
  );
  const t2 = tf.tensor1d([900, 50, 500]);
  assert.ok(
    maxAbsDiff(
      read(() => model.predict(x, t2, text, mask)),
      base,
    ) > 1e-3,
  );
  const x2 = tf.tidy(() => tf.add(x, 0.5)) as tf.Tensor4D;
  assert.ok(
    maxAbsDiff(
      read(() => model.predict(x2, t, text, mask)),
      base,
    ) > 1e-3,
  );
  // Each image's output depends on its own inputs only: predicting image 1 alone gives the same values.
  const single = read(() => model.predict(tf.slice(x, 1, 1), tf.slice(t, 1, 1), tf.slice(text, 1, 1), tf.slice(mask, 1, 1)));
  assert.ok(maxAbsDiff(single, base.subarray(256, 512)) < 1e-5);
  tf.dispose([x, t, text, mask, padding, keep, edited, t2, x2]);
  model.dispose();
});

test('LoRA adapters: only they train, they start as a no-op, and switching them off gives the base model', () => {
  const config = { ...tinyConfig, lora: { rank: 2, alpha: 4 } };
  const model = createDit(config, 7);
  const names = model.trainableNames();
  assert.equal(names.length, tinyConfig.depth * 2 * 4 * 2);
  assert.ok(names.every((n) => /\.(q|k|v|o)\.lora_[AB]$/.test(n)));
  assert.deepEqual(model.parameters.get('blocks.0.attn.q.lora_A')!.shape, [32, 2]);
  assert.deepEqual(model.parameters.get('blocks.0.cross_attn.k.lora_A')!.shape, [tinyConfig.textWidth, 2]);
  assert.equal(Math.max(...model.parameters.get('blocks.0.attn.v.lora_B')!.dataSync().map(Math.abs)), 0);
  randomizeParameters(model, 8);
  const { x, t, text } = inputs(3);
  const on = read(() => model.predict(x, t, text));
  model.setAdaptersEnabled(false);
  const off = read(() => model.predict(x, t, text));
  model.setAdaptersEnabled(true);
  assert.ok(maxAbsDiff(on, off) > 1e-3);
  // The same base weights in a model without adapters compute the "off" output.
  const plain = createDit(tinyConfig, 0);
  for (const [name, variable] of plain.parameters) variable.assign(model.parameters.get(name)!);
  assert.ok(
    maxAbsDiff(
      read(() => plain.predict(x, t, text)),
      off,
    ) < 1e-5,
  );
  tf.dispose([x, t, text]);
  model.dispose();
  plain.dispose();
});

test('ops: GELU is the tanh form; the explicit-transpose gradients equal tfjs’ own', () => {
  const xs = tf.linspace(-6, 6, 49);
  const gelu = geluTanh(xs).dataSync();
  xs.dataSync().forEach((x, i) => {
    const reference = 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    assert.ok(Math.abs(gelu[i]! - reference) < 1e-5, `x=${x}`);
  });
  const rng = createRng(9);
  const a = normalTensor<tf.Tensor2D>(rng, [5, 3]);
  const b = normalTensor<tf.Tensor2D>(rng, [3, 4]);
  const bias = normalTensor<tf.Tensor1D>(rng, [4]);
  const weights = normalTensor<tf.Tensor2D>(rng, [5, 4]);
  const objective = (f: (x: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor2D) => (x: tf.Tensor, w: tf.Tensor) =>
    tf.sum(tf.mul(f(x as tf.Tensor2D, w as tf.Tensor2D), weights));
  const ours = tf.grads(objective(matMul2d))([a, b]);
  const theirs = tf.grads(objective((x, w) => tf.matMul(x, w)))([a, b]);
  for (let i = 0; i < 2; i++) assert.ok(maxAbsDiff(ours[i]!.dataSync(), theirs[i]!.dataSync()) < 1e-5);
  const frozen = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(denseFrozen(x as tf.Tensor2D, b, bias), weights)))(a);
  const full = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(dense(x as tf.Tensor2D, b, bias), weights)))(a);
  assert.ok(maxAbsDiff(frozen.dataSync(), full.dataSync()) < 1e-5);
  assert.ok(maxAbsDiff(denseFrozen(a, b, bias).dataSync(), dense(a, b, bias).dataSync()) < 1e-6);
});

test('learned positions are a trainable [N, D] parameter that the loss reaches', () => {
  const model = createDit({ ...tinyConfig, posEmbed: 'learned' }, 12);
  randomizeParameters(model, 13);
  const positions = model.parameters.get('pos_embed')!;
  assert.deepEqual(positions.shape, [16, 32]);
  assert.ok(model.trainableNames().includes('pos_embed'));
  assert.equal(createDit(tinyConfig, 12).parameters.has('pos_embed'), false);
  const { x, t, text } = inputs(14);
  const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(model.predict(x, t, text))) as tf.Scalar, [positions]);
  assert.ok(Math.max(...grads[positions.name]!.dataSync().map(Math.abs)) > 1e-4);
  tf.dispose([value, x, t, text, ...Object.values(grads)]);
  model.dispose();
});

test('config validation names the bad field', () => {
  assert.throws(() => validateDitConfig({ ...tinyConfig, latentSize: 7 }), /multiple of patch/);
  assert.throws(() => validateDitConfig({ ...tinyConfig, heads: 3 }), /divisible by heads/);
  assert.throws(() => validateDitConfig({ ...tinyConfig, depth: 0 }), /depth/);
  assert.throws(() => validateDitConfig({ ...tinyConfig, lora: { rank: 0, alpha: 1 } }), /lora.rank/);
  const model = createDit(tinyConfig, 0);
  const wrong = tf.zeros([1, 4, 16, 16]) as tf.Tensor4D;
  assert.throws(() => model.predict(wrong, tf.tensor1d([1]), tf.zeros([1, 2, tinyConfig.textWidth]) as tf.Tensor3D), /do not match config/);
  model.dispose();
});
