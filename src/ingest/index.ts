// The ingest stage's public entry: one function per source, their options and the summary they return.
export { ingestPickapic, type PickapicOptions } from './pickapic.ts';
export { ingestHpd, type HpdOptions } from './hpd.ts';
export { ingestParti } from './parti.ts';
export { ingestGenerations, type GenerationsOptions } from './generations.ts';
export type { IngestOptions, IngestProgress, IngestSummary } from './driver.ts';
export { compactDataset, type CompactSummary } from './compact.ts';
