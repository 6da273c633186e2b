// One optimiser step of Diffusion-DPO (or of plain ε-MSE fine-tuning) over a batch that is already in memory.
// Every random draw (timesteps, noise) comes from the trainer's seeded JS generator, drawn for the whole batch
// before it is split into micro-batches, so the micro-batch size changes memory and speed but not the draws (the
// result moves only by float rounding), and a run resumed from a checkpoint draws what the uninterrupted run would.
import * as tf from '@tensorflow/tfjs';
import type { Denoiser } from './denoiser.ts';
import { DEFAULT_BETA, diffusionDpoLoss, dpoMetrics, type DpoMetrics } from './dpo.ts';
import { AdamW, type AdamWOptions, type AdamWState } from './optimizer.ts';
import { createReference, type ReferenceModel, type ReferenceOptions } from './reference.ts';
import { createRng, type Rng, type RngState } from './rng.ts';
import type { TensorDict } from '../io/safetensors.ts';
import { addNoise, scaledLinearSchedule, type NoiseSchedule } from './schedule.ts';
import { assignVariables, readVariables } from './weights.ts';
import { InputError } from '../core/errors.ts';

/** Pairs of clean latents with the text they were generated from and a label P(a ≻ b). */
export interface PairBatch {
  a: tf.Tensor4D;
  b: tf.Tensor4D;
  textStates: tf.Tensor3D;
  mask?: tf.Tensor2D;
  /** P(a ≻ b) per pair, in [0, 1]: 1 = a wins, 0 = b wins, ½ = tie. */
  label: ArrayLike<number>;
}

export interface ImageBatch {
  x0: tf.Tensor4D;
  textStates: tf.Tensor3D;
  mask?: tf.Tensor2D;
}

export interface TrainerOptions extends AdamWOptions {
  /** Seeds the generator of timesteps and noise. */
  seed: number;
  /** DPO temperature β (default 5000, as for SD 1.5). */
  beta?: number;
  /** Pairs (DPO) or images (MSE) per forward/backward pass; gradients are accumulated. Default: whole batch. */
  microBatch?: number;
  /** Reference model policy; null for a trainer that only runs MSE steps (no reference copy is made). */
  reference?: ReferenceOptions | null;
}

export interface DpoStepResult extends DpoMetrics {
  step: number;
  gradNorm: number;
  referenceUpdated: boolean;
}

export interface MseStepResult {
  step: number;
  loss: number;
  gradNorm: number;
}

export interface TrainerState {
  /** Optimiser steps done. */
  step: number;
  rng: RngState;
  /** Every model parameter (adapters included). */
  model: TensorDict;
  /** The reference copy's parameters; null with LoRA or without a reference. */
  reference: TensorDict | null;
  optimizer: AdamWState;
}

interface NoiseDraw {
  t: Int32Array;
  noise: Float32Array;
}

/** Timesteps uniform in [0, numSteps) then standard-normal noise, for `count` samples of `sampleShape`. */
export function drawNoise(rng: Rng, schedule: NoiseSchedule, count: number, sampleShape: readonly number[]): NoiseDraw {
  const t = new Int32Array(count);
  for (let i = 0; i < count; i++) t[i] = rng.int(schedule.numSteps);
  const size = sampleShape.reduce((n, d) => n * d, 1);
  const noise = rng.fillNormal(new Float32Array(count * size));
  return { t, noise };
}

function checkPairBatch(batch: PairBatch): number {
  const pairs = batch.a.shape[0];
  if (batch.b.shape.join() !== batch.a.shape.join()) throw new Error(`pair batch: a ${batch.a.shape} and b ${batch.b.shape} differ`);
  if (batch.textStates.shape[0] !== pairs) throw new Error(`pair batch: ${batch.textStates.shape[0]} text states for ${pairs} pairs`);
  if (batch.label.length !== pairs) throw new Error(`pair batch: ${batch.label.length} labels for ${pairs} pairs`);
  for (let i = 0; i < pairs; i++) {
    const y = batch.label[i]!;
    if (!(y >= 0 && y <= 1)) throw new Error(`pair batch: label ${y} at ${i} is not a probability`);
  }
  return pairs;
}

/** Rows [start, start + size) as a new tensor handle (a clone shares the data), always safe to dispose. */
function sliceRows<T extends tf.Tensor>(x: T, start: number, size: number): T {
  if (start === 0 && size === x.shape[0]) return tf.clone(x);
  return tf.slice(x, start, size) as T;
}

function doubled<T extends tf.Tensor>(x: T): T {
  return tf.concat([x, x], 0) as T;
}

interface PairInputs {
  x: tf.Tensor4D;
  t: tf.Tensor1D;
  text: tf.Tensor3D;
  mask?: tf.Tensor2D;
  eps: tf.Tensor4D;
  label: tf.Tensor1D;
  refA: tf.Tensor4D;
  refB: tf.Tensor4D;
}

/** Noisy a and b stacked along the batch ([a; b], sharing t and ε) and the reference's predictions for them. */
function preparePairs(
  batch: PairBatch,
  draw: NoiseDraw,
  start: number,
  size: number,
  schedule: NoiseSchedule,
  reference: ReferenceModel,
): PairInputs {
  return tf.tidy(() => {
    const sampleShape = batch.a.shape.slice(1) as [number, number, number];
    const sampleSize = sampleShape[0] * sampleShape[1] * sampleShape[2];
    const eps = tf.tensor4d(draw.noise.subarray(start * sampleSize, (start + size) * sampleSize), [size, ...sampleShape]);
    const t = draw.t.subarray(start, start + size);
    const xa = addNoise(schedule, sliceRows(batch.a, start, size), eps, t);
    const xb = addNoise(schedule, sliceRows(batch.b, start, size), eps, t);
    const x = tf.concat([xa, xb], 0) as tf.Tensor4D;
    const tBoth = tf.tensor1d(Float32Array.from([...t, ...t]));
    const text = doubled(sliceRows(batch.textStates, start, size));
    const mask = batch.mask ? doubled(sliceRows(batch.mask, start, size)) : undefined;
    const [refA, refB] = tf.split(reference.predict(x, tBoth, text, mask), 2, 0) as [tf.Tensor4D, tf.Tensor4D];
    const label = tf.tensor1d(Float32Array.from(Array.from({ length: size }, (_, i) => batch.label[start + i]!)));
    return { x, t: tBoth, text, ...(mask ? { mask } : {}), eps, label, refA, refB };
  });
}

/**
 * The model's DPO terms on prepared pairs, stacked as rows [z, modelErrA, modelErrB, refErrA, refErrB] (one column per
 * pair), and the loss they give: evaluation and the training step compute exactly the same thing.
 */
function pairTerms(model: Denoiser, inputs: PairInputs, beta: number): { loss: tf.Scalar; stats: tf.Tensor2D } {
  const [modelA, modelB] = tf.split(model.predict(inputs.x, inputs.t, inputs.text, inputs.mask), 2, 0);
  const terms = diffusionDpoLoss({
    modelA: modelA!,
    modelB: modelB!,
    refA: inputs.refA,
    refB: inputs.refB,
    noise: inputs.eps,
    label: inputs.label,
    beta,
  });
  const stats = tf.stack([terms.z, terms.modelErrA, terms.modelErrB, terms.refErrA, terms.refErrB]) as tf.Tensor2D;
  return { loss: terms.loss, stats };
}

export interface DpoEvaluation extends DpoMetrics {
  z: Float32Array;
}

/**
 * DPO terms without gradients, for held-out monitoring; draws its noise from `rng` (pass a generator of its own so
 * evaluation does not shift the training stream).
 */
export function evaluateDpo(
  model: Denoiser,
  reference: ReferenceModel,
  batch: PairBatch,
  rng: Rng,
  options: { beta?: number; schedule?: NoiseSchedule } = {},
): DpoEvaluation {
  const schedule = options.schedule ?? scaledLinearSchedule();
  const pairs = checkPairBatch(batch);
  const draw = drawNoise(rng, schedule, pairs, batch.a.shape.slice(1));
  const inputs = preparePairs(batch, draw, 0, pairs, schedule, reference);
  const stats = tf.tidy(() => pairTerms(model, inputs, options.beta ?? DEFAULT_BETA).stats);
  const values = stats.dataSync() as Float32Array;
  tf.dispose([stats, ...Object.values(inputs)]);
  const row = (i: number): Float32Array => values.slice(i * pairs, (i + 1) * pairs);
  const z = row(0);
  return { ...dpoMetrics({ z, modelErrA: row(1), modelErrB: row(2), refErrA: row(3), refErrB: row(4), label: batch.label }), z };
}

export class Trainer {
  readonly model: Denoiser;
  readonly reference: ReferenceModel | null;
  readonly options: Readonly<TrainerOptions>;
  readonly schedule: NoiseSchedule;
  private readonly rng: Rng;
  private readonly optimizer: AdamW;
  private readonly trainable: Map<string, tf.Variable>;
  private steps = 0;

  constructor(model: Denoiser, options: TrainerOptions, schedule: NoiseSchedule = scaledLinearSchedule()) {
    if (options.microBatch !== undefined && (!Number.isInteger(options.microBatch) || options.microBatch <= 0)) {
      throw new InputError(`microBatch must be a positive integer, got ${options.microBatch}`);
    }
    if (options.beta !== undefined && !(options.beta > 0)) throw new InputError(`beta must be positive, got ${options.beta}`);
    this.model = model;
    this.options = structuredClone(options);
    this.schedule = schedule;
    this.rng = createRng(options.seed);
    this.trainable = new Map(model.trainableNames().map((name) => [name, model.parameters.get(name)!]));
    this.optimizer = new AdamW(this.trainable, options);
    this.reference = options.reference === null ? null : createReference(model, options.reference ?? { mode: 'none' });
  }

  get step(): number {
    return this.steps;
  }

  dpoStep(batch: PairBatch): DpoStepResult {
    const reference = this.requireReference();
    const { gradients, metrics } = this.dpoGradients(batch);
    const gradNorm = this.optimizer.apply(gradients);
    tf.dispose([...gradients.values()]);
    this.steps += 1;
    const referenceUpdated = reference.afterStep(this.steps);
    return { ...metrics, step: this.steps, gradNorm, referenceUpdated };
  }

  /**
   * The gradient of the mean DPO loss over the batch, accumulated over micro-batches, without applying it (the
   * tensors are the caller's to dispose). Draws the batch's timesteps and noise from the trainer's generator.
   */
  dpoGradients(batch: PairBatch): { gradients: Map<string, tf.Tensor>; metrics: DpoMetrics } {
    const reference = this.requireReference();
    const pairs = checkPairBatch(batch);
    const draw = drawNoise(this.rng, this.schedule, pairs, batch.a.shape.slice(1));
    const micro = Math.min(this.options.microBatch ?? pairs, pairs);
    const beta = this.options.beta ?? DEFAULT_BETA;
    const columns = [
      new Float32Array(pairs),
      new Float32Array(pairs),
      new Float32Array(pairs),
      new Float32Array(pairs),
      new Float32Array(pairs),
    ];
    const gradients = new Map<string, tf.Tensor>();
    for (let start = 0; start < pairs; start += micro) {
      const size = Math.min(micro, pairs - start);
      const inputs = preparePairs(batch, draw, start, size, this.schedule, reference);
      let stats: tf.Tensor2D | undefined;
      const { value, grads } = tf.variableGrads(() => {
        const terms = pairTerms(this.model, inputs, beta);
        stats = tf.keep(terms.stats);
        // Scaled so the accumulated gradient is that of the mean over the whole batch.
        return tf.mul(terms.loss, size / pairs) as tf.Scalar;
      }, [...this.trainable.values()]);
      const values = stats!.dataSync();
      for (let row = 0; row < 5; row++) columns[row]!.set(values.subarray(row * size, (row + 1) * size), start);
      tf.dispose([value, stats!, ...Object.values(inputs)]);
      this.accumulate(gradients, grads);
    }
    const [z, modelErrA, modelErrB, refErrA, refErrB] = columns as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
    return { gradients, metrics: dpoMetrics({ z, modelErrA, modelErrB, refErrA, refErrB, label: batch.label }) };
  }

  private requireReference(): ReferenceModel {
    if (!this.reference) throw new Error('this trainer was built without a reference model: DPO needs one');
    return this.reference;
  }

  /** Ordinary denoising fine-tuning: mean over the batch of mean (ε̂ − ε)². */
  mseStep(batch: ImageBatch): MseStepResult {
    const images = batch.x0.shape[0];
    if (batch.textStates.shape[0] !== images) throw new Error(`image batch: ${batch.textStates.shape[0]} text states for ${images} images`);
    const draw = drawNoise(this.rng, this.schedule, images, batch.x0.shape.slice(1));
    const micro = Math.min(this.options.microBatch ?? images, images);
    const sampleShape = batch.x0.shape.slice(1) as [number, number, number];
    const sampleSize = sampleShape[0] * sampleShape[1] * sampleShape[2];
    const accumulated = new Map<string, tf.Tensor>();
    let loss = 0;
    for (let start = 0; start < images; start += micro) {
      const size = Math.min(micro, images - start);
      const inputs = tf.tidy(() => {
        const eps = tf.tensor4d(draw.noise.subarray(start * sampleSize, (start + size) * sampleSize), [size, ...sampleShape]);
        const t = draw.t.subarray(start, start + size);
        const x = addNoise(this.schedule, sliceRows(batch.x0, start, size), eps, t) as tf.Tensor4D;
        const text = sliceRows(batch.textStates, start, size);
        const mask = batch.mask ? sliceRows(batch.mask, start, size) : undefined;
        return { x, eps, t: tf.tensor1d(Float32Array.from(t)), text, ...(mask ? { mask } : {}) };
      });
      const { value, grads } = tf.variableGrads(() => {
        const prediction = this.model.predict(inputs.x, inputs.t, inputs.text, inputs.mask);
        const diff = tf.sub(prediction, inputs.eps);
        return tf.mul(tf.mean(tf.mul(diff, diff)), size / images) as tf.Scalar;
      }, [...this.trainable.values()]);
      loss += value.dataSync()[0]!;
      tf.dispose([value, ...Object.values(inputs)]);
      this.accumulate(accumulated, grads);
    }
    const gradNorm = this.optimizer.apply(accumulated);
    tf.dispose([...accumulated.values()]);
    this.steps += 1;
    return { step: this.steps, loss, gradNorm };
  }

  private accumulate(accumulated: Map<string, tf.Tensor>, grads: tf.NamedTensorMap): void {
    for (const [name, variable] of this.trainable) {
      // A parameter the loss does not reach (possible at initialisation) gets no gradient from tfjs: count zero.
      const g = grads[variable.name] ?? tf.zerosLike(variable);
      const previous = accumulated.get(name);
      if (previous) {
        accumulated.set(name, tf.add(previous, g));
        previous.dispose();
        g.dispose();
      } else {
        accumulated.set(name, g);
      }
    }
  }

  state(): TrainerState {
    return {
      step: this.steps,
      rng: this.rng.state(),
      model: readVariables(this.model.parameters),
      reference: this.reference?.weights() ?? null,
      optimizer: this.optimizer.state(),
    };
  }

  loadState(state: TrainerState): void {
    if (!Number.isInteger(state.step) || state.step < 0) throw new InputError(`trainer state: bad step ${state.step}`);
    assignVariables(this.model.parameters, state.model, { complete: true, prefix: 'model ' });
    if (state.reference) {
      if (!this.reference) throw new InputError('trainer state has reference weights but this trainer has no reference');
      this.reference.loadWeights(state.reference);
    } else if (this.reference?.ownsWeights) {
      throw new InputError('trainer state has no reference weights but this trainer keeps a reference copy');
    }
    this.optimizer.setState(state.optimizer);
    this.rng.setState(state.rng);
    this.steps = state.step;
  }

  dispose(): void {
    this.optimizer.dispose();
    this.reference?.dispose();
  }
}
