// manifest.json (docs/design.md §2): what each stage run did, and a summary of the units of work that are finished
// (rebuilt from the per-unit records of core/unit-records.ts, which are the source of truth). Several shards may share
// one dataset directory, so every update is a read-modify-write under an exclusive lock file; a shard makes one at the
// end of its run, never one per unit.
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { writeFileAtomic } from '../io/atomic.ts';
import { writeDatasetCard } from './dataset-card.ts';
import { parseJsonText } from '../io/json-file.ts';
import { withLock } from '../io/lock.ts';
import { BdpoError, ManifestError } from './errors.ts';
import { FORMAT_VERSION } from './schema.ts';
import type { Shard } from './shard.ts';
import { TOOL_VERSION } from './version.ts';
import { findRecordedPart, summariseUnits } from './unit-records.ts';

/** An input a run read, as it was then. */
export interface InputStat {
  path: string;
  bytes: number;
  mtimeMs?: number;
}

/** An input read whole and hashed (a prompt list, a model file). Sharded Parquet inputs are fingerprinted per unit. */
export interface InputFile extends InputStat {
  sha256: string;
}

export interface Counts {
  read: number;
  taken: number;
  rejected: number;
  byReason: Record<string, number>;
}

export interface StageRun {
  stage: string;
  toolVersion: string;
  options: Record<string, unknown>;
  inputs: InputStat[];
  counts: Counts;
  started: string;
  finished: string;
  shard: Shard;
}

export interface PartRecord {
  file: string;
  rows: number;
  bytes: number;
  sha256: string;
  /** The file's modification time when it was recorded: while size and mtime are unchanged, it is trusted as done. */
  mtimeMs?: number;
}

/** A finished unit of work: the parts it wrote and what it counted. */
export interface UnitRecord {
  stage: string;
  /** Written by directories of earlier versions, whose units were keyed by shard layout; a unit is one now. */
  shard?: string;
  parts: PartRecord[];
  counts: Counts;
  /** The version of the model that made the unit (label stage): another version redoes it. */
  version?: string;
  /** The input file the unit read, when it read one, and its sha256 then. */
  input?: string;
  inputSha256?: string;
  /** The input's size and mtime when inputSha256 was taken: while they are unchanged it is not taken again. */
  inputSignature?: string;
}

export interface Manifest {
  format: number;
  tool: 'balanced-dpo';
  runs: StageRun[];
  units: Record<string, UnitRecord>;
  /** Set once `units` is a summary of the record files under this folder (absent in directories of earlier versions). */
  unitRecords?: string;
}

const MANIFEST = 'manifest.json';

function emptyManifest(): Manifest {
  return { format: FORMAT_VERSION, tool: 'balanced-dpo', runs: [], units: {} };
}

export async function readManifest(dir: string): Promise<Manifest> {
  const path = join(dir, MANIFEST);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return emptyManifest();
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = parseJsonText(text, path);
  } catch (error) {
    throw new ManifestError((error as Error).message);
  }
  const problem = manifestShapeProblem(parsed);
  if (problem !== null) throw new ManifestError(`${path} is not a balanced-dpo manifest: ${problem}`);
  return parsed as Manifest;
}

/** What is wrong with the shape of a parsed manifest (the fields later code relies on), or null. */
function manifestShapeProblem(value: unknown): string | null {
  const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (!isObject(value)) return 'the top level is not an object';
  if (value.tool !== 'balanced-dpo') return `"tool" is ${JSON.stringify(value.tool) ?? 'missing'}, expected "balanced-dpo"`;
  if (typeof value.format !== 'number') return '"format" is not a number';
  if (value.format > FORMAT_VERSION) return `"format" is ${value.format}; this version reads format ${FORMAT_VERSION}`;
  if (!Array.isArray(value.runs)) return '"runs" is not an array';
  for (const [index, run] of value.runs.entries()) {
    if (!isObject(run) || typeof run.stage !== 'string') return `runs[${index}] has no "stage"`;
    if (!Array.isArray(run.inputs)) return `runs[${index}].inputs is not an array`;
  }
  if (!isObject(value.units)) return '"units" is not an object';
  for (const [key, unit] of Object.entries(value.units)) {
    if (!isObject(unit)) return `units["${key}"] is not an object`;
    if (!Array.isArray(unit.parts)) return `units["${key}"].parts is not an array`;
    for (const [index, part] of unit.parts.entries()) {
      if (!isObject(part) || typeof part.file !== 'string' || typeof part.bytes !== 'number') {
        return `units["${key}"].parts[${index}] needs a "file" string and a "bytes" number`;
      }
    }
    const counts = unit.counts;
    if (!isObject(counts) || typeof counts.taken !== 'number') return `units["${key}"].counts has no "taken" number`;
  }
  return null;
}

export async function updateManifest(dir: string, mutate: (manifest: Manifest) => void | Promise<void>): Promise<Manifest> {
  await mkdir(dir, { recursive: true });
  return withLock(join(dir, `${MANIFEST}.lock`), { wait: true, what: 'the manifest' }, async () => {
    const manifest = await readManifest(dir);
    await mutate(manifest);
    await writeFileAtomic(join(dir, MANIFEST), Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
    return manifest;
  });
}

/** A part's bytes differ from the sha256 the stage that wrote it recorded. */
export class CorruptPartError extends BdpoError {}

/**
 * A recorded part is intact when it has the recorded size and either the recorded mtime (nobody wrote to it since) or
 * the recorded sha256. Readers verify the sha256 again when they read the bytes.
 */
export async function isPartIntact(dir: string, part: PartRecord): Promise<boolean> {
  const info = await stat(join(dir, part.file)).catch(() => null);
  if (!info || info.size !== part.bytes) return false;
  if (part.mtimeMs !== undefined && info.mtimeMs === part.mtimeMs) return true;
  return (await sha256OfFile(join(dir, part.file))) === part.sha256;
}

/** A file's sha256 and the bytes it was computed over, in one streaming read. */
export { hashFile, sha256OfFile } from '../io/file-hash.ts';
import { hashFile, sha256OfFile } from '../io/file-hash.ts';

/** The record of a part file (path relative to the dataset directory), if a unit recorded it. */
export function recordedPart(dir: string, file: string): Promise<PartRecord | undefined> {
  return findRecordedPart(dir, file);
}

/** Throws unless `bytes` are those recorded for the part (an unrecorded part, written by hand, is taken as it is). */
export async function verifyPartBytes(dir: string, file: string, bytes: Uint8Array): Promise<void> {
  const record = await recordedPart(dir, file);
  if (record) checkPartHash(dir, file, record, createHash('sha256').update(bytes).digest('hex'));
}

/** The same check for a part that is read piecewise (Parquet): the file is hashed once, as a stream. */
export async function verifyPartFile(dir: string, file: string): Promise<void> {
  const record = await recordedPart(dir, file);
  if (record) checkPartHash(dir, file, record, await sha256OfFile(join(dir, file)));
}

function checkPartHash(dir: string, file: string, record: PartRecord, actual: string): void {
  if (actual === record.sha256) return;
  throw new CorruptPartError(
    `${join(dir, file)}: sha256 ${actual.slice(0, 12)}… differs from the ${record.sha256.slice(0, 12)}… recorded when it was ` +
      'written (the file changed or is damaged); remove it and re-run the stage that wrote it',
  );
}

export async function describeInput(path: string): Promise<InputFile> {
  const { mtimeMs } = await stat(path);
  const { sha256, bytes } = await hashFile(path);
  return { path, bytes, sha256, mtimeMs };
}

/**
 * Describes inputs one after another (never hundreds of shards at once), reusing the hash a previous run of the
 * directory recorded for a file of the same path, size and modification time: a resumed run does not re-read them.
 */
export async function describeInputs(dir: string, paths: readonly string[]): Promise<InputFile[]> {
  const known = new Map<string, InputFile>();
  for (const run of (await readManifest(dir)).runs) {
    for (const input of run.inputs) if ('sha256' in input) known.set(input.path, input as InputFile);
  }
  const described: InputFile[] = [];
  for (const path of paths) {
    const info = await stat(path);
    const previous = known.get(path);
    described.push(previous && previous.bytes === info.size && previous.mtimeMs === info.mtimeMs ? previous : await describeInput(path));
  }
  return described;
}

/** The inputs' size and mtime only: a shard reads and fingerprints just the units it owns (Parquet row groups). */
export async function statInputs(paths: readonly string[]): Promise<InputStat[]> {
  const described: InputStat[] = [];
  for (const path of paths) {
    const { size, mtimeMs } = await stat(path);
    described.push({ path, bytes: size, mtimeMs });
  }
  return described;
}

/** Records a finished stage run (and the summary of the unit records), then refreshes the dataset card: the tables on disk may have changed. */
export async function recordRun(dir: string, run: StageRun): Promise<void> {
  await updateManifest(dir, async (m) => {
    m.runs.push(run);
    await summariseUnits(dir, m);
  });
  await writeDatasetCard(dir);
}

export function emptyCounts(): Counts {
  return { read: 0, taken: 0, rejected: 0, byReason: {} };
}

export function addCounts(into: Counts, more: Counts): void {
  into.read += more.read;
  into.taken += more.taken;
  into.rejected += more.rejected;
  for (const [reason, n] of Object.entries(more.byReason)) into.byReason[reason] = (into.byReason[reason] ?? 0) + n;
}

export function runRecord(
  stage: string,
  options: Record<string, unknown>,
  inputs: InputStat[],
  counts: Counts,
  started: Date,
  shard: Shard,
): StageRun {
  return {
    stage,
    toolVersion: TOOL_VERSION,
    options,
    inputs,
    counts,
    started: started.toISOString(),
    finished: new Date().toISOString(),
    shard,
  };
}
