// The Diffusion-DPO objective (Wallace et al. 2023) for ε-prediction, with a soft label y = P(a ≻ b): a and b share
// the noise ε and the timestep t; err = mean over C, H, W of (ε̂ − ε)²;
// z = −½β((err_a − err_b) − (ref_a − ref_b)); loss = −[y log σ(z) + (1 − y) log σ(−z)]
//                                                 = y·softplus(−z) + (1 − y)·softplus(z).
// A hard label 1 is the paper's loss with a as the winner; 0 makes b the winner; ½ pulls z towards 0.
import * as tf from '@tensorflow/tfjs';

export const DEFAULT_BETA = 5000;

export interface DpoTensors {
  /** ε̂_θ for image a and image b of each pair [P, C, H, W]. */
  modelA: tf.Tensor;
  modelB: tf.Tensor;
  /** The reference model's ε̂ for the same inputs (constants: no gradient flows into them). */
  refA: tf.Tensor;
  refB: tf.Tensor;
  /** The noise both images of a pair received [P, C, H, W]. */
  noise: tf.Tensor;
  /** P(a ≻ b) per pair [P]. */
  label: tf.Tensor1D;
  beta?: number;
}

export interface DpoTerms {
  /** Mean loss over the pairs. */
  loss: tf.Scalar;
  z: tf.Tensor1D;
  modelErrA: tf.Tensor1D;
  modelErrB: tf.Tensor1D;
  refErrA: tf.Tensor1D;
  refErrB: tf.Tensor1D;
}

function perSampleMse(prediction: tf.Tensor, target: tf.Tensor): tf.Tensor1D {
  const pairs = prediction.shape[0]!;
  const diff = tf.sub(prediction, target);
  return tf.mean(tf.reshape(tf.mul(diff, diff), [pairs, -1]), 1) as tf.Tensor1D;
}

/** Call inside tf.variableGrads / tf.tidy: the returned tensors are the caller's to dispose. */
export function diffusionDpoLoss(inputs: DpoTensors): DpoTerms {
  const beta = inputs.beta ?? DEFAULT_BETA;
  const modelErrA = perSampleMse(inputs.modelA, inputs.noise);
  const modelErrB = perSampleMse(inputs.modelB, inputs.noise);
  const refErrA = perSampleMse(inputs.refA, inputs.noise);
  const refErrB = perSampleMse(inputs.refB, inputs.noise);
  const diff = tf.sub(tf.sub(modelErrA, modelErrB), tf.sub(refErrA, refErrB));
  const z = tf.mul(diff, -0.5 * beta) as tf.Tensor1D;
  const y = inputs.label;
  const perPair = tf.add(tf.mul(y, tf.softplus(tf.neg(z))), tf.mul(tf.sub(1, y), tf.softplus(z)));
  return { loss: tf.mean(perPair) as tf.Scalar, z, modelErrA, modelErrB, refErrA, refErrB };
}

export interface DpoMetrics {
  loss: number;
  /** Share of decisive pairs (label ≠ ½) whose z, oriented towards the winner, is > 0; NaN when none. */
  implicitAccuracy: number;
  /** Mean over decisive pairs of the winner-oriented z = r_w − r_l with r = −½β(err_θ − err_ref). */
  rewardMargin: number;
  /** Mean denoising MSE of the model and of the reference over both images. */
  modelMse: number;
  referenceMse: number;
  pairs: number;
  decisivePairs: number;
}

export interface DpoPairTerms {
  z: ArrayLike<number>;
  modelErrA: ArrayLike<number>;
  modelErrB: ArrayLike<number>;
  refErrA: ArrayLike<number>;
  refErrB: ArrayLike<number>;
  label: ArrayLike<number>;
}

/** softplus(x) = log(1 + eˣ) without overflow. */
export function softplus(x: number): number {
  return Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
}

export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

export function pairLoss(z: number, y: number): number {
  return y * softplus(-z) + (1 - y) * softplus(z);
}

/** Summaries of per-pair terms (read back from tensors or computed by the JS twin). */
export function dpoMetrics(terms: DpoPairTerms): DpoMetrics {
  const n = terms.z.length;
  let loss = 0;
  let correct = 0;
  let decisive = 0;
  let margin = 0;
  let modelMse = 0;
  let referenceMse = 0;
  for (let i = 0; i < n; i++) {
    const z = terms.z[i]!;
    const y = terms.label[i]!;
    loss += pairLoss(z, y);
    modelMse += (terms.modelErrA[i]! + terms.modelErrB[i]!) / 2;
    referenceMse += (terms.refErrA[i]! + terms.refErrB[i]!) / 2;
    if (y === 0.5) continue;
    const oriented = y > 0.5 ? z : -z;
    decisive++;
    margin += oriented;
    if (oriented > 0) correct++;
  }
  return {
    loss: n > 0 ? loss / n : Number.NaN,
    implicitAccuracy: decisive > 0 ? correct / decisive : Number.NaN,
    rewardMargin: decisive > 0 ? margin / decisive : Number.NaN,
    modelMse: n > 0 ? modelMse / n : Number.NaN,
    referenceMse: n > 0 ? referenceMse / n : Number.NaN,
    pairs: n,
    decisivePairs: decisive,
  };
}

export interface DpoArrays {
  /** One flattened prediction per pair. */
  modelA: ArrayLike<number>[];
  modelB: ArrayLike<number>[];
  refA: ArrayLike<number>[];
  refB: ArrayLike<number>[];
  noise: ArrayLike<number>[];
  label: ArrayLike<number>;
  beta?: number;
}

export interface DpoArraysResult extends DpoMetrics {
  z: number[];
  modelErrA: number[];
  modelErrB: number[];
  refErrA: number[];
  refErrB: number[];
  /** ∂loss/∂modelA and ∂loss/∂modelB, derived by hand: (σ(z) − y)·(∓½β)·2(ε̂ − ε)/M / P. */
  gradModelA: Float64Array[];
  gradModelB: Float64Array[];
}

function mse(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i]! - b[i]!) ** 2;
  return sum / a.length;
}

/** The same objective over plain arrays in float64: the reference the tensor version is tested against. */
export function diffusionDpoLossArrays(inputs: DpoArrays): DpoArraysResult {
  const beta = inputs.beta ?? DEFAULT_BETA;
  const pairs = inputs.label.length;
  for (const key of ['modelA', 'modelB', 'refA', 'refB', 'noise'] as const) {
    if (inputs[key].length !== pairs) throw new Error(`${key}: ${inputs[key].length} entries for ${pairs} labels`);
  }
  const z: number[] = [];
  const errs = { modelErrA: [] as number[], modelErrB: [] as number[], refErrA: [] as number[], refErrB: [] as number[] };
  const gradModelA: Float64Array[] = [];
  const gradModelB: Float64Array[] = [];
  for (let i = 0; i < pairs; i++) {
    const noise = inputs.noise[i]!;
    const ea = mse(inputs.modelA[i]!, noise);
    const eb = mse(inputs.modelB[i]!, noise);
    const ra = mse(inputs.refA[i]!, noise);
    const rb = mse(inputs.refB[i]!, noise);
    errs.modelErrA.push(ea);
    errs.modelErrB.push(eb);
    errs.refErrA.push(ra);
    errs.refErrB.push(rb);
    const zi = -0.5 * beta * (ea - eb - (ra - rb));
    z.push(zi);
    const dLossDz = (sigmoid(zi) - inputs.label[i]!) / pairs;
    const m = noise.length;
    const ga = new Float64Array(m);
    const gb = new Float64Array(m);
    for (let j = 0; j < m; j++) {
      ga[j] = dLossDz * -0.5 * beta * ((2 * (inputs.modelA[i]![j]! - noise[j]!)) / m);
      gb[j] = dLossDz * 0.5 * beta * ((2 * (inputs.modelB[i]![j]! - noise[j]!)) / m);
    }
    gradModelA.push(ga);
    gradModelB.push(gb);
  }
  const metrics = dpoMetrics({ z, label: inputs.label, ...errs });
  return { ...metrics, z, ...errs, gradModelA, gradModelB };
}
