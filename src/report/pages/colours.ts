// The colours of the report pages: one per metric series, and a diverging scale for values in [−1, 1].

const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#b07aa1', '#edc948', '#9c755f', '#ff9da7', '#bab0ac'];

export function seriesColour(i: number): string {
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
export function diverging(x: number): { fill: string; light: boolean } {
  if (!Number.isFinite(x)) return { fill: '#eeeeee', light: false };
  const t = Math.max(-1, Math.min(1, x));
  return { fill: t < 0 ? mix(NEUTRAL, NEGATIVE, -t) : mix(NEUTRAL, POSITIVE, t), light: Math.abs(t) > 0.55 };
}

export function metricColour(report: { metrics: readonly string[] }, name: string): string {
  const i = report.metrics.indexOf(name);
  if (i >= 0) return seriesColour(i);
  return name === 'human' ? '#8a94a6' : '#344054';
}
