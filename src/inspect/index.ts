// The inspect stage's public entry.
export { inspectDataset, type DatasetSummary } from './inspect.ts';
