// The report model: the data types of the audit and eval reports (what report.json holds and both the pages and the
// CLI summaries read), and the two things every report shares: its JSON form and the calibration-fit sentence.
import type { FleissResult, MeanKendallTauResult, PairAgreementResult, TieAwareAccuracyResult, Vote } from './agreement.ts';
import type { HistogramResult, ReliabilityResult } from './distribution.ts';
import type { CategoryWinRate, WinRateReport } from './winrate.ts';

// ---------------------------------------------------------------------------------------------------------------
// The audit

export interface RaterTies {
  rater: string;
  votes: number;
  ties: number;
  tieRate: number;
}

export interface PatternRow {
  key: string;
  /** The coalition holding the first metric that voted, and the one against it. */
  left: string[];
  right: string[];
  tie: string[];
  missing: string[];
  count: number;
  fraction: number;
  /** Human labels of these pairs: with the left coalition, with the right one, a tie, or none. */
  human: { left: number; right: number; tie: number; unlabelled: number };
  /** left / (left + right + tie): how often the humans sided with the left coalition (NaN without labels). */
  humanSidesWithLeft: number;
}

export interface SliceReport {
  kind: 'all' | 'split' | 'category';
  name: string;
  pairs: number;
  humanLabelled: number;
  /** Pairs where the rule tied, and pairs it could vote on (not dropped as `missing`). */
  consensusTies: number;
  voted: number;
  tieRate: number;
  /** The metrics, then `consensus` and `human`. */
  raters: string[];
  agreement: (PairAgreementResult & { x: string; y: string })[];
  /** Mean over the metrics of Cohen's κ with the human labels (the metrics with a defined κ). */
  meanKappaVsHuman: number;
  /** Across the metrics; null with fewer than two metrics. */
  fleiss: FleissResult | null;
  /** Each metric, then `consensus`, against the human labels. */
  accuracy: (TieAwareAccuracyResult & { rater: string })[];
  tieRates: RaterTies[];
  /** Null when the slice holds no ranked group. */
  kendall: (MeanKendallTauResult & { metric: string })[] | null;
  /** Every folded vote pattern, most frequent first. */
  patterns: PatternRow[];
  distinctPatterns: number;
}

export interface ContestedPair {
  pairId: string;
  promptId: string;
  prompt: string | null;
  imageA: string;
  imageB: string;
  split: string | null;
  category: string | null;
  human: number | null;
  label: number | null;
  tie: boolean;
  soft: number | null;
  margin: number | null;
  disagreement: number | null;
  /** max p − min p over the metrics that have a p. */
  spread: number;
  votesA: number;
  votesB: number;
  metrics: { metric: string; p: number | null; vote: Vote | null }[];
}

export interface ScoreDistribution {
  metric: string;
  count: number;
  nonFinite: number;
  mean: number;
  std: number;
  min: number;
  max: number;
  histogram: HistogramResult;
}

export interface AuditReport {
  kind: 'audit';
  toolVersion: string;
  dataset: string;
  datasetName: string;
  rule: string;
  ties: string;
  margin: number;
  metrics: string[];
  temperatures: Record<string, { tau: number; source: string }> | null;
  overall: SliceReport;
  bySplit: SliceReport[];
  byCategory: SliceReport[];
  /** HPD ranked groups seen (test.json#<group>), and those left out because some of their pairs are absent. */
  rankedGroups: { groups: number; incomplete: number; pairs: number };
  scores: ScoreDistribution[];
  /** Reliability of each metric's p, and of the consensus soft label, against human labels. */
  calibration: { rater: string; reliability: ReliabilityResult }[];
  /**
   * Whether those reliability numbers are in-sample: the splits the fitted τ were fitted on ('all' for every pair,
   * null when no consensus τ was fitted), and how many of the human-labelled pairs audited lie in them.
   */
  calibrationFit: { fittedOn: string[] | 'all' | null; inSamplePairs: number; labelledPairs: number };
  contested: {
    top: number;
    byDisagreement: ContestedPair[];
    mismatches: ContestedPair[];
    /** Pairs where the rule decided (no tie) and the human label is a or b, and those where the two differ. */
    mismatchCompared: number;
    mismatchCount: number;
  };
}

export interface AuditResult {
  report: AuditReport;
  files: { html: string; json: string };
  thumbnails: number;
  htmlBytes: number;
}

// ---------------------------------------------------------------------------------------------------------------
// The eval

export interface SideInfo {
  dir: string;
  /** The model name(s) recorded at ingest, joined; the folder name when there is none. */
  label: string;
  models: string[];
  images: number;
}

export interface GalleryItem {
  promptId: string;
  promptIndex: number | null;
  text: string;
  category: string | null;
  challenge: string | null;
  seed: number | null;
  imageA: string;
  imageB: string;
  /** Mean over metrics of (s_A − s_B) / sd_m, sd_m pooled over both sides: > 0 when A is ahead. */
  gap: number;
  scores: { metric: string; a: number | null; b: number | null; z: number | null }[];
}

export interface EvalReport {
  kind: 'eval';
  toolVersion: string;
  a: SideInfo;
  b: SideInfo;
  metrics: string[];
  ignoredMetrics: { metric: string; reason: string }[];
  /** (prompt, seed) comparisons, and how many seeds the prompts have. */
  comparisons: number;
  seeds: { min: number; max: number };
  /** Comparisons where the two scores are equal, over all metrics (each counts ½). */
  ties: number;
  winRate: WinRateReport;
  /** The win rate per PartiPrompts challenge (empty when the prompts have none). */
  byChallenge: CategoryWinRate[];
  gallery: GalleryItem[];
}

export interface EvalResult {
  report: EvalReport;
  files: { html: string; json: string };
  thumbnails: number;
  htmlBytes: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Shared by both reports

/** JSON with NaN and ±Infinity written as null (JSON has no such numbers). */
export function reportJson(report: unknown): string {
  return `${JSON.stringify(report, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? null : value), 2)}\n`;
}

/** Whether the audit's calibration numbers (reliability, ECE, Brier) are measured on the pairs τ was fitted on. */
export function calibrationFitText(fit: AuditReport['calibrationFit']): string {
  if (fit.fittedOn === null) return "no τ fitted to human labels (the metrics' own τ): every number is out of sample";
  const on = fit.fittedOn === 'all' ? 'every split' : `split ${fit.fittedOn.join(', ')}`;
  const share = `${fit.inSamplePairs} of ${fit.labelledPairs} human-labelled pairs`;
  if (fit.inSamplePairs === 0) return `τ fitted on ${on}: out of sample (${share} were fitted on)`;
  const whole = fit.inSamplePairs === fit.labelledPairs ? 'in-sample' : 'partly in-sample';
  return `τ fitted on ${on}: ${whole} for ${share}; see the test split's slice for out-of-sample accuracy`;
}
