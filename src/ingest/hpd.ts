// HPDv2 as published (docs/design.md §3): train.json pairs, test.json ranked groups (k images → k·(k−1)/2 pairs) and
// benchmark prompt lists with one generated image per prompt and model.
//
// The JSON lists are indexed once and then read a chunk of entries at a time, so train.json (~800k entries) is never
// held whole. Every image path in them is untrusted: it must stay under <root>/<split>/ as written and under the
// dataset root once symlinks are resolved, and its size is bounded, before a byte of the file is read.
import { stat } from 'node:fs/promises';
import { describeInputs } from '../core/manifest.ts';
import type { IngestUnit } from './drafts.ts';
import { runIngest, type IngestOptions, type IngestSummary } from './driver.ts';
import { InputError } from '../core/errors.ts';
import { ImageFiles } from './hpd-files.ts';
import { MAX_IMAGE_FILE_BYTES } from '../models/image-check.ts';
import { optionalJsonArray, readChunk } from '../io/json-array.ts';
import { TEST_CHUNK, testUnit, TRAIN_CHUNK, trainUnit } from './hpd-pairs.ts';
import { benchmarkFolders, benchmarkImageUnits, benchmarkLists, benchmarkPromptUnit } from './hpd-benchmark.ts';

export { checkEntryPath, type PathCheck } from './hpd-files.ts';
export { MAX_IMAGE_FILE_BYTES } from '../models/image-check.ts';
export { indexJsonArray, readChunk, type JsonArrayFile, type JsonChunk } from '../io/json-array.ts';
export { MAX_GROUP_IMAGES, parseTestGroup, parseTrainEntry, preferenceFromRanks, TEST_CHUNK, TRAIN_CHUNK } from './hpd-pairs.ts';
export { BENCHMARK_CHUNK } from './hpd-benchmark.ts';

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

  const inputs = await describeInputs(
    options.out,
    jsons.map((json) => json.path),
  );
  const runOptions = { decode: options.decode ?? true, maxFileBytes };
  return runIngest('hpd', units, inputs, runOptions, options);
}
