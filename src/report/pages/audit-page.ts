// The audit page: agreement, accuracy, vote patterns, slices, score distributions, calibration and the contested
// pairs of one AuditReport, as one self-contained HTML file.
import { countText, fmt, pct } from '../../core/format.ts';
import { calibrationFitText, type AuditReport, type SliceReport } from '../model.ts';
import { barChart, heatmap, histogramChart, reliabilityChart } from './charts.ts';
import { metricColour } from './colours.ts';
import { contestedCard } from './galleries.ts';
import { html, type SafeHtml, joinHtml } from './markup.ts';
import { chip, pageShell, section, tile } from './shell.ts';

function agreementSection(slice: SliceReport, report: AuditReport): SafeHtml {
  const raters = slice.raters;
  const kappaOf = (i: number, j: number): number | null => {
    if (i === j) return null;
    const [x, y] = i < j ? [raters[i]!, raters[j]!] : [raters[j]!, raters[i]!];
    return slice.agreement.find((p) => p.x === x && p.y === y)?.kappa ?? NaN;
  };
  const rows = slice.agreement.map((p) =>
    joinHtml(
      html`<tr><td>${p.x}</td><td>${p.y}</td><td class="num">${countText(p.n)}</td>`,
      html`<td class="num">${pct(p.agreement)}</td><td class="num">${fmt(p.expected)}</td>`,
      html`<td class="num">${fmt(p.kappa)}</td></tr>`,
    ),
  );
  const fleiss = slice.fleiss;
  const fleissNote = fleiss
    ? ` (${countText(fleiss.items)} pairs, ${countText(fleiss.skipped)} with a missing score left out)`
    : ' (needs two metrics)';
  return section(
    'agreement',
    'Agreement',
    `Cohen's κ between every two raters over three vote categories (a, b, tie/abstain): the metrics, the ` +
      `${report.rule} consensus and the human labels. A pair where either side has no vote (missing score, no ` +
      `human label) is left out of that cell.`,
    joinHtml(
      html`<div class="two"><div>${heatmap(raters, kappaOf, "Cohen's κ between raters")}
<p class="lead" style="margin-top:10px">Fleiss' κ across the ${report.metrics.length} metrics: <b>`,
      html`${fleiss ? fmt(fleiss.kappa) : '–'}</b>`,
      html`${fleissNote}.`,
      html`</p></div>
<div class="scroll"><table><thead><tr><th>rater</th><th>rater</th><th class="num">pairs</th>`,
      html`<th class="num">agreement</th><th class="num">chance</th><th class="num">κ</th></tr></thead>`,
      html`<tbody>${rows}</tbody></table></div></div>`,
    ),
  );
}

function accuracySection(slice: SliceReport, report: AuditReport): SafeHtml {
  const rows = slice.accuracy.map((a) => ({
    label: a.rater,
    value: a.accuracy,
    colour: metricColour(report, a.rater),
    strong: a.rater === 'consensus',
    note: `${pct(a.accuracy)} of ${countText(a.n)}`,
  }));
  const table = slice.accuracy.map((a) =>
    joinHtml(
      html`<tr class="${a.rater === 'consensus' ? 'strong' : ''}"><td>${a.rater}</td>`,
      html`<td class="num">${countText(a.n)}</td><td class="num">${pct(a.accuracy)}</td>`,
      html`<td class="num">${countText(a.agree)}</td><td class="num">${countText(a.disagree)}</td>`,
      html`<td class="num">${countText(a.predictedTie)}</td><td class="num">${countText(a.humanTie)}</td>`,
      html`<td class="num">${countText(a.bothTie)}</td></tr>`,
    ),
  );
  const ties = slice.tieRates.map((t) =>
    joinHtml(
      html`<tr><td>${t.rater}</td><td class="num">${countText(t.votes)}</td><td class="num">${countText(t.ties)}</td>`,
      html`<td class="num">${pct(t.tieRate)}</td></tr>`,
    ),
  );
  const kendallRows =
    slice.kendall?.map((k) =>
      joinHtml(
        html`<tr><td>${k.metric}</td><td class="num">${countText(k.groups)}</td><td class="num">${fmt(k.mean)}</td>`,
        html`<td class="num">${fmt(k.sd)}</td><td class="num">${countText(k.skipped)}</td></tr>`,
      ),
    ) ?? [];
  const kendall =
    slice.kendall === null
      ? html`<p class="lead">No ranked groups (HPD test.json) in this dataset: Kendall's τ is not computed.</p>`
      : joinHtml(
          html`<h3>Kendall's τ-b within ranked groups</h3><p class="lead">`,
          html`Per HPD test group, the metric's image scores against the human ranks rebuilt from the group's pairs `,
          html`(+1: same order as the humans), averaged over groups. Groups: `,
          html`${countText(report.rankedGroups.groups)} (${countText(report.rankedGroups.incomplete)} with missing `,
          html`pairs left out).`,
          html`</p>
<table><thead><tr><th>metric</th><th class="num">groups</th><th class="num">mean τ</th>`,
          html`<th class="num">sd</th><th class="num">skipped</th></tr></thead>`,
          html`<tbody>${kendallRows}`,
          html`</tbody></table>`,
        );
  const chart = barChart(rows, { title: 'Tie-aware accuracy against human labels', reference: 0.5, format: (x) => pct(x, 0) });
  return section(
    'accuracy',
    'Accuracy against human labels',
    'Tie-aware accuracy (as PickScore scores it): 1 when the vote and the label agree (ties included), ½ when ' +
      'exactly one of them is a tie, 0 otherwise. The consensus votes a tie when the rule tied, whatever the tie ' +
      'policy made of it.',
    joinHtml(
      html`<div class="two"><div>`,
      html`${chart}`,
      html`</div>
<div><table><thead><tr><th>rater</th><th class="num">votes</th><th class="num">ties</th>`,
      html`<th class="num">tie rate</th></tr></thead><tbody>${ties}</tbody></table></div></div>
<div class="scroll"><table><thead><tr><th>rater</th><th class="num">pairs</th><th class="num">accuracy</th>`,
      html`<th class="num">agree</th><th class="num">disagree</th><th class="num">rater tie, human not</th>`,
      html`<th class="num">human tie, rater not</th><th class="num">both tie</th></tr></thead><tbody>${table}</tbody>`,
      html`</table></div>${kendall}`,
    ),
  );
}

const PATTERNS_SHOWN = 12;

function patternsSection(slice: SliceReport): SafeHtml {
  const shown = slice.patterns.slice(0, PATTERNS_SHOWN);
  const largest = Math.max(1e-9, ...shown.map((p) => p.fraction));
  const rows = shown.map((p) => {
    const tags = [
      ...p.tie.map((t) => html`<span class="tag">${t} abstains</span>`),
      ...p.missing.map((t) => html`<span class="tag bad">${t} missing</span>`),
    ];
    return joinHtml(
      html`<tr><td>${p.left.length > 0 ? p.left.join(' + ') : '—'}</td>`,
      html`<td>${p.right.length > 0 ? p.right.join(' + ') : '—'}</td>`,
      html`<td>${tags}`,
      html`</td>
<td class="num">${countText(p.count)}</td><td class="num">${pct(p.fraction)}</td><td><div class="bar">`,
      html`<span style="width:${(100 * p.fraction) / largest}%"></span></div></td>
<td class="num">${countText(p.human.left)} / ${countText(p.human.right)} / ${countText(p.human.tie)}</td>`,
      html`<td class="num">${pct(p.humanSidesWithLeft)}</td></tr>`,
    );
  });
  return section(
    'patterns',
    'Vote patterns',
    'Which coalitions form: each pair is folded so that the left coalition holds the first metric that voted. ' +
      'The human columns say how often the humans sided with the left coalition, the right one, or called a tie.',
    joinHtml(
      html`<div class="scroll"><table><thead><tr><th>coalition</th><th>against</th><th>abstaining / missing</th>`,
      html`<th class="num">pairs</th><th class="num">share</th><th></th><th class="num">humans left / right / tie</th>`,
      html`<th class="num">humans with left</th></tr></thead><tbody>${rows}</tbody></table></div>`,
      html`${
        slice.distinctPatterns > shown.length
          ? html`<p class="lead">${countText(slice.distinctPatterns - shown.length)} rarer patterns are in report.json only.</p>`
          : null
      }`,
    ),
  );
}

function slicesSection(report: AuditReport): SafeHtml | null {
  const slices = [...report.bySplit, ...report.byCategory];
  if (slices.length === 0) return null;
  const head = joinHtml(
    html`<tr><th rowspan="2">slice</th><th class="num" rowspan="2">pairs</th>`,
    html`<th class="num" rowspan="2">labelled</th><th class="num" rowspan="2">tie rate</th>`,
    html`<th class="num" rowspan="2">Fleiss κ</th>`,
    html`<th class="num" colspan="${report.metrics.length + 1}" style="text-align:center">accuracy vs humans</th>`,
    html`<th class="num" rowspan="2">mean κ<br>vs human</th></tr>
<tr>${report.metrics.map((m) => html`<th class="num">${m}</th>`)}<th class="num">consensus</th></tr>`,
  );
  const row = (s: SliceReport) => {
    const acc = (rater: string) => s.accuracy.find((a) => a.rater === rater)?.accuracy;
    return joinHtml(
      html`<tr><td style="white-space:nowrap"><span class="tag">${s.kind}</span>${s.name}</td>`,
      html`<td class="num">${countText(s.pairs)}</td><td class="num">${countText(s.humanLabelled)}</td>`,
      html`<td class="num">${pct(s.tieRate)}</td><td class="num">${fmt(s.fleiss?.kappa)}</td>`,
      html`${report.metrics.map((m) => html`<td class="num">${pct(acc(m))}</td>`)}<td class="num">`,
      html`${pct(acc('consensus'))}</td><td class="num">${fmt(s.meanKappaVsHuman)}</td></tr>`,
    );
  };
  return section(
    'slices',
    'By split and category',
    'The same statistics per split and per prompt category (categories come from the prompts table). Every ' +
      'number of every slice, agreement matrices included, is in report.json.',
    html`<div class="scroll"><table><thead>${head}</thead><tbody>${slices.map(row)}</tbody></table></div>`,
  );
}

function distributionsSection(report: AuditReport): SafeHtml {
  const histograms = report.scores.map((s) =>
    joinHtml(
      html`<div class="panel"><h4><span class="swatch" style="background:${metricColour(report, s.metric)}">`,
      html`</span>${s.metric}</h4><div class="meta">`,
      html`${countText(s.count)} images · mean ${fmt(s.mean)} · sd ${fmt(s.std)}`,
      html`${s.nonFinite > 0 ? ` · ${s.nonFinite} non-finite` : ''}</div>`,
      html`${histogramChart(s.histogram, `${s.metric} score histogram`, metricColour(report, s.metric))}</div>`,
    ),
  );
  const curves = report.calibration.map((c) =>
    joinHtml(
      html`<div class="panel"><h4><span class="swatch" style="background:${metricColour(report, c.rater)}">`,
      html`</span>${c.rater}</h4><div class="meta">`,
      html`${countText(c.reliability.count)} labelled pairs · ECE ${fmt(c.reliability.ece)} · Brier ${fmt(c.reliability.brier)}`,
      html`</div>${reliabilityChart(c.reliability, `${c.rater} reliability`, metricColour(report, c.rater))}</div>`,
    ),
  );
  const scoresLead = 'Each metric’s per-image scores (every scored image, read from scores/<metric>/).';
  const calibrationLead =
    'Reliability curves: per bin of the predicted P(a ≻ b), the mean prediction (x) against how often humans preferred a ' +
    '(y, ties count ½). On the dashed diagonal a metric’s p means what it says; dot size is the number of pairs. ' +
    calibrationFitText(report.calibrationFit) +
    '.';
  const calibrated = report.calibration.length > 0 && report.calibration.some((c) => c.reliability.count > 0);
  const calibration = calibrated
    ? html`<div class="grid narrow">${curves}</div>`
    : html`<p class="lead">No human labels: nothing to calibrate against.</p>`;
  return joinHtml(
    html`${section('scores', 'Score distributions', scoresLead, html`<div class="grid">${histograms}</div>`)}
`,
    html`${section('calibration', 'Calibration against humans', calibrationLead, calibration)}`,
  );
}

export function renderAuditPage(report: AuditReport, thumbs: ReadonlyMap<string, string>): string {
  const o = report.overall;
  const consensusAccuracy = o.accuracy.find((a) => a.rater === 'consensus');
  const header = joinHtml(
    html`<h1>Metric audit · ${report.datasetName}</h1><div class="sub">${report.dataset}</div>
<div class="chips">${chip('rule', report.rule)}${chip('tie policy', report.ties)}`,
    html`${chip('tie rate', pct(o.tieRate))}${chip('margin δ', String(report.margin))}`,
    html`${chip('pairs', countText(o.pairs))}${chip('human-labelled', countText(o.humanLabelled))}`,
    html`${chip('metrics', report.metrics.join(', '))}</div>
<nav class="toc"><a href="#agreement">agreement</a><a href="#accuracy">accuracy</a>`,
    html`<a href="#patterns">vote patterns</a>`,
    html`${report.bySplit.length + report.byCategory.length > 0 ? html`<a href="#slices">splits &amp; categories</a>` : null}`,
    html`<a href="#scores">scores</a><a href="#calibration">calibration</a><a href="#contested">contested pairs</a>`,
    html`<a href="#mismatches">consensus ≠ human</a></nav>`,
  );
  const mismatchLabel = `consensus ≠ human, of ${countText(report.contested.mismatchCompared)} decided`;
  const tiles = joinHtml(
    html`<section id="summary"><div class="tiles">${tile(countText(o.pairs), 'pairs')}`,
    html`${tile(pct(o.tieRate), `consensus tie rate (${countText(o.consensusTies)} ties)`)}`,
    html`${tile(fmt(o.fleiss?.kappa), "Fleiss' κ across metrics")}`,
    html`${tile(pct(consensusAccuracy?.accuracy), `consensus accuracy vs humans (n ${countText(consensusAccuracy?.n ?? 0)})`)}`,
    html`${tile(countText(report.contested.mismatchCount), mismatchLabel)}`,
    html`</div></section>`,
  );
  const contested = section(
    'contested',
    'Most contested pairs',
    `The ${report.contested.byDisagreement.length} pairs with the highest disagreement (entropy of the votes), ` +
      `the most confident split first (largest spread of p across metrics).`,
    report.contested.byDisagreement.length > 0
      ? html`<div class="cards">${report.contested.byDisagreement.map((p) => contestedCard(p, report, thumbs))}</div>`
      : html`<p class="lead">The metrics never split: no contested pair.</p>`,
  );
  const mismatches = section(
    'mismatches',
    'Where the consensus and the humans differ',
    `${countText(report.contested.mismatchCount)} of ${countText(report.contested.mismatchCompared)} pairs where ` +
      `both decided (no tie) got opposite answers; the ${report.contested.mismatches.length} shown are those the ` +
      `rule was surest about (largest margin).`,
    report.contested.mismatches.length > 0
      ? html`<div class="cards">${report.contested.mismatches.map((p) => contestedCard(p, report, thumbs))}</div>`
      : html`<p class="lead">None.</p>`,
  );
  const body = joinHtml(
    html`${tiles}${agreementSection(o, report)}${accuracySection(o, report)}${patternsSection(o)}`,
    html`${slicesSection(report)}${distributionsSection(report)}${contested}${mismatches}`,
  );
  return pageShell(`Metric audit · ${report.datasetName}`, header, body);
}
