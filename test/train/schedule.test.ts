import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/train/backend.ts';
import { addNoise, noiseCoefficients, scaledLinearSchedule } from '../../src/train/schedule.ts';

await selectBackend();

/** ᾱ_t by a different route than the module: a sum of log1p terms, betas from the closed form. */
function alphaBarByLogs(t: number): number {
  const lo = Math.sqrt(0.00085);
  const hi = Math.sqrt(0.012);
  let logSum = 0;
  for (let i = 0; i <= t; i++) {
    const beta = (lo + (i / 999) * (hi - lo)) ** 2;
    logSum += Math.log1p(-beta);
  }
  return Math.exp(logSum);
}

test('scaled-linear schedule: betas run from 0.00085 to 0.012 in sqrt space', () => {
  const s = scaledLinearSchedule();
  assert.equal(s.numSteps, 1000);
  assert.ok(Math.abs(s.betas[0]! - 0.00085) < 1e-15);
  assert.ok(Math.abs(s.betas[999]! - 0.012) < 1e-15);
  // Linear in sqrt space: consecutive roots differ by (√0.012 − √0.00085)/999 everywhere.
  const step = (Math.sqrt(0.012) - Math.sqrt(0.00085)) / 999;
  for (let i = 1; i < 1000; i++) assert.ok(Math.abs(Math.sqrt(s.betas[i]!) - Math.sqrt(s.betas[i - 1]!) - step) < 1e-12);
});

test('alphas_cumprod match an independent product at t = 0, 499, 999', () => {
  const s = scaledLinearSchedule();
  assert.ok(Math.abs(s.alphasCumprod[0]! - 0.99915) < 1e-12);
  for (const t of [0, 499, 999]) assert.ok(Math.abs(s.alphasCumprod[t]! - alphaBarByLogs(t)) < 1e-12, `t=${t}`);
  // The value the diffusers DDPMScheduler (float32) holds for SD's config.
  assert.ok(Math.abs(s.alphasCumprod[999]! - 0.0046601) < 1e-6, String(s.alphasCumprod[999]));
  assert.ok(Math.abs(s.alphasCumprod[499]! - 0.2776697) < 1e-6, String(s.alphasCumprod[499]));
  for (let t = 1; t < 1000; t++) assert.ok(s.alphasCumprod[t]! < s.alphasCumprod[t - 1]!);
});

test('addNoise is sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε per batch element', () => {
  const s = scaledLinearSchedule();
  const x0 = [0.5, -1, 2, 0.25, 3, -0.5, 1, 1];
  const eps = [1, 1, -1, 0.5, -2, 0, 0.75, -0.25];
  const t = [0, 999];
  const noisy = tf.tidy(() => addNoise(s, tf.tensor(x0, [2, 1, 2, 2]), tf.tensor(eps, [2, 1, 2, 2]), t).dataSync());
  for (let i = 0; i < 8; i++) {
    const a = alphaBarByLogs(t[Math.floor(i / 4)]!);
    const expected = Math.sqrt(a) * x0[i]! + Math.sqrt(1 - a) * eps[i]!;
    assert.ok(Math.abs(noisy[i]! - expected) < 1e-6, `${i}: ${noisy[i]} vs ${expected}`);
  }
  assert.throws(() => noiseCoefficients(s, [1000]), /outside/);
  assert.throws(() => noiseCoefficients(s, [1.5]), /outside/);
  assert.throws(() => tf.tidy(() => addNoise(s, tf.zeros([2, 1]), tf.zeros([2, 1]), [3])), /2/);
});
