// manifest.json (DESIGN §2): what each stage run did, and which units of work are finished. Several shards may
// share one dataset directory, so every update is a read-modify-write under an exclusive lock file.
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createReadStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { writeFileAtomic } from './io/atomic.ts';
import { withLock } from './io/lock.ts';
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
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return emptyManifest();
    throw error;
  }
  const parsed = JSON.parse(text) as Manifest;
  if (parsed.tool !== 'balanced-dpo' || typeof parsed.units !== 'object') {
    throw new Error(`${join(dir, MANIFEST)} is not a balanced-dpo manifest`);
  }
  return parsed;
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

/** A unit is finished when the manifest records it and each of its parts is on disk with the recorded size. */
export async function isUnitDone(dir: string, manifest: Manifest, key: string): Promise<boolean> {
  const unit = manifest.units[key];
  if (!unit) return false;
  for (const part of unit.parts) {
    const size = await stat(join(dir, part.file)).then((s) => s.size, () => -1);
    if (size !== part.bytes) return false;
  }
  return true;
}

export async function describeInput(path: string): Promise<InputFile> {
  const hash = createHash('sha256');
  let bytes = 0;
  const { mtimeMs } = await stat(path);
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).byteLength;
  }
  return { path, bytes, sha256: hash.digest('hex'), mtimeMs };
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
    described.push(
      previous && previous.bytes === info.size && previous.mtimeMs === info.mtimeMs ? previous : await describeInput(path),
    );
  }
  return described;
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
