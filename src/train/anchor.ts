// The anchor: the model as DPO starts (after MSE pre-training), frozen. Held-out implicit accuracy and the MSE guard
// are measured against it rather than against the live reference: a hard reference is a copy of the model a few steps
// ago, so accuracy against it resets at every copy, and a denoiser that collapses drags its copy along (the trap the
// design measured: copies every 10–25 steps took the MSE from 0.17 to 0.86–2.8).
import type * as tf from '@tensorflow/tfjs';
import type { TensorDict } from '../io/safetensors.ts';
import type { Denoiser } from './denoiser.ts';
import type { ReferenceModel, ReferenceOptions } from './reference.ts';
import { assignVariables, readVariables } from './weights.ts';

/** A frozen copy of the model as DPO starts (adapters, which are zero then, switched off). */
export class Anchor implements ReferenceModel {
  readonly options: Readonly<ReferenceOptions> = { mode: 'none' };
  readonly ownsWeights = true;
  private readonly copy: Denoiser;

  constructor(model: Denoiser) {
    this.copy = model.clone();
    this.copy.setAdaptersEnabled(false);
  }

  predict(xt: tf.Tensor4D, t: tf.Tensor1D, textStates: tf.Tensor3D, mask?: tf.Tensor2D): tf.Tensor4D {
    return this.copy.predict(xt, t, textStates, mask);
  }

  afterStep(): boolean {
    return false;
  }

  update(): void {}

  weights(): TensorDict {
    return readVariables(this.copy.parameters);
  }

  loadWeights(weights: TensorDict): void {
    assignVariables(this.copy.parameters, weights, { complete: true, prefix: 'anchor ' });
  }

  dispose(): void {
    this.copy.dispose();
  }
}
