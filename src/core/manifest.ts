// manifest.json (docs/design.md §2): what each stage run did, and which units of work are finished. Several shards may
// share one dataset directory, so every update is a read-modify-write under an exclusive lock file.
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createReadStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { writeFileAtomic } from '../io/atomic.ts';
import { writeDatasetCard } from './dataset-card.ts';
import { parseJsonText } from '../io/json-file.ts';
import { withLock } from '../io/lock.ts';
import { BdpoError, ManifestError } from './errors.ts';
import { FORMAT_VERSION } from './schema.ts';
import type { Shard } from './shard.ts';
import { TOOL_VERSION } from './version.ts';

export interface InputFile {
  path: string;
  bytes: number;
  sha256: string;
  mtimeMs?: number;
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
  inputs: InputFile[];
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
  shard: string;
  parts: PartRecord[];
  counts: Counts;
  /** The version of the model that made the unit (label stage): another version redoes it. */
  version?: string;
  /** The input file the unit read, when it read one, and its sha256 then. */
  input?: string;
  inputSha256?: string;
}

export interface Manifest {
  format: number;
  tool: 'balanced-dpo';
  runs: StageRun[];
  units: Record<string, UnitRecord>;
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

export async function updateManifest(dir: string, mutate: (manifest: Manifest) => void): Promise<Manifest> {
  await mkdir(dir, { recursive: true });
  return withLock(join(dir, `${MANIFEST}.lock`), { wait: true, what: 'the manifest' }, async () => {
    const manifest = await readManifest(dir);
    mutate(manifest);
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
export async function hashFile(path: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).byteLength;
  }
  return { sha256: hash.digest('hex'), bytes };
}

export async function sha256OfFile(path: string): Promise<string> {
  return (await hashFile(path)).sha256;
}

interface PartIndexCache {
  signature: string;
  parts: Map<string, PartRecord>;
}

const partIndexes = new Map<string, PartIndexCache>();

/**
 * The record of a part file (path relative to the dataset directory), if a unit recorded it. Every reader of a part
 * asks, so the index is rebuilt only when manifest.json changes.
 */
export async function recordedPart(dir: string, file: string): Promise<PartRecord | undefined> {
  const info = await stat(join(dir, MANIFEST)).catch(() => null);
  if (!info) return undefined;
  const signature = `${info.ino}:${info.size}:${info.mtimeMs}`;
  let cached = partIndexes.get(dir);
  if (cached?.signature !== signature) {
    const parts = new Map<string, PartRecord>();
    for (const unit of Object.values((await readManifest(dir)).units)) for (const part of unit.parts) parts.set(part.file, part);
    cached = { signature, parts };
    partIndexes.set(dir, cached);
  }
  return cached.parts.get(file);
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
  for (const run of (await readManifest(dir)).runs) for (const input of run.inputs) known.set(input.path, input);
  const described: InputFile[] = [];
  for (const path of paths) {
    const info = await stat(path);
    const previous = known.get(path);
    described.push(previous && previous.bytes === info.size && previous.mtimeMs === info.mtimeMs ? previous : await describeInput(path));
  }
  return described;
}

/** Records a finished stage run, then refreshes the dataset card: the tables on disk may have changed. */
export async function recordRun(dir: string, run: StageRun): Promise<void> {
  await updateManifest(dir, (m) => {
    m.runs.push(run);
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
  inputs: InputFile[],
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
