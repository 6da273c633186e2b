// One pair's consensus as a plain record: a convenience over the batch kernel for tests and examples.

import { computeConsensus } from './kernel.ts';
import { LABEL_REASONS, type LabelReason } from './columns.ts';
import type { ConsensusPlan } from './plan.ts';

/** One pair's consensus, as a plain record (null for missing values). */
export interface ConsensusRecord {
  readonly p: (number | null)[];
  readonly vote: number[];
  readonly votesA: number;
  readonly votesB: number;
  readonly label: number | null;
  readonly soft: number | null;
  readonly margin: number | null;
  readonly disagreement: number | null;
  readonly kept: boolean;
  readonly tie: boolean;
  readonly reason: LabelReason;
}

export interface PairScores {
  /** Per metric in plan order; null = missing. */
  readonly scoreA: readonly (number | null)[];
  readonly scoreB: readonly (number | null)[];
  readonly humanPref?: number | null;
  readonly pairId?: string;
}

const orNull = (x: number): number | null => (Number.isNaN(x) ? null : x);

/** Convenience for one pair (tests, examples); batch work goes through computeConsensus. */
export function consensusOfPair(plan: ConsensusPlan, pair: PairScores): ConsensusRecord {
  const column = (xs: readonly (number | null)[], m: number): Float64Array => Float64Array.of(xs[m] ?? Number.NaN);
  const M = plan.metrics.length;
  if (pair.scoreA.length !== M || pair.scoreB.length !== M) {
    throw new RangeError(`pair has ${pair.scoreA.length}/${pair.scoreB.length} scores for ${M} metrics`);
  }
  const cols = computeConsensus(plan, {
    length: 1,
    scoreA: Array.from({ length: M }, (_, m) => column(pair.scoreA, m)),
    scoreB: Array.from({ length: M }, (_, m) => column(pair.scoreB, m)),
    humanPref: Float64Array.of(pair.humanPref ?? Number.NaN),
    ...(pair.pairId === undefined ? {} : { pairIds: [pair.pairId] }),
  });
  return {
    p: cols.p.map((c) => orNull(c[0]!)),
    vote: cols.vote.map((c) => c[0]!),
    votesA: cols.votesA[0]!,
    votesB: cols.votesB[0]!,
    label: orNull(cols.label[0]!),
    soft: orNull(cols.soft[0]!),
    margin: orNull(cols.margin[0]!),
    disagreement: orNull(cols.disagreement[0]!),
    kept: cols.kept[0] === 1,
    tie: cols.tie[0] === 1,
    reason: LABEL_REASONS[cols.reason[0]!]!,
  };
}
