// The consensus options: the rule, tie policy, δ, weights and seed as typed values, resolved against the metric
// list and checked once. Option errors name the option in words and carry its key, so a caller with flags (the
// CLI) can say which flag was wrong; nothing here knows of flags or of the text a user typed for a number.

import { assertMargin, assertTemperature } from './preference.ts';
import { BdpoError } from '../core/errors.ts';

export type ConsensusRule =
  | { readonly kind: 'majority' }
  | { readonly kind: 'mean-prob' }
  | { readonly kind: 'vanilla' }
  | { readonly kind: 'normalized' }
  | { readonly kind: 'random' }
  | { readonly kind: 'human' }
  | { readonly kind: 'single'; readonly metric: string };

export type TiePolicy =
  | { readonly kind: 'drop' }
  | { readonly kind: 'half' }
  | { readonly kind: 'human' }
  | { readonly kind: 'metric'; readonly metric: string };

/** A tie policy by name: `drop`, `half`, `human`, or the name of the metric whose vote breaks ties. */
export type TieChoice = Exclude<TiePolicy['kind'], 'metric'> | MetricName;
type MetricName = string;

export interface ConsensusOptions {
  /** Metric names, in the order of the per-metric score arrays and output columns. */
  readonly metrics: readonly string[];
  readonly rule: ConsensusRule;
  readonly ties: TiePolicy;
  /** δ ∈ [0, ½): a vote abstains when |p − ½| ≤ δ. */
  readonly margin: number;
  /** τ per metric (every metric needs one: p columns are written whatever the rule). */
  readonly temperatures: Readonly<Record<string, number>>;
  /** Vote weights for `majority`, mean weights for `mean-prob`; a metric not named weighs 1. */
  readonly weights?: Readonly<Record<string, number>>;
  /** Seed of the `random` rule (an integer in [0, 2^32)); 0 when absent. */
  readonly seed?: number;
}

/** The options a caller chooses; the keys of ConsensusOptionError.option. */
export type ConsensusOptionName = 'rule' | 'ties' | 'margin' | 'weights' | 'seed';

/**
 * A bad rule, tie policy, weight, margin or seed, or a bad combination: the message is one line and names the option
 * in words; `option` says which chosen option was wrong (absent when no single choice is to blame).
 */
export class ConsensusOptionError extends BdpoError {
  override name = 'ConsensusOptionError';
  constructor(
    message: string,
    readonly option?: ConsensusOptionName,
  ) {
    super(message);
  }
}

/** `check()`, with its ConsensusOptionError attributed to `option` when it names none yet. */
function blame<T>(option: ConsensusOptionName, check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof ConsensusOptionError && error.option === undefined) throw new ConsensusOptionError(error.message, option);
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Rule and tie-policy names, resolved against the metric list

const RULE_KEYWORDS = ['majority', 'mean-prob', 'vanilla', 'normalized', 'random', 'human'] as const;
const TIE_KEYWORDS = ['drop', 'half', 'human'] as const;

function knownList(metrics: readonly string[]): string {
  return metrics.length > 0 ? metrics.join(', ') : '(none)';
}

function requireMetric(name: string, metrics: readonly string[], where: string): string {
  if (!metrics.includes(name)) {
    throw new ConsensusOptionError(`unknown metric '${name}' in ${where} (known: ${knownList(metrics)})`);
  }
  return name;
}

/** `majority` | `mean-prob` | `vanilla` | `normalized` | `random` | `human` | `single:<metric>`. */
export function parseRule(text: string, metrics: readonly string[]): ConsensusRule {
  const t = text.trim();
  if (t.startsWith('single:')) {
    return { kind: 'single', metric: requireMetric(t.slice('single:'.length), metrics, `rule '${t}'`) };
  }
  for (const k of RULE_KEYWORDS) if (t === k) return { kind: k };
  throw new ConsensusOptionError(
    `unknown rule '${t}' (expected one of ${RULE_KEYWORDS.join(', ')}, single:<metric>; metrics: ${knownList(metrics)})`,
  );
}

/** `drop` | `half` | `human` | `<metric>`; the keywords win over a metric of the same name. */
export function parseTiePolicy(text: string, metrics: readonly string[]): TiePolicy {
  const t = text.trim();
  for (const k of TIE_KEYWORDS) if (t === k) return { kind: k };
  if (metrics.includes(t)) return { kind: 'metric', metric: t };
  throw new ConsensusOptionError(`unknown tie policy '${t}' (expected ${TIE_KEYWORDS.join(', ')} or a metric: ${knownList(metrics)})`);
}

export function formatRule(rule: ConsensusRule): string {
  return rule.kind === 'single' ? `single:${rule.metric}` : rule.kind;
}

export function formatTiePolicy(ties: TiePolicy): string {
  return ties.kind === 'metric' ? ties.metric : ties.kind;
}

/** `pickscore=2,hps=1`: the weights as one line, in the order they were given (folder names, run records). */
export function formatWeights(weights: Readonly<Record<string, number>>): string {
  return Object.entries(weights)
    .map(([name, weight]) => `${name}=${weight}`)
    .join(',');
}

/** The options a caller chooses; absent ones take the defaults (majority, drop, δ 0, seed 0). */
export interface ConsensusArgs {
  /** `majority` | `mean-prob` | `vanilla` | `normalized` | `random` | `human` | `single:<metric>`. */
  readonly rule?: string;
  readonly ties?: TieChoice;
  readonly margin?: number;
  readonly weights?: Readonly<Record<string, number>>;
  readonly seed?: number;
}

function checkMargin(margin: number): number {
  if (!(Number.isFinite(margin) && margin >= 0 && margin < 0.5)) {
    throw new ConsensusOptionError(`margin must be in [0, 0.5), got ${margin}`, 'margin');
  }
  return margin;
}

function checkSeed(seed: number): number {
  if (!(Number.isSafeInteger(seed) && seed >= 0 && seed <= 0xffffffff)) {
    throw new ConsensusOptionError(`seed must be an integer in [0, 4294967295], got ${seed}`, 'seed');
  }
  return seed;
}

function checkWeights(weights: Readonly<Record<string, number>>, metrics: readonly string[]): Record<string, number> {
  const checked: Record<string, number> = {};
  for (const [name, weight] of Object.entries(weights)) {
    requireMetric(name, metrics, 'weights');
    if (!(Number.isFinite(weight) && weight >= 0)) {
      throw new ConsensusOptionError(`weights: weight of '${name}' must be ≥ 0, got ${weight}`, 'weights');
    }
    checked[name] = weight;
  }
  if (Object.keys(checked).length === 0) throw new ConsensusOptionError('weights: no metric is named', 'weights');
  return checked;
}

export function parseConsensusOptions(
  args: ConsensusArgs,
  context: { readonly metrics: readonly string[]; readonly temperatures: Readonly<Record<string, number>> },
): ConsensusOptions {
  const { metrics, temperatures } = context;
  const rule = blame('rule', () => parseRule(args.rule ?? 'majority', metrics));
  const { margin, seed, weights } = args;
  const options: ConsensusOptions = {
    metrics: [...metrics],
    rule,
    ties: blame('ties', () => parseTiePolicy(args.ties ?? 'drop', metrics)),
    margin: margin === undefined ? 0 : checkMargin(margin),
    temperatures: { ...temperatures },
    seed: seed === undefined ? 0 : checkSeed(seed),
    ...(weights === undefined ? {} : { weights: blame('weights', () => checkWeights(weights, metrics)) }),
  };
  if (options.weights !== undefined && rule.kind !== 'majority' && rule.kind !== 'mean-prob') {
    throw new ConsensusOptionError(`weights apply to majority and mean-prob only, not ${formatRule(rule)}`, 'weights');
  }
  validateOptions(options);
  return options;
}

export function validateOptions(o: ConsensusOptions): void {
  const { metrics } = o;
  if (metrics.length === 0) throw new ConsensusOptionError('consensus needs at least one metric');
  if (metrics.length > 255) throw new ConsensusOptionError(`at most 255 metrics, got ${metrics.length}`);
  if (new Set(metrics).size !== metrics.length) {
    throw new ConsensusOptionError(`metric names repeat: ${metrics.join(', ')}`);
  }
  try {
    assertMargin(o.margin);
    for (const m of metrics) assertTemperature(o.temperatures[m] ?? Number.NaN, m);
  } catch (e) {
    throw new ConsensusOptionError((e as Error).message);
  }
  if (o.rule.kind === 'single') requireMetric(o.rule.metric, metrics, 'rule');
  if (o.ties.kind === 'metric') requireMetric(o.ties.metric, metrics, 'tie policy');
  if (o.weights !== undefined) {
    if (o.rule.kind !== 'majority' && o.rule.kind !== 'mean-prob') {
      throw new ConsensusOptionError(`weights apply to majority and mean-prob only, not ${formatRule(o.rule)}`);
    }
    let total = 0;
    for (const [name, w] of Object.entries(o.weights)) {
      requireMetric(name, metrics, 'weights');
      if (!(Number.isFinite(w) && w >= 0)) {
        throw new ConsensusOptionError(`weight of '${name}' must be a finite number ≥ 0, got ${w}`);
      }
    }
    for (const m of metrics) total += o.weights[m] ?? 1;
    if (!(total > 0)) throw new ConsensusOptionError('weights: every metric has weight 0');
  }
  if (o.seed !== undefined && !(Number.isSafeInteger(o.seed) && o.seed >= 0 && o.seed <= 0xffffffff)) {
    throw new ConsensusOptionError(`seed must be an integer in [0, 4294967295], got ${o.seed}`);
  }
}
