// The label stage's public entry.
export { LabelOptionError, runLabel, type LabelOptions, type LabelProgress, type LabelSummary, type MetricRunSummary } from './run.ts';
