// AdamW (decoupled weight decay, as torch.optim.AdamW) whose whole state is named tensors plus a step count, so a
// checkpoint holds it exactly. tfjs' own optimisers have no decoupled decay.
import * as tf from '@tensorflow/tfjs';
import type { TensorDict } from '../io/safetensors.ts';
import { assignVariables, readVariables } from './weights.ts';
import { InputError } from '../core/errors.ts';

export interface AdamWOptions {
  learningRate: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  weightDecay?: number;
  /** Clip the global gradient norm to this before the update (none when absent). */
  maxGradNorm?: number;
}

export interface AdamWState {
  step: number;
  /** `m.<name>` and `v.<name>` for every parameter. */
  moments: TensorDict;
}

export class AdamW {
  readonly options: Required<Omit<AdamWOptions, 'maxGradNorm'>> & { maxGradNorm?: number };
  private step = 0;
  private readonly moments = new Map<string, tf.Variable>();

  /** `parameters`: the variables this optimiser updates, by name. */
  constructor(
    private readonly parameters: ReadonlyMap<string, tf.Variable>,
    options: AdamWOptions,
  ) {
    const { learningRate, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8, weightDecay = 1e-2, maxGradNorm } = options;
    if (!(learningRate > 0)) throw new InputError(`learningRate must be positive, got ${learningRate}`);
    if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1)) throw new InputError('Adam betas must be in [0, 1)');
    if (!(weightDecay >= 0)) throw new InputError(`weightDecay must be ≥ 0, got ${weightDecay}`);
    if (maxGradNorm !== undefined && !(maxGradNorm > 0)) throw new InputError(`maxGradNorm must be positive, got ${maxGradNorm}`);
    this.options = { learningRate, beta1, beta2, epsilon, weightDecay, ...(maxGradNorm !== undefined ? { maxGradNorm } : {}) };
    for (const [name, variable] of parameters) {
      this.moments.set(
        `m.${name}`,
        tf.tidy(() => tf.variable(tf.zerosLike(variable), false)),
      );
      this.moments.set(
        `v.${name}`,
        tf.tidy(() => tf.variable(tf.zerosLike(variable), false)),
      );
    }
  }

  get stepCount(): number {
    return this.step;
  }

  /** One update from gradients by parameter name (every parameter needs one). Returns the pre-clip gradient norm. */
  apply(gradients: ReadonlyMap<string, tf.Tensor>): number {
    for (const name of this.parameters.keys()) {
      if (!gradients.has(name)) throw new Error(`no gradient for ${name}`);
    }
    this.step += 1;
    const { learningRate: lr, beta1, beta2, epsilon, weightDecay, maxGradNorm } = this.options;
    const correction1 = 1 - Math.pow(beta1, this.step);
    const correction2 = 1 - Math.pow(beta2, this.step);
    let normValue = 0;
    tf.tidy(() => {
      const squares = new Map<string, tf.Tensor>();
      for (const name of this.parameters.keys()) {
        const g = gradients.get(name)!;
        squares.set(name, tf.square(g));
      }
      normValue = Math.sqrt(tf.addN([...squares.values()].map((sq) => tf.sum(sq))).dataSync()[0]!);
      const clip = maxGradNorm !== undefined && normValue > maxGradNorm ? maxGradNorm / (normValue + 1e-6) : 1;
      // m̂ / (√v̂ + ε) = m·(√c2/c1) / (√v + ε·√c2), so one multiply and one add per parameter carry every constant.
      // Scalars are made once per step, not per parameter: on wasm each implicit scalar is a tensor upload.
      const k = {
        clip: tf.scalar(clip),
        clipSquared: tf.scalar(clip * clip),
        keep1: tf.scalar(1 - beta1),
        keep2: tf.scalar(1 - beta2),
        epsilon: tf.scalar(epsilon * Math.sqrt(correction2)),
        stepSize: tf.scalar((lr * Math.sqrt(correction2)) / correction1),
        decay: tf.scalar(1 - lr * weightDecay),
      };
      for (const [name, parameter] of this.parameters) {
        const raw = gradients.get(name)!;
        const g = clip === 1 ? raw : tf.mul(raw, k.clip);
        const g2 = clip === 1 ? squares.get(name)! : tf.mul(squares.get(name)!, k.clipSquared);
        const m = this.moments.get(`m.${name}`)!;
        const v = this.moments.get(`v.${name}`)!;
        // β·m + (1 − β)·g written as m + (1 − β)(g − m): one multiply fewer.
        const mNext = tf.add(m, tf.mul(tf.sub(g, m), k.keep1));
        const vNext = tf.add(v, tf.mul(tf.sub(g2, v), k.keep2));
        m.assign(mNext);
        v.assign(vNext);
        const update = tf.div(tf.mul(mNext, k.stepSize), tf.add(tf.sqrt(vNext), k.epsilon));
        const decayed = weightDecay > 0 ? tf.mul(parameter, k.decay) : parameter;
        parameter.assign(tf.sub(decayed, update));
      }
    });
    return normValue;
  }

  state(): AdamWState {
    return { step: this.step, moments: readVariables(this.moments) };
  }

  setState(state: AdamWState): void {
    if (!Number.isInteger(state.step) || state.step < 0) throw new InputError('optimizer step must be a non-negative integer');
    assignVariables(this.moments, state.moments, { complete: true, prefix: 'optimizer ' });
    this.step = state.step;
  }

  dispose(): void {
    for (const variable of this.moments.values()) variable.dispose();
  }
}
