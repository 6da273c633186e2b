// The charts of the report pages, as inline SVG: bars with whiskers, a κ heatmap, histograms, reliability curves.
import { fmt } from '../../core/format.ts';
import type { HistogramResult, ReliabilityResult } from '../distribution.ts';
import { diverging, seriesColour } from './colours.ts';
import { html, type SafeHtml, joinHtml } from './markup.ts';

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
export function barChart(
  rows: readonly BarRow[],
  options: { min?: number; max?: number; reference?: number; title: string; format?: (x: number) => string },
): SafeHtml {
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
        ? joinHtml(
            html`<g class="whisker"><line x1="${x(row.lo)}" x2="${x(row.hi)}" y1="${y + 11}" y2="${y + 11}"/>`,
            html`<line x1="${x(row.lo)}" x2="${x(row.lo)}" y1="${y + 5}" y2="${y + 17}"/>`,
            html`<line x1="${x(row.hi)}" x2="${x(row.hi)}" y1="${y + 5}" y2="${y + 17}"/></g>`,
          )
        : null;
    return joinHtml(
      html`<g>`,
      html`<text class="${row.strong ? 'label strong' : 'label'}" x="${labelWidth - 10}" y="${y + 15}" text-anchor="end">`,
      html`${row.label}</text>
`,
      html`<rect x="${labelWidth}" y="${y + 3}" width="${finite ? Math.max(0, x(row.value) - labelWidth) : 0}" `,
      html`height="16" rx="3" fill="${row.colour ?? seriesColour(i)}" fill-opacity="0.85"/>`,
      html`
${whisker}<text class="note" x="${labelWidth + plot + 10}" y="${y + 15}">`,
      html`${row.note ?? (finite ? format(row.value) : 'n/a')}</text></g>`,
    );
  });
  const grid = ticks.map((t) =>
    joinHtml(
      html`<line class="grid" x1="${x(t)}" x2="${x(t)}" y1="${top - 4}" y2="${height - 6}"/>`,
      html`<text class="tick" x="${x(t)}" y="${top - 8}" text-anchor="middle">${format(t)}</text>`,
    ),
  );
  const reference =
    options.reference === undefined
      ? null
      : html`<line class="reference" x1="${x(options.reference)}" x2="${x(options.reference)}" y1="${top - 4}" y2="${height - 6}"/>`;
  return joinHtml(
    html`<svg class="chart" viewBox="0 0 ${width} ${height}" width="${width}" role="img" aria-label="${options.title}">`,
    html`<title>${options.title}</title>${grid}${bars}${reference}</svg>`,
  );
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
        joinHtml(
          html`<rect x="${x + 1}" y="${y + 1}" width="${cell - 2}" height="${cell - 2}" rx="4" fill="${fill}">`,
          html`<title>${labels[i]} × ${labels[j]}: κ = ${fmt(v)}</title></rect>`,
          html`<text class="${light ? 'cell light' : 'cell'}" x="${x + cell / 2}" y="${y + cell / 2 + 4}" text-anchor="middle">`,
          html`${fmt(v, 2)}</text>`,
        ),
      );
    }
  }
  const rowLabels = labels.map(
    (l, i) => html`<text class="label" x="${left - 8}" y="${top + i * cell + cell / 2 + 4}" text-anchor="end">${l}</text>`,
  );
  const colLabels = labels.map((l, j) =>
    joinHtml(
      html`<text class="label" x="${left + j * cell + cell / 2}" y="${top - 10}" text-anchor="middle">`,
      html`${l.length > 10 ? `${l.slice(0, 9)}…` : l}</text>`,
    ),
  );
  return joinHtml(
    html`<svg class="chart" viewBox="0 0 ${width} ${height}" width="${width}" role="img" aria-label="${title}">`,
    html`<title>${title}</title>${rowLabels}${colLabels}${cells}</svg>`,
  );
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
    return joinHtml(
      html`<rect x="${10 + i * binWidth + 0.5}" y="${bottom - barHeight}" width="${Math.max(0.5, binWidth - 1)}" `,
      html`height="${barHeight}" fill="${colour}" fill-opacity="0.85">`,
      html`<title>[${fmt(h.edges[i], 3)}, ${fmt(h.edges[i + 1], 3)}): ${c}</title></rect>`,
    );
  });
  const lo = h.edges[0] ?? NaN;
  const hi = h.edges[h.edges.length - 1] ?? NaN;
  return joinHtml(
    html`<svg class="chart small" viewBox="0 0 ${width} ${height}" role="img" aria-label="${title}">`,
    html`<title>${title}</title>${bars}<line class="axis" x1="10" x2="${width - 10}" y1="${bottom}" y2="${bottom}"/>`,
    html`<text class="tick" x="10" y="${bottom + 16}">${fmt(lo, 3)}</text>`,
    html`<text class="tick" x="${width - 10}" y="${bottom + 16}" text-anchor="end">${fmt(hi, 3)}</text>`,
    html`<text class="tick" x="${width / 2}" y="${bottom + 16}" text-anchor="middle">peak ${peak}</text></svg>`,
  );
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
  const dots = filled.map((b) =>
    joinHtml(
      html`<circle cx="${px(b.meanPredicted)}" cy="${py(b.observed)}" r="${2.5 + 4 * Math.sqrt(b.count / largest)}" `,
      html`fill="${colour}" fill-opacity="0.8">`,
      html`<title>`,
      html`p ∈ [${fmt(b.lo, 1)}, ${fmt(b.hi, 1)}): ${b.count} pairs, predicted ${fmt(b.meanPredicted)}, humans ${fmt(b.observed)}`,
      html`</title></circle>`,
    ),
  );
  const ticks = [0, 0.5, 1].map((t) =>
    joinHtml(
      html`<text class="tick" x="${px(t)}" y="${size - 4}" text-anchor="middle">${fmt(t, 1)}</text>`,
      html`<text class="tick" x="${pad - 5}" y="${py(t) + 3}" text-anchor="end">${fmt(t, 1)}</text>`,
    ),
  );
  return joinHtml(
    html`<svg class="chart square" viewBox="0 0 ${size} ${size + 4}" role="img" aria-label="${title}">`,
    html`<title>${title}</title>`,
    html`<rect x="${pad}" y="8" width="${span}" height="${span}" fill="#fbfbf9" stroke="#e2e2de"/>`,
    html`<line class="reference" x1="${px(0)}" y1="${py(0)}" x2="${px(1)}" y2="${py(1)}"/>`,
    html`${filled.length > 0 ? html`<path d="${path}" fill="none" stroke="${colour}" stroke-width="1.5"/>` : null}`,
    html`${dots}${ticks}</svg>`,
  );
}
