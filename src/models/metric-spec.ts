import { JsonFileError, readJsonFile } from '../io/json-file.ts';
import { dirname, resolve } from 'node:path';
import { MetricSpecError } from '../core/errors.ts';
import { CLIP_MEAN, CLIP_STD } from './preprocess.ts';
import { PREPROCESS_PROFILES, type PreprocessProfile } from './preprocess-profiles.ts';

import { METRIC_KINDS, metricKind, type MetricKind, type ScoreFormula } from './metrics/registry.ts';

export { METRIC_KINDS, PREPROCESS_PROFILES, type MetricKind, type PreprocessProfile, type ScoreFormula };

export interface MetricSpec {
  name: string;
  kind: MetricKind;
  version: string;
  /** Absolute paths. A metric has either a full CLIP export, or a vision tower (+ text tower unless aesthetic). */
  models: { full?: string; text?: string; vision?: string; head?: string };
  tokenizer?: string;
  padTokenId?: number;
  image: { size: number; mean: readonly number[]; std: readonly number[] };
  /** How images become the tower's pixel tensor: the metric's own reference code (docs/design.md §4). */
  preprocess: PreprocessProfile;
  score: ScoreFormula;
  logitScale: number;
  /** τ of p = σ((s_a − s_b)/τ) (docs/design.md §5). */
  temperature: number;
  /** Where the spec came from, for messages. */
  path: string;
}

/** Largest `image_size`: CLIP-family towers read 224 or 336; 2048 leaves room for any real export. */
export const MAX_IMAGE_SIZE = 2048;

export async function loadMetricSpec(path: string): Promise<MetricSpec> {
  let raw: unknown;
  try {
    raw = await readJsonFile(path);
  } catch (error) {
    // A JsonFileError already names the file; a read error (ENOENT, EISDIR) does not.
    const reason = error instanceof JsonFileError ? error.message.slice(path.length + 2) : (error as Error).message.split('\n')[0];
    throw new MetricSpecError(`${path}: cannot read metric JSON (${reason})`);
  }
  return parseMetricSpec(raw, path);
}

export function parseMetricSpec(raw: unknown, path: string): MetricSpec {
  const fail = (message: string): never => {
    throw new MetricSpecError(`${path}: ${message}`);
  };
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) fail('expected a JSON object');
  const json = raw as Record<string, unknown>;
  const str = (key: string): string | undefined => {
    const value = json[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value === '') fail(`"${key}" must be a non-empty string`);
    return value as string;
  };
  const num = (key: string): number | undefined => {
    const value = json[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isFinite(value)) fail(`"${key}" must be a number`);
    return value as number;
  };
  const name = str('name') ?? fail('"name" is required');
  if (!/^[a-z0-9][a-z0-9_.-]*$/i.test(name)) fail(`"name" must be a plain identifier (letters, digits, _ . -), got "${name}"`);
  const kind = str('kind') ?? fail('"kind" is required');
  if (!(METRIC_KINDS as readonly string[]).includes(kind)) fail(`"kind" must be one of ${METRIC_KINDS.join(', ')}`);
  const kindName = kind as MetricKind;
  const base = dirname(path);
  const at = (key: string): string | undefined => {
    const value = str(key);
    return value === undefined ? undefined : resolve(base, value);
  };
  const models = { full: at('clip_model'), text: at('text_model'), vision: at('vision_model'), head: at('head_model') };
  const definition = metricKind(kindName);
  definition.checkModels(models, fail);
  const tokenizer = at('tokenizer');
  if (definition.needsTokenizer(models) && !tokenizer) fail('needs "tokenizer" (tokenizer.json, or vocab.json beside merges.txt)');
  const score = str('score') ?? definition.scores[0]!;
  if (!definition.scores.includes(score)) fail(`"score" for kind ${kindName} must be ${definition.scores.join(' or ')}`);
  const triple = (key: string, fallback: readonly number[], positive = false): readonly number[] => {
    const value = json[key];
    if (value === undefined) return fallback;
    if (
      !Array.isArray(value) ||
      value.length !== 3 ||
      !value.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0))
    ) {
      fail(`"${key}" must be three numbers${positive ? ' > 0' : ''}`);
    }
    return value as number[];
  };
  const size = num('image_size') ?? 224;
  // Each batch allocates batch × 3 × size² floats: the bound turns a typo into this message, not an allocation failure.
  if (!Number.isInteger(size) || size < 8 || size > MAX_IMAGE_SIZE)
    fail(`"image_size" must be an integer in 8..${MAX_IMAGE_SIZE}, got ${size}`);
  const preprocess = str('preprocess') ?? definition.defaultPreprocess;
  if (!(PREPROCESS_PROFILES as readonly string[]).includes(preprocess))
    fail(`"preprocess" must be one of ${PREPROCESS_PROFILES.join(', ')}, got "${preprocess}"`);
  const temperature = num('temperature') ?? definition.defaultTemperature(score);
  if (!(temperature > 0)) fail('"temperature" must be > 0');
  const padTokenId = num('pad_token_id');
  if (padTokenId !== undefined && !(Number.isSafeInteger(padTokenId) && padTokenId >= 0))
    fail(`"pad_token_id" must be an integer ≥ 0, got ${padTokenId}`);
  return {
    name,
    kind: kindName,
    version: str('version') ?? name,
    models,
    ...(tokenizer === undefined ? {} : { tokenizer }),
    ...(padTokenId === undefined ? {} : { padTokenId }),
    image: { size, mean: triple('image_mean', CLIP_MEAN), std: triple('image_std', CLIP_STD, true) },
    preprocess: preprocess as PreprocessProfile,
    score: score as ScoreFormula,
    logitScale: num('logit_scale') ?? 100,
    temperature,
    path,
  };
}

/** Metrics that read the same image tower with the same preprocessing share one forward pass per image. */
export function visionKey(spec: MetricSpec): string {
  const tower = spec.models.full ? `full:${spec.models.full}` : `vision:${spec.models.vision}`;
  return `${tower}|${spec.preprocess}|${spec.image.size}|${spec.image.mean.join(',')}|${spec.image.std.join(',')}`;
}
