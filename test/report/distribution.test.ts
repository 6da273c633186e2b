import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram, histogramOf, MinMax, quantiles, quantileSorted, Reliability } from '../../src/report/distribution.ts';

const close = (actual: number, expected: number, tol = 1e-12) =>
  assert.ok(Math.abs(actual - expected) <= tol, `${actual} is not within ${tol} of ${expected}`);

test('fixed-bin histogram: half-open bins, the top edge in the last bin, out-of-range counted apart', () => {
  const h = new Histogram(0, 1, 4);
  for (const x of [0, 0.1, 0.25, 0.5, 0.74, 0.75, 1, -0.1, 1.5, NaN]) h.add(x);
  const r = h.result();
  assert.deepEqual(r.edges, [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(r.counts, [2, 1, 2, 2]);
  assert.deepEqual(r.fractions, [2 / 7, 1 / 7, 2 / 7, 2 / 7]);
  assert.deepEqual([r.inRange, r.underflow, r.overflow, r.nonFinite], [7, 1, 1, 1]);

  const other = new Histogram(0, 1, 4);
  other.add(0.3);
  assert.deepEqual(h.merge(other).result().counts, [2, 2, 2, 2]);
  assert.throws(() => h.merge(new Histogram(0, 2, 4)), RangeError);
});

test('two-pass histogram takes its range from the data', () => {
  const values = [2, 4, 4, 6, 10, NaN];
  const r = histogramOf(() => values, 4);
  assert.deepEqual(r.edges, [2, 4, 6, 8, 10]);
  assert.deepEqual(r.counts, [1, 2, 1, 1]);
  assert.equal(r.nonFinite, 1);
  // A constant sample still gets a bin around its value.
  const constant = histogramOf(() => [3, 3], 2);
  assert.deepEqual(constant.edges, [2.5, 3, 3.5]);
  assert.deepEqual(constant.counts, [0, 2]);

  const range = new MinMax();
  for (const x of [5, -1, Infinity, 2]) range.add(x);
  const more = new MinMax();
  more.add(7);
  range.merge(more);
  assert.deepEqual([range.min, range.max, range.count, range.nonFinite], [-1, 7, 4, 1]);
});

test('quantiles interpolate linearly between order statistics (numpy default)', () => {
  // numpy.quantile([1, 2, 3, 4], [0, .25, .5, .9, 1]) = [1, 1.75, 2.5, 3.7, 4]: position q·(n − 1).
  const q = quantiles([4, 1, NaN, 3, 2], [0, 0.25, 0.5, 0.9, 1]);
  [1, 1.75, 2.5, 3.7, 4].forEach((e, i) => close(q[i]!, e));
  assert.equal(quantileSorted([7], 0.3), 7);
  assert.ok(Number.isNaN(quantileSorted([], 0.5)));
  assert.throws(() => quantileSorted([1, 2], 1.5), RangeError);
});

test('reliability bins, ECE, MCE and Brier by hand (ties count ½)', () => {
  const acc = new Reliability(10);
  const pairs: [number, number | null][] = [
    [0.05, 0],
    [0.15, 0],
    [0.15, 1],
    [0.95, 1],
    [0.95, 0.5],
    [1, 1],
    [0.62, 1],
    [0.5, null],
  ];
  for (const [p, y] of pairs) acc.add(p, y);
  const r = acc.result();
  assert.equal(r.count, 7);
  assert.equal(r.skipped, 1);
  const nonEmpty = r.bins.filter((b) => b.count > 0);
  assert.deepEqual(
    nonEmpty.map((b) => [b.lo, b.count]),
    [
      [0, 1],
      [0.1, 2],
      [0.6, 1],
      [0.9, 3],
    ],
  );
  // Bin 9 holds 0.95, 0.95 and p = 1: mean 2.9/3, observed (1 + ½ + 1)/3.
  close(nonEmpty[3]!.meanPredicted, 2.9 / 3);
  close(nonEmpty[3]!.observed, 2.5 / 3);
  close(nonEmpty[1]!.observed, 0.5);
  // Gaps 0.05, 0.35, 0.38, 0.4/3 weighted 1, 2, 1, 3 of 7.
  close(r.ece, (0.05 + 2 * 0.35 + 0.38 + 3 * (0.4 / 3)) / 7);
  close(r.mce, 0.38);
  // (p − y)²: .0025 + .0225 + .7225 + .0025 + .2025 + 0 + .1444 = 1.0969.
  close(r.brier, 1.0969 / 7);
  assert.ok(Number.isNaN(r.bins[5]!.meanPredicted));
  assert.throws(() => acc.add(1.2, 1), RangeError);
});

test('a calibrated predictor has ECE 0, and merging shards is exact', () => {
  const a = new Reliability();
  const b = new Reliability();
  // p = 0.3 with 3 of 10 preferring a; p = 0.85 with 17 of 20.
  for (let i = 0; i < 10; i++) (i % 2 ? a : b).add(0.3, i < 3 ? 1 : 0);
  for (let i = 0; i < 20; i++) (i % 2 ? a : b).add(0.85, i < 17 ? 1 : 0);
  const r = a.merge(b).result();
  assert.equal(r.count, 30);
  close(r.ece, 0, 1e-12);
  close(r.brier, (3 * 0.7 ** 2 + 7 * 0.3 ** 2 + 17 * 0.15 ** 2 + 3 * 0.85 ** 2) / 30);
});
