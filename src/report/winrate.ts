/**
 * Win rate of model A over model B per metric over a prompt set (docs/design.md §5), with bootstrap intervals.
 *
 * - A comparison is A's and B's image for the same prompt and seed: credit 1[s_A > s_B] + ½·1[s_A = s_B].
 * - A prompt's value is the mean credit over its seeds, so every prompt weighs the same however many seeds it has.
 * - The win rate is the mean over prompts; the average win rate is the mean over metrics of their win rates.
 * - Intervals: percentile bootstrap resampling PROMPTS with replacement (seeds stay with their prompt, as they
 *   share it). The average's interval comes from the same resamples, so the metrics' correlation through the
 *   shared prompts is kept. Prompts are ordered by id before resampling and every group (overall, each category)
 *   restarts the seeded generator: the result does not depend on insertion or merge order, nor on which other
 *   categories exist. A metric that lacks some prompts is averaged, in each resample, over the drawn prompts it
 *   has; a resample that draws none of them is left out of that metric's interval, and the metric out of that
 *   resample's average.
 * Pure: no I/O. Memory is one small tally per (prompt, metric), independent of the number of seeds.
 */
import { quantileSorted } from './distribution.ts';
import { mulberry32, randomIndex } from '../core/random.ts';

/** 1 if A scored higher, ½ if equal, 0 if lower. */
export function comparisonCredit(scoreA: number, scoreB: number): number {
  return scoreA > scoreB ? 1 : scoreA === scoreB ? 0.5 : 0;
}

export interface BootstrapOptions {
  /** Default 2000. */
  resamples?: number;
  /** Default 0. */
  seed?: number;
  /** Two-sided coverage of the percentile interval; default 0.95. */
  level?: number;
}

export interface Estimate {
  winRate: number;
  lo: number;
  hi: number;
  /**
   * Set when the interval says nothing about uncertainty: 'one prompt' (nothing to resample), 'same value on every
   * prompt' (every resample gives the same mean), 'no prompt every metric has' (the average), 'zero width'.
   */
  degenerate?: string;
  /** The average only, when some metric lacks prompts: the prompts every averaged metric has, its interval's basis. */
  prompts?: number;
}

export interface MetricWinRate extends Estimate {
  metric: string;
  /** Prompts with at least one comparison for this metric. */
  prompts: number;
  comparisons: number;
  wins: number;
  ties: number;
  losses: number;
  /** Comparisons with a null or non-finite score: counted here, left out of every number. */
  skipped: number;
}

export interface WinRateSummary {
  prompts: number;
  metrics: MetricWinRate[];
  /** Mean over the metrics that have at least one prompt. */
  average: Estimate;
}

export interface CategoryWinRate extends WinRateSummary {
  /** null groups the prompts that were given no category. */
  category: string | null;
}

export interface WinRateReport extends WinRateSummary {
  /** Empty when no prompt has a category. Sorted by category (null last). */
  byCategory: CategoryWinRate[];
  resamples: number;
  seed: number;
  level: number;
}

interface PromptRecord {
  category: string | null;
  /** Per metric index; undefined until the metric is seen for this prompt. */
  tallies: (Tally | undefined)[];
}

interface Tally {
  wins: number;
  ties: number;
  losses: number;
  skipped: number;
}

export class WinRateAccumulator {
  private readonly metricIndex = new Map<string, number>();
  private readonly metricNames: string[] = [];
  private readonly prompts = new Map<string, PromptRecord>();

  /** Listing the metrics fixes their order in the report; others are appended as they appear. */
  constructor(metrics: readonly string[] = []) {
    for (const m of metrics) this.metric(m);
  }

  /** One comparison (one seed) of prompt `promptId` under `metric`. */
  add(promptId: string, metric: string, scoreA: number | null, scoreB: number | null, category?: string | null): void {
    const m = this.metric(metric);
    const record = this.prompt(promptId, category ?? null);
    const tally = (record.tallies[m] ??= { wins: 0, ties: 0, losses: 0, skipped: 0 });
    if (scoreA === null || scoreB === null || !Number.isFinite(scoreA) || !Number.isFinite(scoreB)) {
      tally.skipped++;
      return;
    }
    const credit = comparisonCredit(scoreA, scoreB);
    if (credit === 1) tally.wins++;
    else if (credit === 0) tally.losses++;
    else tally.ties++;
  }

  merge(other: WinRateAccumulator): this {
    const remap = other.metricNames.map((name) => this.metric(name));
    for (const [id, theirs] of other.prompts) {
      const mine = this.prompt(id, theirs.category);
      theirs.tallies.forEach((t, i) => {
        if (t === undefined) return;
        const target = (mine.tallies[remap[i]!] ??= { wins: 0, ties: 0, losses: 0, skipped: 0 });
        target.wins += t.wins;
        target.ties += t.ties;
        target.losses += t.losses;
        target.skipped += t.skipped;
      });
    }
    return this;
  }

  result(options: BootstrapOptions = {}): WinRateReport {
    const resamples = options.resamples ?? 2000;
    const seed = options.seed ?? 0;
    const level = options.level ?? 0.95;
    if (!Number.isInteger(resamples) || resamples < 1)
      throw new RangeError(`win rate: resamples must be a positive integer, got ${resamples}`);
    if (!(level > 0 && level < 1)) throw new RangeError(`win rate: level must be in (0, 1), got ${level}`);
    const ids = [...this.prompts.keys()].sort(compareStrings);
    const settings = { resamples, seed, level };
    const overall = this.summarise(ids, settings);
    const groups = new Map<string | null, string[]>();
    for (const id of ids) {
      const category = this.prompts.get(id)!.category;
      const group = groups.get(category);
      if (group) group.push(id);
      else groups.set(category, [id]);
    }
    const byCategory: CategoryWinRate[] = [];
    if (!(groups.size === 1 && groups.has(null))) {
      const keys = [...groups.keys()].sort((x, y) => (x === null ? 1 : y === null ? -1 : compareStrings(x, y)));
      for (const category of keys) byCategory.push({ category, ...this.summarise(groups.get(category)!, settings) });
    }
    return { ...overall, byCategory, resamples, seed, level };
  }

  /** Point estimates and bootstrap intervals over one group of prompts (ids sorted). */
  private summarise(ids: readonly string[], settings: Required<BootstrapOptions>): WinRateSummary {
    const M = this.metricNames.length;
    const P = ids.length;
    // value[m * P + p]: prompt p's mean credit under metric m, NaN when the prompt has no comparison for m.
    const value = new Float64Array(M * P).fill(NaN);
    const totals: Tally[] = Array.from({ length: M }, () => ({ wins: 0, ties: 0, losses: 0, skipped: 0 }));
    const promptCounts = new Array<number>(M).fill(0);
    ids.forEach((id, p) => {
      const record = this.prompts.get(id)!;
      for (let m = 0; m < M; m++) {
        const t = record.tallies[m];
        if (t === undefined) continue;
        const total = totals[m]!;
        total.wins += t.wins;
        total.ties += t.ties;
        total.losses += t.losses;
        total.skipped += t.skipped;
        const n = t.wins + t.ties + t.losses;
        if (n > 0) {
          value[m * P + p] = (t.wins + 0.5 * t.ties) / n;
          promptCounts[m]! += 1;
        }
      }
    });

    const weights = new Float64Array(P).fill(1);
    const values = masked(value);
    const point = meansByMetric(values, weights, M, P);

    const rng = mulberry32(settings.seed);
    const draws: Float64Array[] = Array.from({ length: M }, () => new Float64Array(settings.resamples));
    const averageDraws = new Float64Array(settings.resamples);
    // The average's resamples use only the prompts every averaged metric has: over the others each resample would
    // average metrics measured on different prompts, mixing different averages.
    const averaged = promptCounts.flatMap((n, m) => (n > 0 ? [m] : []));
    let common = 0;
    let commonValue = value;
    if (averaged.some((m) => promptCounts[m]! < P)) {
      commonValue = new Float64Array(M * P).fill(NaN);
      for (let p = 0; p < P; p++) {
        if (!averaged.every((m) => !Number.isNaN(value[m * P + p]!))) continue;
        common++;
        for (const m of averaged) commonValue[m * P + p] = value[m * P + p]!;
      }
    } else common = averaged.length > 0 ? P : 0;
    const commonValues = commonValue === value ? values : masked(commonValue);
    for (let r = 0; r < settings.resamples && P > 0; r++) {
      weights.fill(0);
      for (let k = 0; k < P; k++) weights[randomIndex(rng, P)]! += 1;
      const means = meansByMetric(values, weights, M, P);
      for (let m = 0; m < M; m++) draws[m]![r] = means[m]!;
      averageDraws[r] = meanOfFinite(commonValue === value ? means : meansByMetric(commonValues, weights, M, P));
    }
    if (P === 0) {
      for (const d of draws) d.fill(NaN);
      averageDraws.fill(NaN);
    }

    const metrics: MetricWinRate[] = this.metricNames.map((metric, m) => {
      const t = totals[m]!;
      const interval = percentileInterval(draws[m]!, settings.level);
      const flag = degeneracy(
        interval,
        promptCounts[m]!,
        Array.from({ length: P }, (_, p) => value[m * P + p]!),
      );
      return {
        metric,
        winRate: point[m]!,
        ...interval,
        ...(flag === null ? {} : { degenerate: flag }),
        prompts: promptCounts[m]!,
        comparisons: t.wins + t.ties + t.losses,
        ...t,
      };
    });
    const averageInterval = percentileInterval(averageDraws, settings.level);
    const perPrompt = Array.from({ length: P }, (_, p) => meanOfFinite(averaged.map((m) => commonValue[m * P + p]!)));
    const averageFlag = averaged.length > 0 && common === 0 ? 'no prompt every metric has' : degeneracy(averageInterval, common, perPrompt);
    const average: Estimate = {
      winRate: meanOfFinite(point),
      ...averageInterval,
      ...(averageFlag === null ? {} : { degenerate: averageFlag }),
      ...(commonValue === value ? {} : { prompts: common }),
    };
    return { prompts: P, metrics, average };
  }

  private metric(name: string): number {
    let m = this.metricIndex.get(name);
    if (m === undefined) {
      m = this.metricNames.length;
      this.metricIndex.set(name, m);
      this.metricNames.push(name);
    }
    return m;
  }

  private prompt(id: string, category: string | null): PromptRecord {
    let record = this.prompts.get(id);
    if (record === undefined) {
      record = { category, tallies: [] };
      this.prompts.set(id, record);
    } else if (category !== null) {
      if (record.category === null) record.category = category;
      else if (record.category !== category) {
        throw new RangeError(`win rate: prompt ${JSON.stringify(id)} given two categories (${record.category}, ${category})`);
      }
    }
    return record;
  }
}

/** Code-unit order: locale-independent, so every machine sorts prompts the same way. */
function compareStrings(x: string, y: string): number {
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Weighted mean over prompts of each metric's values, skipping prompts without a value (NaN if none). */
/**
 * A value matrix ready for weighted means: NaN replaced by 0, beside a mask that is 1 where the value was a number.
 * Then each mean is a branch-free sum of w·v and of w·mask, which adds exactly what the skipping loop added (a
 * skipped term adds +0, and no partial sum here is −0), so every mean is the same double as before.
 */
interface MaskedValues {
  zeroed: Float64Array;
  mask: Float64Array;
}

function masked(value: Float64Array): MaskedValues {
  const zeroed = new Float64Array(value.length);
  const mask = new Float64Array(value.length);
  for (let i = 0; i < value.length; i++) {
    const v = value[i]!;
    if (!Number.isNaN(v)) {
      zeroed[i] = v;
      mask[i] = 1;
    }
  }
  return { zeroed, mask };
}

function meansByMetric({ zeroed, mask }: MaskedValues, weights: Float64Array, M: number, P: number): Float64Array {
  const means = new Float64Array(M);
  for (let m = 0; m < M; m++) {
    let sum = 0;
    let weight = 0;
    for (let p = 0, at = m * P; p < P; p++, at++) {
      const w = weights[p]!;
      sum += w * zeroed[at]!;
      weight += w * mask[at]!;
    }
    means[m] = weight > 0 ? sum / weight : NaN;
  }
  return means;
}

function meanOfFinite(values: ArrayLike<number>): number {
  let sum = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isNaN(v)) {
      sum += v;
      n++;
    }
  }
  return n > 0 ? sum / n : NaN;
}

/** Percentile interval of bootstrap draws (NaN draws — a resample without any prompt for a metric — are dropped). */
export function percentileInterval(draws: ArrayLike<number>, level: number): { lo: number; hi: number } {
  const kept: number[] = [];
  for (let i = 0; i < draws.length; i++) if (!Number.isNaN(draws[i]!)) kept.push(draws[i]!);
  const sorted = Float64Array.from(kept).sort();
  const tail = (1 - level) / 2;
  return { lo: quantileSorted(sorted, tail), hi: quantileSorted(sorted, 1 - tail) };
}

/** Why an interval is degenerate (see Estimate.degenerate), or null when it is not. */
function degeneracy(interval: { lo: number; hi: number }, prompts: number, perPrompt: readonly number[]): string | null {
  if (prompts === 0 || !(interval.lo === interval.hi)) return null;
  if (prompts === 1) return 'one prompt';
  const values = perPrompt.filter((v) => !Number.isNaN(v));
  return values.every((v) => v === values[0]) ? 'same value on every prompt' : 'zero width';
}

/** One warning line per interval that cannot be read as a 95% interval, and for an average over fewer prompts. */
export function intervalWarnings(summary: WinRateSummary, level = 0.95): string[] {
  const name = `${Math.round(level * 100)}%`;
  const warnings = summary.metrics.flatMap((m) =>
    m.degenerate === undefined ? [] : [`${m.metric}: the ${name} interval has zero width (${m.degenerate}): it measures no uncertainty`],
  );
  if (summary.average.degenerate !== undefined) {
    warnings.push(`average: the ${name} interval has zero width (${summary.average.degenerate}): it measures no uncertainty`);
  }
  if (summary.average.prompts !== undefined) {
    const basis = `${summary.average.prompts} of ${summary.prompts} prompts`;
    warnings.push(`average: some metrics lack prompts, so its interval resamples only the ${basis} every metric has`);
  }
  return warnings;
}
