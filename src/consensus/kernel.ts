// The batch kernel: the one definition of every consensus rule (docs/design.md §5) and of the tie policies that turn a
// rule's decision into a training label. Pure: columnar typed arrays in, columnar typed arrays out, no I/O, no
// per-pair allocation (the rules are the cases of one loop, so each pair's votes are summed once for all rules).
//
// Definitions this module commits to (every consensus file means exactly this):
// - Missing score: a score that is not a finite number. The metric abstains (null p, vote 0). `majority` and
//   `mean-prob` go on without it; `vanilla`, `normalized`, `single`/`random` (when their metric is missing) and
//   `human` (null human_pref) cannot, and the pair is dropped with reason `missing`.
// - votes_a / votes_b: unweighted counts of metrics voting for a / b. Weights change the decision, soft and
//   margin of `majority`, never these counts, so "votes_a ≥ 3" keeps meaning "three metrics said a".
// - soft: the rule's own P(a ≻ b), before any tie policy: the weighted vote share (null when nobody voted) for
//   `majority`; the weighted mean p for `mean-prob`; p of the chosen metric for `single`/`random`; human_pref for
//   `human`; σ(S) of the combined score difference S (unit temperature, Bradley–Terry on the summed reward) for
//   `vanilla` and `normalized`.
// - margin ∈ [0, 1], how decisively the rule decided, 0 on a tie: for `majority` |W_a − W_b| / W_all where W are
//   vote weights and W_all sums the weights of all metrics, abstaining or missing ones included (so 4–0 → 1,
//   3–1 → 0.5, 1–0 with three abstentions → 0.25: less evidence, lower margin); for every other rule |2·soft − 1|.
//   Filtering on `margin ≥ x` therefore keeps the pairs the rule was surest about.
// - disagreement: Shannon entropy in bits of the a-vs-b split of the votes cast (unweighted; abstentions are not
//   an opinion and are left out), the same for every rule: 4–0 → 0, 3–1 → 0.811, 2–2 → 1, null when nobody voted.
// - δ (margin option) is the abstention band of a probability: it applies to every per-metric vote (so to
//   `majority`, `single`, `random`) and to the mean of `mean-prob`; `vanilla`, `normalized` and `human` tie only on
//   exact equality.
// - Ties: `drop` → label null, not kept; `half` → label 0.5, kept; `human` → the human label when it is 1 or 0
//   (human_pref > ½ → 1, < ½ → 0), dropped when it is 0.5 or null, as Diffusion-DPO drops Pick-a-Pic's 0.5 labels;
//   `<metric>` → that metric's vote, dropped when it abstains. `tie` says the rule tied; `reason` says what
//   happened to the pair.

import { sigmoid } from './preference.ts';
import { formatRule, formatTiePolicy } from './options.ts';
import { K_HUMAN, K_MAJORITY, K_MEAN_PROB, K_NORMALIZED, K_RANDOM, K_SINGLE, K_VANILLA, type ConsensusPlan } from './plan.ts';
import { randomMetricIndex } from './random-draw.ts';
import {
  allocateConsensusColumns,
  R_DECIDED,
  R_MISSING,
  R_TIE_DROPPED,
  R_TIE_HALF,
  R_TIE_HUMAN,
  R_TIE_METRIC,
  R_TIE_UNRESOLVED,
  type ConsensusColumns,
  type PairScoreBatch,
} from './columns.ts';

function checkBatch(plan: ConsensusPlan, batch: PairScoreBatch, out: ConsensusColumns): void {
  const M = plan.metrics.length;
  const n = batch.length;
  if (!(Number.isSafeInteger(n) && n >= 0)) throw new RangeError(`batch length must be an integer ≥ 0, got ${n}`);
  if (batch.scoreA.length !== M || batch.scoreB.length !== M) {
    throw new RangeError(`batch has ${batch.scoreA.length}/${batch.scoreB.length} score arrays for ${M} metrics`);
  }
  for (let m = 0; m < M; m++) {
    if ((batch.scoreA[m] as Float64Array).length < n || (batch.scoreB[m] as Float64Array).length < n) {
      throw new RangeError(`scores of metric '${plan.metrics[m]}' are shorter than the batch (${n})`);
    }
  }
  if (plan.needsHuman && (batch.humanPref === undefined || batch.humanPref.length < n)) {
    throw new RangeError(`rule ${formatRule(plan.options.rule)} / ties ${formatTiePolicy(plan.options.ties)} need humanPref`);
  }
  if (plan.needsPairIds && (batch.pairIds === undefined || batch.pairIds.length < n)) {
    throw new RangeError('rule random needs pairIds');
  }
  if (out.length < n || out.p.length !== M || out.vote.length !== M) {
    throw new RangeError(`output columns hold ${out.length} rows × ${out.p.length} metrics, need ${n} × ${M}`);
  }
}

function checkHuman(h: number): void {
  if (!(h >= 0 && h <= 1)) throw new RangeError(`human_pref must be in [0, 1] or null, got ${h}`);
}

const DIR_MISSING = 2;
/** Relative tolerance for a weighted majority tie, so 0.1 + 0.2 against 0.3 still ties. */
const WEIGHT_TIE_EPS = 1e-12;

/**
 * Label a batch of pairs. Writes rows [0, batch.length) of `out` (allocated when absent; reuse one across batches
 * to avoid garbage) and returns it. No per-pair allocation.
 */
export function computeConsensus(
  plan: ConsensusPlan,
  batch: PairScoreBatch,
  out: ConsensusColumns = allocateConsensusColumns(plan.metrics.length, batch.length),
): ConsensusColumns {
  checkBatch(plan, batch, out);
  const n = batch.length;
  const M = plan.metrics.length;
  const delta = plan.options.margin;
  const { temperatures, weights, weightTotal, stds, ruleCode, ruleMetric, tieMetric, seed, entropyTable } = plan;
  const tieKind = plan.options.ties.kind;
  const scoreA = batch.scoreA;
  const scoreB = batch.scoreB;
  const human = batch.humanPref;
  const pairIds = batch.pairIds;
  const pCols = out.p;
  const vCols = out.vote;
  const { votesA, votesB, label, soft, margin, disagreement, kept, tie, reason } = out;

  for (let i = 0; i < n; i++) {
    let countA = 0;
    let countB = 0;
    let weightA = 0;
    let weightB = 0;
    let weightAvailable = 0;
    let centredSum = 0;
    let scoreSum = 0;
    let anyMissing = false;
    for (let m = 0; m < M; m++) {
      const diff = (scoreA[m] as Float64Array)[i]! - (scoreB[m] as Float64Array)[i]!;
      if (Number.isFinite(diff)) {
        const p = sigmoid(diff / temperatures[m]!);
        const c = p - 0.5;
        const w = weights[m]!;
        (pCols[m] as Float64Array)[i] = p;
        weightAvailable += w;
        centredSum += w * c;
        scoreSum += stds === null ? diff : diff / stds[m]!;
        if (c > delta) {
          (vCols[m] as Int8Array)[i] = 1;
          countA++;
          weightA += w;
        } else if (c < -delta) {
          (vCols[m] as Int8Array)[i] = -1;
          countB++;
          weightB += w;
        } else {
          (vCols[m] as Int8Array)[i] = 0;
        }
      } else {
        (pCols[m] as Float64Array)[i] = Number.NaN;
        (vCols[m] as Int8Array)[i] = 0;
        anyMissing = true;
      }
    }
    votesA[i] = countA;
    votesB[i] = countB;
    disagreement[i] = entropyTable[countA * (M + 1) + countB]!;

    // dir: 1 = a, −1 = b, 0 = tie, DIR_MISSING = the rule cannot decide this pair.
    let dir = 0;
    let s = Number.NaN;
    let mg = Number.NaN;
    switch (ruleCode) {
      case K_MAJORITY: {
        if (weightAvailable === 0) {
          dir = DIR_MISSING;
          break;
        }
        const cast = weightA + weightB;
        s = cast > 0 ? weightA / cast : Number.NaN;
        const lead = weightA - weightB;
        if (Math.abs(lead) <= WEIGHT_TIE_EPS * weightTotal) {
          dir = 0;
          mg = 0;
        } else {
          dir = lead > 0 ? 1 : -1;
          mg = Math.abs(lead) / weightTotal;
        }
        break;
      }
      case K_MEAN_PROB: {
        if (weightAvailable === 0) {
          dir = DIR_MISSING;
          break;
        }
        const c = centredSum / weightAvailable;
        s = 0.5 + c;
        mg = 2 * Math.abs(c);
        dir = c > delta ? 1 : c < -delta ? -1 : 0;
        break;
      }
      case K_VANILLA:
      case K_NORMALIZED: {
        if (anyMissing) {
          dir = DIR_MISSING;
          break;
        }
        s = sigmoid(scoreSum);
        mg = Math.abs(2 * s - 1);
        dir = scoreSum > 0 ? 1 : scoreSum < 0 ? -1 : 0;
        break;
      }
      case K_RANDOM:
      case K_SINGLE: {
        const k = ruleCode === K_SINGLE ? ruleMetric : randomMetricIndex(seed, pairIds![i]!, M);
        const p = (pCols[k] as Float64Array)[i]!;
        if (Number.isNaN(p)) {
          dir = DIR_MISSING;
          break;
        }
        s = p;
        mg = 2 * Math.abs(p - 0.5);
        dir = (vCols[k] as Int8Array)[i]!;
        break;
      }
      case K_HUMAN: {
        const h = human![i]!;
        if (Number.isNaN(h)) {
          dir = DIR_MISSING;
          break;
        }
        checkHuman(h);
        s = h;
        mg = Math.abs(2 * h - 1);
        dir = h > 0.5 ? 1 : h < 0.5 ? -1 : 0;
        break;
      }
    }

    if (dir === DIR_MISSING) {
      soft[i] = Number.NaN;
      margin[i] = Number.NaN;
      label[i] = Number.NaN;
      kept[i] = 0;
      tie[i] = 0;
      reason[i] = R_MISSING;
      continue;
    }
    soft[i] = s;
    margin[i] = mg;
    if (dir !== 0) {
      label[i] = dir === 1 ? 1 : 0;
      kept[i] = 1;
      tie[i] = 0;
      reason[i] = R_DECIDED;
      continue;
    }
    tie[i] = 1;
    let resolved = Number.NaN;
    let why = R_TIE_DROPPED;
    if (tieKind === 'half') {
      resolved = 0.5;
      why = R_TIE_HALF;
    } else if (tieKind === 'human') {
      const h = human![i]!;
      if (!Number.isNaN(h)) checkHuman(h);
      if (h > 0.5 || h < 0.5) {
        resolved = h > 0.5 ? 1 : 0;
        why = R_TIE_HUMAN;
      } else {
        why = R_TIE_UNRESOLVED;
      }
    } else if (tieKind === 'metric') {
      const v = (vCols[tieMetric] as Int8Array)[i]!;
      if (v !== 0) {
        resolved = v === 1 ? 1 : 0;
        why = R_TIE_METRIC;
      } else {
        why = R_TIE_UNRESOLVED;
      }
    }
    label[i] = resolved;
    kept[i] = Number.isNaN(resolved) ? 0 : 1;
    reason[i] = why;
  }
  return out;
}
