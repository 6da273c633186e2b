// The metric kinds bdpo knows, by the name a metric JSON gives in "kind". A new kind is one module and one line here.
import type { MetricKindModule } from './kind.ts';
import { aesthetic } from './aesthetic.ts';
import { clip } from './clip.ts';
import { hps } from './hps.ts';
import { pickscore } from './pickscore.ts';

export const METRIC_KIND_MODULES = { pickscore, hps, clip, aesthetic } as const;

export type MetricKind = keyof typeof METRIC_KIND_MODULES;
/** How a metric turns its embeddings into a score: the formulas of every kind. */
export type ScoreFormula = (typeof METRIC_KIND_MODULES)[MetricKind] extends MetricKindModule<infer Score> ? Score : never;

export const METRIC_KINDS = Object.keys(METRIC_KIND_MODULES) as readonly MetricKind[];

export function metricKind(kind: MetricKind): MetricKindModule {
  // Widened to string formulas: a spec's "score" is checked against `scores` at run time.
  return METRIC_KIND_MODULES[kind];
}
