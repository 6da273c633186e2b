// Streaming statistics of a metric's scores: the `normalized` rule's z-scores and the score table both use them.

/** Dataset-level statistics of one metric's image scores; std is the population standard deviation. */
export interface MetricStats {
  readonly count: number;
  readonly mean: number;
  readonly std: number;
}

/**
 * Welford's streaming mean and population variance of one metric's image scores. Scores that are not finite are
 * skipped (they are missing, not zero). Shards merge with `merge` (Chan et al.'s pairwise update).
 */
export class MetricStatsAccumulator {
  private n = 0;
  private mu = 0;
  private m2 = 0;

  add(x: number): void {
    if (!Number.isFinite(x)) return;
    this.n += 1;
    const d = x - this.mu;
    this.mu += d / this.n;
    this.m2 += d * (x - this.mu);
  }

  addAll(xs: ArrayLike<number>): void {
    for (let i = 0; i < xs.length; i++) this.add(xs[i] as number);
  }

  /** Fold in another shard's statistics (its m2 is recovered as count · std²). */
  merge(other: MetricStats): void {
    if (other.count === 0) return;
    const n = this.n + other.count;
    const d = other.mean - this.mu;
    this.m2 += other.std * other.std * other.count + (d * d * this.n * other.count) / n;
    this.mu += (d * other.count) / n;
    this.n = n;
  }

  stats(): MetricStats {
    return {
      count: this.n,
      mean: this.n > 0 ? this.mu : Number.NaN,
      std: this.n > 0 ? Math.sqrt(this.m2 / this.n) : Number.NaN,
    };
  }
}
