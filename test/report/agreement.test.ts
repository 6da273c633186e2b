import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AgreementMatrix,
  cohenKappa,
  FleissKappa,
  humanVote,
  kendallTauB,
  MeanKendallTau,
  PairAgreement,
  rankAgreementTau,
  TieAwareAccuracy,
  VotePatterns,
  type Vote,
} from '../../src/report/agreement.ts';
import { mulberry32, randomInt } from '../../src/core/random.ts';

const close = (actual: number, expected: number, tol = 1e-12) =>
  assert.ok(Math.abs(actual - expected) <= tol, `${actual} is not within ${tol} of ${expected}`);

/** Feeds a confusion table (rows: x's category a/b/tie, columns: y's) into a PairAgreement. */
function fromTable(table: number[][]): PairAgreement {
  const votes: Vote[] = [1, -1, 0];
  const acc = new PairAgreement();
  table.forEach((row, i) =>
    row.forEach((c, j) => {
      for (let k = 0; k < c; k++) acc.add(votes[i]!, votes[j]!);
    }),
  );
  return acc;
}

test('humanVote maps P(a ≻ b) to a vote and rejects non-probabilities', () => {
  assert.equal(humanVote(1), 1);
  assert.equal(humanVote(0), -1);
  assert.equal(humanVote(0.5), 0);
  assert.equal(humanVote(null), null);
  assert.equal(humanVote(NaN), null);
  assert.throws(() => humanVote(2), RangeError);
});

test("Cohen's κ on the textbook 2×2 tables", () => {
  // 50 applications, two readers: yes/yes 20, yes/no 5, no/yes 10, no/no 15. p_o = 0.7, p_e = 0.5·0.6 + 0.5·0.4 = 0.5.
  const r = fromTable([
    [20, 5, 0],
    [10, 15, 0],
    [0, 0, 0],
  ]).result();
  assert.equal(r.n, 50);
  close(r.agreement, 0.7);
  close(r.expected, 0.5);
  close(r.kappa, 0.4);
  // 45/15/25/15: p_o = 0.6, p_e = 0.6·0.7 + 0.4·0.3 = 0.54, κ = 0.06 / 0.46.
  const s = cohenKappa([
    [45, 15],
    [25, 15],
  ]);
  close(s.agreement, 0.6);
  close(s.expected, 0.54);
  close(s.kappa, 0.06 / 0.46);
});

test("Cohen's κ over a, b, tie with nulls skipped and counted", () => {
  // rows 15/10/5, columns 13/11/6, diagonal 20 of 30: p_o = 600/900, p_e = (195 + 110 + 30)/900, κ = 265/565.
  const table = [
    [10, 2, 3],
    [1, 8, 1],
    [2, 1, 2],
  ];
  const acc = fromTable(table);
  acc.add(null, 1);
  acc.add(0, null);
  acc.add(null, null);
  const r = acc.result();
  assert.equal(r.n, 30);
  assert.equal(r.skipped, 3);
  assert.deepEqual(r.confusion, table);
  close(r.agreement, 2 / 3);
  close(r.expected, 335 / 900);
  close(r.kappa, 53 / 113);
  close(r.tieRateX, 5 / 30);
  close(r.tieRateY, 6 / 30);

  // Merging two halves gives the same table as one pass.
  const merged = fromTable([
    [10, 0, 3],
    [1, 8, 0],
    [0, 1, 2],
  ]).merge(
    fromTable([
      [0, 2, 0],
      [0, 0, 1],
      [2, 0, 0],
    ]),
  );
  assert.deepEqual(merged.result().confusion, table);
  close(merged.result().kappa, 53 / 113);
});

test("Cohen's κ is NaN where it is undefined, and a non-vote is rejected", () => {
  const r = fromTable([
    [4, 0, 0],
    [0, 0, 0],
    [0, 0, 0],
  ]).result();
  assert.equal(r.agreement, 1);
  assert.ok(Number.isNaN(r.kappa));
  assert.ok(Number.isNaN(new PairAgreement().result().agreement));
  // A human label passed where a vote belongs (0.5) must not be silently counted.
  assert.throws(() => new PairAgreement().add(0.5 as Vote, 1), RangeError);
});

test('AgreementMatrix gives every pair the same numbers as a PairAgreement of that pair', () => {
  const items: (Vote | null)[][] = [
    [1, 1, -1],
    [1, -1, -1],
    [0, 1, 1],
    [-1, -1, null],
    [1, 1, 1],
    [-1, 0, -1],
    [null, 1, 0],
    [1, 1, -1],
  ];
  const matrix = new AgreementMatrix(['pickscore', 'hps', 'human']);
  for (const v of items) matrix.add(v);
  const result = matrix.result();
  assert.deepEqual(
    result.pairs.map((p) => `${p.x}-${p.y}`),
    ['pickscore-hps', 'pickscore-human', 'hps-human'],
  );
  const pairIndices = [
    [0, 1],
    [0, 2],
    [1, 2],
  ] as const;
  pairIndices.forEach(([i, j], p) => {
    const direct = new PairAgreement();
    for (const v of items) direct.add(v[i]!, v[j]!);
    const { x: _x, y: _y, ...numbers } = result.pairs[p]!;
    assert.deepEqual(numbers, direct.result());
  });
  // pickscore vs hps by hand: 7 complete items, equal on items 1, 4, 5, 8 → 4/7.
  close(result.pairs[0]!.agreement, 4 / 7);
  assert.equal(result.pairs[0]!.skipped, 1);
});

// Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories.
const FLEISS_TABLE = [
  [0, 0, 0, 0, 14],
  [0, 2, 6, 4, 2],
  [0, 0, 3, 5, 6],
  [0, 3, 9, 2, 0],
  [2, 2, 8, 1, 1],
  [7, 7, 0, 0, 0],
  [3, 2, 6, 3, 0],
  [2, 5, 3, 2, 2],
  [6, 5, 2, 1, 0],
  [0, 2, 2, 3, 7],
];

test("Fleiss' κ on the worked example: P̄ = 0.378, P̄e = 0.213, κ = 0.210", () => {
  const acc = new FleissKappa(5);
  for (const row of FLEISS_TABLE) acc.addCounts(row);
  const r = acc.result();
  assert.equal(r.items, 10);
  assert.equal(r.raters, 14);
  // p_j = column totals / 140 = 20, 28, 39, 21, 32.
  [20, 28, 39, 21, 32].forEach((t, j) => close(r.shares[j]!, t / 140));
  // Σ P_i = (Σ n_ij² − 10·14) / (14·13) = (828 − 140) / 182.
  close(r.observed, 688 / 182 / 10);
  close(r.expected, (20 ** 2 + 28 ** 2 + 39 ** 2 + 21 ** 2 + 32 ** 2) / 140 ** 2);
  close(r.kappa, 0.2099307, 1e-6);

  // Streaming in two shards and merging is exact.
  const first = new FleissKappa(5);
  const second = new FleissKappa(5);
  FLEISS_TABLE.forEach((row, i) => (i < 4 ? first : second).addCounts(row));
  assert.deepEqual(first.merge(second).result(), r);
});

test("Fleiss' κ over metric votes skips items with a null vote", () => {
  // Counts (a, b, tie): [3,0,0], [2,1,0], [0,2,1], [1,0,2]. Shares 6/12, 3/12, 3/12 → P̄e = 0.375;
  // P_i = 1, 1/3, 1/3, 1/3 → P̄ = 0.5; κ = 0.125 / 0.625 = 0.2.
  const acc = new FleissKappa();
  acc.addVotes([1, 1, 1]);
  acc.addVotes([1, -1, 1]);
  acc.addVotes([-1, 0, -1]);
  acc.addVotes([0, 1, 0]);
  acc.addVotes([1, null, -1]);
  const r = acc.result();
  assert.equal(r.items, 4);
  assert.equal(r.skipped, 1);
  close(r.expected, 0.375);
  close(r.observed, 0.5);
  close(r.kappa, 0.2);
  assert.throws(() => acc.addVotes([1, 1]), RangeError);
  assert.throws(() => acc.addCounts([1, 1, 2]), RangeError);
});

/** PickScore's scoring of one example, transcribed with its string labels. */
function pickScoreCredit(label: '0' | '1' | 'tie', pred: '0' | '1' | 'tie'): number {
  if (label === pred) return 1;
  if (label === 'tie' || pred === 'tie') return 0.5;
  return 0;
}

test('tie-aware accuracy follows PickScore: 1 equal (ties too), ½ exactly one tie, 0 opposite', () => {
  const acc = new TieAwareAccuracy();
  acc.add(1, 1); // agree
  acc.add(-1, 0); // agree: label 0 means b
  acc.add(1, 0); // disagree
  acc.add(0, 1); // predicted tie
  acc.add(1, 0.5); // human tie
  acc.add(0, 0.5); // both tie
  acc.add(null, 1);
  acc.add(1, null);
  const r = acc.result();
  assert.deepEqual(
    [r.n, r.agree, r.disagree, r.predictedTie, r.humanTie, r.bothTie, r.skippedNoPrediction, r.skippedNoHuman],
    [6, 2, 1, 1, 1, 1, 1, 1],
  );
  close(r.accuracy, 4 / 6);

  // Every combination against the transcription of PickScore's rule.
  const asPickScore = { 1: '0', [-1]: '1', 0: 'tie' } as const;
  for (const predicted of [1, -1, 0] as Vote[]) {
    for (const label of [1, 0, 0.5]) {
      const one = new TieAwareAccuracy();
      one.add(predicted, label);
      const human = label === 1 ? '0' : label === 0 ? '1' : 'tie';
      assert.equal(one.result().accuracy, pickScoreCredit(human, asPickScore[predicted]), `pred ${predicted}, label ${label}`);
    }
  }
});

/** τ-b the textbook way: concordant/discordant counts and tie groups Σ t(t−1)/2. */
function naiveTauB(x: number[], y: number[]): number {
  let nc = 0;
  let nd = 0;
  for (let i = 0; i < x.length; i++) {
    for (let j = i + 1; j < x.length; j++) {
      if ((x[i]! < x[j]! && y[i]! < y[j]!) || (x[i]! > x[j]! && y[i]! > y[j]!)) nc++;
      else if ((x[i]! < x[j]! && y[i]! > y[j]!) || (x[i]! > x[j]! && y[i]! < y[j]!)) nd++;
    }
  }
  const tiePairs = (v: number[]) => {
    const groups = new Map<number, number>();
    for (const a of v) groups.set(a, (groups.get(a) ?? 0) + 1);
    return [...groups.values()].reduce((s, t) => s + (t * (t - 1)) / 2, 0);
  };
  const n0 = (x.length * (x.length - 1)) / 2;
  return (nc - nd) / Math.sqrt((n0 - tiePairs(x)) * (n0 - tiePairs(y)));
}

test('Kendall τ-b with ties, by hand and against the textbook formula', () => {
  // 3 concordant, 1 discordant, one pair tied in x, one in y: 2 / √(5·5).
  close(kendallTauB([1, 2, 2, 3], [1, 3, 2, 2]), 0.4, 1e-15);
  // 5 concordant, 1 discordant, two pairs tied in each: 4 / √(8·8).
  close(kendallTauB([1, 1, 2, 2, 3], [1, 2, 1, 3, 3]), 0.5, 1e-15);
  close(kendallTauB([1, 2, 3, 4], [4, 3, 2, 1]), -1);
  assert.ok(Number.isNaN(kendallTauB([1, 1, 1], [1, 2, 3])));

  const rng = mulberry32(7);
  for (let trial = 0; trial < 200; trial++) {
    const k = 2 + randomInt(rng, 9);
    const x = Array.from({ length: k }, () => randomInt(rng, 4));
    const y = Array.from({ length: k }, () => randomInt(rng, 4));
    const expected = naiveTauB(x, y);
    const actual = kendallTauB(x, y);
    if (Number.isNaN(expected)) assert.ok(Number.isNaN(actual));
    else close(actual, expected, 1e-12);
  }
});

test('rank agreement is +1 when the metric orders a group as humans rank it (1 = best)', () => {
  close(rankAgreementTau([0.9, 0.5, 0.7], [1, 3, 2]), 1);
  close(rankAgreementTau([0.1, 0.5, 0.7], [1, 2, 3]), -1);
});

test('mean τ over ranked groups skips incomplete and undefined groups', () => {
  const acc = new MeanKendallTau();
  close(acc.add([0.9, 0.5, 0.7], [1, 3, 2]), 1);
  // Scores [3,2,2,1] against negated ranks [−1,−3,−2,−2] is the first hand example reversed in both: τ = 0.4.
  close(acc.add([3, 2, 2, 1], [1, 3, 2, 2]), 0.4, 1e-15);
  // A null score drops its item: [1, 2] vs ranks [1, 2] → τ = −1.
  close(acc.add([1, null, 2], [1, 2, 2]), -1);
  assert.ok(Number.isNaN(acc.add([5, 5, 5], [1, 2, 3])));
  assert.ok(Number.isNaN(acc.add([5, null], [1, 2])));
  const r = acc.result();
  assert.equal(r.groups, 3);
  assert.equal(r.skipped, 2);
  close(r.mean, 0.4 / 3);
  // Sample sd of {1, 0.4, −1}.
  const m = 0.4 / 3;
  close(r.sd, Math.sqrt(((1 - m) ** 2 + (0.4 - m) ** 2 + (-1 - m) ** 2) / 2));
});

const METRICS = ['pickscore', 'hps', 'clip', 'aesthetic'];
const PATTERN_ITEMS: (Vote | null)[][] = [
  [1, 1, -1, -1],
  [1, 1, -1, -1],
  [1, 1, -1, -1],
  [-1, -1, 1, 1],
  [1, 1, 1, 0],
  [1, 1, 1, 0],
  [1, null, -1, -1],
  [0, -1, 1, 1],
];

test('vote patterns count coalitions with ties and missing votes', () => {
  const acc = new VotePatterns(METRICS);
  for (const v of PATTERN_ITEMS) acc.add(v);
  const top = acc.top();
  assert.equal(acc.items, 8);
  assert.deepEqual(
    top.map((p) => [p.key, p.count]),
    [
      ['pickscore+hps vs clip+aesthetic', 3],
      ['pickscore+hps+clip vs — (tie: aesthetic)', 2],
      ['clip+aesthetic vs hps (tie: pickscore)', 1],
      ['clip+aesthetic vs pickscore+hps', 1],
      ['pickscore vs clip+aesthetic (missing: hps)', 1],
    ],
  );
  close(top[0]!.fraction, 3 / 8);
  assert.deepEqual(top[1]!.tie, ['aesthetic']);
  assert.deepEqual(top[4]!.missing, ['hps']);
  assert.equal(acc.top(2).length, 2);
});

test('folded vote patterns merge a coalition with its mirror image, and merging shards is exact', () => {
  const first = new VotePatterns(METRICS, { foldSides: true });
  const second = new VotePatterns(METRICS, { foldSides: true });
  PATTERN_ITEMS.forEach((v, i) => (i % 2 === 0 ? first : second).add(v));
  const top = first.merge(second).top();
  assert.deepEqual(
    top.map((p) => [p.key, p.count]),
    [
      ['pickscore+hps vs clip+aesthetic', 4],
      ['pickscore+hps+clip vs — (tie: aesthetic)', 2],
      // The first metric that voted (hps) leads the left side.
      ['hps vs clip+aesthetic (tie: pickscore)', 1],
      ['pickscore vs clip+aesthetic (missing: hps)', 1],
    ],
  );
  close(top[0]!.fraction, 0.5);
});
