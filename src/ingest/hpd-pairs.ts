// train.json pairs and test.json ranked groups (k images → k·(k−1)/2 pairs): their entries checked, and the units
// that turn a chunk of them into pair drafts.
import type { RejectReason } from '../core/schema.ts';
import { InvalidText } from '../io/text.ts';
import { reject, type Draft, type IngestUnit, type PromptDraft } from './drafts.ts';
import { checkEntryPath, UnitReads, type FileRead, type ImageFiles } from './hpd-files.ts';
import { pad5, readChunk, type JsonArrayFile, type JsonChunk } from '../io/json-array.ts';

export const TRAIN_CHUNK = 512;
export const TEST_CHUNK = 64;
/** HPD's test groups hold a handful of images; a group this large would make k·(k−1)/2 pairs without bound. */
export const MAX_GROUP_IMAGES = 64;

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

async function pairDraft(sourceRef: string, prompt: PromptDraft, a: Side, b: Side, humanPref: number): Promise<Draft> {
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

/** A train entry: its prompt, its two paths (`image_path`, or `file_path` as docs/design.md §3 names it) and P(a ≻ b). */
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

export function trainUnit(files: ImageFiles, json: JsonArrayFile, chunk: JsonChunk, index: number): IngestUnit {
  return {
    key: `train-c${pad5(index)}`,
    rank: 3,
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

export function testUnit(files: ImageFiles, json: JsonArrayFile, chunk: JsonChunk, index: number): IngestUnit {
  return {
    key: `test-c${pad5(index)}`,
    rank: 2,
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
