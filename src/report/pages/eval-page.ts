// The eval page: win rates of A over B per metric, per category and challenge, and the gallery of the largest
// score gaps of one EvalReport, as one self-contained HTML file.
import { countText, pct } from '../../core/format.ts';
import type { EvalReport } from '../model.ts';
import { intervalWarnings, type CategoryWinRate, type Estimate } from '../winrate.ts';
import { barChart, type BarRow } from './charts.ts';
import { diverging, seriesColour } from './colours.ts';
import { galleryCard } from './galleries.ts';
import { html, type SafeHtml, joinHtml } from './markup.ts';
import { chip, pageShell, section } from './shell.ts';

function estimateText(e: Estimate): string {
  return `${pct(e.winRate)} [${pct(e.lo)}, ${pct(e.hi)}]`;
}

function winRateTable(groups: readonly CategoryWinRate[], metrics: readonly string[], title: string): SafeHtml {
  const cell = (e: Estimate | undefined, strong = false) => {
    if (e === undefined) return html`<td class="num">–</td>`;
    const { fill, light } = diverging((e.winRate - 0.5) * 2.5);
    return joinHtml(
      html`<td class="num" `,
      html`style="background:${fill};color:${light ? '#fff' : 'inherit'};${strong ? 'font-weight:650' : ''}" `,
      html`title="${estimateText(e)}">`,
      html`${pct(e.winRate, 0)}<span style="opacity:.75;font-size:11px"> ${pct(e.lo, 0)}–${pct(e.hi, 0)}</span></td>`,
    );
  };
  const rows = groups.map((g) =>
    joinHtml(
      html`<tr><td>${g.category ?? '(none)'}</td><td class="num">${countText(g.prompts)}</td>`,
      html`${metrics.map((m) => cell(g.metrics.find((x) => x.metric === m)))}${cell(g.average, true)}</tr>`,
    ),
  );
  return joinHtml(
    html`<h3>${title}</h3><div class="scroll"><table><thead><tr><th></th>`,
    html`<th class="num">prompts</th>${metrics.map((m) => html`<th class="num">${m}</th>`)}<th class="num">average`,
    html`</th></tr></thead><tbody>${rows}</tbody></table></div>`,
  );
}

export function renderEvalPage(report: EvalReport, thumbs: { a: ReadonlyMap<string, string>; b: ReadonlyMap<string, string> }): string {
  const w = report.winRate;
  const seeds = report.seeds.min === report.seeds.max ? String(report.seeds.min) : `${report.seeds.min}–${report.seeds.max}`;
  const categoriesLink =
    w.byCategory.length + report.byChallenge.length > 0 ? html`<a href="#categories">categories &amp; challenges</a>` : null;
  const header = joinHtml(
    html`<h1>Win rate · ${report.a.label} vs ${report.b.label}</h1>`,
    html`<div class="sub">A = ${report.a.dir} · B = ${report.b.dir}</div>
<div class="chips">${chip('prompts', countText(w.prompts))}`,
    html`${chip('comparisons', countText(report.comparisons))}`,
    html`${chip('seeds per prompt', seeds)}`,
    html`${chip('metrics', report.metrics.join(', '))}${chip('average win rate', estimateText(w.average))}`,
    html`${chip('ties', `½ credit (${countText(report.ties)})`)}`,
    html`${chip('bootstrap', `${countText(w.resamples)} × prompts, ${pct(w.level, 0)}`)}</div>
<nav class="toc">`,
    html`<a href="#winrate">win rates</a>${categoriesLink}`,
    html`<a href="#gallery">largest gaps</a></nav>`,
  );
  const rows: BarRow[] = [
    ...w.metrics.map((m, i) => ({ label: m.metric, value: m.winRate, lo: m.lo, hi: m.hi, colour: seriesColour(i), note: estimateText(m) })),
    {
      label: 'average',
      value: w.average.winRate,
      lo: w.average.lo,
      hi: w.average.hi,
      colour: '#344054',
      strong: true,
      note: estimateText(w.average),
    },
  ];
  const table = w.metrics.map((m) =>
    joinHtml(
      html`<tr><td>${m.metric}</td><td class="num">${pct(m.winRate)}</td><td class="num">${pct(m.lo)}</td>`,
      html`<td class="num">${pct(m.hi)}</td><td class="num">${countText(m.prompts)}</td>`,
      html`<td class="num">${countText(m.wins)}</td><td class="num">${countText(m.ties)}</td>`,
      html`<td class="num">${countText(m.losses)}</td><td class="num">${countText(m.skipped)}</td></tr>`,
    ),
  );
  const ignored =
    report.ignoredMetrics.length > 0
      ? joinHtml(
          html`<p class="lead">`,
          html`Not compared: ${report.ignoredMetrics.map((m, i) => html`${i > 0 ? '; ' : ''}<b>${m.metric}</b> (${m.reason})`)}.`,
          html`</p>`,
        )
      : null;
  const warnings = intervalWarnings(w, w.level);
  const winrate = section(
    'winrate',
    `How often A (${report.a.label}) beats B (${report.b.label})`,
    `Per metric, the share of (prompt, seed) comparisons where A's image scores higher (equal scores count ½), ` +
      `averaged per prompt and then over prompts; whiskers are ${pct(w.level, 0)} percentile-bootstrap intervals ` +
      `resampling prompts. Above the dashed line A wins.`,
    joinHtml(
      html`${barChart(rows, { title: 'Win rate of A over B per metric', reference: 0.5, format: (x) => pct(x, 0) })}
<div class="scroll"><table><thead><tr><th>metric</th><th class="num">win rate</th><th class="num">low</th>`,
      html`<th class="num">high</th><th class="num">prompts</th><th class="num">A wins</th><th class="num">ties</th>`,
      html`<th class="num">B wins</th><th class="num">skipped</th></tr></thead><tbody>${table}
<tr class="strong"><td>average</td><td class="num">${pct(w.average.winRate)}</td>`,
      html`<td class="num">${pct(w.average.lo)}</td><td class="num">${pct(w.average.hi)}</td>`,
      html`<td class="num">${countText(w.average.prompts ?? w.prompts)}</td><td></td><td></td><td></td><td></td></tr>`,
      html`</tbody></table></div>${ignored}${
        warnings.length === 0 ? null : html`<p class="lead">${warnings.map((x) => html`⚠ ${x}<br>`)}</p>`
      }`,
    ),
  );
  const categories =
    w.byCategory.length + report.byChallenge.length > 0
      ? section(
          'categories',
          'By category and challenge',
          'Win rate of A per prompt category and per challenge (PartiPrompts), each with its own bootstrap ' +
            'interval; blue cells favour A, red ones B.',
          joinHtml(
            html`${w.byCategory.length > 0 ? winRateTable(w.byCategory, report.metrics, 'Categories') : null}`,
            html`${report.byChallenge.length > 0 ? winRateTable(report.byChallenge, report.metrics, 'Challenges') : null}`,
          ),
        )
      : null;
  const gallery = section(
    'gallery',
    'Largest score gaps',
    `The ${report.gallery.length} prompts where the two models differ most: the gap is the mean over metrics of ` +
      `(A − B) in units of that metric's score standard deviation (both sides pooled), at the seed where it is ` +
      `largest.`,
    report.gallery.length > 0
      ? html`<div class="cards">${report.gallery.map((g) => galleryCard(g, report, thumbs))}</div>`
      : html`<p class="lead">No comparison.</p>`,
  );
  return pageShell(`Win rate · ${report.a.label} vs ${report.b.label}`, header, html`${winrate}${categories}${gallery}`);
}
