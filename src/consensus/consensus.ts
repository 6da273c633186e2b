// Consensus rules over per-metric scores of image pairs (DESIGN §5), and the tie policies that turn a rule's
// decision into a training label. Pure: columnar typed arrays in, columnar typed arrays out, no I/O.
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

import { voteEntropy, sigmoid, assertMargin, assertTemperature } from './preference.ts';
import { MetricStatsAccumulator, type MetricStats } from '../core/stats.ts';

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


/** A bad rule, tie policy, weight, margin or seed: the message is one line fit for the CLI. */
export class ConsensusOptionError extends Error {
  override name = 'ConsensusOptionError';
}

/** A bad value of one consensus flag (--rule, --ties, …): the message starts with the flag, and the CLI exits 2. */
export class ConsensusFlagError extends ConsensusOptionError {
  override name = 'ConsensusFlagError';
  constructor(readonly flag: string, message: string) {
    super(`--${flag}: ${message}`);
  }
}

/** `parse()`, with its ConsensusOptionError turned into a ConsensusFlagError naming `flag`. */
function parseFlag<T>(flag: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof ConsensusOptionError && !(error instanceof ConsensusFlagError)) throw new ConsensusFlagError(flag, error.message);
    throw error;
  }
}

export const LABEL_REASONS = [
  'decided',
  'tie-dropped',
  'tie-half',
  'tie-human',
  'tie-metric',
  'tie-unresolved',
  'missing',
] as const;
export type LabelReason = (typeof LABEL_REASONS)[number];
const R_DECIDED = 0;
const R_TIE_DROPPED = 1;
const R_TIE_HALF = 2;
const R_TIE_HUMAN = 3;
const R_TIE_METRIC = 4;
const R_TIE_UNRESOLVED = 5;
const R_MISSING = 6;

// ---------------------------------------------------------------------------------------------------------------
// Parsing the CLI strings

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
  throw new ConsensusOptionError(
    `unknown tie policy '${t}' (expected ${TIE_KEYWORDS.join(', ')} or a metric: ${knownList(metrics)})`,
  );
}

function parseNumber(text: string, what: string): number {
  const t = text.trim();
  const x = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(t) ? Number(t) : Number.NaN;
  if (!Number.isFinite(x)) throw new ConsensusOptionError(`${what}: '${text}' is not a number`);
  return x;
}

/** `pickscore=2,hps=1` → { pickscore: 2, hps: 1 }. Weights are finite and ≥ 0; a metric not named weighs 1. */
export function parseWeights(text: string, metrics: readonly string[]): Record<string, number> {
  const weights: Record<string, number> = {};
  for (const item of text.split(',')) {
    const entry = item.trim();
    if (entry === '') continue;
    const eq = entry.indexOf('=');
    if (eq < 0) throw new ConsensusOptionError(`weights: '${entry}' is not metric=weight`);
    const name = requireMetric(entry.slice(0, eq).trim(), metrics, 'weights');
    if (Object.hasOwn(weights, name)) throw new ConsensusOptionError(`weights: metric '${name}' given twice`);
    const w = parseNumber(entry.slice(eq + 1), `weight of '${name}'`);
    if (w < 0) throw new ConsensusOptionError(`weights: weight of '${name}' must be ≥ 0, got ${w}`);
    weights[name] = w;
  }
  if (Object.keys(weights).length === 0) throw new ConsensusOptionError(`weights: '${text}' names no metric`);
  return weights;
}

export function parseMargin(text: string): number {
  const m = parseNumber(text, 'margin');
  if (!(m >= 0 && m < 0.5)) throw new ConsensusOptionError(`margin must be in [0, 0.5), got ${m}`);
  return m;
}

export function parseSeed(text: string): number {
  const t = text.trim();
  const s = /^\d+$/.test(t) ? Number(t) : Number.NaN;
  if (!(Number.isSafeInteger(s) && s <= 0xffffffff)) {
    throw new ConsensusOptionError(`seed must be an integer in [0, 4294967295], got '${text}'`);
  }
  return s;
}

export function formatRule(rule: ConsensusRule): string {
  return rule.kind === 'single' ? `single:${rule.metric}` : rule.kind;
}

export function formatTiePolicy(ties: TiePolicy): string {
  return ties.kind === 'metric' ? ties.metric : ties.kind;
}

/** The consensus flags as the CLI receives them; absent ones take the defaults (majority, drop, δ 0, seed 0). */
export interface ConsensusArgs {
  readonly rule?: string;
  readonly ties?: string;
  readonly margin?: string;
  readonly weights?: string;
  readonly seed?: string;
}

export function parseConsensusOptions(
  args: ConsensusArgs,
  context: { readonly metrics: readonly string[]; readonly temperatures: Readonly<Record<string, number>> },
): ConsensusOptions {
  const { metrics, temperatures } = context;
  const rule = parseFlag('rule', () => parseRule(args.rule ?? 'majority', metrics));
  const { margin, seed, weights } = args;
  const options: ConsensusOptions = {
    metrics: [...metrics],
    rule,
    ties: parseFlag('ties', () => parseTiePolicy(args.ties ?? 'drop', metrics)),
    margin: margin === undefined ? 0 : parseFlag('margin', () => parseMargin(margin)),
    temperatures: { ...temperatures },
    seed: seed === undefined ? 0 : parseFlag('seed', () => parseSeed(seed)),
    ...(weights === undefined ? {} : { weights: parseFlag('weights', () => parseWeights(weights, metrics)) }),
  };
  if (options.weights !== undefined && rule.kind !== 'majority' && rule.kind !== 'mean-prob') {
    throw new ConsensusFlagError('weights', `weights apply to majority and mean-prob only, not ${formatRule(rule)}`);
  }
  validateOptions(options);
  return options;
}

function validateOptions(o: ConsensusOptions): void {
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

// ---------------------------------------------------------------------------------------------------------------
// Dataset statistics for `normalized` (first pass over the images' scores)


// ---------------------------------------------------------------------------------------------------------------
// The `random` rule's draw

/**
 * cyrb53 (public domain): a 53-bit hash of a string's UTF-16 code units under a 32-bit seed. Frozen: the
 * `random` rule's draw depends on it, so changing it changes every published `random` consensus file.
 */
export function pairIdHash(seed: number, pairId: string): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < pairId.length; i++) {
    const ch = pairId.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/**
 * The metric the `random` rule draws for a pair: a pure function of (seed, pair_id), so results do not depend on
 * batch order or sharding. The 53-bit hash maps to [0, n) by multiply-and-floor (bias below 2^-50).
 */
export function randomMetricIndex(seed: number, pairId: string, nMetrics: number): number {
  return Math.floor((pairIdHash(seed, pairId) / 9007199254740992) * nMetrics);
}

// ---------------------------------------------------------------------------------------------------------------
// Compiled plan, batches and columns

const K_MAJORITY = 0;
const K_MEAN_PROB = 1;
const K_VANILLA = 2;
const K_NORMALIZED = 3;
const K_RANDOM = 4;
const K_HUMAN = 5;
const K_SINGLE = 6;
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
export function compileConsensus(
  options: ConsensusOptions,
  stats?: Readonly<Record<string, MetricStats>>,
): ConsensusPlan {
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
        throw new ConsensusOptionError(
          `normalized: metric '${name}' has no spread (std ${s.std} over ${s.count} images)`,
        );
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

/** The consensus columns of DESIGN §2 for a batch, plus tie and reason. NaN means null. */
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
  const column = (xs: readonly (number | null)[], m: number): Float64Array =>
    Float64Array.of(xs[m] ?? Number.NaN);
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

export { MetricStatsAccumulator, type MetricStats };
