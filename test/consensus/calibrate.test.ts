import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitTemperature, logLikelihood, CalibrationSample } from '../../src/consensus/calibrate.ts';

const close = (actual: number | null, expected: number, tol = 1e-9): void => {
  assert.ok(actual !== null && Math.abs(actual - expected) <= tol, `${actual} is not within ${tol} of ${expected}`);
};
const f64 = (xs: number[]): Float64Array => Float64Array.from(xs);

test('hand case: two of three agree → σ(β) = ⅔, β = ln 2', () => {
  const fit = fitTemperature(f64([1, 1, 1]), f64([1, 1, 0]), 1);
  assert.equal(fit.status, 'ok');
  assert.equal(fit.n, 3);
  close(fit.beta, Math.LN2, 1e-12);
  close(fit.tau, 1 / Math.LN2, 1e-12); // 1.4427
  // 2 ln ⅔ + ln ⅓ = −1.9095425; at τ = 1: 2 log σ(1) + log σ(−1) = −1.9397851.
  close(fit.logLikFitted, -1.9095425048844386, 1e-12);
  close(fit.logLikDefault, -1.9397850625546685, 1e-12);
  close(fit.gainPerPair, 0.010080852556743, 1e-12);
  assert.equal(fit.defaultTau, 1);
});

test('hand cases with ½ labels and scaled differences', () => {
  // L' = (1 − σ) + (½ − σ) = 0 → σ(β) = ¾, β = ln 3.
  close(fitTemperature(f64([1, 1]), f64([1, 0.5]), 1).beta, Math.log(3), 1e-12);
  // Doubling d halves β.
  close(fitTemperature(f64([2, 2]), f64([1, 0.5]), 1).beta, Math.log(3) / 2, 1e-12);
  // A ½ label keeps otherwise separable data finite: L' = 2(1 − σ) + (½ − σ) → σ = ⅚, β = ln 5.
  const fit = fitTemperature(f64([1, -1, 1]), f64([1, 0, 0.5]), 1);
  assert.equal(fit.status, 'ok');
  close(fit.beta, Math.log(5), 1e-12);
});

test('anti-correlation is reported, never a negative τ', () => {
  const fit = fitTemperature(f64([1, 1, 1]), f64([0, 0, 1]), 1);
  assert.equal(fit.status, 'anti-correlated');
  assert.equal(fit.tau, null);
  close(fit.beta, -Math.LN2, 1e-12);
  // The best τ > 0 is τ → ∞ (p = ½): 3 ln ½; at τ = 1: 2 log σ(−1) + log σ(1).
  close(fit.logLikFitted, 3 * Math.log(0.5), 1e-12);
  close(fit.logLikDefault, -2.9397850625546685, 1e-12);
  close(fit.gainPerPair, 0.28678117362494425, 1e-12);
});

test('degenerate data: separable, uncorrelated, no data, bad labels', () => {
  const separable = fitTemperature(f64([1, -2, 0]), f64([1, 0, 1]), 1);
  assert.equal(separable.status, 'separable');
  assert.equal(separable.beta, Number.POSITIVE_INFINITY);
  assert.equal(separable.tau, null);
  close(separable.logLikFitted, Math.log(0.5), 1e-15); // only the d = 0 pair costs anything in the limit
  assert.ok(separable.gainPerPair > 0);

  const antiSeparable = fitTemperature(f64([1, -2]), f64([0, 1]), 1);
  assert.equal(antiSeparable.status, 'anti-correlated');
  assert.equal(antiSeparable.beta, Number.NEGATIVE_INFINITY);

  const flat = fitTemperature(f64([1, 1]), f64([1, 0]), 1);
  assert.equal(flat.status, 'uncorrelated');
  assert.equal(flat.beta, 0);
  assert.equal(flat.tau, null);

  const none = fitTemperature(f64([1, 2]), f64([Number.NaN, Number.NaN]), 1);
  assert.equal(none.status, 'no-data');
  assert.equal(none.n, 0);

  assert.throws(() => fitTemperature(f64([1]), f64([2]), 1), /human label must be in \[0, 1\]/);
  assert.throws(() => fitTemperature(f64([1]), f64([1, 0]), 1), /d has 1 values but y has 2/);
  assert.throws(() => fitTemperature(f64([1]), f64([1]), 0), /default temperature/);
});

test('null labels and missing scores are skipped', () => {
  const fit = fitTemperature(f64([1, 1, Number.NaN, 1, 1, 1]), f64([1, 1, 1, Number.NaN, 0, Number.NaN]), 1);
  assert.equal(fit.n, 3);
  close(fit.beta, Math.LN2, 1e-12);
});

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Score differences ~ N(0, 0.05²) and Bernoulli labels drawn with P(y = 1) = σ(sign · d / τ). */
function synthetic(n: number, tau: number, seed: number, sign = 1): { d: Float64Array; y: Float64Array } {
  const rand = mulberry32(seed);
  const d = new Float64Array(n);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = 1 - rand();
    d[i] = 0.05 * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
    y[i] = rand() < 1 / (1 + Math.exp((-sign * d[i]!) / tau)) ? 1 : 0;
  }
  return { d, y };
}

test('recovers a known τ = 0.02 from 20k synthetic pairs, gains over the default 0.01', () => {
  const { d, y } = synthetic(20000, 0.02, 2024);
  const fit = fitTemperature(d, y, 0.01);
  assert.equal(fit.status, 'ok');
  assert.equal(fit.n, 20000);
  assert.ok(Math.abs(fit.tau! - 0.02) < 0.002, `τ = ${fit.tau}`);
  assert.ok(fit.gainPerPair > 0, `gain ${fit.gainPerPair}`);
  close(fit.gainPerPair, (fit.logLikFitted - fit.logLikDefault) / 20000, 1e-15);
  // Independent optimality check: the fitted β beats its neighbours.
  const at = (beta: number): number => logLikelihood(d, y, beta);
  assert.ok(at(fit.beta) >= at(fit.beta * 1.001));
  assert.ok(at(fit.beta) >= at(fit.beta * 0.999));
  close(fit.logLikFitted, at(fit.beta), 1e-9);
  close(fit.logLikDefault, at(100), 1e-9);
  // Already at the truth: the gain over a default of the fitted τ itself is 0.
  assert.equal(fitTemperature(d, y, fit.tau!).gainPerPair, 0);
});

test('reports anti-correlation on synthetic data with flipped labels', () => {
  const { d, y } = synthetic(20000, 0.02, 7, -1);
  const fit = fitTemperature(d, y, 0.01);
  assert.equal(fit.status, 'anti-correlated');
  assert.equal(fit.tau, null);
  assert.ok(Math.abs(fit.beta + 50) < 5, `β = ${fit.beta}`);
  assert.ok(fit.gainPerPair > 0); // p = ½ beats a confident wrong metric
});

test('CalibrationSample gathers batches into the same fit', () => {
  const { d, y } = synthetic(5000, 0.05, 99);
  const sample = new CalibrationSample();
  // Batches of scores (d = s_a − s_b), with some null labels mixed in.
  for (let start = 0; start < 5000; start += 1300) {
    const end = Math.min(5000, start + 1300);
    const sA = Float64Array.from(d.subarray(start, end), (x) => 3 + x);
    const sB = new Float64Array(end - start).fill(3);
    sample.addScores(sA, sB, y.subarray(start, end));
    sample.add([0.1], [Number.NaN]);
  }
  assert.equal(sample.size, 5000);
  const batched = sample.fit(1);
  const whole = fitTemperature(d, y, 1);
  assert.equal(batched.status, 'ok');
  close(batched.tau, whole.tau!, 1e-9);
  assert.ok(Math.abs(batched.tau! - 0.05) < 0.0075, `τ = ${batched.tau}`);
  assert.throws(() => sample.add([1], [-0.5]), /human label/);
});
