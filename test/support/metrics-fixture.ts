// Tiny real ONNX scorers and the metric JSONs that describe them, written into a folder: split CLIP towers shared by
// a PickScore-style and a CLIP-score metric (and by the aesthetic head, as ViT-L/14 is shared in the real setup), a
// full CLIP export behind an HPS-style metric, and a vision tower without projection that a metric must refuse.
// The tokenizer is the real CLIP vocabulary; the tiny text towers hash its ids into their small token table.
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  tinyAestheticModel,
  tinyAestheticWeights,
  tinyClipModel,
  tinyClipTextModel,
  tinyClipVisionModel,
  tinyClipVisionModelWithoutProjection,
  type TinyAestheticOptions,
  type TinyClipOptions,
} from '../../tools/onnx-builder/tiny-models.ts';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** The real CLIP tokenizer.json, as the repository ships it. */
export function clipTokenizerPath(): string {
  const candidates = [join(REPO, 'data/models/tokenizer.json')];
  const found = candidates.find((path) => existsSync(path));
  if (!found) throw new Error(`no CLIP tokenizer.json at ${candidates.join(' or ')}`);
  return found;
}

/** Split towers: small images (64², patch 16 → 16 patches) keep preprocessing and inference fast. */
export const SPLIT_CLIP: TinyClipOptions = { seed: 1, width: 16, embedDim: 16, imageSize: 64, patchSize: 16 };
/** The full export keeps the default 224² input, so the default `image_size` path is exercised too. */
export const FULL_CLIP: TinyClipOptions = { seed: 2, width: 16, embedDim: 16, imageSize: 224, patchSize: 32 };
export const AESTHETIC: TinyAestheticOptions = { inputDim: 16, seed: 3 };
/** PickScore's logit_scale as written in its metric JSON (deliberately not the default 100). */
export const PICK_LOGIT_SCALE = 50;

export interface MetricsFixture {
  dir: string;
  tokenizer: string;
  models: { text: string; vision: string; full: string; head: string; visionNoProjection: string };
  /** Metric JSON paths. */
  metrics: { pickscore: string; clip: string; hps: string; aesthetic: string };
  /** Writes another metric JSON into the fixture folder (model paths relative to it) and returns its path. */
  writeMetric(file: string, json: Record<string, unknown>): Promise<string>;
}

/** Writes the models and the four metric JSONs into `dir` (created if needed). */
export async function writeMetricsFixture(dir: string): Promise<MetricsFixture> {
  await mkdir(dir, { recursive: true });
  const tokenizer = clipTokenizerPath();
  const models = {
    text: join(dir, 'clip-text.onnx'),
    vision: join(dir, 'clip-vision.onnx'),
    full: join(dir, 'clip-full.onnx'),
    head: join(dir, 'aesthetic-mlp.onnx'),
    visionNoProjection: join(dir, 'clip-vision-no-projection.onnx'),
  };
  await Promise.all([
    writeFile(models.text, tinyClipTextModel(SPLIT_CLIP)),
    writeFile(models.vision, tinyClipVisionModel(SPLIT_CLIP)),
    writeFile(models.full, tinyClipModel(FULL_CLIP)),
    writeFile(models.head, tinyAestheticModel(AESTHETIC)),
    writeFile(models.visionNoProjection, tinyClipVisionModelWithoutProjection(SPLIT_CLIP)),
  ]);
  const writeMetric = async (file: string, json: Record<string, unknown>): Promise<string> => {
    const path = join(dir, file);
    await writeFile(path, `${JSON.stringify(json, null, 2)}\n`);
    return path;
  };
  const split = { text_model: 'clip-text.onnx', vision_model: 'clip-vision.onnx', tokenizer, image_size: SPLIT_CLIP.imageSize };
  const metrics = {
    pickscore: await writeMetric('pickscore.json', {
      name: 'pickscore',
      kind: 'pickscore',
      version: 'tiny-pickscore-1',
      ...split,
      logit_scale: PICK_LOGIT_SCALE,
    }),
    clip: await writeMetric('clip.json', { name: 'clip', kind: 'clip', version: 'tiny-clip-1', score: 'clip-100', ...split }),
    hps: await writeMetric('hps.json', { name: 'hps', kind: 'hps', version: 'tiny-hps-2.1', clip_model: 'clip-full.onnx', tokenizer }),
    aesthetic: await writeMetric('aesthetic.json', {
      name: 'aesthetic',
      kind: 'aesthetic',
      version: 'tiny-aesthetic-1',
      vision_model: 'clip-vision.onnx',
      head_model: 'aesthetic-mlp.onnx',
      image_size: SPLIT_CLIP.imageSize,
    }),
  };
  return { dir, tokenizer, models, metrics, writeMetric };
}

/**
 * The tiny aesthetic MLP evaluated in float64 from its weights (torch Linear layout, no activations): an
 * implementation independent of the ONNX graph and of ONNX Runtime.
 */
export function aestheticReference(embedding: ArrayLike<number>): number {
  let x = Array.from(embedding);
  for (const layer of tinyAestheticWeights(AESTHETIC)) {
    const y = new Array<number>(layer.outFeatures);
    for (let o = 0; o < layer.outFeatures; o++) {
      let sum = layer.bias[o]!;
      for (let i = 0; i < layer.inFeatures; i++) sum += layer.weight[o * layer.inFeatures + i]! * x[i]!;
      y[o] = sum;
    }
    x = y;
  }
  return x[0]!;
}
