// balanced-dpo's library API: one run function per stage, its typed options and summary, and the errors a caller
// can act on (each BdpoError carries the exit code the CLI uses). Every stage reads and writes one dataset
// directory (docs/architecture.md); the CLI (`bdpo`) is a shell over exactly these functions.
export * from './ingest/index.ts';
export * from './label/index.ts';
export * from './consensus/index.ts';
export * from './report/index.ts';
export * from './encode/index.ts';
export * from './export/index.ts';
export * from './inspect/index.ts';
export * from './tables/index.ts';
export * from './train/index.ts';
export { BdpoError, InputError, ManifestError, MetricSpecError, UsageError } from './core/errors.ts';
export { CorruptPartError } from './core/manifest.ts';
export { ShardError, parseShard, resolveShard, type Shard } from './core/shard.ts';
export type { Counts, Manifest, StageRun } from './core/manifest.ts';
export type { Device } from './models/session.ts';
export { TOOL_VERSION } from './core/version.ts';
