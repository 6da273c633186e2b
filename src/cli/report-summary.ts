// The short text summaries the CLI prints after an audit or an eval, from the report model.
import { fixedOrNa as num, percentOrNa as pctText } from '../core/format.ts';
import { calibrationFitText, intervalWarnings, type AuditResult, type EvalResult } from '../report/index.ts';

/** The short text summary the CLI prints. */
export function formatAuditSummary(result: AuditResult): string {
  const r = result.report;
  const o = r.overall;
  const lines = [
    `audit ${r.dataset}: rule ${r.rule}, ties ${r.ties}, ${o.pairs} pairs (${o.humanLabelled} human-labelled), ` +
      `tie rate ${pctText(o.tieRate)}`,
    `  Fleiss' κ across ${r.metrics.length} metrics: ${num(o.fleiss?.kappa)}`,
  ];
  const width = Math.max(9, ...r.metrics.map((m) => m.length));
  for (const a of o.accuracy) {
    const kappa = o.agreement.find((p) => p.x === a.rater && p.y === 'human');
    const tau = o.kendall?.find((k) => k.metric === a.rater);
    lines.push(
      `  ${a.rater.padEnd(width)} accuracy vs humans ${pctText(a.accuracy)} (n ${a.n}), κ ${num(kappa?.kappa)}` +
        `${tau ? `, Kendall τ ${num(tau.mean)} over ${tau.groups} groups` : ''}`,
    );
  }
  const topPattern = o.patterns[0];
  if (topPattern) lines.push(`  most common vote pattern: ${topPattern.key} (${pctText(topPattern.fraction)})`);
  lines.push(`  consensus ≠ human on ${r.contested.mismatchCount} of ${r.contested.mismatchCompared} decided pairs`);
  lines.push(`  calibration: ${calibrationFitText(r.calibrationFit)}`);
  lines.push(
    `  → ${result.files.html} (${(result.htmlBytes / 1024).toFixed(0)} KB, ${result.thumbnails} thumbnails), ${result.files.json}`,
  );
  return lines.join('\n');
}

/** The short text summary the CLI prints. */
export function formatEvalSummary(result: EvalResult): string {
  const r = result.report;
  const w = r.winRate;
  const width = Math.max(7, ...r.metrics.map((m) => m.length));
  const seeds = r.seeds.min === r.seeds.max ? `${r.seeds.min}` : `${r.seeds.min}–${r.seeds.max}`;
  const lines = [
    `eval A = ${r.a.label} (${r.a.dir}) vs B = ${r.b.label} (${r.b.dir}): ` +
      `${w.prompts} prompts × ${seeds} seeds = ${r.comparisons} comparisons`,
    ...w.metrics.map(
      (m) =>
        `  ${m.metric.padEnd(width)} A wins ${pctText(m.winRate)} [${pctText(m.lo)}, ${pctText(m.hi)}]  ` +
        `(A ${m.wins} / tie ${m.ties} / B ${m.losses}${m.skipped ? `, ${m.skipped} unscored` : ''})`,
    ),
    `  ${'average'.padEnd(width)} A wins ${pctText(w.average.winRate)} [${pctText(w.average.lo)}, ${pctText(w.average.hi)}]  ` +
      `(${Math.round(w.level * 100)}% bootstrap over prompts, ${w.resamples} resamples)`,
  ];
  for (const warning of intervalWarnings(w, w.level)) lines.push(`  warning: ${warning}`);
  if (r.ignoredMetrics.length > 0) lines.push(`  not compared: ${r.ignoredMetrics.map((m) => `${m.metric} (${m.reason})`).join('; ')}`);
  lines.push(
    `  → ${result.files.html} (${(result.htmlBytes / 1024).toFixed(0)} KB, ${result.thumbnails} thumbnails), ${result.files.json}`,
  );
  return lines.join('\n');
}
