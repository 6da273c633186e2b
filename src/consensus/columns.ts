// The columnar batch the kernel reads (scores per metric) and the consensus columns it writes, and the reason
// vocabulary of those columns.

export const LABEL_REASONS = ['decided', 'tie-dropped', 'tie-half', 'tie-human', 'tie-metric', 'tie-unresolved', 'missing'] as const;
export type LabelReason = (typeof LABEL_REASONS)[number];
export const R_DECIDED = 0;
export const R_TIE_DROPPED = 1;
export const R_TIE_HALF = 2;
export const R_TIE_HUMAN = 3;
export const R_TIE_METRIC = 4;
export const R_TIE_UNRESOLVED = 5;
export const R_MISSING = 6;

/** Scores of a batch of pairs, one array per metric in plan order; NaN marks a missing score / null label. */
export interface PairScoreBatch {
  readonly length: number;
  readonly scoreA: readonly Float64Array[];
  readonly scoreB: readonly Float64Array[];
  /** human_pref (P(a ≻ b)), NaN = null; required by rule `human` and tie policy `human`. */
  readonly humanPref?: Float64Array;
  /** pair_id; required by rule `random`. */
  readonly pairIds?: readonly string[];
}

/** The consensus columns of docs/design.md §2 for a batch, plus tie and reason. NaN means null. */
export interface ConsensusColumns {
  readonly length: number;
  /** p_<metric>, per metric in plan order. */
  readonly p: Float64Array[];
  /** vote_<metric>: +1 (a), −1 (b), 0 (abstain or missing). */
  readonly vote: Int8Array[];
  readonly votesA: Uint8Array;
  readonly votesB: Uint8Array;
  /** 1 (a), 0 (b), 0.5, or NaN (null). */
  readonly label: Float64Array;
  readonly soft: Float64Array;
  readonly margin: Float64Array;
  readonly disagreement: Float64Array;
  /** 1 when the pair is kept for training. */
  readonly kept: Uint8Array;
  /** 1 when the rule itself tied (whatever the tie policy then did). */
  readonly tie: Uint8Array;
  /** Index into LABEL_REASONS. */
  readonly reason: Uint8Array;
}

export function allocateConsensusColumns(nMetrics: number, length: number): ConsensusColumns {
  return {
    length,
    p: Array.from({ length: nMetrics }, () => new Float64Array(length)),
    vote: Array.from({ length: nMetrics }, () => new Int8Array(length)),
    votesA: new Uint8Array(length),
    votesB: new Uint8Array(length),
    label: new Float64Array(length),
    soft: new Float64Array(length),
    margin: new Float64Array(length),
    disagreement: new Float64Array(length),
    kept: new Uint8Array(length),
    tie: new Uint8Array(length),
    reason: new Uint8Array(length),
  };
}
