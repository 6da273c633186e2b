// HPDv2 as published (DESIGN §3): train.json pairs, test.json ranked groups (k images → k·(k−1)/2 pairs) and
// benchmark prompt lists with one generated image per prompt and model.
//
// The JSON lists are indexed once and then read a chunk of entries at a time, so train.json (~800k entries) is never
// held whole. Every image path in them is untrusted: it must stay under <root>/<split>/ as written and under the
// dataset root once symlinks are resolved, and its size is bounded, before a byte of the file is read.
import { constants } from 'node:fs';
import { lstat, open, readdir, realpath, stat, type FileHandle } from 'node:fs/promises';
import { join, posix, sep, win32 } from 'node:path';
import type { RejectReason } from '../core/schema.ts';
import { safeName } from '../io/paths.ts';
import { decodeUtf8, InvalidText, jsonEntrySpans } from '../io/text.ts';
import { describeInputs } from '../core/manifest.ts';
import { reject, type Draft, type IngestUnit, type PromptDraft } from './drafts.ts';
import { runIngest, type IngestOptions, type IngestSummary } from './driver.ts';
import { InputError } from '../core/errors.ts';
import { MAX_IMAGE_FILE_BYTES } from '../models/image-check.ts';
import { Limiter } from '../core/limiter.ts';

export const TRAIN_CHUNK = 512;
export const TEST_CHUNK = 64;
export const BENCHMARK_CHUNK = 512;
/** HPD's test groups hold a handful of images; a group this large would make k·(k−1)/2 pairs without bound. */
export const MAX_GROUP_IMAGES = 64;
const READS_IN_FLIGHT = 8;

export interface HpdOptions extends IngestOptions {
  maxFileBytes?: number;
}

export async function ingestHpd(root: string, options: HpdOptions): Promise<IngestSummary> {
  const rootInfo = await stat(root).catch(() => null);
  if (!rootInfo?.isDirectory()) throw new InputError(`${root}: no such folder`);
  const maxFileBytes = options.maxFileBytes ?? MAX_IMAGE_FILE_BYTES;
  const files = await ImageFiles.open(root, maxFileBytes);

  const train = await optionalJsonArray(root, 'train.json', TRAIN_CHUNK);
  const test = await optionalJsonArray(root, 'test.json', TEST_CHUNK);
  const lists = await benchmarkLists(root);
  const jsons = [...lists.map((list) => list.json), ...(test ? [test] : []), ...(train ? [train] : [])];
  if (jsons.length === 0) {
    throw new InputError(`${root}: not an HPDv2 folder (no train.json, test.json or benchmark/*.json)`);
  }
  // Parse every entry once before writing anything: a broken file is one clear error, not half a dataset.
  for (const json of jsons) {
    for (const chunk of json.chunks) await readChunk(json, chunk);
  }

  // Benchmark first: a prompt stored once keeps the first occurrence's metadata, and the list's category and
  // index are what evaluation needs; pairs carry their own split.
  const units: IngestUnit[] = [];
  for (const list of lists) units.push(...list.json.chunks.map((chunk, c) => benchmarkPromptUnit(list, chunk, c)));
  for (const folder of await benchmarkFolders(root, lists)) units.push(...benchmarkImageUnits(files, folder));
  if (test) units.push(...test.chunks.map((chunk, c) => testUnit(files, test, chunk, c)));
  if (train) units.push(...train.chunks.map((chunk, c) => trainUnit(files, train, chunk, c)));

  const inputs = await describeInputs(options.out, jsons.map((json) => json.path));
  const runOptions = { decode: options.decode ?? true, maxFileBytes };
  return runIngest('hpd', units, inputs, runOptions, options);
}

// ---------------------------------------------------------------------------------------------------------------
// Untrusted image paths

export type PathCheck =
  | { ok: true; candidates: string[] }
  | { ok: false; reason: RejectReason; detail: string };

/**
 * Where an entry's image path may point, relative to <root>/<split>/, without touching the disk. Absolute paths and
 * paths whose normalised form climbs out of the split folder are refused. A path that already starts with
 * `<split>/` is tried as written, then without that prefix.
 */
export function checkEntryPath(split: string, raw: unknown): PathCheck {
  if (typeof raw !== 'string' || raw === '') return malformed('path is not a non-empty string');
  if (raw.includes('\0')) return malformed('path contains a NUL byte');
  // Backslashes are separators where the data was made or read on Windows: treat them so everywhere.
  const path = raw.replace(/\\/g, '/');
  if (posix.isAbsolute(path) || win32.isAbsolute(raw)) {
    return { ok: false, reason: 'path_outside_root', detail: 'absolute path' };
  }
  const normal = posix.normalize(path);
  if (normal === '..' || normal.startsWith('../')) {
    return { ok: false, reason: 'path_outside_root', detail: `climbs out of ${split}/` };
  }
  if (normal === '.' || normal === './') return malformed('path names the folder, not a file');
  const candidates = [normal];
  const prefix = `${split}/`;
  if (normal.startsWith(prefix) && normal.length > prefix.length) candidates.push(normal.slice(prefix.length));
  return { ok: true, candidates };
}

function malformed(detail: string): PathCheck {
  return { ok: false, reason: 'malformed_entry', detail };
}

type FileRead =
  | { ok: true; bytes: Uint8Array; ref: string }
  | { ok: false; reason: RejectReason; detail: string };

/** Reads image files under the dataset root, refusing what resolves outside it and what is too large to read. */
class ImageFiles {
  private readonly containers = new Map<string, Promise<string[]>>();

  private constructor(
    private readonly root: string,
    private readonly realRoot: string,
    private readonly maxBytes: number,
  ) {}

  static async open(root: string, maxBytes: number): Promise<ImageFiles> {
    return new ImageFiles(root, await realpath(root), maxBytes);
  }

  /**
   * A file may resolve anywhere under the root, or under the real location of its base folder (train/, test/,
   * benchmark_imgs/), which users put on another disk with one symlink.
   */
  private allowed(base: string): Promise<string[]> {
    let found = this.containers.get(base);
    if (!found) {
      found = realpath(join(this.root, base)).then(
        (real) => [this.realRoot, real],
        () => [this.realRoot],
      );
      this.containers.set(base, found);
    }
    return found;
  }

  /** The first candidate (relative to <root>/<base>/) that exists, checked and read; never throws. */
  async read(base: string, candidates: string[]): Promise<FileRead> {
    let chosen: string | undefined;
    for (const candidate of candidates) {
      if (await lstat(join(this.root, base, candidate)).then(() => true, () => false)) {
        chosen = candidate;
        break;
      }
    }
    if (chosen === undefined) return { ok: false, reason: 'missing_file', detail: 'no such file' };
    const ref = `${base}/${chosen}`;
    let real: string;
    try {
      real = await realpath(join(this.root, base, chosen));
    } catch (error) {
      return { ok: false, reason: 'missing_file', detail: `cannot resolve (${errorCode(error)})` };
    }
    const containers = await this.allowed(base);
    if (!containers.some((container) => isInside(real, container))) {
      return { ok: false, reason: 'path_outside_root', detail: 'resolves (through a symlink) outside the dataset root' };
    }
    let handle: FileHandle | undefined;
    try {
      const info = await stat(real);
      if (!info.isFile()) return { ok: false, reason: 'missing_file', detail: 'not a regular file' };
      if (info.size > this.maxBytes) return tooLarge(this.maxBytes);
      // NOFOLLOW and NONBLOCK: a path swapped for a symlink or a FIFO since the checks fails instead of escaping
      // or hanging.
      handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      const opened = await handle.stat();
      if (!opened.isFile()) return { ok: false, reason: 'missing_file', detail: 'not a regular file' };
      if (opened.size > this.maxBytes) return tooLarge(this.maxBytes);
      const bytes = Buffer.alloc(opened.size);
      let offset = 0;
      while (offset < bytes.byteLength) {
        const { bytesRead } = await handle.read(bytes, offset, bytes.byteLength - offset, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
      }
      return { ok: true, bytes: bytes.subarray(0, offset), ref };
    } catch (error) {
      return { ok: false, reason: 'missing_file', detail: `cannot read (${errorCode(error)})` };
    } finally {
      await handle?.close();
    }
  }
}

function tooLarge(maxBytes: number): FileRead {
  return { ok: false, reason: 'bad_image', detail: `file larger than ${maxBytes} bytes` };
}

function isInside(path: string, folder: string): boolean {
  return path === folder || path.startsWith(folder.endsWith(sep) ? folder : folder + sep);
}

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? String((error as Error).message ?? error);
}

/** One unit's file reads: each distinct file read once, a few at a time, started as soon as they are asked for. */
class UnitReads {
  private readonly reads = new Map<string, Promise<FileRead>>();
  private readonly limiter = new Limiter(READS_IN_FLIGHT);

  constructor(
    private readonly files: ImageFiles,
    private readonly base: string,
  ) {}

  get(candidates: string[]): Promise<FileRead> {
    const key = candidates.join('\0');
    let read = this.reads.get(key);
    if (!read) {
      read = this.limiter.run(() => this.files.read(this.base, candidates));
      this.reads.set(key, read);
    }
    return read;
  }
}

/** One image of an entry: what the entry calls it (for reject details) and its read, pending or refused. */
interface Side {
  label: string;
  read: Promise<FileRead>;
}

function side(reads: UnitReads, split: string, field: string, index: number, raw: string): Side {
  const check = checkEntryPath(split, raw);
  return {
    label: `${field}[${index}] ${JSON.stringify(raw.length > 200 ? `${raw.slice(0, 200)}…` : raw)}`,
    read: check.ok ? reads.get(check.candidates) : Promise.resolve(check),
  };
}

async function pairDraft(
  sourceRef: string,
  prompt: PromptDraft,
  a: Side,
  b: Side,
  humanPref: number,
): Promise<Draft> {
  const readA = await a.read;
  if (!readA.ok) return reject(sourceRef, readA.reason, `${a.label}: ${readA.detail}`);
  const readB = await b.read;
  if (!readB.ok) return reject(sourceRef, readB.reason, `${b.label}: ${readB.detail}`);
  return {
    kind: 'pair',
    sourceRef,
    prompt,
    a: { bytes: readA.bytes, sourceRef: readA.ref },
    b: { bytes: readB.bytes, sourceRef: readB.ref },
    humanPref,
    split: prompt.split,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// train.json and test.json

type Parsed<T> = ({ ok: true } & T) | { ok: false; reason: RejectReason; detail: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

function isNumberList(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'number' && Number.isFinite(item));
}

/** A train entry: its prompt, its two paths (`image_path`, or `file_path` as DESIGN names it) and P(a ≻ b). */
export function parseTrainEntry(entry: unknown): Parsed<{ prompt: string; field: string; paths: [string, string]; pref: number }> {
  if (entry instanceof InvalidText) return { ok: false, reason: 'bad_text', detail: entry.detail };
  if (!isRecord(entry)) return { ok: false, reason: 'malformed_entry', detail: 'entry is not an object' };
  if (typeof entry.prompt !== 'string') return { ok: false, reason: 'malformed_entry', detail: 'no "prompt" string' };
  const field = entry.image_path !== undefined ? 'image_path' : 'file_path';
  const paths = entry[field];
  if (!isStringList(paths) || paths.length !== 2) {
    return { ok: false, reason: 'malformed_entry', detail: `"${field}" is not a list of 2 path strings` };
  }
  const votes = entry.human_preference;
  if (!isNumberList(votes) || votes.length !== 2) {
    return { ok: false, reason: 'malformed_entry', detail: '"human_preference" is not a list of 2 numbers' };
  }
  const [first, second] = votes as [number, number];
  if (!(first === 1 || first === 0 || first === 0.5) || first + second !== 1) {
    return { ok: false, reason: 'bad_label', detail: `human_preference [${first}, ${second}] is not [1, 0], [0, 1] or [0.5, 0.5]` };
  }
  return { ok: true, prompt: entry.prompt, field, paths: [paths[0]!, paths[1]!], pref: first };
}

/** A test group: prompt, 2 ≤ k ≤ MAX_GROUP_IMAGES image paths and their k ranks (lower = better). */
export function parseTestGroup(entry: unknown): Parsed<{ prompt: string; paths: string[]; ranks: number[] }> {
  if (entry instanceof InvalidText) return { ok: false, reason: 'bad_text', detail: entry.detail };
  if (!isRecord(entry)) return { ok: false, reason: 'malformed_entry', detail: 'group is not an object' };
  if (typeof entry.prompt !== 'string') return { ok: false, reason: 'malformed_entry', detail: 'no "prompt" string' };
  const paths = entry.image_path;
  if (!isStringList(paths) || paths.length < 2) {
    return { ok: false, reason: 'malformed_entry', detail: '"image_path" is not a list of at least 2 path strings' };
  }
  if (paths.length > MAX_GROUP_IMAGES) {
    return { ok: false, reason: 'malformed_entry', detail: `${paths.length} images, more than ${MAX_GROUP_IMAGES}` };
  }
  const ranks = entry.rank;
  if (!isNumberList(ranks) || ranks.length !== paths.length) {
    return { ok: false, reason: 'malformed_entry', detail: `"rank" is not a list of ${paths.length} numbers` };
  }
  return { ok: true, prompt: entry.prompt, paths, ranks };
}

/** P(a ≻ b) from two ranks: the lower rank wins, equal ranks tie. */
export function preferenceFromRanks(rankA: number, rankB: number): number {
  return rankA < rankB ? 1 : rankA > rankB ? 0 : 0.5;
}

function trainUnit(files: ImageFiles, json: JsonArrayFile, chunk: JsonChunk, index: number): IngestUnit {
  return {
    key: `train-c${pad5(index)}`,
    bytes: chunk.end - chunk.start,
    input: json.path,
    async *drafts(): AsyncGenerator<Draft> {
      const reads = new UnitReads(files, 'train');
      // Every read of the chunk starts now (a few at a time); drafts still come out in entry order.
      const planned = (await readChunk(json, chunk)).map((entry, offset): Draft | Promise<Draft> => {
        const sourceRef = `train.json#${chunk.first + offset}`;
        const parsed = parseTrainEntry(entry);
        if (!parsed.ok) return reject(sourceRef, parsed.reason, parsed.detail);
        const prompt: PromptDraft = { text: parsed.prompt, source: 'hpd', split: 'train' };
        const a = side(reads, 'train', parsed.field, 0, parsed.paths[0]);
        const b = side(reads, 'train', parsed.field, 1, parsed.paths[1]);
        return pairDraft(sourceRef, prompt, a, b, parsed.pref);
      });
      for (const draft of planned) yield await draft;
    },
  };
}

function testUnit(files: ImageFiles, json: JsonArrayFile, chunk: JsonChunk, index: number): IngestUnit {
  return {
    key: `test-c${pad5(index)}`,
    bytes: chunk.end - chunk.start,
    input: json.path,
    async *drafts(): AsyncGenerator<Draft> {
      const reads = new UnitReads(files, 'test');
      const planned = (await readChunk(json, chunk)).flatMap((entry, offset): Array<Draft | Promise<Draft>> => {
        const group = chunk.first + offset;
        const parsed = parseTestGroup(entry);
        if (!parsed.ok) return [reject(`test.json#${group}`, parsed.reason, parsed.detail)];
        const prompt: PromptDraft = { text: parsed.prompt, source: 'hpd', split: 'test' };
        const sides = parsed.paths.map((raw, i) => side(reads, 'test', 'image_path', i, raw));
        const pairs: Array<Promise<Draft>> = [];
        for (let i = 0; i < sides.length; i++) {
          for (let j = i + 1; j < sides.length; j++) {
            const pref = preferenceFromRanks(parsed.ranks[i]!, parsed.ranks[j]!);
            pairs.push(pairDraft(`test.json#${group}:${i}-${j}`, prompt, sides[i]!, sides[j]!, pref));
          }
        }
        return pairs;
      });
      for (const draft of planned) yield await draft;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// benchmark/*.json and benchmark_imgs/

interface BenchmarkList {
  /** The list's base name, which is also its style folder and its prompts' category. */
  name: string;
  key: string;
  json: JsonArrayFile;
}

interface BenchmarkFolder {
  list: BenchmarkList;
  model: string;
  modelKey: string;
  /** Folder of this model's images for this list, relative to benchmark_imgs/. */
  folder: string;
  /** Files in that folder that are no prompt's image, sorted. */
  extras: string[];
}

async function benchmarkLists(root: string): Promise<BenchmarkList[]> {
  const names = (await readdir(join(root, 'benchmark'), { withFileTypes: true }).catch(() => []))
    .filter((entry) => !entry.name.startsWith('.') && entry.name.endsWith('.json'))
    .map((entry) => entry.name)
    .sort();
  const lists: BenchmarkList[] = [];
  for (const file of names) {
    const name = file.slice(0, -'.json'.length);
    const json = await optionalJsonArray(root, `benchmark/${file}`, BENCHMARK_CHUNK);
    if (json) lists.push({ name, key: safeName(name), json });
  }
  return lists;
}

/**
 * Which model folders hold images for which list: `benchmark_imgs/<model>/<list>/` (the published layout), or
 * `benchmark_imgs/<model>/` itself when there is exactly one list and images lie there (the layout DESIGN names).
 * A model takes part in a list only through one of these folders; within it, every prompt's image is expected.
 */
async function benchmarkFolders(root: string, lists: BenchmarkList[]): Promise<BenchmarkFolder[]> {
  const base = join(root, 'benchmark_imgs');
  const models: string[] = [];
  for (const entry of await readdir(base, { withFileTypes: true }).catch(() => [])) {
    if (entry.name.startsWith('.')) continue;
    if (await isDirectory(join(base, entry.name))) models.push(entry.name);
  }
  models.sort();
  const folders: BenchmarkFolder[] = [];
  for (const model of models) {
    const loose = (await listFiles(join(base, model))).filter((name) => IMAGE_NAME.test(name));
    if (loose.length > 0 && lists.length > 1) {
      throw new InputError(
        `benchmark_imgs/${model}: images directly in the model folder but ${lists.length} benchmark lists; ` +
          `put them in benchmark_imgs/${model}/<list>/`,
      );
    }
    for (const list of lists) {
      let folder: string | null = null;
      if (await isDirectory(join(base, model, list.name))) folder = `${model}/${list.name}`;
      else if (loose.length > 0) folder = model;
      if (folder === null) continue;
      const expected = (name: string): boolean => {
        const match = /^(\d+)\.jpg$/.exec(name);
        return match !== null && Number(match[1]) < list.json.count && imageName(Number(match[1])) === name;
      };
      const extras = (await listFiles(join(base, folder))).filter((name) => !expected(name));
      folders.push({ list, model, modelKey: safeName(model), folder, extras });
    }
  }
  return folders;
}

function benchmarkPromptUnit(list: BenchmarkList, chunk: JsonChunk, index: number): IngestUnit {
  return {
    key: `bench+${list.key}+c${pad5(index)}`,
    bytes: chunk.end - chunk.start,
    input: list.json.path,
    async *drafts(): AsyncGenerator<Draft> {
      for (const [offset, text] of (await readChunk(list.json, chunk)).entries()) {
        const at = chunk.first + offset;
        const sourceRef = `${list.json.name}#${at}`;
        if (text instanceof InvalidText) yield reject(sourceRef, 'bad_text', text.detail);
        else if (typeof text !== 'string') yield reject(sourceRef, 'malformed_entry', 'prompt is not a string');
        else yield { kind: 'prompt', sourceRef, prompt: benchmarkPrompt(list, text, at) };
      }
    },
  };
}

function benchmarkImageUnits(files: ImageFiles, folder: BenchmarkFolder): IngestUnit[] {
  const { list, model } = folder;
  const units: IngestUnit[] = list.json.chunks.map((chunk, index) => ({
    key: `bench+${list.key}+${folder.modelKey}+c${pad5(index)}`,
    bytes: 0,
    async *drafts(): AsyncGenerator<Draft> {
      const reads = new UnitReads(files, 'benchmark_imgs');
      const prompts = await readChunk(list.json, chunk);
      const pending = prompts.map((text, offset) => {
        const at = chunk.first + offset;
        const file = `${folder.folder}/${imageName(at)}`;
        return { at, text, file, read: typeof text === 'string' ? reads.get([file]) : null };
      });
      for (const { at, text, file, read } of pending) {
        const sourceRef = `benchmark_imgs/${file}`;
        if (read === null || typeof text !== 'string') {
          const why = text instanceof InvalidText ? `was rejected (${text.detail})` : 'is not a string';
          yield reject(sourceRef, 'missing_prompt', `prompt ${at} of ${list.json.name} ${why}`);
          continue;
        }
        const result = await read;
        if (!result.ok) {
          yield reject(sourceRef, result.reason, result.detail);
          continue;
        }
        yield {
          kind: 'image',
          sourceRef,
          prompt: benchmarkPrompt(list, text, at),
          image: { bytes: result.bytes, sourceRef, model, seed: null },
        };
      }
    },
  }));
  if (folder.extras.length > 0) {
    units.push({
      key: `bench+${list.key}+${folder.modelKey}+other`,
      bytes: 0,
      drafts: () => folder.extras.map((name) => extraDraft(folder, name)),
    });
  }
  return units;
}

const IMAGE_NAME = /^(\d+)(?:_\d+)?\.(?:jpe?g|png|webp)$/i;

/** A file in a benchmark image folder that is not `<index:05d>.jpg` of a listed prompt. */
function extraDraft(folder: BenchmarkFolder, name: string): Draft {
  const sourceRef = `benchmark_imgs/${folder.folder}/${name}`;
  const match = IMAGE_NAME.exec(name);
  const index = match ? Number(match[1]) : -1;
  if (index >= folder.list.json.count) {
    return reject(sourceRef, 'missing_prompt', `prompt ${index} is not in ${folder.list.json.name} (${folder.list.json.count} prompts)`);
  }
  const expected = index >= 0 ? imageName(index) : '<index:05d>.jpg';
  return reject(sourceRef, 'unrecognised_name', `expected ${expected}`);
}

function benchmarkPrompt(list: BenchmarkList, text: string, index: number): PromptDraft {
  return { text, source: 'hpd', split: 'benchmark', category: list.name, promptIndex: index };
}

function imageName(index: number): string {
  return `${pad5(index)}.jpg`;
}

function pad5(n: number): string {
  return String(n).padStart(5, '0');
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then((info) => info.isDirectory(), () => false);
}

/** Names of the non-hidden entries of a folder that are not folders (files, symlinks to files, broken links). */
async function listFiles(path: string): Promise<string[]> {
  const names: string[] = [];
  for (const entry of await readdir(path, { withFileTypes: true }).catch(() => [])) {
    if (entry.name.startsWith('.') || entry.isDirectory()) continue;
    if (entry.isSymbolicLink() && (await isDirectory(join(path, entry.name)))) continue;
    names.push(entry.name);
  }
  return names.sort();
}

// ---------------------------------------------------------------------------------------------------------------
// JSON arrays read a chunk of entries at a time

export interface JsonChunk {
  /** Index of the chunk's first entry. */
  first: number;
  count: number;
  /** Byte range from the first entry's first byte to the last entry's last byte. */
  start: number;
  end: number;
}

export interface JsonArrayFile {
  path: string;
  /** Path relative to the dataset root, as source refs and errors name it. */
  name: string;
  count: number;
  chunks: JsonChunk[];
  size: number;
  mtimeMs: number;
}

async function optionalJsonArray(root: string, name: string, chunkSize: number): Promise<JsonArrayFile | null> {
  const path = join(root, name);
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw new InputError(`${path}: cannot read (${errorCode(error)})`);
  });
  if (!info) return null;
  if (!info.isFile()) throw new InputError(`${path}: not a file`);
  return indexJsonArray(path, name, chunkSize);
}

const BYTE = {
  tab: 0x09,
  lf: 0x0a,
  cr: 0x0d,
  space: 0x20,
  quote: 0x22,
  comma: 0x2c,
  openBracket: 0x5b,
  backslash: 0x5c,
  closeBracket: 0x5d,
  openBrace: 0x7b,
  closeBrace: 0x7d,
} as const;

/**
 * Finds the byte ranges of a top-level JSON array's entries, `chunkSize` entries per chunk, in one streaming pass.
 * It tracks only strings and nesting depth: the entries themselves are validated when a chunk is parsed. Structural
 * bytes are ASCII and never occur inside a UTF-8 multi-byte sequence, so scanning bytes is exact.
 */
export async function indexJsonArray(path: string, name: string, chunkSize: number): Promise<JsonArrayFile> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw new InputError(`${path}: cannot read (${errorCode(error)})`);
  }
  const fail = (what: string, at: number): never => {
    throw new InputError(`${path}: not a JSON array (${what} at byte ${at})`);
  };
  const chunks: JsonChunk[] = [];
  let current: JsonChunk | undefined;
  let count = 0;
  let phase: 'before' | 'inside' | 'after' = 'before';
  let depth = 0;
  let inString = false;
  let escaped = false;
  let entryStart = -1;
  let entryEnd = -1;
  try {
    const info = await handle.stat();
    const buffer = Buffer.allocUnsafe(1 << 20);
    let position = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.byteLength, position);
      if (bytesRead === 0) break;
      const bytes = buffer.subarray(0, bytesRead);
      let i = 0;
      if (position === 0 && bytesRead >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) i = 3;
      // Next quote and backslash at or after the scan position in this read (-1: none left; -2: not searched yet).
      let nextQuote = -2;
      let nextBackslash = -2;
      for (; i < bytesRead; i++) {
        if (inString) {
          if (escaped) {
            escaped = false;
            continue;
          }
          // Most of the file is string content: jump over it natively rather than byte by byte.
          if (nextBackslash !== -1 && nextBackslash < i) nextBackslash = bytes.indexOf(BYTE.backslash, i);
          if (nextQuote !== -1 && nextQuote < i) nextQuote = bytes.indexOf(BYTE.quote, i);
          const end = nextQuote === -1 ? bytesRead : nextQuote;
          if (nextBackslash !== -1 && nextBackslash < end) {
            i = nextBackslash;
            escaped = true;
          } else if (nextQuote === -1) {
            i = bytesRead - 1;
          } else {
            i = nextQuote;
            inString = false;
            entryEnd = position + nextQuote + 1;
          }
          continue;
        }
        const c = bytes[i]!;
        if (c === BYTE.space || c === BYTE.lf || c === BYTE.cr || c === BYTE.tab) continue;
        const at = position + i;
        if (phase === 'before') {
          if (c !== BYTE.openBracket) fail('the top level is not an array', at);
          phase = 'inside';
          depth = 1;
          continue;
        }
        if (phase === 'after') fail('content after the array', at);
        if (depth === 1 && (c === BYTE.comma || c === BYTE.closeBracket)) {
          if (entryStart >= 0) {
            if (count % chunkSize === 0) {
              current = { first: count, count: 0, start: entryStart, end: entryEnd };
              chunks.push(current);
            }
            current!.count++;
            current!.end = entryEnd;
            count++;
            entryStart = -1;
          } else if (c === BYTE.comma || count > 0) {
            fail(c === BYTE.comma ? 'an empty entry' : 'a trailing comma', at);
          }
          if (c === BYTE.closeBracket) {
            phase = 'after';
            depth = 0;
          }
          continue;
        }
        if (depth === 1 && entryStart < 0) entryStart = at;
        if (c === BYTE.quote) inString = true;
        else if (c === BYTE.openBrace || c === BYTE.openBracket) depth++;
        else if (c === BYTE.closeBrace || c === BYTE.closeBracket) {
          depth--;
          if (depth < 1) fail('an unbalanced bracket', at);
        }
        entryEnd = at + 1;
      }
      position += bytesRead;
    }
    if (phase !== 'after') fail('the file ends before the array is closed', position);
    return { path, name, count, chunks, size: info.size, mtimeMs: info.mtimeMs };
  } finally {
    await handle.close();
  }
}

/** The entries of one chunk, parsed. */
export async function readChunk(file: JsonArrayFile, chunk: JsonChunk): Promise<unknown[]> {
  const bytes = Buffer.alloc(chunk.end - chunk.start);
  const handle = await open(file.path, 'r');
  try {
    const info = await handle.stat();
    if (info.size !== file.size || info.mtimeMs !== file.mtimeMs) {
      throw new InputError(`${file.path}: changed while it was being ingested`);
    }
    let offset = 0;
    while (offset < bytes.byteLength) {
      const { bytesRead } = await handle.read(bytes, offset, bytes.byteLength - offset, chunk.start + offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
    }
  } finally {
    await handle.close();
  }
  const last = chunk.first + chunk.count - 1;
  let entries: unknown;
  const fail = (error: unknown): never => {
    throw new InputError(`${file.path}: not valid JSON in entries ${chunk.first}–${last} (${(error as Error).message})`);
  };
  const text = decodeUtf8(bytes);
  if (text.ok) {
    try {
      entries = JSON.parse(`[${text.text}]`);
    } catch (error) {
      fail(error);
    }
  } else {
    // Some entry is not UTF-8: parse entry by entry, so that it alone is rejected and the others still read.
    entries = jsonEntrySpans(bytes, 0, bytes.length).map(([from, to]): unknown => {
      const entry = decodeUtf8(bytes.subarray(from, to));
      if (!entry.ok) return new InvalidText(chunk.start + from + entry.offset);
      try {
        return JSON.parse(entry.text);
      } catch (error) {
        return fail(error);
      }
    });
  }
  if (!Array.isArray(entries) || entries.length !== chunk.count) {
    throw new InputError(`${file.path}: entries ${chunk.first}–${last} are not ${chunk.count} comma-separated values`);
  }
  return entries;
}
