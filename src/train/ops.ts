// Differentiable building blocks shaped by what is fast on the wasm backend: tfjs' own matMul gradient calls
// matMul with transposeA/B, which is several times slower there than transposing explicitly; tanh and pow are
// slow, so GELU is written with a sigmoid and x³ as x·x·x.
import * as tf from '@tensorflow/tfjs';

/** y = a·b for 2-D a [n, k] and b [k, m], with a gradient that transposes explicitly. */
const matMul2dWithGrad = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [a, b, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a, b) as tf.Tensor2D,
    gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor2D, tf.Tensor2D];
      return [tf.matMul(dy, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy)];
    },
  };
});

/** y = a·b for 2-D a [n, k] and b [k, m], with a gradient that transposes explicitly. */
export function matMul2d(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  return matMul2dWithGrad(a, b);
}

/**
 * x·w + bias for a frozen w and bias: the gradient reaches x only. tfjs computes a gradient for every input of
 * an op on the path to the loss, trainable or not, so without this LoRA would pay for base-weight gradients.
 */
export function denseFrozen(x: tf.Tensor2D, w: tf.Tensor2D, bias?: tf.Tensor1D): tf.Tensor2D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input] = args as [tf.Tensor2D];
    const y = tf.matMul(input, w);
    return {
      value: (bias ? tf.add(y, bias) : y) as tf.Tensor2D,
      gradFunc: (dy: tf.Tensor2D) => tf.matMul(dy, tf.transpose(w)),
    };
  });
  return op(x);
}

/** x [n, in] · w [in, out] + bias [out]. */
export function dense(x: tf.Tensor2D, w: tf.Tensor2D, bias?: tf.Tensor1D): tf.Tensor2D {
  const y = matMul2d(x, w);
  return bias ? tf.add(y, bias) : y;
}

/** Normalises over the last axis without affine parameters (the affine part comes from the modulation). */
export function layerNorm<T extends tf.Tensor>(x: T, epsilon = 1e-6): T {
  const axis = x.rank - 1;
  const centred = tf.sub(x, tf.mean(x, axis, true));
  const variance = tf.mean(tf.mul(centred, centred), axis, true);
  return tf.mul(centred, tf.rsqrt(tf.add(variance, epsilon))) as T;
}

export function silu<T extends tf.Tensor>(x: T): T {
  return tf.mul(x, tf.sigmoid(x)) as T;
}

/** tanh-approximate GELU, exactly: 0.5·x·(1 + tanh u) = x·σ(2u) with u = √(2/π)(x + 0.044715x³). */
export function geluTanh<T extends tf.Tensor>(x: T): T {
  const cubic = tf.mul(tf.mul(x, x), x);
  const twoU = tf.mul(tf.add(x, tf.mul(cubic, 0.044715)), 2 * Math.sqrt(2 / Math.PI));
  return tf.mul(x, tf.sigmoid(twoU)) as T;
}

/** x·(1 + scale) + shift, with x [B, N, D] and shift/scale [B, D] broadcast over the tokens. */
export function modulate(x: tf.Tensor3D, shift: tf.Tensor2D, scale: tf.Tensor2D): tf.Tensor3D {
  const [b, , d] = x.shape;
  return tf.add(tf.mul(x, tf.add(tf.reshape(scale, [b, 1, d]), 1)), tf.reshape(shift, [b, 1, d]));
}
