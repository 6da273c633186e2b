// `node --import tsx scripts/compare-outputs.ts DIR_A DIR_B`: proves that two runs wrote the same outputs.
// Every file under both folders must exist in both with the same bytes, except what records when or where a run
// happened: in manifest.json the run times, part modification times and input paths; in reports, the generation
// time; in train runs, the wall-clock fields of metrics.jsonl and checkpoints. Those are compared with the
// timestamps removed. With --manifest-parts, a manifest is compared by what it says was written and counted (runs,
// and every unit's parts and counts, whatever the unit keys), for a change to the bookkeeping itself. With --rows,
// dataset directories are compared by the rows their readers see and other files by name without shard labels
// (scripts/compare-rows.ts), for a change that renames parts or moves rows between them. Prints one line per
// difference and exits 1 if there is any.
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { comparedByRows, compareDatasetRows, withoutShardLabels } from './compare-rows.ts';

/** JSON fields that hold a clock reading or a machine-specific path, never a result. */
const VOLATILE_KEYS = new Set([
  'started',
  'finished',
  'mtimeMs',
  'generated',
  'seconds',
  'elapsedSeconds',
  'wallSeconds',
  'samplesPerSecond',
  'imagesPerSecond',
  'time',
  'path',
  'input',
  'out',
  'dir',
]);
/** ISO-8601 timestamps inside text files (report pages print when they were made). */
const TIMESTAMP = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z/g;

async function listFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)))
    .sort();
}

function stripper(absoluteRoot: string): (value: unknown) => unknown {
  const strip = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(strip);
    if (value !== null && typeof value === 'object') {
      const out: Record<string, unknown> = {};
      for (const [key, inner] of Object.entries(value)) if (!VOLATILE_KEYS.has(key)) out[key] = strip(inner);
      return out;
    }
    return typeof value === 'string' ? value.replaceAll(absoluteRoot, '<root>').replace(TIMESTAMP, '<time>') : value;
  };
  return strip;
}

function normaliseJson(text: string, absoluteRoot: string): string {
  const strip = stripper(absoluteRoot);
  try {
    return JSON.stringify(strip(JSON.parse(text)));
  } catch {
    // JSON Lines: one value per line.
  }
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.stringify(strip(JSON.parse(line))))
    .join('\n');
}

/** The bytes that must match: JSON with its volatile fields removed, text pages with timestamps masked, else raw. */
interface ManifestShape {
  runs: unknown[];
  units: Record<string, { stage: string; parts: Array<{ file: string; rows: number; bytes: number; sha256: string }>; counts: unknown }>;
}

/** What a manifest says was written and counted, independent of how units are keyed and which fields they carry. */
function manifestParts(text: string): string {
  const manifest = JSON.parse(text) as ManifestShape;
  const units = Object.values(manifest.units)
    .map((unit) =>
      JSON.stringify({
        stage: unit.stage,
        counts: unit.counts,
        parts: unit.parts.map(({ file, rows, bytes, sha256 }) => ({ file, rows, bytes, sha256 })),
      }),
    )
    .sort();
  return JSON.stringify({ runs: manifest.runs, units });
}

let manifestByParts = false;

async function comparable(root: string, file: string): Promise<Buffer> {
  let bytes = await readFile(join(root, file));
  const absoluteRoot = resolve(root);
  if (manifestByParts && file.endsWith('manifest.json')) bytes = Buffer.from(manifestParts(bytes.toString('utf8')));
  if (file.endsWith('.json') || file.endsWith('.jsonl')) {
    try {
      return Buffer.from(normaliseJson(bytes.toString('utf8'), absoluteRoot));
    } catch {
      return bytes; // not JSON after all (a JSON array split over lines): compared as it is
    }
  }
  if (file.endsWith('.html') || file.endsWith('.txt') || file.endsWith('.md')) {
    return Buffer.from(bytes.toString('utf8').replaceAll(absoluteRoot, '<root>').replace(TIMESTAMP, '<time>'));
  }
  return bytes;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  manifestByParts = args.includes('--manifest-parts');
  if (args.includes('--rows')) return compareByRows(args.filter((arg) => !arg.startsWith('--')));
  const [a, b] = args.filter((arg) => !arg.startsWith('--'));
  if (!a || !b) {
    console.error('usage: compare-outputs.ts [--manifest-parts] DIR_A DIR_B');
    return 2;
  }
  const [filesA, filesB] = [await listFiles(a), await listFiles(b)];
  const inB = new Set(filesB);
  const inA = new Set(filesA);
  let differences = 0;
  const differ = (line: string): void => {
    differences++;
    console.log(line);
  };
  for (const file of filesA) if (!inB.has(file)) differ(`only in ${a}: ${file}`);
  for (const file of filesB) if (!inA.has(file)) differ(`only in ${b}: ${file}`);
  let same = 0;
  for (const file of filesA.filter((f) => inB.has(f))) {
    if ((await comparable(a, file)).equals(await comparable(b, file))) same++;
    else differ(`differs: ${file}`);
  }
  console.log(`${same} files identical, ${differences} differences`);
  return differences === 0 ? 0 : 1;
}

async function compareByRows([a, b]: string[]): Promise<number> {
  if (!a || !b) {
    console.error('usage: compare-outputs.ts --rows DIR_A DIR_B');
    return 2;
  }
  const datasets = (await listFiles(a)).filter((f) => f.endsWith('manifest.json')).map((f) => dirname(f));
  const inDataset = (file: string): boolean => datasets.some((d) => file.startsWith(`${d}/`));
  const renamed = async (root: string): Promise<Map<string, string>> =>
    new Map(
      (await listFiles(root))
        .filter((f) => !(inDataset(f) && comparedByRows(f.slice(f.indexOf('/') + 1))))
        .map((f) => [withoutShardLabels(f), f]),
    );
  const [filesA, filesB] = [await renamed(a), await renamed(b)];
  let differences = 0;
  let same = 0;
  const differ = (line: string): void => {
    differences++;
    console.log(line);
  };
  for (const dataset of datasets) {
    const result = await compareDatasetRows(join(a, dataset), join(b, dataset), stripper(resolve(b)));
    result.differences.forEach(differ);
    same += result.same;
  }
  for (const name of filesA.keys()) if (!filesB.has(name)) differ(`only in ${a}: ${filesA.get(name)}`);
  for (const name of filesB.keys()) if (!filesA.has(name)) differ(`only in ${b}: ${filesB.get(name)}`);
  for (const [name, fileA] of filesA) {
    const fileB = filesB.get(name);
    if (fileB === undefined) continue;
    if ((await comparable(a, fileA)).equals(await comparable(b, fileB))) same++;
    else differ(`differs: ${fileB}`);
  }
  console.log(`${same} tables and files identical, ${differences} differences`);
  return differences === 0 ? 0 : 1;
}

process.exitCode = await main();
