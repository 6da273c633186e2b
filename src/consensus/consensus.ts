// The consensus library's one entry point: options, the compiled plan, the batch kernel and its columns. Callers
// import from here; each concept lives in its own module beside this one.

export {
  ConsensusOptionError,
  formatRule,
  formatTiePolicy,
  formatWeights,
  parseConsensusOptions,
  parseRule,
  parseTiePolicy,
  validateOptions,
  type ConsensusArgs,
  type ConsensusOptionName,
  type ConsensusOptions,
  type ConsensusRule,
  type TieChoice,
  type TiePolicy,
} from './options.ts';
export { pairIdHash, randomMetricIndex } from './random-draw.ts';
export { compileConsensus, type ConsensusPlan } from './plan.ts';
export { allocateConsensusColumns, LABEL_REASONS, type ConsensusColumns, type LabelReason, type PairScoreBatch } from './columns.ts';
export { computeConsensus } from './kernel.ts';
export { consensusOfPair, type ConsensusRecord, type PairScores } from './pair.ts';
export { MetricStatsAccumulator, type MetricStats } from '../core/stats.ts';
