import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/train/backend.ts';
import { diffusionDpoLoss, diffusionDpoLossArrays, dpoMetrics, pairLoss } from '../../src/train/dpo.ts';
import { createRng } from '../../src/train/rng.ts';
import { maxAbsDiff, normalArray } from './helpers.ts';

await selectBackend();

const constant = (value: number, size = 4): number[] => new Array<number>(size).fill(value);

test('hand-derived numbers: errors, z, loss and accuracy', () => {
  // ε = 0, four values per image: err = value². err_a = 0.01, err_b = 0.04, ref_a = 0.04, ref_b = 0.01.
  // z = −½·100·((0.01 − 0.04) − (0.04 − 0.01)) = 3.
  const inputs = {
    modelA: [constant(0.1)],
    modelB: [constant(0.2)],
    refA: [constant(0.2)],
    refB: [constant(0.1)],
    noise: [constant(0)],
    beta: 100,
  };
  const win = diffusionDpoLossArrays({ ...inputs, label: [1] });
  assert.ok(Math.abs(win.z[0]! - 3) < 1e-12);
  assert.ok(Math.abs(win.loss - Math.log(1 + Math.exp(-3))) < 1e-12);
  assert.equal(win.implicitAccuracy, 1);
  assert.ok(Math.abs(win.rewardMargin - 3) < 1e-12);
  assert.ok(Math.abs(win.modelMse - 0.025) < 1e-12 && Math.abs(win.referenceMse - 0.025) < 1e-12);
  // A hard label 0 makes b the winner: the same z now counts against the model.
  const lose = diffusionDpoLossArrays({ ...inputs, label: [0] });
  assert.ok(Math.abs(lose.loss - (3 + Math.log(1 + Math.exp(-3)))) < 1e-12);
  assert.equal(lose.implicitAccuracy, 0);
  assert.ok(Math.abs(lose.rewardMargin + 3) < 1e-12);

  const tensors = tf.tidy(() => {
    const t = (rows: number[][]): tf.Tensor => tf.tensor(rows, [1, 1, 2, 2]);
    const terms = diffusionDpoLoss({
      modelA: t(inputs.modelA),
      modelB: t(inputs.modelB),
      refA: t(inputs.refA),
      refB: t(inputs.refB),
      noise: t(inputs.noise),
      label: tf.tensor1d([1]),
      beta: 100,
    });
    return [terms.loss.dataSync()[0]!, terms.z.dataSync()[0]!];
  });
  assert.ok(Math.abs(tensors[0]! - Math.log(1 + Math.exp(-3))) < 1e-6);
  assert.ok(Math.abs(tensors[1]! - 3) < 1e-5);
});

test('z = 0 gives ln 2 whatever the label; y = ½ is symmetric in z; swapping a and b flips the label', () => {
  for (const y of [0, 0.3, 0.5, 1]) assert.ok(Math.abs(pairLoss(0, y) - Math.LN2) < 1e-15);
  for (const z of [0.1, 2, 40]) assert.ok(Math.abs(pairLoss(z, 0.5) - pairLoss(-z, 0.5)) < 1e-12);
  for (const z of [-3, 0.7]) for (const y of [0, 0.2, 1]) assert.ok(Math.abs(pairLoss(z, y) - pairLoss(-z, 1 - y)) < 1e-12);
  // Stable at extreme z: −log σ(−1e4) = 1e4 exactly in float64, −log σ(1e4) underflows to 0 rather than NaN.
  assert.equal(pairLoss(1e4, 0), 1e4);
  assert.equal(pairLoss(1e4, 1), 0);
  const extreme = tf.tidy(() => {
    const big = tf.fill([1, 1, 1, 1], 1e3);
    const zero = tf.zeros([1, 1, 1, 1]);
    return diffusionDpoLoss({
      modelA: big,
      modelB: zero,
      refA: zero,
      refB: zero,
      noise: zero,
      label: tf.tensor1d([1]),
    }).loss.dataSync()[0]!;
  });
  // z = −½·5000·1e6 = −2.5e9: the loss is 2.5e9, finite.
  assert.ok(Number.isFinite(extreme) && Math.abs(extreme / 2.5e9 - 1) < 1e-6, String(extreme));
  const model = diffusionDpoLossArrays({ modelA: [[1]], modelB: [[1]], refA: [[1]], refB: [[1]], noise: [[0]], label: [1] });
  assert.ok(Math.abs(model.loss - Math.LN2) < 1e-15);
  // z = 0 is not > 0: an untrained model scores 0, not ½ (as the Diffusion-DPO code counts it).
  assert.equal(model.implicitAccuracy, 0);
});

test('ties count in the loss but not in the accuracy or the margin', () => {
  const metrics = dpoMetrics({
    z: [2, -1, 5, 0.5],
    label: [1, 1, 0.5, 0],
    modelErrA: [0, 0, 0, 0],
    modelErrB: [0, 0, 0, 0],
    refErrA: [0, 0, 0, 0],
    refErrB: [0, 0, 0, 0],
  });
  assert.equal(metrics.decisivePairs, 3);
  assert.ok(Math.abs(metrics.implicitAccuracy - 1 / 3) < 1e-12);
  assert.ok(Math.abs(metrics.rewardMargin - (2 - 1 - 0.5) / 3) < 1e-12);
  const expected = (pairLoss(2, 1) + pairLoss(-1, 1) + pairLoss(5, 0.5) + pairLoss(0.5, 0)) / 4;
  assert.ok(Math.abs(metrics.loss - expected) < 1e-12);
});

test('tfjs loss, z, accuracy and gradients match the plain-array twin on random inputs', () => {
  const rng = createRng(11);
  const pairs = 6;
  const size = 2 * 3 * 3;
  const shape = [pairs, 2, 3, 3];
  const draw = (scale: number): Float32Array => normalArray(rng, pairs * size, scale);
  const noise = draw(1);
  const near = (scale: number): Float32Array => {
    const x = draw(scale);
    for (let i = 0; i < x.length; i++) x[i] = x[i]! + noise[i]!;
    return x;
  };
  const arrays = { modelA: near(0.3), modelB: near(0.3), refA: near(0.3), refB: near(0.3), noise };
  const label = [1, 0, 0.5, 0.3, 1, 0];
  const beta = 20;
  const rows = (x: Float32Array): Float32Array[] => Array.from({ length: pairs }, (_, i) => x.subarray(i * size, (i + 1) * size));
  const twin = diffusionDpoLossArrays({
    modelA: rows(arrays.modelA),
    modelB: rows(arrays.modelB),
    refA: rows(arrays.refA),
    refB: rows(arrays.refB),
    noise: rows(noise),
    label,
    beta,
  });
  const tensors = Object.fromEntries(Object.entries(arrays).map(([k, v]) => [k, tf.tensor(v, shape)])) as Record<
    keyof typeof arrays,
    tf.Tensor
  >;
  const labelTensor = tf.tensor1d(label);
  const lossOf = (modelA: tf.Tensor, modelB: tf.Tensor): tf.Scalar =>
    diffusionDpoLoss({ ...tensors, modelA, modelB, label: labelTensor, beta }).loss;
  const z = tf.tidy(() => diffusionDpoLoss({ ...tensors, label: labelTensor, beta }).z.dataSync());
  const loss = tf.tidy(() => lossOf(tensors.modelA, tensors.modelB).dataSync()[0]!);
  const [gradA, gradB] = tf.grads(lossOf)([tensors.modelA, tensors.modelB]) as [tf.Tensor, tf.Tensor];
  const ga = gradA.dataSync();
  const gb = gradB.dataSync();
  tf.dispose([...Object.values(tensors), labelTensor, gradA, gradB]);

  assert.ok(Math.abs(loss - twin.loss) < 1e-5, `${loss} vs ${twin.loss}`);
  assert.ok(maxAbsDiff(z, twin.z) < 1e-4, `z ${z} vs ${twin.z}`);
  assert.ok(
    twin.z.every((v) => Math.abs(v) > 0.05),
    'fixture has no z near 0, so the accuracy comparison is meaningful',
  );
  const accuracy = dpoMetrics({
    z,
    label,
    modelErrA: twin.modelErrA,
    modelErrB: twin.modelErrB,
    refErrA: twin.refErrA,
    refErrB: twin.refErrB,
  });
  assert.equal(accuracy.implicitAccuracy, twin.implicitAccuracy);
  const expectedA = twin.gradModelA.flatMap((row) => [...row]);
  const expectedB = twin.gradModelB.flatMap((row) => [...row]);
  let scale = 0;
  for (const g of [...expectedA, ...expectedB]) scale = Math.max(scale, Math.abs(g));
  assert.ok(maxAbsDiff(ga, expectedA) < 1e-5 * Math.max(1, scale) && maxAbsDiff(gb, expectedB) < 1e-5 * Math.max(1, scale));
  let agreeingSigns = 0;
  for (let i = 0; i < ga.length; i++) {
    if (Math.sign(ga[i]!) === Math.sign(expectedA[i]!)) agreeingSigns++;
    if (Math.sign(gb[i]!) === Math.sign(expectedB[i]!)) agreeingSigns++;
  }
  assert.equal(agreeingSigns, 2 * ga.length);
  // Direction check by hand for pair 0 (y = 1, a wins): σ(z) − y < 0, so ∂loss/∂ε̂_a ∝ +(ε̂_a − ε): descending
  // moves ε̂_a towards ε (a denoised better) and ε̂_b away from it.
  const i = 0;
  assert.equal(Math.sign(ga[i]!), Math.sign(arrays.modelA[i]! - noise[i]!));
  assert.equal(Math.sign(gb[i]!), -Math.sign(arrays.modelB[i]! - noise[i]!));
});
