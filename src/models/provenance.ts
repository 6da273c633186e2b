// What made a metric's scores: the sha256 of every model and tokenizer file it reads, its preprocessing profile,
// the metric JSON's options and the tool version. `label` records it with every score part and folds its fingerprint
// into the unit's version, so that another model file under the same "version" string, or another profile, rescores.
import { stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { sha256Hex } from '../core/ids.ts';
import { hashFile } from '../core/manifest.ts';
import { TOOL_VERSION } from '../core/version.ts';
import type { MetricSpec } from './metric-spec.ts';
import type { PreprocessProfile } from './preprocess-profiles.ts';

export interface FileDigest {
  /** The file's name (the path is the metric JSON's business, and differs between machines). */
  file: string;
  bytes: number;
  sha256: string;
}

export interface MetricProvenance {
  tool: string;
  preprocess: PreprocessProfile;
  /** By role (full, text, vision, head, and `<role>.data` for an ONNX external-data file beside the model). */
  models: Record<string, FileDigest>;
  /** tokenizer.json, or vocab.json + merges.txt, and tokenizer_config.json when one is read. */
  tokenizer: FileDigest[];
  /** The metric JSON's settings, as parsed (defaults filled in). */
  options: {
    kind: string;
    version: string;
    score: string;
    image_size: number;
    image_mean: readonly number[];
    image_std: readonly number[];
    logit_scale: number;
    temperature: number;
    pad_token_id: number | null;
  };
  /**
   * sha256 of everything above that the scores depend on: not the tool version (a release that changes scores
   * says so), not τ (consensus reads it from meta/scores/, the scores do not depend on it).
   */
  fingerprint: string;
}

/** File digests for one run, keyed by path, size and mtime: each model is read once however many units use it. */
export class FileDigests {
  private readonly cache = new Map<string, Promise<FileDigest>>();

  async of(path: string): Promise<FileDigest> {
    const info = await stat(path);
    const key = `${path}\u0000${info.size}\u0000${info.mtimeMs}`;
    let digest = this.cache.get(key);
    if (!digest) {
      digest = hashFile(path).then(({ sha256, bytes }) => ({ file: basename(path), bytes, sha256 }));
      this.cache.set(key, digest);
    }
    return digest;
  }

  /** Files hashed so far (for tests: a second metric on the same files hashes nothing). */
  get size(): number {
    return this.cache.size;
  }
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null))?.isFile() ?? false;
}

/** The files ModelHub.tokenizer reads for this spec. */
async function tokenizerFiles(path: string): Promise<string[]> {
  const files = path.endsWith('vocab.json') ? [path, path.replace(/vocab\.json$/, 'merges.txt')] : [path];
  const config = join(dirname(path), 'tokenizer_config.json');
  if (await exists(config)) files.push(config);
  return files;
}

export async function metricProvenance(spec: MetricSpec, digests: FileDigests): Promise<MetricProvenance> {
  const models: Record<string, FileDigest> = {};
  for (const [role, path] of Object.entries(spec.models)) {
    if (path === undefined) continue;
    models[role] = await digests.of(path);
    if (await exists(`${path}.data`)) models[`${role}.data`] = await digests.of(`${path}.data`);
  }
  const tokenizer = spec.tokenizer ? await Promise.all((await tokenizerFiles(spec.tokenizer)).map((f) => digests.of(f))) : [];
  const options = {
    kind: spec.kind,
    version: spec.version,
    score: spec.score,
    image_size: spec.image.size,
    image_mean: spec.image.mean,
    image_std: spec.image.std,
    logit_scale: spec.logitScale,
    temperature: spec.temperature,
    pad_token_id: spec.padTokenId ?? null,
  };
  const { temperature: _tau, ...scoring } = options;
  const hashes = (list: FileDigest[]) => list.map((d) => d.sha256);
  const fingerprint = sha256Hex(
    JSON.stringify({
      preprocess: spec.preprocess,
      models: Object.fromEntries(Object.entries(models).map(([role, d]) => [role, d.sha256])),
      tokenizer: hashes(tokenizer),
      options: scoring,
    }),
  );
  return { tool: TOOL_VERSION, preprocess: spec.preprocess, models, tokenizer, options, fingerprint };
}

/** The version a label unit is recorded under: the user's string, and the fingerprint of what computes the scores. */
export function unitVersion(spec: MetricSpec, provenance: MetricProvenance): string {
  return `${spec.version} [${provenance.fingerprint.slice(0, 16)}]`;
}
