// The reference model of Diffusion-DPO and BalancedDPO's dynamic updates of it:
//   none — frozen at the starting weights;
//   hard — θ_ref ← θ every `every` steps;
//   soft — θ_ref ← α·θ + (1 − α)·θ_ref every `every` steps (default every step).
// With LoRA the reference is the base model (adapters off), so no copy is kept: a hard update merges the adapters
// into the base and zeroes them; a soft update merges the fraction α and keeps the rest in the adapters. Either
// way the trained model computes the same function before and after the update; only the reference moves.
import * as tf from '@tensorflow/tfjs';
import type { Denoiser } from './denoiser.ts';
import type { TensorDict } from '../io/safetensors.ts';
import { assignVariables, readVariables } from './weights.ts';
import { InputError } from '../core/errors.ts';

export type ReferenceMode = 'none' | 'hard' | 'soft';

export interface ReferenceOptions {
  mode: ReferenceMode;
  /** Steps between updates: required for hard; default 1 for soft. */
  every?: number;
  /** soft: weight of the current model, in (0, 1]. */
  alpha?: number;
}

export interface ReferenceModel {
  readonly options: Readonly<ReferenceOptions>;
  /** Whether the reference keeps its own copy of the weights (false with LoRA: it is the base model). */
  readonly ownsWeights: boolean;
  /** ε̂_ref, outside any gradient: call it outside tf.variableGrads. */
  predict(xt: tf.Tensor4D, t: tf.Tensor1D, textStates: tf.Tensor3D, mask?: tf.Tensor2D): tf.Tensor4D;
  /** Applies the update if `step` (the number of optimiser steps done) is due; true when it did. */
  afterStep(step: number): boolean;
  /** Applies the configured update now (hard or soft; a no-op for none). */
  update(): void;
  /** The separate copy's weights, for checkpoints; null with LoRA (the base weights are the model's). */
  weights(): TensorDict | null;
  loadWeights(weights: TensorDict): void;
  dispose(): void;
}

export function validateReferenceOptions(options: ReferenceOptions): Required<Pick<ReferenceOptions, 'mode'>> & ReferenceOptions {
  const { mode, every, alpha } = options;
  if (mode !== 'none' && mode !== 'hard' && mode !== 'soft')
    throw new InputError(`reference mode must be none, hard or soft, got ${String(mode)}`);
  if (mode === 'hard' && every === undefined) throw new InputError('reference mode hard needs `every` (steps between copies)');
  if (every !== undefined && (!Number.isInteger(every) || every <= 0))
    throw new InputError(`reference every must be a positive integer, got ${every}`);
  if (mode === 'soft' && !(alpha !== undefined && alpha > 0 && alpha <= 1))
    throw new InputError(`reference mode soft needs alpha in (0, 1], got ${alpha}`);
  return { ...options };
}

class CopyReference implements ReferenceModel {
  readonly ownsWeights = true;
  private readonly copy: Denoiser;
  constructor(
    private readonly model: Denoiser,
    readonly options: ReferenceOptions,
  ) {
    this.copy = model.clone();
  }

  predict(xt: tf.Tensor4D, t: tf.Tensor1D, textStates: tf.Tensor3D, mask?: tf.Tensor2D): tf.Tensor4D {
    return this.copy.predict(xt, t, textStates, mask);
  }

  afterStep(step: number): boolean {
    return updateIfDue(this, step);
  }

  update(): void {
    const { mode, alpha = 1 } = this.options;
    if (mode === 'none') return;
    for (const [name, target] of this.copy.parameters) {
      const source = this.model.parameters.get(name)!;
      tf.tidy(() => target.assign(mode === 'hard' ? source : tf.add(tf.mul(source, alpha), tf.mul(target, 1 - alpha))));
    }
  }

  weights(): TensorDict {
    return readVariables(this.copy.parameters);
  }

  loadWeights(weights: TensorDict): void {
    assignVariables(this.copy.parameters, weights, { complete: true, prefix: 'reference ' });
  }

  dispose(): void {
    this.copy.dispose();
  }
}

/** Both reference kinds update on the same schedule: every `every` steps, never with mode none. */
function updateIfDue(reference: ReferenceModel, step: number): boolean {
  if (reference.options.mode === 'none' || step % (reference.options.every ?? 1) !== 0) return false;
  reference.update();
  return true;
}

class AdapterReference implements ReferenceModel {
  readonly ownsWeights = false;
  constructor(
    private readonly model: Denoiser,
    readonly options: ReferenceOptions,
  ) {}

  predict(xt: tf.Tensor4D, t: tf.Tensor1D, textStates: tf.Tensor3D, mask?: tf.Tensor2D): tf.Tensor4D {
    const was = this.model.adaptersEnabled();
    this.model.setAdaptersEnabled(false);
    try {
      return this.model.predict(xt, t, textStates, mask);
    } finally {
      this.model.setAdaptersEnabled(was);
    }
  }

  afterStep(step: number): boolean {
    return updateIfDue(this, step);
  }

  update(): void {
    const { mode, alpha = 1 } = this.options;
    if (mode === 'hard') this.model.mergeAdapters(1);
    else if (mode === 'soft') this.model.mergeAdapters(alpha);
  }

  weights(): null {
    return null;
  }

  loadWeights(): void {
    throw new Error('a LoRA reference has no weights of its own (it is the base model)');
  }

  dispose(): void {}
}

/** A reference for `model`: the base with adapters off when the model has LoRA adapters, else a frozen copy. */
export function createReference(model: Denoiser, options: ReferenceOptions): ReferenceModel {
  const checked = validateReferenceOptions(options);
  return model.hasAdapters ? new AdapterReference(model, checked) : new CopyReference(model, checked);
}
