// Shared fixtures for the training tests: a test-sized DiT, seeded tensors, and a synthetic preference task.
import * as tf from '@tensorflow/tfjs';
import type { Denoiser } from '../../src/train/denoiser.ts';
import type { DitConfig } from '../../src/train/dit.ts';
import { createRng, type Rng } from '../../src/train/rng.ts';
import type { PairBatch } from '../../src/train/trainer-step.ts';

export const TEXT_LENGTH = 4;

export const tinyConfig: DitConfig = {
  latentChannels: 4,
  latentSize: 8,
  patch: 2,
  width: 32,
  depth: 1,
  heads: 2,
  textWidth: 16,
  mlpRatio: 2,
  timeFreqDim: 32,
};

export function normalArray(rng: Rng, size: number, scale = 1): Float32Array {
  const values = rng.fillNormal(new Float32Array(size));
  if (scale !== 1) for (let i = 0; i < size; i++) values[i] = values[i]! * scale;
  return values;
}

export function normalTensor<T extends tf.Tensor>(rng: Rng, shape: number[], scale = 1): T {
  return tf.tensor(
    normalArray(
      rng,
      shape.reduce((n, d) => n * d, 1),
      scale,
    ),
    shape,
  ) as T;
}

/**
 * Replaces every parameter by small seeded noise: at initialisation adaLN-zero and the zero head make the DiT
 * output exactly 0, which would hide mistakes in everything downstream.
 */
export function randomizeParameters(model: Denoiser, seed: number, scale = 0.15): void {
  const rng = createRng(seed);
  for (const variable of model.parameters.values()) {
    tf.tidy(() => variable.assign(tf.tensor(normalArray(rng, variable.size, scale), variable.shape)));
  }
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

/**
 * Prompts are random text states with a random base latent each; an image of a prompt is its base plus a uniform
 * brightness offset in [−1, 1] plus a little noise. The "true" preference is prompt-conditional: for even prompts
 * the brighter image (higher mean) wins, for odd prompts the darker one. A drift that ignores the prompt therefore
 * scores ½, which keeps the random-label control at chance; learning the true labels needs the text conditioning.
 */
export class BrightnessTask {
  private readonly bases: Float32Array[] = [];
  private readonly texts: Float32Array[] = [];
  readonly sampleSize: number;

  constructor(
    readonly config: DitConfig,
    readonly prompts: number,
    seed: number,
  ) {
    const rng = createRng(seed);
    this.sampleSize = config.latentChannels * config.latentSize * config.latentSize;
    for (let i = 0; i < prompts; i++) {
      this.bases.push(normalArray(rng, this.sampleSize, 0.5));
      this.texts.push(normalArray(rng, TEXT_LENGTH * config.textWidth));
    }
  }

  private image(rng: Rng, prompt: number, brightness: number, out: Float32Array, offset: number): void {
    const base = this.bases[prompt]!;
    const jitter = normalArray(rng, this.sampleSize, 0.1);
    for (let i = 0; i < this.sampleSize; i++) out[offset + i] = base[i]! + brightness + jitter[i]!;
  }

  private shapes(count: number): { latent: number[]; text: number[] } {
    const { latentChannels: c, latentSize: s, textWidth } = this.config;
    return { latent: [count, c, s, s], text: [count, TEXT_LENGTH, textWidth] };
  }

  images(rng: Rng, count: number): { x0: tf.Tensor4D; textStates: tf.Tensor3D } {
    const x0 = new Float32Array(count * this.sampleSize);
    const text = new Float32Array(count * TEXT_LENGTH * this.config.textWidth);
    for (let i = 0; i < count; i++) {
      const prompt = rng.int(this.prompts);
      this.image(rng, prompt, 2 * rng.uniform() - 1, x0, i * this.sampleSize);
      text.set(this.texts[prompt]!, i * TEXT_LENGTH * this.config.textWidth);
    }
    const shapes = this.shapes(count);
    return {
      x0: tf.tensor4d(x0, shapes.latent as [number, number, number, number]),
      textStates: tf.tensor3d(text, shapes.text as [number, number, number]),
    };
  }

  /** `labels`: 'true' (the prompt's preference), 'flipped' (the opposite) or 'random' (a coin per pair). */
  pairs(rng: Rng, count: number, labels: 'true' | 'flipped' | 'random'): PairBatch {
    const a = new Float32Array(count * this.sampleSize);
    const b = new Float32Array(count * this.sampleSize);
    const text = new Float32Array(count * TEXT_LENGTH * this.config.textWidth);
    const label: number[] = [];
    for (let i = 0; i < count; i++) {
      const prompt = rng.int(this.prompts);
      const brightA = 2 * rng.uniform() - 1;
      const brightB = 2 * rng.uniform() - 1;
      this.image(rng, prompt, brightA, a, i * this.sampleSize);
      this.image(rng, prompt, brightB, b, i * this.sampleSize);
      text.set(this.texts[prompt]!, i * TEXT_LENGTH * this.config.textWidth);
      const brighterA = brightA > brightB === (prompt % 2 === 0) ? 1 : 0;
      const coin = rng.uniform() < 0.5 ? 1 : 0;
      label.push(labels === 'true' ? brighterA : labels === 'flipped' ? 1 - brighterA : coin);
    }
    const shapes = this.shapes(count);
    const latent = shapes.latent as [number, number, number, number];
    return {
      a: tf.tensor4d(a, latent),
      b: tf.tensor4d(b, latent),
      textStates: tf.tensor3d(text, shapes.text as [number, number, number]),
      label,
    };
  }
}

export function disposePairs(batch: PairBatch): void {
  tf.dispose([batch.a, batch.b, batch.textStates, ...(batch.mask ? [batch.mask] : [])]);
}
