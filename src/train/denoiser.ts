// What the trainer needs from a noise-prediction network. The DiT implements it; a UNet can later, without the
// loss, optimiser, reference or checkpoint code changing.
import type * as tf from '@tensorflow/tfjs';
import type { DitConfig } from './dit.ts';

/** The config a denoiser is rebuilt from; a union once there is more than one architecture. */
export type DenoiserConfig = DitConfig;

export interface Denoiser {
  readonly config: DenoiserConfig;
  /**
   * ε̂(x_t, t, c): noisy latents xt [B, C, H, W], timesteps t [B] (float32 holding integers in [0, 1000)), the
   * text encoder's hidden states [B, S, textWidth] and an optional mask [B, S] (1 = real token, 0 = padding).
   */
  predict(xt: tf.Tensor4D, t: tf.Tensor1D, textStates: tf.Tensor3D, mask?: tf.Tensor2D): tf.Tensor4D;
  /** Every parameter, adapters included, under a stable name (the safetensors key). */
  readonly parameters: ReadonlyMap<string, tf.Variable>;
  /** What an optimiser updates: only the adapters when the model has them, otherwise every parameter. */
  trainableNames(): string[];
  readonly hasAdapters: boolean;
  adaptersEnabled(): boolean;
  /** With adapters off the model computes its base weights only: the LoRA reference model. */
  setAdaptersEnabled(enabled: boolean): void;
  /**
   * Moves `fraction` of each adapter's update into its base weight (W += fraction·(alpha/rank)·A·B) and keeps the
   * rest in the adapter (B ← (1 − fraction)·B), so the model with adapters on computes the same function before
   * and after. fraction 1 (the default) leaves every adapter contributing zero.
   */
  mergeAdapters(fraction?: number): void;
  /** A new model with the same config and a copy of every parameter. */
  clone(): Denoiser;
  dispose(): void;
}
