// Per-unit commit records (docs/architecture.md "Sharding"): meta/units/<stage>/<safeName(key)>.json, one small file
// per finished unit, written atomically beside the parts. They are the source of truth for "done": recording a unit
// writes its own file only, so its cost does not grow with the run and shards never queue on a shared lock.
// manifest.json's `units` is a summary rebuilt from them once per run (and by `bdpo inspect`).
//
// A directory written before records existed has its units in manifest.json only: the first writer that opens it
// copies them out into record files (keyed by their old record key, `<unit key>:s<i>of<n>`), under the manifest lock.
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { parseJsonText } from '../io/json-file.ts';
import { resolveInside, safeName } from '../io/paths.ts';
import { ManifestError } from './errors.ts';
import { readManifest, updateManifest, type Manifest, type PartRecord, type UnitRecord } from './manifest.ts';

/** Where the records live, relative to the dataset directory; also the manifest's `unitRecords` marker. */
export const UNIT_RECORDS = 'meta/units';

/** A record file holds its key too: a file name is a safeName of it, which cannot always be turned back. */
interface StoredRecord extends UnitRecord {
  key: string;
}

function stageFolder(dir: string, stage: string): string {
  return resolveInside(dir, join(UNIT_RECORDS, safeName(stage)));
}

function recordPath(dir: string, stage: string, key: string): string {
  return join(stageFolder(dir, stage), `${safeName(key)}.json`);
}

function parseRecord(text: string, path: string): StoredRecord {
  const value = parseJsonText(text, path) as Partial<StoredRecord> | null;
  if (value === null || typeof value !== 'object' || typeof value.key !== 'string' || !Array.isArray(value.parts)) {
    throw new ManifestError(`${path} is not a unit record (it needs a "key" string and a "parts" array)`);
  }
  if (typeof value.counts !== 'object' || value.counts === null || typeof value.counts.taken !== 'number') {
    throw new ManifestError(`${path}: "counts" has no "taken" number`);
  }
  return value as StoredRecord;
}

/** The bytes of a record: its key first, then the record; one line, so a million of them stay cheap to list. */
export function encodeRecord(key: string, record: UnitRecord): Buffer {
  return Buffer.from(`${JSON.stringify({ key, ...record })}\n`);
}

/** The record of one unit, or null. Reads one small file: O(1) in the size of the run. */
export async function readUnitRecord(dir: string, stage: string, key: string): Promise<UnitRecord | null> {
  const path = recordPath(dir, stage, key);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const { key: stored, ...record } = parseRecord(text, path);
  // Two keys with one safeName would need a sha256 collision on 32 bits plus the same plain prefix: refuse, never mix.
  if (stored !== key) throw new ManifestError(`${path} records unit "${stored}", not "${key}"`);
  return record;
}

/** Writes a unit's record atomically; returns the bytes written (the bookkeeping cost of one unit). */
export async function writeUnitRecord(dir: string, key: string, record: UnitRecord): Promise<number> {
  const bytes = encodeRecord(key, record);
  await writeFileAtomic(recordPath(dir, record.stage, key), bytes);
  return bytes.byteLength;
}

export async function removeUnitRecord(dir: string, stage: string, key: string): Promise<void> {
  await rm(recordPath(dir, stage, key), { force: true });
}

async function stageNames(dir: string): Promise<string[]> {
  const entries = await readdir(join(dir, UNIT_RECORDS), { withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
}

async function readStageFolder(folder: string): Promise<Array<[string, UnitRecord]>> {
  const names = await readdir(folder).catch(() => [] as string[]);
  const out: Array<[string, UnitRecord]> = [];
  for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
    const path = join(folder, name);
    const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
      // Removed by its owner between the listing and the read (a forgotten unit): it is not a record any more.
      if (error.code === 'ENOENT') return null;
      throw error;
    });
    if (text === null) continue;
    const { key, ...record } = parseRecord(text, path);
    out.push([key, record]);
  }
  return out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Every record of one stage (or of all stages), sorted by key. */
export async function listUnitRecords(dir: string, stage?: string): Promise<Array<[string, UnitRecord]>> {
  await migrateLegacyUnits(dir);
  const stages = stage === undefined ? await stageNames(dir) : [safeName(stage)];
  const out: Array<[string, UnitRecord]> = [];
  for (const name of stages) out.push(...(await readStageFolder(join(dir, UNIT_RECORDS, name))));
  return out;
}

/** Whether the manifest's units are still the only copy (a directory written before record files). */
function isLegacy(manifest: Manifest): boolean {
  return manifest.unitRecords === undefined && Object.keys(manifest.units).length > 0;
}

/** Copies a legacy manifest's units into record files, once; later opens see the marker and skip at once. */
export async function migrateLegacyUnits(dir: string): Promise<void> {
  if (!isLegacy(await readManifest(dir))) return;
  await updateManifest(dir, async (manifest) => {
    if (!isLegacy(manifest)) return;
    for (const [key, record] of Object.entries(manifest.units)) {
      if ((await readUnitRecord(dir, record.stage, key)) === null) await writeUnitRecord(dir, key, record);
    }
    manifest.unitRecords = UNIT_RECORDS;
  });
}

/** manifest.json's `units`: rebuilt from the record files, inside an update the caller makes under the lock. */
export async function summariseUnits(dir: string, manifest: Manifest): Promise<void> {
  if (isLegacy(manifest)) {
    for (const [key, record] of Object.entries(manifest.units)) {
      if ((await readUnitRecord(dir, record.stage, key)) === null) await writeUnitRecord(dir, key, record);
    }
  }
  const units: Manifest['units'] = {};
  for (const name of await stageNames(dir)) {
    for (const [key, record] of await readStageFolder(join(dir, UNIT_RECORDS, name))) units[key] = record;
  }
  manifest.units = units;
  manifest.unitRecords = UNIT_RECORDS;
}

/** Rebuilds manifest.json's `units` from the records (`bdpo inspect`, or after a run by hand). */
export async function rebuildUnitSummary(dir: string): Promise<Manifest> {
  return updateManifest(dir, (manifest) => summariseUnits(dir, manifest));
}

interface StageIndex {
  mtimeMs: number;
  parts: Map<string, PartRecord>;
}

const partIndexes = new Map<string, { legacySignature: string; legacy: Map<string, PartRecord>; stages: Map<string, StageIndex> }>();

/**
 * The record of a part file, if a unit recorded it. Every reader of a part asks, so each stage's index is re-read
 * only when its record folder changes (a record is renamed into place, so the folder's mtime moves).
 */
export async function findRecordedPart(dir: string, file: string): Promise<PartRecord | undefined> {
  let cache = partIndexes.get(dir);
  if (!cache) {
    cache = { legacySignature: '', legacy: new Map(), stages: new Map() };
    partIndexes.set(dir, cache);
  }
  const manifestInfo = await stat(join(dir, 'manifest.json')).catch(() => null);
  const signature = manifestInfo ? `${manifestInfo.ino}:${manifestInfo.size}:${manifestInfo.mtimeMs}` : '';
  if (cache.legacySignature !== signature) {
    // A legacy directory that nobody has opened for writing yet: its manifest is the record.
    cache.legacy = new Map();
    const manifest = manifestInfo ? await readManifest(dir) : null;
    if (manifest && isLegacy(manifest)) {
      for (const unit of Object.values(manifest.units)) for (const part of unit.parts) cache.legacy.set(part.file, part);
    }
    cache.legacySignature = signature;
  }
  // Stages whose records did not change answer first: a label run commits a unit per images part and asks for the
  // images parts' records (ingest's) in between, which must not re-read every label record each time.
  const stale: Array<[string, number]> = [];
  for (const name of await stageNames(dir)) {
    const info = await stat(join(dir, UNIT_RECORDS, name)).catch(() => null);
    if (!info) continue;
    const index = cache.stages.get(name);
    if (index?.mtimeMs !== info.mtimeMs) stale.push([name, info.mtimeMs]);
    else if (index.parts.has(file)) return index.parts.get(file);
  }
  for (const [name, mtimeMs] of stale) {
    const parts = new Map<string, PartRecord>();
    for (const [, record] of await readStageFolder(join(dir, UNIT_RECORDS, name)))
      for (const part of record.parts) parts.set(part.file, part);
    cache.stages.set(name, { mtimeMs, parts });
    if (parts.has(file)) return parts.get(file);
  }
  return cache.legacy.get(file);
}
