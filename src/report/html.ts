// The report pages: one self-contained HTML file each (inline styles, inline SVG charts, thumbnails as data URIs),
// no script at all and a Content-Security-Policy that forbids every fetch but data: images, so the page works
// offline and a hostile prompt stays text. Markup is built only through the `html` template, which escapes every
// interpolated value unless it is already markup: escaping is the default, not something to remember.
import type { AuditReport, ContestedPair, SliceReport } from './audit.ts';
import type { EvalReport, GalleryItem } from './eval.ts';
import type { HistogramResult, ReliabilityResult } from './distribution.ts';
import { intervalWarnings, type CategoryWinRate, type Estimate } from './winrate.ts';

/** No script, no fetch: images only from data: URIs, styles only inline. */
export const CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

/** Markup that is already safe; everything else that reaches a page goes through `escapeHtml`. */
export class SafeHtml {
  constructor(readonly markup: string) {}
  toString(): string {
    return this.markup;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text → HTML text or attribute value (quoted), for element content and attributes alike. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

export type HtmlValue = SafeHtml | string | number | boolean | null | undefined | readonly HtmlValue[];

function render(value: HtmlValue): string {
  if (value === null || value === undefined || value === false || value === true) return '';
  if (value instanceof SafeHtml) return value.markup;
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

/** Tagged template: the literal parts are markup, every `${value}` is escaped (arrays are joined, SafeHtml kept). */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): SafeHtml {
  let out = strings[0]!;
  values.forEach((value, i) => {
    out += render(value) + strings[i + 1]!;
  });
  return new SafeHtml(out);
}

// ---------------------------------------------------------------------------------------------------------------
// Numbers

/** A number for the page: fixed digits, a real minus sign, '–' when undefined. */
export function fmt(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  const text = x.toFixed(digits);
  return Number(text) === 0 ? (0).toFixed(digits) : text.replace('-', '−');
}

/** A score on any scale with about five significant digits (cosines and logits alike). */
export function fmtScore(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  const magnitude = Math.floor(Math.log10(Math.abs(x) || 1));
  return fmt(x, Math.max(0, Math.min(6, 4 - magnitude)));
}

export function pct(x: number | null | undefined, digits = 1): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '–' : `${fmt(100 * x, digits)}%`;
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}

// ---------------------------------------------------------------------------------------------------------------
// Colours

const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#b07aa1', '#edc948', '#9c755f', '#ff9da7', '#bab0ac'];

function seriesColour(i: number): string {
  return PALETTE[i % PALETTE.length]!;
}

function mix(from: readonly number[], to: readonly number[], t: number): string {
  const c = from.map((f, i) => Math.round(f + (to[i]! - f) * t));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

const NEGATIVE = [202, 75, 65];
const NEUTRAL = [246, 246, 244];
const POSITIVE = [38, 102, 170];

/** Diverging colour for x ∈ [−1, 1] (clamped), and whether text on it should be light. */
function diverging(x: number): { fill: string; light: boolean } {
  if (!Number.isFinite(x)) return { fill: '#eeeeee', light: false };
  const t = Math.max(-1, Math.min(1, x));
  return { fill: t < 0 ? mix(NEUTRAL, NEGATIVE, -t) : mix(NEUTRAL, POSITIVE, t), light: Math.abs(t) > 0.55 };
}

// ---------------------------------------------------------------------------------------------------------------
// Charts (inline SVG)

export interface BarRow {
  label: string;
  value: number;
  lo?: number;
  hi?: number;
  /** Text after the bar (defaults to the value). */
  note?: string;
  colour?: string;
  strong?: boolean;
}

/** Horizontal bars from `min` with optional interval whiskers and a dashed reference line (e.g. ½). */
export function barChart(rows: readonly BarRow[], options: { min?: number; max?: number; reference?: number; title: string; format?: (x: number) => string }): SafeHtml {
  const min = options.min ?? 0;
  const max = options.max ?? 1;
  const format = options.format ?? ((x: number) => fmt(x, 3));
  const labelWidth = Math.min(220, 40 + 7.2 * Math.max(4, ...rows.map((r) => r.label.length)));
  const plot = 440;
  const noteWidth = 180;
  const rowHeight = 30;
  const top = 22;
  const width = labelWidth + plot + noteWidth;
  const height = top + rows.length * rowHeight + 8;
  const x = (v: number) => labelWidth + ((Math.max(min, Math.min(max, v)) - min) / (max - min)) * plot;
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((t) => min + t * (max - min));
  const bars = rows.map((row, i) => {
    const y = top + i * rowHeight;
    const finite = Number.isFinite(row.value);
    const whisker =
      row.lo !== undefined && row.hi !== undefined && Number.isFinite(row.lo) && Number.isFinite(row.hi)
        ? html`<g class="whisker"><line x1="${x(row.lo)}" x2="${x(row.hi)}" y1="${y + 11}" y2="${y + 11}"/><line x1="${x(row.lo)}" x2="${x(row.lo)}" y1="${y + 5}" y2="${y + 17}"/><line x1="${x(row.hi)}" x2="${x(row.hi)}" y1="${y + 5}" y2="${y + 17}"/></g>`
        : null;
    return html`<g><text class="${row.strong ? 'label strong' : 'label'}" x="${labelWidth - 10}" y="${y + 15}" text-anchor="end">${row.label}</text>
<rect x="${labelWidth}" y="${y + 3}" width="${finite ? Math.max(0, x(row.value) - labelWidth) : 0}" height="16" rx="3" fill="${row.colour ?? seriesColour(i)}" fill-opacity="0.85"/>
${whisker}<text class="note" x="${labelWidth + plot + 10}" y="${y + 15}">${row.note ?? (finite ? format(row.value) : 'n/a')}</text></g>`;
  });
  const grid = ticks.map(
    (t) => html`<line class="grid" x1="${x(t)}" x2="${x(t)}" y1="${top - 4}" y2="${height - 6}"/><text class="tick" x="${x(t)}" y="${top - 8}" text-anchor="middle">${format(t)}</text>`,
  );
  const reference =
    options.reference === undefined
      ? null
      : html`<line class="reference" x1="${x(options.reference)}" x2="${x(options.reference)}" y1="${top - 4}" y2="${height - 6}"/>`;
  return html`<svg class="chart" viewBox="0 0 ${width} ${height}" width="${width}" role="img" aria-label="${options.title}"><title>${options.title}</title>${grid}${bars}${reference}</svg>`;
}

/** A square matrix of values in [−1, 1] (κ), labelled on both axes; null cells (the diagonal) stay blank. */
export function heatmap(labels: readonly string[], value: (i: number, j: number) => number | null, title: string): SafeHtml {
  const cell = 66;
  const left = Math.min(150, 24 + 7.2 * Math.max(...labels.map((l) => l.length)));
  const top = 30;
  const n = labels.length;
  const width = left + n * cell + 4;
  const height = top + n * cell + 4;
  const cells: SafeHtml[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const v = value(i, j);
      const x = left + j * cell;
      const y = top + i * cell;
      if (v === null) {
        cells.push(html`<rect x="${x + 1}" y="${y + 1}" width="${cell - 2}" height="${cell - 2}" rx="4" fill="#fafaf8" stroke="#ececec"/>`);
        continue;
      }
      const { fill, light } = diverging(v);
      cells.push(
        html`<rect x="${x + 1}" y="${y + 1}" width="${cell - 2}" height="${cell - 2}" rx="4" fill="${fill}"><title>${labels[i]} × ${labels[j]}: κ = ${fmt(v)}</title></rect><text class="${light ? 'cell light' : 'cell'}" x="${x + cell / 2}" y="${y + cell / 2 + 4}" text-anchor="middle">${fmt(v, 2)}</text>`,
      );
    }
  }
  const rowLabels = labels.map((l, i) => html`<text class="label" x="${left - 8}" y="${top + i * cell + cell / 2 + 4}" text-anchor="end">${l}</text>`);
  const colLabels = labels.map((l, j) => html`<text class="label" x="${left + j * cell + cell / 2}" y="${top - 10}" text-anchor="middle">${l.length > 10 ? `${l.slice(0, 9)}…` : l}</text>`);
  return html`<svg class="chart" viewBox="0 0 ${width} ${height}" width="${width}" role="img" aria-label="${title}"><title>${title}</title>${rowLabels}${colLabels}${cells}</svg>`;
}

/** Vertical bars of a histogram with its range under the axis. */
export function histogramChart(h: HistogramResult, title: string, colour: string): SafeHtml {
  const width = 300;
  const height = 130;
  const bottom = 108;
  const plotTop = 8;
  const peak = Math.max(1, ...h.counts);
  const binWidth = (width - 20) / Math.max(1, h.counts.length);
  const bars = h.counts.map((c, i) => {
    const barHeight = (c / peak) * (bottom - plotTop);
    return html`<rect x="${10 + i * binWidth + 0.5}" y="${bottom - barHeight}" width="${Math.max(0.5, binWidth - 1)}" height="${barHeight}" fill="${colour}" fill-opacity="0.85"><title>[${fmt(h.edges[i], 3)}, ${fmt(h.edges[i + 1], 3)}): ${c}</title></rect>`;
  });
  const lo = h.edges[0] ?? NaN;
  const hi = h.edges[h.edges.length - 1] ?? NaN;
  return html`<svg class="chart small" viewBox="0 0 ${width} ${height}" role="img" aria-label="${title}"><title>${title}</title>${bars}<line class="axis" x1="10" x2="${width - 10}" y1="${bottom}" y2="${bottom}"/><text class="tick" x="10" y="${bottom + 16}">${fmt(lo, 3)}</text><text class="tick" x="${width - 10}" y="${bottom + 16}" text-anchor="end">${fmt(hi, 3)}</text><text class="tick" x="${width / 2}" y="${bottom + 16}" text-anchor="middle">peak ${peak}</text></svg>`;
}

/** Reliability curve: mean predicted P(a ≻ b) against the human frequency per bin, with the diagonal. */
export function reliabilityChart(r: ReliabilityResult, title: string, colour: string): SafeHtml {
  const size = 200;
  const pad = 28;
  const span = size - pad - 8;
  const px = (v: number) => pad + v * span;
  const py = (v: number) => 8 + (1 - v) * span;
  const filled = r.bins.filter((b) => b.count > 0);
  const largest = Math.max(1, ...filled.map((b) => b.count));
  const path = filled.map((b, i) => `${i === 0 ? 'M' : 'L'}${px(b.meanPredicted).toFixed(1)},${py(b.observed).toFixed(1)}`).join(' ');
  const dots = filled.map(
    (b) => html`<circle cx="${px(b.meanPredicted)}" cy="${py(b.observed)}" r="${2.5 + 4 * Math.sqrt(b.count / largest)}" fill="${colour}" fill-opacity="0.8"><title>p ∈ [${fmt(b.lo, 1)}, ${fmt(b.hi, 1)}): ${b.count} pairs, predicted ${fmt(b.meanPredicted)}, humans ${fmt(b.observed)}</title></circle>`,
  );
  const ticks = [0, 0.5, 1].map(
    (t) => html`<text class="tick" x="${px(t)}" y="${size - 4}" text-anchor="middle">${fmt(t, 1)}</text><text class="tick" x="${pad - 5}" y="${py(t) + 3}" text-anchor="end">${fmt(t, 1)}</text>`,
  );
  return html`<svg class="chart square" viewBox="0 0 ${size} ${size + 4}" role="img" aria-label="${title}"><title>${title}</title><rect x="${pad}" y="8" width="${span}" height="${span}" fill="#fbfbf9" stroke="#e2e2de"/><line class="reference" x1="${px(0)}" y1="${py(0)}" x2="${px(1)}" y2="${py(1)}"/>${filled.length > 0 ? html`<path d="${path}" fill="none" stroke="${colour}" stroke-width="1.5"/>` : null}${dots}${ticks}</svg>`;
}

// ---------------------------------------------------------------------------------------------------------------
// Page furniture

const STYLE = `
:root { --ink: #1f2328; --muted: #667085; --line: #e6e6e1; --panel: #ffffff; --bg: #f6f6f3; --accent: #2666aa; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header.top { background: #1f2a37; color: #f5f7fa; padding: 28px 0 22px; }
.wrap { max-width: 1180px; margin: 0 auto; padding: 0 28px; }
header.top h1 { margin: 0 0 4px; font-size: 26px; font-weight: 650; letter-spacing: -0.01em; }
header.top .sub { color: #b8c2cf; font-size: 14px; word-break: break-all; }
.chips { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 14px; }
.chip { background: rgba(255,255,255,0.09); border: 1px solid rgba(255,255,255,0.16); border-radius: 999px; padding: 3px 12px; font-size: 13px; }
.chip b { font-weight: 650; color: #ffffff; }
nav.toc { display: flex; flex-wrap: wrap; gap: 16px; margin-top: 16px; font-size: 13px; }
nav.toc a { color: #d4dde8; text-decoration: none; border-bottom: 1px dotted #7f8ea3; }
main { padding: 10px 0 40px; }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 20px 24px; margin: 18px 0; }
h2 { font-size: 19px; margin: 0 0 4px; letter-spacing: -0.005em; }
h3 { font-size: 15px; margin: 18px 0 8px; color: #344054; }
p.lead { color: var(--muted); margin: 0 0 14px; font-size: 14px; max-width: 880px; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; }
.tile { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; background: #fcfcfb; }
.tile .v { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; }
.tile .k { color: var(--muted); font-size: 12.5px; }
table { border-collapse: collapse; font-size: 13.5px; margin: 6px 0 4px; }
th, td { padding: 5px 10px; border-bottom: 1px solid #eeeeea; text-align: left; vertical-align: middle; }
th { font-weight: 600; color: #475467; background: #fafaf8; border-bottom: 1px solid var(--line); white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.strong td { font-weight: 650; }
.scroll { overflow-x: auto; }
.two { display: grid; grid-template-columns: minmax(0, auto) minmax(0, 1fr); gap: 28px; align-items: start; }
@media (max-width: 900px) { .two { grid-template-columns: 1fr; } }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 14px; }
.grid.narrow { grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); }
.panel { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; background: #fdfdfc; }
.panel h4 { margin: 0 0 4px; font-size: 14px; display: flex; align-items: center; gap: 8px; }
.panel .meta { color: var(--muted); font-size: 12px; font-variant-numeric: tabular-nums; }
.swatch { width: 10px; height: 10px; border-radius: 2px; display: inline-block; }
svg.chart { max-width: 100%; height: auto; display: block; font-family: inherit; }
svg.chart.small, svg.chart.square { width: 100%; }
svg .label { font-size: 12.5px; fill: #344054; }
svg .label.strong { font-weight: 700; }
svg .note { font-size: 12px; fill: #475467; font-variant-numeric: tabular-nums; }
svg .tick { font-size: 10.5px; fill: #8a94a6; }
svg .cell { font-size: 12.5px; fill: #1f2328; font-variant-numeric: tabular-nums; }
svg .cell.light { fill: #ffffff; }
svg .grid { stroke: #efefeb; }
svg .axis { stroke: #c9c9c3; }
svg .reference { stroke: #8a94a6; stroke-dasharray: 4 3; stroke-width: 1.2; }
svg .whisker line { stroke: #1f2328; stroke-width: 1.4; }
.bar { background: #eef2f7; border-radius: 3px; height: 8px; min-width: 90px; position: relative; }
.bar span { position: absolute; left: 0; top: 0; bottom: 0; background: var(--accent); border-radius: 3px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 16px; }
.card { border: 1px solid var(--line); border-radius: 10px; overflow: hidden; background: #ffffff; display: flex; flex-direction: column; }
.card .pics { display: grid; grid-template-columns: 1fr 1fr; gap: 2px; background: #e9e9e4; }
.card figure { margin: 0; position: relative; background: #f2f2ee; aspect-ratio: 1 / 1; display: flex; align-items: center; justify-content: center; }
.card figure img { width: 100%; height: 100%; object-fit: cover; display: block; }
.card figure figcaption { position: absolute; left: 6px; top: 6px; background: rgba(17,24,39,0.72); color: #fff; font-size: 11.5px; padding: 1px 7px; border-radius: 999px; }
.card figure.win figcaption { background: #2666aa; }
.card .missing { color: var(--muted); font-size: 12px; }
.card .body { padding: 10px 14px 12px; }
.card .prompt { font-size: 14px; margin: 0 0 6px; overflow-wrap: anywhere; }
.card .facts { color: var(--muted); font-size: 12px; margin-bottom: 6px; }
.card table { width: 100%; font-size: 12.5px; margin: 0; }
.card td, .card th { padding: 3px 6px; }
.vote-a { color: #2666aa; font-weight: 600; }
.vote-b { color: #b5473a; font-weight: 600; }
.vote-tie { color: var(--muted); }
.tag { display: inline-block; border-radius: 4px; padding: 0 6px; font-size: 12px; background: #eef2f7; color: #344054; margin-right: 4px; }
.tag.bad { background: #fbe9e7; color: #9b2c1f; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 10px 0 30px; }
`;

function pageShell(title: string, header: SafeHtml, body: SafeHtml): string {
  return `<!DOCTYPE html>\n${html`<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CONTENT_SECURITY_POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title}</title>
<style>${new SafeHtml(STYLE)}</style>
</head>
<body>
<header class="top"><div class="wrap">${header}</div></header>
<main><div class="wrap">${body}</div></main>
<footer>balanced-dpo · self-contained report: no script, no network</footer>
</body>
</html>
`.markup}`;
}

function chip(key: string, value: string): SafeHtml {
  return html`<span class="chip">${key} <b>${value}</b></span>`;
}

function tile(value: string, key: string): SafeHtml {
  return html`<div class="tile"><div class="v">${value}</div><div class="k">${key}</div></div>`;
}

function section(id: string, title: string, lead: string | SafeHtml | null, content: HtmlValue): SafeHtml {
  return html`<section id="${id}"><h2>${title}</h2>${lead === null ? null : html`<p class="lead">${lead}</p>`}${content}</section>`;
}

function thumb(uri: string | undefined, caption: string, win: boolean): SafeHtml {
  return html`<figure class="${win ? 'win' : ''}">${uri === undefined ? html`<span class="missing">no image</span>` : html`<img src="${uri}" alt="${caption}">`}<figcaption>${caption}</figcaption></figure>`;
}

function voteText(vote: number | null): SafeHtml {
  if (vote === null) return html`<span class="vote-tie">missing</span>`;
  if (vote > 0) return html`<span class="vote-a">a</span>`;
  if (vote < 0) return html`<span class="vote-b">b</span>`;
  return html`<span class="vote-tie">abstain</span>`;
}

function labelText(pref: number | null): string {
  if (pref === null || !Number.isFinite(pref)) return 'none';
  return pref > 0.5 ? 'a' : pref < 0.5 ? 'b' : 'tie';
}

// ---------------------------------------------------------------------------------------------------------------
// The audit page

function metricColour(report: { metrics: readonly string[] }, name: string): string {
  const i = report.metrics.indexOf(name);
  if (i >= 0) return seriesColour(i);
  return name === 'human' ? '#8a94a6' : '#344054';
}

function agreementSection(slice: SliceReport, report: AuditReport): SafeHtml {
  const raters = slice.raters;
  const kappaOf = (i: number, j: number): number | null => {
    if (i === j) return null;
    const [x, y] = i < j ? [raters[i]!, raters[j]!] : [raters[j]!, raters[i]!];
    return slice.agreement.find((p) => p.x === x && p.y === y)?.kappa ?? NaN;
  };
  const rows = slice.agreement.map(
    (p) => html`<tr><td>${p.x}</td><td>${p.y}</td><td class="num">${count(p.n)}</td><td class="num">${pct(p.agreement)}</td><td class="num">${fmt(p.expected)}</td><td class="num">${fmt(p.kappa)}</td></tr>`,
  );
  const fleiss = slice.fleiss;
  return section(
    'agreement',
    'Agreement',
    `Cohen's κ between every two raters over three vote categories (a, b, tie/abstain): the metrics, the ${report.rule} consensus and the human labels. A pair where either side has no vote (missing score, no human label) is left out of that cell.`,
    html`<div class="two"><div>${heatmap(raters, kappaOf, "Cohen's κ between raters")}
<p class="lead" style="margin-top:10px">Fleiss' κ across the ${report.metrics.length} metrics: <b>${fleiss ? fmt(fleiss.kappa) : '–'}</b>${fleiss ? ` (${count(fleiss.items)} pairs, ${count(fleiss.skipped)} with a missing score left out)` : ' (needs two metrics)'}.</p></div>
<div class="scroll"><table><thead><tr><th>rater</th><th>rater</th><th class="num">pairs</th><th class="num">agreement</th><th class="num">chance</th><th class="num">κ</th></tr></thead><tbody>${rows}</tbody></table></div></div>`,
  );
}

function accuracySection(slice: SliceReport, report: AuditReport): SafeHtml {
  const rows = slice.accuracy.map((a) => ({ label: a.rater, value: a.accuracy, colour: metricColour(report, a.rater), strong: a.rater === 'consensus', note: `${pct(a.accuracy)} of ${count(a.n)}` }));
  const table = slice.accuracy.map(
    (a) => html`<tr class="${a.rater === 'consensus' ? 'strong' : ''}"><td>${a.rater}</td><td class="num">${count(a.n)}</td><td class="num">${pct(a.accuracy)}</td><td class="num">${count(a.agree)}</td><td class="num">${count(a.disagree)}</td><td class="num">${count(a.predictedTie)}</td><td class="num">${count(a.humanTie)}</td><td class="num">${count(a.bothTie)}</td></tr>`,
  );
  const ties = slice.tieRates.map((t) => html`<tr><td>${t.rater}</td><td class="num">${count(t.votes)}</td><td class="num">${count(t.ties)}</td><td class="num">${pct(t.tieRate)}</td></tr>`);
  const kendall =
    slice.kendall === null
      ? html`<p class="lead">No ranked groups (HPD test.json) in this dataset: Kendall's τ is not computed.</p>`
      : html`<h3>Kendall's τ-b within ranked groups</h3><p class="lead">Per HPD test group, the metric's image scores against the human ranks rebuilt from the group's pairs (+1: same order as the humans), averaged over groups. Groups: ${count(report.rankedGroups.groups)} (${count(report.rankedGroups.incomplete)} with missing pairs left out).</p>
<table><thead><tr><th>metric</th><th class="num">groups</th><th class="num">mean τ</th><th class="num">sd</th><th class="num">skipped</th></tr></thead><tbody>${slice.kendall.map(
          (k) => html`<tr><td>${k.metric}</td><td class="num">${count(k.groups)}</td><td class="num">${fmt(k.mean)}</td><td class="num">${fmt(k.sd)}</td><td class="num">${count(k.skipped)}</td></tr>`,
        )}</tbody></table>`;
  return section(
    'accuracy',
    'Accuracy against human labels',
    'Tie-aware accuracy (as PickScore scores it): 1 when the vote and the label agree (ties included), ½ when exactly one of them is a tie, 0 otherwise. The consensus votes a tie when the rule tied, whatever the tie policy made of it.',
    html`<div class="two"><div>${barChart(rows, { title: 'Tie-aware accuracy against human labels', reference: 0.5, format: (x) => pct(x, 0) })}</div>
<div><table><thead><tr><th>rater</th><th class="num">votes</th><th class="num">ties</th><th class="num">tie rate</th></tr></thead><tbody>${ties}</tbody></table></div></div>
<div class="scroll"><table><thead><tr><th>rater</th><th class="num">pairs</th><th class="num">accuracy</th><th class="num">agree</th><th class="num">disagree</th><th class="num">rater tie, human not</th><th class="num">human tie, rater not</th><th class="num">both tie</th></tr></thead><tbody>${table}</tbody></table></div>${kendall}`,
  );
}

const PATTERNS_SHOWN = 12;

function patternsSection(slice: SliceReport): SafeHtml {
  const shown = slice.patterns.slice(0, PATTERNS_SHOWN);
  const largest = Math.max(1e-9, ...shown.map((p) => p.fraction));
  const rows = shown.map(
    (p) => html`<tr><td>${p.left.length > 0 ? p.left.join(' + ') : '—'}</td><td>${p.right.length > 0 ? p.right.join(' + ') : '—'}</td><td>${[...p.tie.map((t) => html`<span class="tag">${t} abstains</span>`), ...p.missing.map((t) => html`<span class="tag bad">${t} missing</span>`)]}</td>
<td class="num">${count(p.count)}</td><td class="num">${pct(p.fraction)}</td><td><div class="bar"><span style="width:${(100 * p.fraction) / largest}%"></span></div></td>
<td class="num">${count(p.human.left)} / ${count(p.human.right)} / ${count(p.human.tie)}</td><td class="num">${pct(p.humanSidesWithLeft)}</td></tr>`,
  );
  return section(
    'patterns',
    'Vote patterns',
    'Which coalitions form: each pair is folded so that the left coalition holds the first metric that voted. The human columns say how often the humans sided with the left coalition, the right one, or called a tie.',
    html`<div class="scroll"><table><thead><tr><th>coalition</th><th>against</th><th>abstaining / missing</th><th class="num">pairs</th><th class="num">share</th><th></th><th class="num">humans left / right / tie</th><th class="num">humans with left</th></tr></thead><tbody>${rows}</tbody></table></div>${
      slice.distinctPatterns > shown.length ? html`<p class="lead">${count(slice.distinctPatterns - shown.length)} rarer patterns are in report.json only.</p>` : null
    }`,
  );
}

function slicesSection(report: AuditReport): SafeHtml | null {
  const slices = [...report.bySplit, ...report.byCategory];
  if (slices.length === 0) return null;
  const head = html`<tr><th rowspan="2">slice</th><th class="num" rowspan="2">pairs</th><th class="num" rowspan="2">labelled</th><th class="num" rowspan="2">tie rate</th><th class="num" rowspan="2">Fleiss κ</th><th class="num" colspan="${report.metrics.length + 1}" style="text-align:center">accuracy vs humans</th><th class="num" rowspan="2">mean κ<br>vs human</th></tr>
<tr>${report.metrics.map((m) => html`<th class="num">${m}</th>`)}<th class="num">consensus</th></tr>`;
  const row = (s: SliceReport) => {
    const acc = (rater: string) => s.accuracy.find((a) => a.rater === rater)?.accuracy;
    return html`<tr><td style="white-space:nowrap"><span class="tag">${s.kind}</span>${s.name}</td><td class="num">${count(s.pairs)}</td><td class="num">${count(s.humanLabelled)}</td><td class="num">${pct(s.tieRate)}</td><td class="num">${fmt(s.fleiss?.kappa)}</td>${report.metrics.map((m) => html`<td class="num">${pct(acc(m))}</td>`)}<td class="num">${pct(acc('consensus'))}</td><td class="num">${fmt(s.meanKappaVsHuman)}</td></tr>`;
  };
  return section(
    'slices',
    'By split and category',
    'The same statistics per split and per prompt category (categories come from the prompts table). Every number of every slice, agreement matrices included, is in report.json.',
    html`<div class="scroll"><table><thead>${head}</thead><tbody>${slices.map(row)}</tbody></table></div>`,
  );
}

function distributionsSection(report: AuditReport): SafeHtml {
  const histograms = report.scores.map(
    (s) => html`<div class="panel"><h4><span class="swatch" style="background:${metricColour(report, s.metric)}"></span>${s.metric}</h4><div class="meta">${count(s.count)} images · mean ${fmt(s.mean)} · sd ${fmt(s.std)}${s.nonFinite > 0 ? ` · ${s.nonFinite} non-finite` : ''}</div>${histogramChart(s.histogram, `${s.metric} score histogram`, metricColour(report, s.metric))}</div>`,
  );
  const curves = report.calibration.map(
    (c) => html`<div class="panel"><h4><span class="swatch" style="background:${metricColour(report, c.rater)}"></span>${c.rater}</h4><div class="meta">${count(c.reliability.count)} labelled pairs · ECE ${fmt(c.reliability.ece)} · Brier ${fmt(c.reliability.brier)}</div>${reliabilityChart(c.reliability, `${c.rater} reliability`, metricColour(report, c.rater))}</div>`,
  );
  return html`${section('scores', 'Score distributions', 'Each metric’s per-image scores (every scored image, read from scores/<metric>/).', html`<div class="grid">${histograms}</div>`)}
${section('calibration', 'Calibration against humans', 'Reliability curves: per bin of the predicted P(a ≻ b), the mean prediction (x) against how often humans preferred a (y, ties count ½). On the dashed diagonal a metric’s p means what it says; dot size is the number of pairs. ' + calibrationFitText(report.calibrationFit) + '.', report.calibration.length > 0 && report.calibration.some((c) => c.reliability.count > 0) ? html`<div class="grid narrow">${curves}</div>` : html`<p class="lead">No human labels: nothing to calibrate against.</p>`)}`;
}

function contestedCard(pair: ContestedPair, report: AuditReport, thumbs: ReadonlyMap<string, string>): SafeHtml {
  const label = pair.tie ? 'tie' : labelText(pair.label);
  const rows = pair.metrics.map(
    (m) => html`<tr><td><span class="swatch" style="background:${metricColour(report, m.metric)}"></span> ${m.metric}</td><td class="num">${fmt(m.p)}</td><td>${voteText(m.vote)}</td></tr>`,
  );
  const human = labelText(pair.human);
  const winner = pair.tie ? null : labelText(pair.label);
  return html`<article class="card"><div class="pics">${thumb(thumbs.get(pair.imageA), 'a', winner === 'a')}${thumb(thumbs.get(pair.imageB), 'b', winner === 'b')}</div>
<div class="body"><p class="prompt">${pair.prompt ?? '(prompt not found)'}</p>
<div class="facts"><span class="tag">${pair.split ?? 'no split'}</span>${pair.category === null ? null : html`<span class="tag">${pair.category}</span>`}votes ${pair.votesA}–${pair.votesB} · disagreement ${fmt(pair.disagreement, 2)} bits · spread of p ${fmt(pair.spread, 2)}</div>
<table><thead><tr><th>metric</th><th class="num">p(a ≻ b)</th><th>vote</th></tr></thead><tbody>${rows}
<tr class="strong"><td>consensus</td><td class="num">${fmt(pair.soft)}</td><td>${label}</td></tr>
<tr class="strong"><td>human</td><td class="num">${fmt(pair.human, 1)}</td><td class="${(human === 'a' || human === 'b') && (label === 'a' || label === 'b') && human !== label ? `vote-${human}` : ''}">${human}</td></tr></tbody></table>
<div class="facts" style="margin-top:6px">pair ${pair.pairId.slice(0, 12)}</div></div></article>`;
}

export function renderAuditPage(report: AuditReport, thumbs: ReadonlyMap<string, string>): string {
  const o = report.overall;
  const consensusAccuracy = o.accuracy.find((a) => a.rater === 'consensus');
  const header = html`<h1>Metric audit · ${report.datasetName}</h1><div class="sub">${report.dataset}</div>
<div class="chips">${chip('rule', report.rule)}${chip('tie policy', report.ties)}${chip('tie rate', pct(o.tieRate))}${chip('margin δ', String(report.margin))}${chip('pairs', count(o.pairs))}${chip('human-labelled', count(o.humanLabelled))}${chip('metrics', report.metrics.join(', '))}</div>
<nav class="toc"><a href="#agreement">agreement</a><a href="#accuracy">accuracy</a><a href="#patterns">vote patterns</a>${report.bySplit.length + report.byCategory.length > 0 ? html`<a href="#slices">splits &amp; categories</a>` : null}<a href="#scores">scores</a><a href="#calibration">calibration</a><a href="#contested">contested pairs</a><a href="#mismatches">consensus ≠ human</a></nav>`;
  const tiles = html`<section id="summary"><div class="tiles">${tile(count(o.pairs), 'pairs')}${tile(pct(o.tieRate), `consensus tie rate (${count(o.consensusTies)} ties)`)}${tile(fmt(o.fleiss?.kappa), "Fleiss' κ across metrics")}${tile(pct(consensusAccuracy?.accuracy), `consensus accuracy vs humans (n ${count(consensusAccuracy?.n ?? 0)})`)}${tile(count(report.contested.mismatchCount), `consensus ≠ human, of ${count(report.contested.mismatchCompared)} decided`)}</div></section>`;
  const contested = section(
    'contested',
    'Most contested pairs',
    `The ${report.contested.byDisagreement.length} pairs with the highest disagreement (entropy of the votes), the most confident split first (largest spread of p across metrics).`,
    report.contested.byDisagreement.length > 0 ? html`<div class="cards">${report.contested.byDisagreement.map((p) => contestedCard(p, report, thumbs))}</div>` : html`<p class="lead">The metrics never split: no contested pair.</p>`,
  );
  const mismatches = section(
    'mismatches',
    'Where the consensus and the humans differ',
    `${count(report.contested.mismatchCount)} of ${count(report.contested.mismatchCompared)} pairs where both decided (no tie) got opposite answers; the ${report.contested.mismatches.length} shown are those the rule was surest about (largest margin).`,
    report.contested.mismatches.length > 0 ? html`<div class="cards">${report.contested.mismatches.map((p) => contestedCard(p, report, thumbs))}</div>` : html`<p class="lead">None.</p>`,
  );
  const body = html`${tiles}${agreementSection(o, report)}${accuracySection(o, report)}${patternsSection(o)}${slicesSection(report)}${distributionsSection(report)}${contested}${mismatches}`;
  return pageShell(`Metric audit · ${report.datasetName}`, header, body);
}

// ---------------------------------------------------------------------------------------------------------------
// The eval page

function estimateText(e: Estimate): string {
  return `${pct(e.winRate)} [${pct(e.lo)}, ${pct(e.hi)}]`;
}

function winRateTable(groups: readonly CategoryWinRate[], metrics: readonly string[], title: string): SafeHtml {
  const cell = (e: Estimate | undefined, strong = false) => {
    if (e === undefined) return html`<td class="num">–</td>`;
    const { fill, light } = diverging((e.winRate - 0.5) * 2.5);
    return html`<td class="num" style="background:${fill};color:${light ? '#fff' : 'inherit'};${strong ? 'font-weight:650' : ''}" title="${estimateText(e)}">${pct(e.winRate, 0)}<span style="opacity:.75;font-size:11px"> ${pct(e.lo, 0)}–${pct(e.hi, 0)}</span></td>`;
  };
  const rows = groups.map(
    (g) => html`<tr><td>${g.category ?? '(none)'}</td><td class="num">${count(g.prompts)}</td>${metrics.map((m) => cell(g.metrics.find((x) => x.metric === m)))}${cell(g.average, true)}</tr>`,
  );
  return html`<h3>${title}</h3><div class="scroll"><table><thead><tr><th></th><th class="num">prompts</th>${metrics.map((m) => html`<th class="num">${m}</th>`)}<th class="num">average</th></tr></thead><tbody>${rows}</tbody></table></div>`;
}

function galleryCard(item: GalleryItem, report: EvalReport, thumbs: { a: ReadonlyMap<string, string>; b: ReadonlyMap<string, string> }): SafeHtml {
  const rows = item.scores.map(
    (s) => html`<tr><td><span class="swatch" style="background:${metricColour(report, s.metric)}"></span> ${s.metric}</td><td class="num">${fmtScore(s.a)}</td><td class="num">${fmtScore(s.b)}</td><td class="num">${fmt(s.z, 2)}</td></tr>`,
  );
  return html`<article class="card"><div class="pics">${thumb(thumbs.a.get(item.imageA), `A · ${report.a.label}`, item.gap > 0)}${thumb(thumbs.b.get(item.imageB), `B · ${report.b.label}`, item.gap < 0)}</div>
<div class="body"><p class="prompt">${item.text}</p>
<div class="facts">${item.promptIndex === null ? null : html`<span class="tag">#${item.promptIndex}</span>`}${item.category === null ? null : html`<span class="tag">${item.category}</span>`}${item.challenge === null ? null : html`<span class="tag">${item.challenge}</span>`}seed ${item.seed ?? '–'} · gap ${fmt(item.gap, 2)} sd (${item.gap >= 0 ? 'A' : 'B'} ahead)</div>
<table><thead><tr><th>metric</th><th class="num">A</th><th class="num">B</th><th class="num">(A−B)/sd</th></tr></thead><tbody>${rows}</tbody></table></div></article>`;
}

export function renderEvalPage(report: EvalReport, thumbs: { a: ReadonlyMap<string, string>; b: ReadonlyMap<string, string> }): string {
  const w = report.winRate;
  const header = html`<h1>Win rate · ${report.a.label} vs ${report.b.label}</h1><div class="sub">A = ${report.a.dir} · B = ${report.b.dir}</div>
<div class="chips">${chip('prompts', count(w.prompts))}${chip('comparisons', count(report.comparisons))}${chip('seeds per prompt', report.seeds.min === report.seeds.max ? String(report.seeds.min) : `${report.seeds.min}–${report.seeds.max}`)}${chip('metrics', report.metrics.join(', '))}${chip('average win rate', estimateText(w.average))}${chip('ties', `½ credit (${count(report.ties)})`)}${chip('bootstrap', `${count(w.resamples)} × prompts, ${pct(w.level, 0)}`)}</div>
<nav class="toc"><a href="#winrate">win rates</a>${w.byCategory.length + report.byChallenge.length > 0 ? html`<a href="#categories">categories &amp; challenges</a>` : null}<a href="#gallery">largest gaps</a></nav>`;
  const rows: BarRow[] = [
    ...w.metrics.map((m, i) => ({ label: m.metric, value: m.winRate, lo: m.lo, hi: m.hi, colour: seriesColour(i), note: estimateText(m) })),
    { label: 'average', value: w.average.winRate, lo: w.average.lo, hi: w.average.hi, colour: '#344054', strong: true, note: estimateText(w.average) },
  ];
  const table = w.metrics.map(
    (m) => html`<tr><td>${m.metric}</td><td class="num">${pct(m.winRate)}</td><td class="num">${pct(m.lo)}</td><td class="num">${pct(m.hi)}</td><td class="num">${count(m.prompts)}</td><td class="num">${count(m.wins)}</td><td class="num">${count(m.ties)}</td><td class="num">${count(m.losses)}</td><td class="num">${count(m.skipped)}</td></tr>`,
  );
  const ignored =
    report.ignoredMetrics.length > 0
      ? html`<p class="lead">Not compared: ${report.ignoredMetrics.map((m, i) => html`${i > 0 ? '; ' : ''}<b>${m.metric}</b> (${m.reason})`)}.</p>`
      : null;
  const warnings = intervalWarnings(w, w.level);
  const winrate = section(
    'winrate',
    `How often A (${report.a.label}) beats B (${report.b.label})`,
    `Per metric, the share of (prompt, seed) comparisons where A's image scores higher (equal scores count ½), averaged per prompt and then over prompts; whiskers are ${pct(w.level, 0)} percentile-bootstrap intervals resampling prompts. Above the dashed line A wins.`,
    html`${barChart(rows, { title: 'Win rate of A over B per metric', reference: 0.5, format: (x) => pct(x, 0) })}
<div class="scroll"><table><thead><tr><th>metric</th><th class="num">win rate</th><th class="num">low</th><th class="num">high</th><th class="num">prompts</th><th class="num">A wins</th><th class="num">ties</th><th class="num">B wins</th><th class="num">skipped</th></tr></thead><tbody>${table}
<tr class="strong"><td>average</td><td class="num">${pct(w.average.winRate)}</td><td class="num">${pct(w.average.lo)}</td><td class="num">${pct(w.average.hi)}</td><td class="num">${count(w.average.prompts ?? w.prompts)}</td><td></td><td></td><td></td><td></td></tr></tbody></table></div>${ignored}${
      warnings.length === 0 ? null : html`<p class="lead">${warnings.map((x) => html`⚠ ${x}<br>`)}</p>`
    }`,
  );
  const categories =
    w.byCategory.length + report.byChallenge.length > 0
      ? section(
          'categories',
          'By category and challenge',
          'Win rate of A per prompt category and per challenge (PartiPrompts), each with its own bootstrap interval; blue cells favour A, red ones B.',
          html`${w.byCategory.length > 0 ? winRateTable(w.byCategory, report.metrics, 'Categories') : null}${report.byChallenge.length > 0 ? winRateTable(report.byChallenge, report.metrics, 'Challenges') : null}`,
        )
      : null;
  const gallery = section(
    'gallery',
    'Largest score gaps',
    `The ${report.gallery.length} prompts where the two models differ most: the gap is the mean over metrics of (A − B) in units of that metric's score standard deviation (both sides pooled), at the seed where it is largest.`,
    report.gallery.length > 0 ? html`<div class="cards">${report.gallery.map((g) => galleryCard(g, report, thumbs))}</div>` : html`<p class="lead">No comparison.</p>`,
  );
  return pageShell(`Win rate · ${report.a.label} vs ${report.b.label}`, header, html`${winrate}${categories}${gallery}`);
}

/** Whether the audit's calibration numbers (reliability, ECE, Brier) are measured on the pairs τ was fitted on. */
export function calibrationFitText(fit: AuditReport['calibrationFit']): string {
  if (fit.fittedOn === null) return 'no τ fitted to human labels (the metrics\' own τ): every number is out of sample';
  const on = fit.fittedOn === 'all' ? 'every split' : `split ${fit.fittedOn.join(', ')}`;
  const share = `${fit.inSamplePairs} of ${fit.labelledPairs} human-labelled pairs`;
  if (fit.inSamplePairs === 0) return `τ fitted on ${on}: out of sample (${share} were fitted on)`;
  const whole = fit.inSamplePairs === fit.labelledPairs ? 'in-sample' : 'partly in-sample';
  return `τ fitted on ${on}: ${whole} for ${share}; see the test split's slice for out-of-sample accuracy`;
}
