// Where the JSON that describes a Parquet folder lives: under meta/, never inside the folder, because engines that
// read a folder as one dataset (polars, DuckDB `dir/*`, Spark) fail on any file in it that is not Parquet.
// Datasets written before this layout kept the file inside the folder; readers fall back to that place.
import { join } from 'node:path';
import { isMissingFile, readJsonFile } from '../io/json-file.ts';
import { resolveInside } from '../io/paths.ts';

export interface MetaLocation {
  /** Where writers put it: meta/… */
  path: string;
  /** Where datasets of earlier versions have it, read when `path` is missing. */
  legacy: string;
}

/** meta/scores/<metric>.json (earlier: scores/<metric>/metric.json). */
export function metricInfoLocation(dir: string, metric: string): MetaLocation {
  return { path: resolveInside(dir, join('meta', 'scores', `${metric}.json`)), legacy: join(dir, 'scores', metric, 'metric.json') };
}

/** meta/consensus/<rule folder>.json (earlier: consensus/<rule folder>/options.json). */
export function consensusOptionsLocation(dir: string, ruleFolderName: string): MetaLocation {
  return {
    path: resolveInside(dir, join('meta', 'consensus', `${ruleFolderName}.json`)),
    legacy: join(dir, 'consensus', ruleFolderName, 'options.json'),
  };
}

/** meta/latents.json or meta/text.json (earlier: latents/encoder.json, text/encoder.json). */
export function encoderInfoLocation(dir: string, table: 'latents' | 'text'): MetaLocation {
  return { path: resolveInside(dir, join('meta', `${table}.json`)), legacy: join(dir, table, 'encoder.json') };
}

/**
 * The parsed file at its place, else at its legacy place. When neither exists, the ENOENT error of the current place
 * is thrown (callers that accept a missing file test it with isMissingFile); a damaged file is an error naming it.
 */
export async function readMetaJson(location: MetaLocation): Promise<unknown> {
  try {
    return await readJsonFile(location.path);
  } catch (error) {
    if (!isMissingFile(error)) throw error;
    try {
      return await readJsonFile(location.legacy);
    } catch (legacyError) {
      if (isMissingFile(legacyError)) throw error;
      throw legacyError;
    }
  }
}

/**
 * consensus/<folder>: the rule's name (docs/design.md §2) when it runs with the defaults (ties drop, δ 0, no weights, seed 0),
 * with the options that differ appended otherwise, so two variants of one rule never overwrite each other.
 */
export function ruleFolder(rule: string, variant: { ties?: string; margin?: number; weights?: string; seed?: number } = {}): string {
  const parts = [rule];
  if (variant.ties && variant.ties !== 'drop') parts.push(`ties-${variant.ties}`);
  if (variant.margin) parts.push(`margin-${variant.margin}`);
  if (variant.weights) parts.push(`weights-${variant.weights}`);
  if (variant.seed) parts.push(`seed-${variant.seed}`);
  return parts.join('.').replace(/[^a-z0-9_.=-]+/gi, '-');
}
