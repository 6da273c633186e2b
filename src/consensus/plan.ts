// The compiled plan: options checked once and resolved to indices and typed arrays, reused for every batch.

import { voteEntropy } from './preference.ts';
import { ConsensusOptionError, validateOptions, type ConsensusOptions, type ConsensusRule } from './options.ts';
import type { MetricStats } from '../core/stats.ts';

export const K_MAJORITY = 0;
export const K_MEAN_PROB = 1;
export const K_VANILLA = 2;
export const K_NORMALIZED = 3;
export const K_RANDOM = 4;
export const K_HUMAN = 5;
export const K_SINGLE = 6;
const RULE_CODE: Record<ConsensusRule['kind'], number> = {
  majority: K_MAJORITY,
  'mean-prob': K_MEAN_PROB,
  vanilla: K_VANILLA,
  normalized: K_NORMALIZED,
  random: K_RANDOM,
  human: K_HUMAN,
  single: K_SINGLE,
};

/** Options checked and resolved to indices once, reused for every batch. */
export interface ConsensusPlan {
  readonly options: ConsensusOptions;
  readonly metrics: readonly string[];
  readonly temperatures: Float64Array;
  readonly weights: Float64Array;
  readonly weightTotal: number;
  /** Per-metric std for `normalized`, else null. */
  readonly stds: Float64Array | null;
  readonly ruleCode: number;
  /** Metric index of `single:<metric>`, else −1. */
  readonly ruleMetric: number;
  /** Metric index of a `<metric>` tie policy, else −1. */
  readonly tieMetric: number;
  readonly seed: number;
  readonly needsHuman: boolean;
  readonly needsPairIds: boolean;
  /** voteEntropy(a, b) at index a·(M + 1) + b: counts are small integers, so the logs are paid once. */
  readonly entropyTable: Float64Array;
}

/**
 * Validate options (throws ConsensusOptionError) and resolve them for computeConsensus. `normalized` needs the
 * dataset statistics of every metric; the z-score means cancel in z_a − z_b, so only std enters the result.
 */
export function compileConsensus(options: ConsensusOptions, stats?: Readonly<Record<string, MetricStats>>): ConsensusPlan {
  validateOptions(options);
  const { metrics } = options;
  const M = metrics.length;
  const temperatures = new Float64Array(M);
  const weights = new Float64Array(M);
  let weightTotal = 0;
  for (let m = 0; m < M; m++) {
    const name = metrics[m] as string;
    temperatures[m] = options.temperatures[name] as number;
    weights[m] = options.weights?.[name] ?? 1;
    weightTotal += weights[m] as number;
  }
  let stds: Float64Array | null = null;
  if (options.rule.kind === 'normalized') {
    stds = new Float64Array(M);
    for (let m = 0; m < M; m++) {
      const name = metrics[m] as string;
      const s = stats?.[name];
      if (s === undefined) throw new ConsensusOptionError(`normalized: no score statistics for metric '${name}'`);
      if (!(Number.isFinite(s.std) && s.std > 0)) {
        throw new ConsensusOptionError(`normalized: metric '${name}' has no spread (std ${s.std} over ${s.count} images)`);
      }
      stds[m] = s.std;
    }
  }
  const entropyTable = new Float64Array((M + 1) * (M + 1));
  for (let a = 0; a <= M; a++) for (let b = 0; b <= M; b++) entropyTable[a * (M + 1) + b] = voteEntropy(a, b);
  return {
    options,
    metrics,
    temperatures,
    weights,
    weightTotal,
    stds,
    ruleCode: RULE_CODE[options.rule.kind],
    ruleMetric: options.rule.kind === 'single' ? metrics.indexOf(options.rule.metric) : -1,
    tieMetric: options.ties.kind === 'metric' ? metrics.indexOf(options.ties.metric) : -1,
    seed: options.seed ?? 0,
    needsHuman: options.rule.kind === 'human' || options.ties.kind === 'human',
    needsPairIds: options.rule.kind === 'random',
    entropyTable,
  };
}
