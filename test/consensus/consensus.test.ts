import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseConsensusOptions,
  parseRule,
  parseTiePolicy,
  formatRule,
  formatTiePolicy,
  compileConsensus,
  computeConsensus,
  consensusOfPair,
  allocateConsensusColumns,
  MetricStatsAccumulator,
  ConsensusOptionError,
  pairIdHash,
  randomMetricIndex,
  LABEL_REASONS,
  type ConsensusArgs,
  type ConsensusPlan,
  type MetricStats,
  type PairScoreBatch,
  type ConsensusColumns,
} from '../../src/consensus/consensus.ts';
import { parseWeights } from '../../src/cli/label.ts';

const METRICS = ['pickscore', 'hps', 'clip', 'aesthetic'];
const TAUS = { pickscore: 1, hps: 0.01, clip: 0.01, aesthetic: 1 };
const SIG1 = 0.7310585786300049; // σ(1)
const SIG_HALF = 0.6224593312018546; // σ(0.5)

function plan(args: ConsensusArgs = {}, stats?: Record<string, MetricStats>): ConsensusPlan {
  return compileConsensus(parseConsensusOptions(args, { metrics: METRICS, temperatures: TAUS }), stats);
}

const close = (actual: number | null, expected: number, tol = 1e-9): void => {
  assert.ok(actual !== null && Math.abs(actual - expected) <= tol, `${actual} is not within ${tol} of ${expected}`);
};

// pickscore a (+1 logit), hps a (+0.01 → σ(1)), clip b (−0.01), aesthetic a (+0.5): a 3–1 vote for a.
const THREE_ONE = { scoreA: [21, 0.28, 0.3, 5.5], scoreB: [20, 0.27, 0.31, 5.0] };
// pickscore a, hps a, clip b, aesthetic b (−0.5): a 2–2 tie.
const TWO_TWO = { scoreA: [21, 0.28, 0.3, 5.0], scoreB: [20, 0.27, 0.31, 5.5] };

test('majority 3–1: p, votes, label, soft, margin, disagreement', () => {
  const r = consensusOfPair(plan(), THREE_ONE);
  close(r.p[0]!, SIG1);
  close(r.p[1]!, SIG1);
  close(r.p[2]!, 1 - SIG1);
  close(r.p[3]!, SIG_HALF);
  assert.deepEqual(r.vote, [1, 1, -1, 1]);
  assert.equal(r.votesA, 3);
  assert.equal(r.votesB, 1);
  assert.equal(r.label, 1);
  assert.equal(r.soft, 0.75);
  assert.equal(r.margin, 0.5); // |3 − 1| / 4
  close(r.disagreement, 0.8112781244591328, 1e-15);
  assert.equal(r.kept, true);
  assert.equal(r.tie, false);
  assert.equal(r.reason, 'decided');

  const unanimous = consensusOfPair(plan(), { scoreA: [21, 0.28, 0.32, 5.5], scoreB: [20, 0.27, 0.31, 5.0] });
  assert.equal(unanimous.votesA, 4);
  assert.equal(unanimous.margin, 1);
  assert.equal(unanimous.disagreement, 0);
  assert.equal(unanimous.soft, 1);

  const forB = consensusOfPair(plan(), { scoreA: THREE_ONE.scoreB, scoreB: THREE_ONE.scoreA });
  assert.equal(forB.label, 0);
  assert.equal(forB.soft, 0.25);
  assert.equal(forB.margin, 0.5);
});

test('2–2 tie under each tie policy', () => {
  const drop = consensusOfPair(plan(), TWO_TWO);
  assert.deepEqual(drop.vote, [1, 1, -1, -1]);
  assert.equal(drop.tie, true);
  assert.equal(drop.label, null);
  assert.equal(drop.kept, false);
  assert.equal(drop.reason, 'tie-dropped');
  assert.equal(drop.soft, 0.5);
  assert.equal(drop.margin, 0);
  assert.equal(drop.disagreement, 1);

  const half = consensusOfPair(plan({ ties: 'half' }), TWO_TWO);
  assert.equal(half.label, 0.5);
  assert.equal(half.kept, true);
  assert.equal(half.tie, true);
  assert.equal(half.reason, 'tie-half');

  const human = plan({ ties: 'human' });
  const toB = consensusOfPair(human, { ...TWO_TWO, humanPref: 0 });
  assert.equal(toB.label, 0);
  assert.equal(toB.kept, true);
  assert.equal(toB.reason, 'tie-human');
  assert.equal(toB.soft, 0.5); // soft is the rule's, before the tie policy
  assert.equal(consensusOfPair(human, { ...TWO_TWO, humanPref: 1 }).label, 1);
  for (const humanPref of [0.5, null]) {
    const unresolved = consensusOfPair(human, { ...TWO_TWO, humanPref });
    assert.equal(unresolved.label, null);
    assert.equal(unresolved.kept, false);
    assert.equal(unresolved.reason, 'tie-unresolved');
  }

  const byClip = consensusOfPair(plan({ ties: 'clip' }), TWO_TWO);
  assert.equal(byClip.label, 0);
  assert.equal(byClip.kept, true);
  assert.equal(byClip.reason, 'tie-metric');
  assert.equal(consensusOfPair(plan({ ties: 'pickscore' }), TWO_TWO).label, 1);
});

test('abstentions with margin δ', () => {
  // |p − ½|: pickscore 0.2311, hps 0.2311, clip 0.2311 (for b), aesthetic 0.1225 → δ = 0.2 silences aesthetic.
  const r = consensusOfPair(plan({ margin: 0.2 }), THREE_ONE);
  assert.deepEqual(r.vote, [1, 1, -1, 0]);
  assert.equal(r.votesA, 2);
  assert.equal(r.votesB, 1);
  assert.equal(r.label, 1);
  close(r.soft, 2 / 3, 1e-15);
  assert.equal(r.margin, 0.25); // |2 − 1| / 4: the abstention lowers the margin
  close(r.disagreement, Math.log2(3) - 2 / 3, 1e-15); // H(⅔) = 0.9183

  // δ = 0.24 silences everyone: a tie with no votes cast.
  const silent = consensusOfPair(plan({ margin: 0.24 }), THREE_ONE);
  assert.deepEqual(silent.vote, [0, 0, 0, 0]);
  assert.equal(silent.tie, true);
  assert.equal(silent.soft, null);
  assert.equal(silent.margin, 0);
  assert.equal(silent.disagreement, null);
  assert.equal(silent.reason, 'tie-dropped');
  const silentHalf = consensusOfPair(plan({ margin: 0.24, ties: 'half' }), THREE_ONE);
  assert.equal(silentHalf.label, 0.5);
  assert.equal(silentHalf.soft, null);

  // A 1–1 tie where the tie-break metric abstains too: pickscore a, hps exactly ½, clip b, aesthetic σ(0.1) < ½ + δ.
  const oneOne = { scoreA: [21, 0.27, 0.3, 5.1], scoreB: [20, 0.27, 0.31, 5.0] };
  const byAesthetic = consensusOfPair(plan({ margin: 0.2, ties: 'aesthetic' }), oneOne);
  assert.deepEqual(byAesthetic.vote, [1, 0, -1, 0]);
  assert.equal(byAesthetic.tie, true);
  assert.equal(byAesthetic.label, null);
  assert.equal(byAesthetic.kept, false);
  assert.equal(byAesthetic.reason, 'tie-unresolved');
  assert.equal(consensusOfPair(plan({ margin: 0.2, ties: 'pickscore' }), oneOne).label, 1);
  assert.equal(consensusOfPair(plan({ margin: 0.2, ties: 'clip' }), oneOne).label, 0);
});

test('weights flip a majority, tie it, and tie despite float rounding', () => {
  const flipped = consensusOfPair(plan({ weights: { clip: 4 } }), THREE_ONE);
  assert.equal(flipped.label, 0); // 3 against 4
  close(flipped.soft, 3 / 7, 1e-15);
  close(flipped.margin, 1 / 7, 1e-15); // |3 − 4| / (1 + 1 + 4 + 1)
  assert.equal(flipped.votesA, 3); // counts stay unweighted
  assert.equal(flipped.votesB, 1);

  const tied = consensusOfPair(plan({ weights: { clip: 3 } }), THREE_ONE);
  assert.equal(tied.tie, true);
  assert.equal(tied.margin, 0);
  assert.equal(tied.label, null);

  // pickscore and hps for a (0.1 + 0.2 = 0.30000000000000004), clip for b (0.3), aesthetic exactly ½.
  const rounding = consensusOfPair(plan({ weights: { pickscore: 0.1, hps: 0.2, clip: 0.3 } }), {
    scoreA: [21, 0.28, 0.3, 5],
    scoreB: [20, 0.27, 0.31, 5],
  });
  assert.deepEqual(rounding.vote, [1, 1, -1, 0]);
  assert.equal(rounding.tie, true);
  assert.equal(rounding.margin, 0);

  // Zero weight: the metric still reports its vote but no longer decides.
  const muted = consensusOfPair(plan({ weights: { pickscore: 0, hps: 0 } }), THREE_ONE);
  assert.equal(muted.tie, true); // clip (b) against aesthetic (a)
});

test('mean-prob: weighted mean, exact ½ is a tie, δ applies to the mean', () => {
  // Centred p: σ(1)−½ twice, σ(−1)−½, σ(½)−½ → mean (σ(1) + σ(½) − 1) / 4 = 0.0883794775.
  const meanProb = consensusOfPair(plan({ rule: 'mean-prob' }), THREE_ONE);
  assert.equal(meanProb.label, 1);
  close(meanProb.soft, 0.5 + (SIG1 + SIG_HALF - 1) / 4, 1e-12);
  close(meanProb.soft, 0.5883794774579649, 1e-9);
  close(meanProb.margin, 0.17675895491592973, 1e-9);
  assert.equal(meanProb.votesA, 3);

  // Weight 4 on clip: (2·0.23106 − 4·0.23106 + 0.12246) / 7 = −0.0485225 → b.
  const weighted = consensusOfPair(plan({ rule: 'mean-prob', weights: { clip: 4 } }), THREE_ONE);
  assert.equal(weighted.label, 0);
  close(weighted.soft, 0.5 - 0.04852254658, 1e-9);

  // Majority ties 2–2, mean-prob still decides: (σ(1) − σ(½)) / 4 = 0.0271498.
  const twoTwo = consensusOfPair(plan({ rule: 'mean-prob' }), TWO_TWO);
  assert.equal(twoTwo.label, 1);
  close(twoTwo.soft, 0.5 + (SIG1 - SIG_HALF) / 4, 1e-12);

  // pickscore σ(1), aesthetic σ(−1), hps and clip exactly ½: the mean is exactly ½.
  const mirrored = { scoreA: [21, 0.27, 0.3, 5], scoreB: [20, 0.27, 0.3, 6] };
  const exact = consensusOfPair(plan({ rule: 'mean-prob', ties: 'half' }), mirrored);
  assert.equal(exact.soft, 0.5);
  assert.equal(exact.margin, 0);
  assert.equal(exact.tie, true);
  assert.equal(exact.label, 0.5);
  assert.equal(exact.reason, 'tie-half');

  // δ = 0.1 > 0.0884: mean-prob abstains although majority (every |p − ½| > 0.1) still votes 3–1.
  assert.equal(consensusOfPair(plan({ rule: 'mean-prob', margin: 0.1 }), THREE_ONE).tie, true);
  assert.equal(consensusOfPair(plan({ margin: 0.1 }), THREE_ONE).label, 1);
});

test('vanilla sums raw scores: the large-scale metric wins', () => {
  // Majority: pickscore b, the others a (3–1 for a). Vanilla: −2 + 0.03 + 0.03 + 1 = −0.94 → b.
  const pair = { scoreA: [20, 0.3, 0.31, 6.0], scoreB: [22, 0.27, 0.28, 5.0] };
  assert.equal(consensusOfPair(plan(), pair).label, 1);
  const r = consensusOfPair(plan({ rule: 'vanilla' }), pair);
  assert.equal(r.label, 0);
  close(r.soft, 1 / (1 + Math.exp(0.94)), 1e-12); // 0.2809
  close(r.margin, Math.tanh(0.47), 1e-12); // |2σ(−0.94) − 1|
  assert.equal(r.votesA, 3);
  assert.equal(r.votesB, 1);
  assert.equal(r.reason, 'decided');
  const same = consensusOfPair(plan({ rule: 'vanilla', ties: 'half' }), {
    scoreA: [20, 0.3, 0.3, 6.0],
    scoreB: [20, 0.3, 0.3, 6.0],
  });
  assert.equal(same.tie, true);
  assert.equal(same.label, 0.5);
});

test('normalized: z-scores from Welford statistics over a hand-computed table', () => {
  // Images i0..i4: pickscore 20..24 (mean 22, population std √2); clip 0.20, 0.30, 0.25, 0.25, 0.25
  // (mean 0.25, variance (0.05² + 0.05²) / 5 = 0.001, std 0.0316228).
  const pick = [20, 21, 22, 23, 24];
  const clip = [0.2, 0.3, 0.25, 0.25, 0.25];
  const accPick = new MetricStatsAccumulator();
  accPick.addAll(pick);
  const accClip = new MetricStatsAccumulator();
  for (const x of clip) accClip.add(x);
  accClip.add(Number.NaN); // unscored image: skipped
  const stats = { pickscore: accPick.stats(), clip: accClip.stats() };
  assert.equal(stats.pickscore.count, 5);
  close(stats.pickscore.mean, 22, 1e-12);
  close(stats.pickscore.std, Math.SQRT2, 1e-12);
  assert.equal(stats.clip.count, 5);
  close(stats.clip.mean, 0.25, 1e-12);
  close(stats.clip.std, 0.031622776601683794, 1e-12);

  const two = (args: ConsensusArgs): ConsensusPlan =>
    compileConsensus(parseConsensusOptions(args, { metrics: ['pickscore', 'clip'], temperatures: { pickscore: 1, clip: 0.01 } }), stats);
  // a = i1 (21, 0.30), b = i2 (22, 0.25).
  // z: pickscore (21 − 22)/√2 − 0 = −0.7071068; clip (0.30 − 0.25)/0.0316228 − 0 = +1.5811388; sum +0.8740320.
  const pair = { scoreA: [21, 0.3], scoreB: [22, 0.25] };
  const r = consensusOfPair(two({ rule: 'normalized' }), pair);
  assert.equal(r.label, 1);
  close(r.soft, 1 / (1 + Math.exp(-0.8740320488976422)), 1e-12);
  // Vanilla on the same pair: −1 + 0.05 → b. Majority: one vote each → tie.
  assert.equal(consensusOfPair(two({ rule: 'vanilla' }), pair).label, 0);
  assert.equal(consensusOfPair(two({}), pair).tie, true);

  assert.throws(() => plan({ rule: 'normalized' }, stats), /no score statistics for metric 'hps'/);
  const flat = { pickscore: stats.pickscore, clip: { count: 3, mean: 1, std: 0 } };
  assert.throws(() => compileConsensus({ ...two({}).options, rule: { kind: 'normalized' } }, flat), /metric 'clip' has no spread/);
});

test('Welford accumulator: mean/std of a known table, shards merge to the whole', () => {
  const xs = [2, 4, 4, 4, 5, 5, 7, 9]; // mean 5, population std 2
  const whole = new MetricStatsAccumulator();
  whole.addAll(Float64Array.from(xs));
  assert.deepEqual(whole.stats(), { count: 8, mean: 5, std: 2 });
  const left = new MetricStatsAccumulator();
  left.addAll(xs.slice(0, 3));
  const right = new MetricStatsAccumulator();
  right.addAll(xs.slice(3));
  left.merge(right.stats());
  const merged = left.stats();
  assert.equal(merged.count, 8);
  close(merged.mean, 5, 1e-12);
  close(merged.std, 2, 1e-12);
  const empty = new MetricStatsAccumulator().stats();
  assert.equal(empty.count, 0);
  assert.ok(Number.isNaN(empty.std));
});

test('single, human, and missing scores', () => {
  const clip = consensusOfPair(plan({ rule: 'single:clip' }), THREE_ONE);
  assert.equal(clip.label, 0);
  close(clip.soft, 1 - SIG1);
  close(clip.margin, 2 * SIG1 - 1); // 0.4621
  assert.equal(clip.votesA, 3);

  const human = plan({ rule: 'human' });
  const sure = consensusOfPair(human, { ...TWO_TWO, humanPref: 1 });
  assert.deepEqual([sure.label, sure.soft, sure.margin, sure.tie], [1, 1, 1, false]);
  const soft = consensusOfPair(human, { ...TWO_TWO, humanPref: 0.3 });
  assert.equal(soft.label, 0);
  assert.equal(soft.soft, 0.3);
  close(soft.margin, 0.4, 1e-15);
  const humanTie = consensusOfPair(human, { ...TWO_TWO, humanPref: 0.5 });
  assert.equal(humanTie.tie, true);
  assert.equal(humanTie.reason, 'tie-dropped');
  const unlabelled = consensusOfPair(human, { ...TWO_TWO, humanPref: null });
  assert.equal(unlabelled.reason, 'missing');
  assert.equal(unlabelled.kept, false);
  assert.equal(unlabelled.tie, false);
  assert.throws(() => consensusOfPair(human, { ...TWO_TWO, humanPref: 1.5 }), /human_pref must be in \[0, 1\]/);

  // hps unscored: it abstains in the majority, which then stands 2–1; the rules that need it cannot decide.
  const missingHps = { scoreA: [21, null, 0.3, 5.5], scoreB: [20, 0.27, 0.31, 5.0] };
  const majority = consensusOfPair(plan(), missingHps);
  assert.deepEqual(
    majority.p.map((p) => p === null),
    [false, true, false, false],
  );
  assert.deepEqual(majority.vote, [1, 0, -1, 1]);
  assert.equal(majority.label, 1);
  assert.equal(majority.margin, 0.25);
  for (const rule of ['vanilla', 'single:hps']) {
    const r = consensusOfPair(plan({ rule, ties: 'half' }), missingHps);
    assert.equal(r.reason, 'missing', rule);
    assert.equal(r.label, null);
    assert.equal(r.soft, null);
    assert.equal(r.margin, null);
    assert.equal(r.kept, false);
    assert.equal(r.votesA, 2);
  }
  const meanProb = consensusOfPair(plan({ rule: 'mean-prob' }), missingHps);
  close(meanProb.soft, 0.5 + (SIG1 - 0.5 + (0.5 - SIG1) + SIG_HALF - 0.5) / 3, 1e-12); // mean of the three present
  const nothing = consensusOfPair(plan(), { scoreA: [null, null, null, null], scoreB: [1, 2, 3, 4] });
  assert.equal(nothing.reason, 'missing');
  assert.equal(nothing.disagreement, null);
});

// -------------------------------------------------------------------------------------------------------------
// Batches

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

/** Random scores on each metric's scale, rounded so that exact equalities (½ probabilities, ties) occur. */
function randomBatch(n: number, seed: number): PairScoreBatch & { humanPref: Float64Array; pairIds: string[] } {
  const rand = mulberry32(seed);
  const scale = [1, 0.01, 0.01, 1];
  const gen = (m: number): number => (Math.round((rand() * 4 - 2) * 4) / 4) * scale[m]! + (m === 0 ? 20 : 0.3);
  const scoreA = METRICS.map((_, m) => Float64Array.from({ length: n }, () => gen(m)));
  const scoreB = METRICS.map((_, m) => Float64Array.from({ length: n }, () => gen(m)));
  const levels = [0, 0.5, 1, Number.NaN];
  const humanPref = Float64Array.from({ length: n }, () => levels[Math.floor(rand() * 4)]!);
  const pairIds = Array.from({ length: n }, (_, i) => `pair-${seed}-${i}`);
  return { length: n, scoreA, scoreB, humanPref, pairIds };
}

function permuted(batch: ReturnType<typeof randomBatch>, order: number[]): ReturnType<typeof randomBatch> {
  return {
    length: order.length,
    scoreA: batch.scoreA.map((col) => Float64Array.from(order, (i) => col[i]!)),
    scoreB: batch.scoreB.map((col) => Float64Array.from(order, (i) => col[i]!)),
    humanPref: Float64Array.from(order, (i) => batch.humanPref[i]!),
    pairIds: order.map((i) => batch.pairIds[i]!),
  };
}

test('swapping a and b mirrors every rule exactly', () => {
  const batch = randomBatch(600, 11);
  const swapped = {
    ...batch,
    scoreA: batch.scoreB,
    scoreB: batch.scoreA,
    humanPref: batch.humanPref.map((h) => 1 - h),
  };
  const acc = METRICS.map(() => new MetricStatsAccumulator());
  for (let m = 0; m < METRICS.length; m++) {
    acc[m]!.addAll(batch.scoreA[m]!);
    acc[m]!.addAll(batch.scoreB[m]!);
  }
  const stats = Object.fromEntries(METRICS.map((name, m) => [name, acc[m]!.stats()]));
  let ties = 0;
  for (const rule of ['majority', 'mean-prob', 'vanilla', 'normalized', 'random', 'single:hps', 'human']) {
    const p = plan({ rule, margin: 0.05, ties: 'half' }, stats);
    const x = computeConsensus(p, batch);
    const y = computeConsensus(p, swapped);
    for (let i = 0; i < batch.length; i++) {
      const lx = x.label[i]!;
      const ly = y.label[i]!;
      assert.ok(Number.isNaN(lx) ? Number.isNaN(ly) : ly === 1 - lx, `${rule} pair ${i}: ${lx} vs ${ly}`);
      assert.equal(y.tie[i], x.tie[i]);
      assert.equal(y.votesA[i], x.votesB[i]);
      assert.equal(y.disagreement[i], x.disagreement[i]);
      const sx = x.soft[i]!;
      const sy = y.soft[i]!;
      assert.ok(Number.isNaN(sx) ? Number.isNaN(sy) : Math.abs(sy - (1 - sx)) < 1e-12, `${rule} soft ${i}`);
      assert.ok(Number.isNaN(x.margin[i]!) || Math.abs(y.margin[i]! - x.margin[i]!) < 1e-12, `${rule} margin ${i}`);
      for (let m = 0; m < METRICS.length; m++) {
        const px = x.p[m]![i]!;
        assert.equal(y.p[m]![i], 1 - px);
        assert.equal(y.vote[m]![i], -x.vote[m]![i]! || 0);
      }
      ties += x.tie[i]!;
    }
  }
  assert.ok(ties > 50, `the data should contain exact ties (${ties})`);
});

test('batch columns: out reuse, shape errors', () => {
  const batch = randomBatch(50, 3);
  const p = plan({ rule: 'mean-prob' });
  const fresh = computeConsensus(p, batch);
  const out = allocateConsensusColumns(4, 64);
  out.label.fill(123);
  computeConsensus(p, batch, out);
  assert.deepEqual(out.label.subarray(0, 50), fresh.label);
  assert.equal(out.label[50], 123); // rows past the batch are left alone
  assert.throws(() => computeConsensus(p, batch, allocateConsensusColumns(4, 10)), /output columns hold 10 rows/);
  assert.throws(() => computeConsensus(p, { ...batch, scoreA: batch.scoreA.slice(1) }), /3\/4 score arrays/);
  assert.throws(() => computeConsensus(plan({ rule: 'random' }), { ...batch, pairIds: undefined }), /needs pairIds/);
  assert.throws(() => computeConsensus(plan({ ties: 'human' }), { ...batch, humanPref: undefined }), /need humanPref/);
  // Reason codes index LABEL_REASONS and agree with kept/label.
  for (let i = 0; i < 50; i++) {
    const reason = LABEL_REASONS[fresh.reason[i]!];
    assert.ok(reason !== undefined);
    assert.equal(fresh.kept[i] === 1, !Number.isNaN(fresh.label[i]!));
    assert.equal(fresh.tie[i] === 1, reason.startsWith('tie-'));
  }
});

// -------------------------------------------------------------------------------------------------------------
// The random rule

test('pairIdHash is cyrb53: matches the published reference values', () => {
  assert.equal(pairIdHash(0, 'a'), 7929297801672961);
  assert.equal(pairIdHash(0, 'b'), 8684336938537663);
  assert.equal(pairIdHash(0, 'revenge'), 4051478007546757);
  assert.equal(pairIdHash(0, 'revenue'), 8309097637345594);
  assert.equal(pairIdHash(1, 'revenue'), 8697026808958300);
});

function labelsById(columns: ConsensusColumns, ids: readonly string[]): Map<string, string> {
  const byId = new Map<string, string>();
  ids.forEach((id, i) => byId.set(id, `${columns.label[i]} ${columns.soft[i]}`));
  return byId;
}

test('random: uses the drawn metric, reproducible, independent of order and sharding', () => {
  const batch = randomBatch(2000, 5);
  const p = plan({ rule: 'random', seed: 42 });
  const cols = computeConsensus(p, batch);
  for (let i = 0; i < batch.length; i++) {
    const k = randomMetricIndex(42, batch.pairIds[i]!, 4);
    assert.equal(cols.soft[i], cols.p[k]![i]);
    assert.equal(cols.tie[i], cols.vote[k]![i] === 0 ? 1 : 0);
  }
  const reference = labelsById(cols, batch.pairIds);
  assert.deepEqual(labelsById(computeConsensus(p, batch), batch.pairIds), reference);

  const rand = mulberry32(9);
  const order = Array.from({ length: batch.length }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const shuffled = permuted(batch, order);
  assert.deepEqual(labelsById(computeConsensus(p, shuffled), shuffled.pairIds), reference);
  const shard1 = permuted(batch, order.slice(0, 700));
  const shard2 = permuted(batch, order.slice(700));
  const sharded = new Map([
    ...labelsById(computeConsensus(p, shard1), shard1.pairIds),
    ...labelsById(computeConsensus(p, shard2), shard2.pairIds),
  ]);
  assert.deepEqual(sharded, reference);
});

test('random: draws are uniform over metrics and change with the seed', () => {
  const ids = Array.from({ length: 10000 }, (_, i) => `pair-${i}`);
  for (const seed of [0, 1, 7, 4294967295]) {
    const counts = [0, 0, 0, 0];
    for (const id of ids) counts[randomMetricIndex(seed, id, 4)]!++;
    // χ² with 3 degrees of freedom; 16.27 is its 99.9 % quantile.
    const chi2 = counts.reduce((s, c) => s + (c - 2500) ** 2 / 2500, 0);
    assert.ok(chi2 < 16.27, `seed ${seed}: counts ${counts}, χ² ${chi2.toFixed(2)}`);
  }
  // Independent draws agree 1/4 of the time.
  let differ = 0;
  for (const id of ids) if (randomMetricIndex(1, id, 4) !== randomMetricIndex(2, id, 4)) differ++;
  assert.ok(differ > 7200 && differ < 7800, `${differ} of 10000 draws changed with the seed`);
});

// -------------------------------------------------------------------------------------------------------------
// Parsing

test('parsing rules, tie policies, weights, margin and seed', () => {
  assert.deepEqual(parseRule('single:pickscore', METRICS), { kind: 'single', metric: 'pickscore' });
  assert.deepEqual(parseRule(' mean-prob ', METRICS), { kind: 'mean-prob' });
  assert.throws(
    () => parseRule('single:nope', METRICS),
    /unknown metric 'nope' in rule 'single:nope' \(known: pickscore, hps, clip, aesthetic\)/,
  );
  assert.throws(() => parseRule('best', METRICS), /unknown rule 'best'/);
  assert.deepEqual(parseTiePolicy('clip', METRICS), { kind: 'metric', metric: 'clip' });
  assert.deepEqual(parseTiePolicy('human', METRICS), { kind: 'human' });
  assert.throws(() => parseTiePolicy('coin', METRICS), /unknown tie policy 'coin'/);
  // Weights, margin and seed are typed options; the CLI parses their text (weights here, the numbers by its options).
  assert.deepEqual(parseWeights('pickscore=2,hps=1'), { pickscore: 2, hps: 1 });
  assert.deepEqual(parseWeights(' clip = 0.5 , '), { clip: 0.5 });
  const options = (args: ConsensusArgs) => () => parseConsensusOptions(args, { metrics: METRICS, temperatures: TAUS });
  assert.throws(options({ weights: { foo: 1 } }), /unknown metric 'foo' in weights/);
  assert.throws(() => parseWeights('pickscore=-1'), /must be ≥ 0/);
  assert.throws(() => parseWeights('pickscore=two'), /'two' is not a number/);
  assert.throws(() => parseWeights('pickscore'), /not metric=weight/);
  assert.throws(() => parseWeights('hps=1,hps=2'), /given twice/);
  assert.equal(parseConsensusOptions({ margin: 0.1 }, { metrics: METRICS, temperatures: TAUS }).margin, 0.1);
  assert.throws(options({ margin: 0.5 }), /margin must be in \[0, 0.5\)/);
  assert.throws(options({ margin: Number.NaN }), ConsensusOptionError);
  assert.equal(parseConsensusOptions({ seed: 42 }, { metrics: METRICS, temperatures: TAUS }).seed, 42);
  for (const bad of [-1, 1.5, 4294967296, Number.NaN]) assert.throws(options({ seed: bad }), /seed must be an integer/);
  for (const text of ['majority', 'random', 'single:hps']) assert.equal(formatRule(parseRule(text, METRICS)), text);
  for (const text of ['drop', 'half', 'human', 'clip']) assert.equal(formatTiePolicy(parseTiePolicy(text, METRICS)), text);
});

test('parseConsensusOptions: defaults and cross-checks', () => {
  const o = parseConsensusOptions({}, { metrics: METRICS, temperatures: TAUS });
  assert.deepEqual(o, {
    metrics: METRICS,
    rule: { kind: 'majority' },
    ties: { kind: 'drop' },
    margin: 0,
    temperatures: TAUS,
    seed: 0,
  });
  assert.throws(
    () => parseConsensusOptions({ rule: 'vanilla', weights: { hps: 2 } }, { metrics: METRICS, temperatures: TAUS }),
    /weights apply to majority and mean-prob only, not vanilla/,
  );
  assert.throws(
    () => parseConsensusOptions({ weights: { hps: 0, clip: 0, pickscore: 0, aesthetic: 0 } }, { metrics: METRICS, temperatures: TAUS }),
    /every metric has weight 0/,
  );
  assert.throws(
    () => parseConsensusOptions({}, { metrics: METRICS, temperatures: { pickscore: 1, hps: 0.01, clip: 0.01 } }),
    /temperature of metric 'aesthetic'/,
  );
  assert.throws(() => parseConsensusOptions({}, { metrics: ['hps', 'hps'], temperatures: TAUS }), /metric names repeat/);
  assert.throws(() => parseConsensusOptions({}, { metrics: [], temperatures: {} }), /at least one metric/);
});
