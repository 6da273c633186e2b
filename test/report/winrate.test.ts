import { test } from 'node:test';
import assert from 'node:assert/strict';
import { comparisonCredit, WinRateAccumulator, type WinRateReport } from '../../src/report/winrate.ts';
import { mulberry32, randomInt } from '../../src/core/random.ts';

const close = (actual: number, expected: number, tol = 1e-12) =>
  assert.ok(Math.abs(actual - expected) <= tol, `${actual} is not within ${tol} of ${expected}`);

/** The widely published mulberry32, transcribed as is, to check ours against. */
function referenceMulberry32(a: number): () => number {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('mulberry32 matches the published generator and draws uniform integers', () => {
  for (const seed of [0, 1, 42, 0xdeadbeef, -5]) {
    const ours = mulberry32(seed);
    const theirs = referenceMulberry32(seed);
    for (let i = 0; i < 1000; i++) assert.equal(ours(), theirs());
  }
  // χ² of 100 000 draws over 10 values; the 0.999 quantile of χ²(9) is 27.88.
  const rng = mulberry32(3);
  const counts = new Array<number>(10).fill(0);
  for (let i = 0; i < 100_000; i++) counts[randomInt(rng, 10)]! += 1;
  const chi2 = counts.reduce((s, c) => s + (c - 10_000) ** 2 / 10_000, 0);
  assert.ok(chi2 < 27.88, `χ² = ${chi2}`);
  assert.throws(() => randomInt(rng, 0), RangeError);
});

test('comparison credit: 1 win, ½ tie, 0 loss', () => {
  assert.deepEqual([comparisonCredit(2, 1), comparisonCredit(1, 1), comparisonCredit(0.5, 1)], [1, 0.5, 0]);
});

/** Two metrics, three prompts, 1–3 seeds each (scores A, B per seed). */
function handExample(order: 'forward' | 'reverse' = 'forward'): WinRateAccumulator {
  const rows: [string, string, number, number, string][] = [
    ['p1', 'pickscore', 21, 20, 'animals'],
    ['p1', 'pickscore', 20, 20, 'animals'],
    ['p2', 'pickscore', 19, 20, 'animals'],
    ['p2', 'pickscore', 18, 20, 'animals'],
    ['p3', 'pickscore', 22, 20, 'people'],
    ['p1', 'hps', 0.25, 0.26, 'animals'],
    ['p2', 'hps', 0.27, 0.26, 'animals'],
    ['p2', 'hps', 0.28, 0.26, 'animals'],
    ['p2', 'hps', 0.26, 0.26, 'animals'],
    ['p3', 'hps', 0.3, 0.3, 'people'],
  ];
  const acc = new WinRateAccumulator(['pickscore', 'hps']);
  for (const [p, m, a, b, c] of order === 'forward' ? rows : [...rows].reverse()) acc.add(p, m, a, b, c);
  acc.add('p3', 'pickscore', null, 20);
  return acc;
}

test('win rate by hand: seeds averaged within a prompt, prompts averaged, metrics averaged, by category', () => {
  const r = handExample().result({ resamples: 500, seed: 1 });
  const [ps, hps] = r.metrics;
  // pickscore: p1 (1 + ½)/2 = 0.75, p2 0, p3 1 → 1.75/3 (pooling the five comparisons would give 2.5/5 = 0.5).
  close(ps!.winRate, 1.75 / 3);
  assert.deepEqual([ps!.prompts, ps!.comparisons, ps!.wins, ps!.ties, ps!.losses, ps!.skipped], [3, 5, 2, 1, 2, 1]);
  // hps: p1 0, p2 (1 + 1 + ½)/3, p3 ½ → (2.5/3 + 0.5)/3.
  close(hps!.winRate, (2.5 / 3 + 0.5) / 3);
  assert.deepEqual([hps!.wins, hps!.ties, hps!.losses, hps!.skipped], [2, 2, 1, 0]);
  close(r.average.winRate, (1.75 / 3 + (2.5 / 3 + 0.5) / 3) / 2);
  assert.equal(r.prompts, 3);

  assert.deepEqual(
    r.byCategory.map((c) => [c.category, c.prompts]),
    [
      ['animals', 2],
      ['people', 1],
    ],
  );
  const [animals, people] = r.byCategory;
  close(animals!.metrics[0]!.winRate, 0.375);
  close(animals!.metrics[1]!.winRate, 2.5 / 6);
  close(animals!.average.winRate, (0.375 + 2.5 / 6) / 2);
  assert.deepEqual([animals!.metrics[0]!.wins, animals!.metrics[0]!.ties, animals!.metrics[0]!.losses], [1, 1, 2]);
  close(people!.metrics[0]!.winRate, 1);
  assert.equal(people!.metrics[0]!.skipped, 1);
  close(people!.average.winRate, 0.75);
  // One prompt: every resample is that prompt.
  assert.deepEqual([people!.metrics[1]!.lo, people!.metrics[1]!.hi], [0.5, 0.5]);
});

test('the report does not depend on insertion order or on how shards are merged', () => {
  const whole = handExample('forward').result({ seed: 9, resamples: 300 });
  assert.deepEqual(handExample('reverse').result({ seed: 9, resamples: 300 }), whole);

  const first = new WinRateAccumulator(['pickscore', 'hps']);
  const second = new WinRateAccumulator(['hps']);
  first.add('p1', 'pickscore', 21, 20, 'animals');
  first.add('p2', 'pickscore', 19, 20, 'animals');
  first.add('p2', 'hps', 0.27, 0.26);
  first.add('p3', 'hps', 0.3, 0.3, 'people');
  second.add('p1', 'pickscore', 20, 20);
  second.add('p2', 'pickscore', 18, 20, 'animals');
  second.add('p3', 'pickscore', 22, 20, 'people');
  second.add('p1', 'hps', 0.25, 0.26, 'animals');
  second.add('p2', 'hps', 0.28, 0.26, 'animals');
  second.add('p2', 'hps', 0.26, 0.26);
  second.add('p3', 'pickscore', null, 20);
  assert.deepEqual(first.merge(second).result({ seed: 9, resamples: 300 }), whole);
  assert.throws(() => first.add('p1', 'hps', 1, 0, 'people'), RangeError);
});

/** n prompts, one seed each, the first `wins` won by A and the rest lost. */
function bernoulliPrompts(n: number, wins: number, metric = 'pickscore'): WinRateAccumulator {
  const acc = new WinRateAccumulator();
  for (let i = 0; i < n; i++) acc.add(`prompt-${String(i).padStart(5, '0')}`, metric, i < wins ? 1 : 0, 0.5);
  return acc;
}

const width = (r: WinRateReport) => r.metrics[0]!.hi - r.metrics[0]!.lo;

test('bootstrap interval: seeded, contains the estimate, [1, 1] for all wins, width ≈ normal theory ∝ 1/√n', () => {
  const acc = bernoulliPrompts(100, 60);
  const a = acc.result({ seed: 5 });
  assert.deepEqual(acc.result({ seed: 5 }), a);
  assert.notDeepEqual(
    [a.metrics[0]!.lo, a.metrics[0]!.hi],
    [acc.result({ seed: 6 }).metrics[0]!.lo, acc.result({ seed: 6 }).metrics[0]!.hi],
  );
  const m = a.metrics[0]!;
  close(m.winRate, 0.6);
  assert.ok(m.lo < m.winRate && m.winRate < m.hi);

  const all = bernoulliPrompts(50, 50).result();
  assert.deepEqual([all.metrics[0]!.winRate, all.metrics[0]!.lo, all.metrics[0]!.hi], [1, 1, 1]);
  assert.deepEqual([all.average.lo, all.average.hi], [1, 1]);

  // Normal theory: width ≈ 2·1.96·√(p(1 − p)/n) = 0.192 at n = 100 and 0.096 at n = 400.
  const w100 = width(a);
  const w400 = width(bernoulliPrompts(400, 240).result({ seed: 5 }));
  close(w100, 2 * 1.96 * Math.sqrt(0.24 / 100), 0.02);
  close(w400, 2 * 1.96 * Math.sqrt(0.24 / 400), 0.01);
  const ratio = w100 / w400;
  assert.ok(ratio > 1.7 && ratio < 2.3, `width ratio ${ratio}`);
});

test('two prompts: the 95% percentile interval spans their two values', () => {
  // Resampled means are v1 (¼), the midpoint (½) or v2 (¼): the 2.5% and 97.5% points are v1 and v2.
  const acc = new WinRateAccumulator();
  acc.add('x', 'clip', 1, 0);
  acc.add('x', 'clip', 0, 1);
  acc.add('y', 'clip', 0, 1);
  const m = acc.result().metrics[0]!;
  assert.deepEqual([m.winRate, m.lo, m.hi], [0.25, 0, 0.5]);
});

test('the average resamples prompts jointly across metrics', () => {
  // hps is the mirror of pickscore on every prompt: each metric's interval is wide, their average is 0.5 in every
  // resample. Resampling the metrics independently would give the average a width of ≈ 1/√2 of each metric's.
  const acc = new WinRateAccumulator();
  for (let i = 0; i < 60; i++) {
    const won = i % 3 === 0 ? 1 : 0;
    acc.add(`p${i}`, 'pickscore', won, 0.5);
    acc.add(`p${i}`, 'hps', 1 - won, 0.5);
  }
  const r = acc.result({ seed: 2 });
  close(r.metrics[0]!.winRate, 1 / 3);
  close(r.metrics[1]!.winRate, 2 / 3);
  assert.ok(width(r) > 0.15);
  assert.deepEqual([r.average.winRate, r.average.lo, r.average.hi], [0.5, 0.5, 0.5]);
});

test('a category gets the same interval as the same prompts reported alone', () => {
  const mixed = new WinRateAccumulator();
  const alone = new WinRateAccumulator();
  for (let i = 0; i < 40; i++) {
    const a = (i * 7) % 10;
    mixed.add(`q${i}`, 'aesthetic', a, 5, i % 2 ? 'odd' : 'even');
    if (i % 2) alone.add(`q${i}`, 'aesthetic', a, 5, 'odd');
  }
  const odd = mixed.result({ seed: 4 }).byCategory.find((c) => c.category === 'odd')!;
  const only = alone.result({ seed: 4 });
  assert.deepEqual(odd.metrics, only.metrics);
  assert.deepEqual(odd.average, only.average);
});

test('coverage of the percentile interval is close to 95%', () => {
  // 300 data sets of 40 prompts, each won with probability 0.7; the interval should hold 0.7 about 95% of the time
  // (the percentile bootstrap under-covers a little at this n).
  const data = mulberry32(11);
  let covered = 0;
  const trials = 300;
  for (let t = 0; t < trials; t++) {
    const acc = new WinRateAccumulator();
    for (let i = 0; i < 40; i++) acc.add(`p${i}`, 'pickscore', data() < 0.7 ? 1 : 0, 0.5);
    const m = acc.result({ seed: t, resamples: 400 }).metrics[0]!;
    if (m.lo <= 0.7 && 0.7 <= m.hi) covered++;
  }
  const coverage = covered / trials;
  assert.ok(coverage > 0.88 && coverage < 0.99, `coverage ${coverage}`);
});
