// The HPD benchmark: benchmark/<list>.json prompt lists and benchmark_imgs/<model>/[<list>/]<index:05d>.jpg, one
// generated image per prompt and model; files there that are no listed prompt's image are recorded rejects.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { safeName } from '../io/paths.ts';
import { InvalidText } from '../io/text.ts';
import { reject, type Draft, type IngestUnit, type PromptDraft } from './drafts.ts';
import { InputError } from '../core/errors.ts';
import { UnitReads, type ImageFiles } from './hpd-files.ts';
import { optionalJsonArray, pad5, readChunk, type JsonArrayFile, type JsonChunk } from '../io/json-array.ts';

export const BENCHMARK_CHUNK = 512;

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

export async function benchmarkLists(root: string): Promise<BenchmarkList[]> {
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
 * `benchmark_imgs/<model>/` itself when there is exactly one list and images lie there (the layout docs/design.md §3 names).
 * A model takes part in a list only through one of these folders; within it, every prompt's image is expected.
 */
export async function benchmarkFolders(root: string, lists: BenchmarkList[]): Promise<BenchmarkFolder[]> {
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

export function benchmarkPromptUnit(list: BenchmarkList, chunk: JsonChunk, index: number): IngestUnit {
  return {
    key: `bench+${list.key}+c${pad5(index)}`,
    rank: 0,
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

export function benchmarkImageUnits(files: ImageFiles, folder: BenchmarkFolder): IngestUnit[] {
  const { list, model } = folder;
  const units: IngestUnit[] = list.json.chunks.map((chunk, index) => ({
    key: `bench+${list.key}+${folder.modelKey}+c${pad5(index)}`,
    rank: 1,
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
      rank: 1,
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

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (info) => info.isDirectory(),
    () => false,
  );
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
