// The cached data a run trains on, as the trainer takes it: loader batches as tensors, and the check that the encoded
// latents and text states fit the configured model, before anything is written.
import * as tf from '@tensorflow/tfjs';
import { encoderInfoLocation, readMetaJson } from '../core/dataset-meta.ts';
import { formatShape } from '../io/float16-bytes.ts';
import { JsonFileError } from '../io/json-file.ts';
import type { TrainConfig } from './config.ts';
import type { LoaderBatch, PairLoader } from './loader.ts';
import { describeError, TrainError } from './run-api.ts';
import type { PairBatch } from './trainer-step.ts';

/** A loader batch as the tensors a trainer step takes; release them with disposePairs. */
export function pairTensors(batch: LoaderBatch): PairBatch {
  return {
    a: tf.tensor4d(batch.latentsA, batch.latentShape),
    b: tf.tensor4d(batch.latentsB, batch.latentShape),
    textStates: tf.tensor3d(batch.text, batch.textShape),
    label: batch.label,
  };
}

export function disposePairs(batch: PairBatch): void {
  tf.dispose([batch.a, batch.b, batch.textStates]);
}

/** Rows [start, start + size) of a batch. */
export function sliceBatch(batch: LoaderBatch, start: number, size: number): LoaderBatch {
  const [, c, h, w] = batch.latentShape;
  const [, t, width] = batch.textShape;
  const per = c * h * w;
  const perText = t * width;
  return {
    ...batch,
    latentsA: batch.latentsA.subarray(start * per, (start + size) * per),
    latentsB: batch.latentsB.subarray(start * per, (start + size) * per),
    latentShape: [size, c, h, w],
    text: batch.text.subarray(start * perText, (start + size) * perText),
    textShape: [size, t, width],
    label: batch.label.subarray(start, start + size),
    pairIds: batch.pairIds.slice(start, start + size),
    promptIds: batch.promptIds.slice(start, start + size),
    captionDropped: batch.captionDropped.subarray(start, start + size),
  };
}

export async function readEncoderJson(dir: string, table: 'latents' | 'text', rule: string): Promise<Record<string, unknown>> {
  const location = encoderInfoLocation(dir, table);
  const path = location.path;
  try {
    return (await readMetaJson(location)) as Record<string, unknown>;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new TrainError(`${dir}: no meta/${table}.json (run bdpo encode ${dir} --rule ${rule})`);
    }
    throw new TrainError(error instanceof JsonFileError ? error.message : `${path}: ${describeError(error)}`);
  }
}

/** The cached tensors must be what the model takes: one clear line naming the key to change otherwise. */
export function checkShapes(dir: string, loader: PairLoader, config: TrainConfig, latentInfo: Record<string, unknown>): void {
  const latent = loader.latentShape;
  const text = loader.textShape;
  const { latentChannels, latentSize, textWidth } = config.model;
  const encoded = typeof latentInfo.resolution === 'number' ? ` (encoded at ${latentInfo.resolution} px)` : '';
  if (latent[1] !== latent[2])
    throw new TrainError(
      `${dir}: latents/ hold ${formatShape(latent)} latents${encoded}; the DiT needs square latents: re-encode at a square resolution`,
    );
  if (latent[0] !== latentChannels || latent[1] !== latentSize) {
    throw new TrainError(
      `${dir}: latents/ hold ${formatShape(latent)} latents${encoded} ` +
        `but the config's model takes ${latentChannels}x${latentSize}x${latentSize}: ` +
        `set model.latentChannels to ${latent[0]} and model.latentSize to ${latent[1]}, or re-encode`,
    );
  }
  if (text[1] !== textWidth) {
    throw new TrainError(
      `${dir}: text/ holds ${formatShape(text)} text states but the config's model.textWidth is ${textWidth}: ` +
        `set it to ${text[1]}, or re-encode with the matching text encoder`,
    );
  }
}
