// Stable Diffusion's DDPM noise schedule ("scaled_linear"): betas linear in sqrt space from 0.00085 to 0.012 over
// 1000 steps. Kept in float64 in JS; tensors only see the per-sample coefficients.
import * as tf from '@tensorflow/tfjs';

export interface NoiseSchedule {
  readonly numSteps: number;
  readonly betas: Float64Array;
  readonly alphasCumprod: Float64Array;
}

export interface ScheduleOptions {
  betaStart?: number;
  betaEnd?: number;
  numSteps?: number;
}

export function scaledLinearSchedule(options: ScheduleOptions = {}): NoiseSchedule {
  const { betaStart = 0.00085, betaEnd = 0.012, numSteps = 1000 } = options;
  if (!Number.isInteger(numSteps) || numSteps < 2) throw new Error(`numSteps must be an integer ≥ 2, got ${numSteps}`);
  const betas = new Float64Array(numSteps);
  const alphasCumprod = new Float64Array(numSteps);
  const lo = Math.sqrt(betaStart);
  const hi = Math.sqrt(betaEnd);
  let prod = 1;
  for (let i = 0; i < numSteps; i++) {
    const root = lo + ((hi - lo) * i) / (numSteps - 1);
    betas[i] = root * root;
    prod *= 1 - betas[i]!;
    alphasCumprod[i] = prod;
  }
  return { numSteps, betas, alphasCumprod };
}

/** sqrt(ᾱ_t) and sqrt(1 − ᾱ_t) for each timestep, as float32 arrays ready for a tensor. */
export function noiseCoefficients(schedule: NoiseSchedule, t: ArrayLike<number>): { signal: Float32Array; noise: Float32Array } {
  const signal = new Float32Array(t.length);
  const noise = new Float32Array(t.length);
  for (let i = 0; i < t.length; i++) {
    const step = t[i]!;
    if (!Number.isInteger(step) || step < 0 || step >= schedule.numSteps) {
      throw new Error(`timestep ${step} outside [0, ${schedule.numSteps})`);
    }
    const a = schedule.alphasCumprod[step]!;
    signal[i] = Math.sqrt(a);
    noise[i] = Math.sqrt(1 - a);
  }
  return { signal, noise };
}

/** x_t = sqrt(ᾱ_t) x0 + sqrt(1 − ᾱ_t) ε, one timestep per batch element of x0 [B, ...]. */
export function addNoise(schedule: NoiseSchedule, x0: tf.Tensor, eps: tf.Tensor, t: ArrayLike<number>): tf.Tensor {
  const batch = x0.shape[0];
  if (batch !== t.length) throw new Error(`addNoise: ${t.length} timesteps for a batch of ${batch}`);
  const { signal, noise } = noiseCoefficients(schedule, t);
  const coefShape = [batch, ...x0.shape.slice(1).map(() => 1)];
  return tf.tidy(() => tf.add(tf.mul(x0, tf.tensor(signal, coefShape)), tf.mul(eps, tf.tensor(noise, coefShape))));
}
