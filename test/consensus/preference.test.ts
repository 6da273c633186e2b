import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  sigmoid,
  logSigmoid,
  preferenceProbability,
  vote,
  binaryEntropy,
  entropyBits,
  voteEntropy,
  assertMargin,
  assertTemperature,
} from '../../src/consensus/preference.ts';

const close = (actual: number, expected: number, tol = 1e-12): void =>
  assert.ok(Math.abs(actual - expected) <= tol, `${actual} is not within ${tol} of ${expected}`);

test('sigmoid: known values, no overflow, exact mirror symmetry', () => {
  assert.equal(sigmoid(0), 0.5);
  close(sigmoid(1), 0.7310585786300049);
  close(sigmoid(-1), 0.2689414213699951);
  close(sigmoid(2), 0.8807970779778823);
  assert.equal(sigmoid(800), 1);
  assert.equal(sigmoid(-800), 0);
  assert.ok(Number.isNaN(sigmoid(Number.NaN)));
  for (const x of [1e-9, 0.1, 0.3, 1, 2.5, 7, 19.75, 36.9]) {
    assert.equal(sigmoid(x) + sigmoid(-x), 1, `x = ${x}`);
    assert.equal(sigmoid(x) - 0.5, -(sigmoid(-x) - 0.5), `x = ${x}`);
  }
});

test('logSigmoid: log(1/(1+e^-x)) without overflow or cancellation', () => {
  close(logSigmoid(0), -Math.LN2);
  close(logSigmoid(1), -0.31326168751822286);
  close(logSigmoid(-1), -1.3132616875182228);
  assert.equal(logSigmoid(-800), -800);
  assert.equal(logSigmoid(800), -0);
  close(logSigmoid(40), -4.248354255291589e-18, 1e-30);
});

test('preferenceProbability: σ((s_a − s_b)/τ); missing scores give NaN', () => {
  // PickScore, τ = 1: one logit apart.
  close(preferenceProbability(21.3, 20.3, 1), 0.7310585786300049, 1e-12);
  // Cosine metric, τ = 0.01: 0.02 apart → σ(2).
  close(preferenceProbability(0.31, 0.29, 0.01), 0.8807970779778823, 1e-12);
  assert.equal(preferenceProbability(5, 5, 1), 0.5);
  assert.ok(Number.isNaN(preferenceProbability(Number.NaN, 1, 1)));
  assert.ok(Number.isNaN(preferenceProbability(1, Number.POSITIVE_INFINITY, 1)));
});

test('vote: strict band around ½, exactly ½ always abstains', () => {
  assert.equal(vote(0.5, 0), 0);
  assert.equal(vote(0.5000001, 0), 1);
  assert.equal(vote(0.4999999, 0), -1);
  assert.equal(vote(0.65, 0.1), 1);
  assert.equal(vote(0.55, 0.1), 0);
  assert.equal(vote(0.45, 0.1), 0);
  assert.equal(vote(0.35, 0.1), -1);
  assert.equal(vote(Number.NaN, 0), 0);
  // |p − ½| = δ abstains (the band is closed).
  assert.equal(vote(0.75, 0.25), 0);
  assert.equal(vote(0.25, 0.25), 0);
});

test('entropies in bits', () => {
  assert.equal(binaryEntropy(0.5), 1);
  assert.equal(binaryEntropy(0), 0);
  assert.equal(binaryEntropy(1), 0);
  // −¾·log2 ¾ − ¼·log2 ¼ = 0.311278… + 0.5
  close(binaryEntropy(0.75), 0.8112781244591328);
  assert.ok(Number.isNaN(binaryEntropy(1.5)));
  assert.equal(voteEntropy(4, 0), 0);
  assert.equal(voteEntropy(0, 4), 0);
  assert.equal(voteEntropy(2, 2), 1);
  close(voteEntropy(3, 1), 0.8112781244591328);
  close(voteEntropy(1, 3), 0.8112781244591328);
  // H(⅔) = log2 3 − ⅔ = 0.918295…
  close(voteEntropy(2, 1), Math.log2(3) - 2 / 3);
  assert.ok(Number.isNaN(voteEntropy(0, 0)));
  assert.equal(entropyBits([2, 1, 1]), 1.5);
  assert.equal(entropyBits([4, 0, 0]), 0);
  close(entropyBits([1, 1, 1]), Math.log2(3));
  assert.ok(Number.isNaN(entropyBits([0, 0])));
});

test('argument checks', () => {
  assert.throws(() => assertMargin(0.5), RangeError);
  assert.throws(() => assertMargin(-0.01), RangeError);
  assert.throws(() => assertMargin(Number.NaN), RangeError);
  assertMargin(0);
  assertMargin(0.49);
  assert.throws(() => assertTemperature(0, 'hps'), /temperature of metric 'hps'/);
  assert.throws(() => assertTemperature(Number.POSITIVE_INFINITY, 'hps'), RangeError);
  assertTemperature(0.01, 'hps');
});
