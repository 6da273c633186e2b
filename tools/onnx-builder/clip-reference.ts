// Plain-TypeScript forward passes (float64) of the architectures in clip-weights.ts / tiny-models.ts. Written
// from the model definitions, not from the ONNX graphs, so that comparing the two checks the graphs. Slow by
// design (scalar loops); meant for tiny models in tests.

import type { ClipTextWeights, ClipVisionWeights, Encoder, LayerNorm, Linear } from './clip-weights.ts';
import type { TinyClipWeights, TinyVaeWeights, TorchLinear } from './tiny-models.ts';

/** x [rows, in] · weight [in, out] + bias. */
function linear(x: Float64Array, rows: number, l: Linear): Float64Array {
  const out = new Float64Array(rows * l.outFeatures);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < l.outFeatures; o++) {
      let s = l.bias === null ? 0 : (l.bias[o] as number);
      for (let i = 0; i < l.inFeatures; i++) s += (x[r * l.inFeatures + i] as number) * (l.weight[i * l.outFeatures + o] as number);
      out[r * l.outFeatures + o] = s;
    }
  }
  return out;
}

function layerNorm(x: Float64Array, rows: number, ln: LayerNorm): Float64Array {
  const width = ln.gamma.length;
  const out = new Float64Array(rows * width);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < width; i++) mean += x[r * width + i] as number;
    mean /= width;
    let variance = 0;
    for (let i = 0; i < width; i++) variance += ((x[r * width + i] as number) - mean) ** 2;
    variance /= width;
    const inv = 1 / Math.sqrt(variance + ln.epsilon);
    for (let i = 0; i < width; i++) {
      out[r * width + i] = ((x[r * width + i] as number) - mean) * inv * (ln.gamma[i] as number) + (ln.beta[i] as number);
    }
  }
  return out;
}

/** erf to ≈1e-15: Maclaurin series below |x| = 2, the continued fraction of erfc above. */
export function erf(x: number): number {
  const sign = x < 0 ? -1 : 1;
  const a = Math.abs(x);
  if (a > 6) return sign;
  if (a < 2) {
    let term = a;
    let sum = a;
    for (let n = 1; n < 60; n++) {
      term *= (-a * a) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17) break;
    }
    return (sign * 2 * sum) / Math.sqrt(Math.PI);
  }
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (a + f);
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / (a + f);
  return sign * (1 - erfc);
}

function activate(v: number, kind: Encoder['activation']): number {
  if (kind === 'quick_gelu') return v / (1 + Math.exp(-1.702 * v));
  return 0.5 * v * (1 + erf(v / Math.SQRT2));
}

/** allowed(b, i, j) says whether query i of sequence b may attend to key j. */
function encoder(
  x: Float64Array,
  batch: number,
  tokens: number,
  enc: Encoder,
  allowed: (b: number, i: number, j: number) => boolean,
): Float64Array {
  const W = enc.width;
  const H = enc.heads;
  const d = W / H;
  const rows = batch * tokens;
  let h = Float64Array.from(x);
  for (const layer of enc.layers) {
    const a = layerNorm(h, rows, layer.ln1);
    const q = linear(a, rows, layer.q);
    const k = linear(a, rows, layer.k);
    const v = linear(a, rows, layer.v);
    const ctx = new Float64Array(rows * W);
    const scores = new Float64Array(tokens);
    for (let b = 0; b < batch; b++) {
      for (let head = 0; head < H; head++) {
        for (let i = 0; i < tokens; i++) {
          let max = -Infinity;
          for (let j = 0; j < tokens; j++) {
            let s = 0;
            for (let c = 0; c < d; c++) {
              s += (q[(b * tokens + i) * W + head * d + c] as number) * (k[(b * tokens + j) * W + head * d + c] as number);
            }
            s /= Math.sqrt(d);
            if (!allowed(b, i, j)) s += -1e9;
            scores[j] = s;
            if (s > max) max = s;
          }
          let total = 0;
          for (let j = 0; j < tokens; j++) {
            const e = Math.exp((scores[j] as number) - max);
            scores[j] = e;
            total += e;
          }
          for (let c = 0; c < d; c++) {
            let s = 0;
            for (let j = 0; j < tokens; j++) s += (scores[j] as number) * (v[(b * tokens + j) * W + head * d + c] as number);
            ctx[(b * tokens + i) * W + head * d + c] = s / total;
          }
        }
      }
    }
    const attn = linear(ctx, rows, layer.o);
    for (let i = 0; i < h.length; i++) h[i] = (h[i] as number) + (attn[i] as number);
    const m = layerNorm(h, rows, layer.ln2);
    const hidden = linear(m, rows, layer.fc1).map((val) => activate(val, enc.activation));
    const mlp = linear(hidden, rows, layer.fc2);
    h = h.map((val, i) => val + (mlp[i] as number));
  }
  return h;
}

export interface TextForward {
  lastHiddenState: Float64Array; // [batch, seq, width]
  pooled: Float64Array; // [batch, width]
  textEmbeds: Float64Array | null; // [batch, D]
}

/** CLIP text tower on ids/mask given row-major [batch, seq]; mask null = all ones (SD's text encoder). */
export function clipTextForward(
  w: ClipTextWeights,
  ids: ArrayLike<number | bigint>,
  mask: ArrayLike<number | bigint> | null,
  batch: number,
  seq: number,
): TextForward {
  const W = w.encoder.width;
  const x = new Float64Array(batch * seq * W);
  for (let b = 0; b < batch; b++) {
    for (let s = 0; s < seq; s++) {
      const row = Number(ids[b * seq + s]) % w.vocabSize;
      for (let c = 0; c < W; c++) {
        x[(b * seq + s) * W + c] = (w.tokenEmbedding[row * W + c] as number) + (w.positionEmbedding[s * W + c] as number);
      }
    }
  }
  const allowed = (b: number, i: number, j: number) => j <= i && (mask === null || Number(mask[b * seq + j]) !== 0);
  const lastHiddenState = layerNorm(encoder(x, batch, seq, w.encoder, allowed), batch * seq, w.finalLayerNorm);
  const pooled = new Float64Array(batch * W);
  for (let b = 0; b < batch; b++) {
    // The first position holding the largest id: the end token, as HF's CLIP pools.
    let best = 0;
    for (let s = 1; s < seq; s++) if (Number(ids[b * seq + s]) > Number(ids[b * seq + best])) best = s;
    pooled.set(lastHiddenState.subarray((b * seq + best) * W, (b * seq + best + 1) * W), b * W);
  }
  return { lastHiddenState, pooled, textEmbeds: w.projection === null ? null : linear(pooled, batch, w.projection) };
}

export interface VisionForward {
  lastHiddenState: Float64Array; // [batch, tokens, width]
  pooled: Float64Array; // [batch, width]
  imageEmbeds: Float64Array | null; // [batch, D]
}

/** CLIP vision tower on pixel values [batch, 3, imageSize, imageSize]. */
export function clipVisionForward(w: ClipVisionWeights, pixels: ArrayLike<number>, batch: number): VisionForward {
  const W = w.encoder.width;
  const p = w.patchSize;
  const S = w.imageSize;
  const grid = S / p;
  const tokens = grid * grid + 1;
  const x = new Float64Array(batch * tokens * W);
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < W; c++) x[b * tokens * W + c] = w.classEmbedding[c] as number;
    for (let gy = 0; gy < grid; gy++) {
      for (let gx = 0; gx < grid; gx++) {
        const t = 1 + gy * grid + gx;
        for (let o = 0; o < W; o++) {
          let s = 0;
          for (let ch = 0; ch < 3; ch++) {
            for (let ky = 0; ky < p; ky++) {
              for (let kx = 0; kx < p; kx++) {
                const px = pixels[((b * 3 + ch) * S + gy * p + ky) * S + gx * p + kx] as number;
                s += px * (w.patchEmbedding[((o * 3 + ch) * p + ky) * p + kx] as number);
              }
            }
          }
          x[(b * tokens + t) * W + o] = s;
        }
      }
    }
    for (let t = 0; t < tokens; t++) {
      for (let c = 0; c < W; c++)
        x[(b * tokens + t) * W + c] = (x[(b * tokens + t) * W + c] as number) + (w.positionEmbedding[t * W + c] as number);
    }
  }
  const pre = layerNorm(x, batch * tokens, w.preLayerNorm);
  const lastHiddenState = encoder(pre, batch, tokens, w.encoder, () => true);
  const cls = new Float64Array(batch * W);
  for (let b = 0; b < batch; b++) cls.set(lastHiddenState.subarray(b * tokens * W, b * tokens * W + W), b * W);
  const pooled = layerNorm(cls, batch, w.postLayerNorm);
  return { lastHiddenState, pooled, imageEmbeds: w.projection === null ? null : linear(pooled, batch, w.projection) };
}

export function l2Normalize(x: Float64Array, rows: number): Float64Array {
  const dim = x.length / rows;
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let n = 0;
    for (let i = 0; i < dim; i++) n += (x[r * dim + i] as number) ** 2;
    n = Math.sqrt(n);
    for (let i = 0; i < dim; i++) out[r * dim + i] = (x[r * dim + i] as number) / n;
  }
  return out;
}

export interface ClipForward {
  textEmbeds: Float64Array; // normalised [nText, D]
  imageEmbeds: Float64Array; // normalised [nImage, D]
  logitsPerImage: Float64Array; // [nImage, nText]
  logitsPerText: Float64Array; // [nText, nImage]
}

/** The full CLIPModel forward. */
export function clipForward(
  w: TinyClipWeights,
  ids: ArrayLike<number | bigint>,
  mask: ArrayLike<number | bigint>,
  nText: number,
  seq: number,
  pixels: ArrayLike<number>,
  nImage: number,
): ClipForward {
  const t = clipTextForward(w.text, ids, mask, nText, seq).textEmbeds;
  const v = clipVisionForward(w.vision, pixels, nImage).imageEmbeds;
  if (t === null || v === null) throw new Error('CLIP towers lack projections');
  const textEmbeds = l2Normalize(t, nText);
  const imageEmbeds = l2Normalize(v, nImage);
  const D = w.embedDim;
  const scale = Math.exp(Math.fround(w.logitScale));
  const logitsPerImage = new Float64Array(nImage * nText);
  const logitsPerText = new Float64Array(nText * nImage);
  for (let i = 0; i < nImage; i++) {
    for (let j = 0; j < nText; j++) {
      let s = 0;
      for (let c = 0; c < D; c++) s += (imageEmbeds[i * D + c] as number) * (textEmbeds[j * D + c] as number);
      logitsPerImage[i * nText + j] = scale * s;
      logitsPerText[j * nImage + i] = scale * s;
    }
  }
  return { textEmbeds, imageEmbeds, logitsPerImage, logitsPerText };
}

/** The aesthetic MLP: x [batch, in] through torch Linear layers (y = x·Wᵀ + b), no activations. */
export function aestheticForward(layers: readonly TorchLinear[], x: ArrayLike<number>, batch: number): Float64Array {
  let h = Float64Array.from(x as ArrayLike<number>);
  for (const l of layers) {
    const out = new Float64Array(batch * l.outFeatures);
    for (let b = 0; b < batch; b++) {
      for (let o = 0; o < l.outFeatures; o++) {
        let s = l.bias[o] as number;
        for (let i = 0; i < l.inFeatures; i++) s += (h[b * l.inFeatures + i] as number) * (l.weight[o * l.inFeatures + i] as number);
        out[b * l.outFeatures + o] = s;
      }
    }
    h = out;
  }
  return h;
}

/** The tiny VAE encoder: 8×8 average pool, then a 3 → 4 channel affine map. */
export function vaeEncoderForward(
  w: TinyVaeWeights,
  pixels: ArrayLike<number>,
  batch: number,
  height: number,
  width: number,
): Float64Array {
  const lh = Math.floor(height / 8);
  const lw = Math.floor(width / 8);
  const out = new Float64Array(batch * 4 * lh * lw);
  for (let b = 0; b < batch; b++) {
    for (let y = 0; y < lh; y++) {
      for (let x = 0; x < lw; x++) {
        const mean = [0, 0, 0];
        for (let c = 0; c < 3; c++) {
          let s = 0;
          for (let dy = 0; dy < 8; dy++)
            for (let dx = 0; dx < 8; dx++) s += pixels[((b * 3 + c) * height + y * 8 + dy) * width + x * 8 + dx] as number;
          mean[c] = s / 64;
        }
        for (let o = 0; o < 4; o++) {
          let s = w.bias[o] as number;
          for (let c = 0; c < 3; c++) s += (w.weight[o * 3 + c] as number) * (mean[c] as number);
          out[((b * 4 + o) * lh + y) * lw + x] = s;
        }
      }
    }
  }
  return out;
}
