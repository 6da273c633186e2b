// A DiT-style ε-prediction transformer over VAE latent patches (Peebles & Xie's adaLN-zero blocks, plus PixArt-α's
// cross-attention to the text encoder's states). No convolution and no gather anywhere, so every op has a
// gradient on every tfjs backend, wasm included. Weights are stored [in, out] (y = x·W), unlike PyTorch's [out, in].
import * as tf from '@tensorflow/tfjs';
import type { Denoiser } from './denoiser.ts';
import { dense, denseFrozen, geluTanh, layerNorm, modulate, silu } from './ops.ts';
import { createRng, type Rng } from './rng.ts';
import { InputError } from '../core/errors.ts';

export interface LoraConfig {
  rank: number;
  alpha: number;
}

export interface DitConfig {
  latentChannels: number;
  /** Latents are square: latentSize × latentSize. */
  latentSize: number;
  patch: number;
  width: number;
  depth: number;
  heads: number;
  /** Width of the cached text-encoder hidden states. */
  textWidth: number;
  mlpRatio: number;
  /** Low-rank adapters on every attention projection (q, k, v, o); only they train when present. */
  lora?: LoraConfig;
  /** 'sincos' (fixed 2-D sin-cos, DiT's choice; the default) or 'learned'. */
  posEmbed?: 'sincos' | 'learned';
  /** Size of the sinusoidal timestep features fed to the timestep MLP; default 256 as in DiT. */
  timeFreqDim?: number;
}

export function validateDitConfig(config: DitConfig): void {
  const positive = ['latentChannels', 'latentSize', 'patch', 'width', 'depth', 'heads', 'textWidth'] as const;
  for (const key of positive) {
    const value = config[key];
    if (!Number.isInteger(value) || value <= 0) throw new InputError(`dit config: ${key} must be a positive integer, got ${value}`);
  }
  if (!(config.mlpRatio > 0)) throw new InputError(`dit config: mlpRatio must be positive, got ${config.mlpRatio}`);
  if (config.latentSize % config.patch !== 0) {
    throw new InputError(`dit config: latentSize ${config.latentSize} is not a multiple of patch ${config.patch}`);
  }
  if (config.width % config.heads !== 0) throw new InputError(`dit config: width ${config.width} not divisible by heads ${config.heads}`);
  if (config.width % 4 !== 0) throw new InputError(`dit config: width ${config.width} must be a multiple of 4 (2-D sin-cos positions)`);
  const freq = config.timeFreqDim ?? 256;
  if (!Number.isInteger(freq) || freq < 2 || freq % 2 !== 0) throw new InputError(`dit config: timeFreqDim must be an even integer ≥ 2`);
  if (config.posEmbed !== undefined && config.posEmbed !== 'sincos' && config.posEmbed !== 'learned') {
    throw new InputError(`dit config: posEmbed must be 'sincos' or 'learned', got ${String(config.posEmbed)}`);
  }
  if (config.lora) {
    const { rank, alpha } = config.lora;
    if (!Number.isInteger(rank) || rank <= 0) throw new InputError(`dit config: lora.rank must be a positive integer, got ${rank}`);
    if (!(alpha > 0)) throw new InputError(`dit config: lora.alpha must be positive, got ${alpha}`);
  }
}

/** DiT's 2-D sin-cos table [N, D] for a grid × grid token layout (half the channels per axis). */
export function sincosPositions(grid: number, width: number): Float32Array {
  const out = new Float32Array(grid * grid * width);
  const quarter = width / 4;
  for (let row = 0; row < grid; row++) {
    for (let col = 0; col < grid; col++) {
      const base = (row * grid + col) * width;
      // DiT's table puts the column-axis half first (its meshgrid order is w, h).
      const coords = [col, row];
      for (let axis = 0; axis < 2; axis++) {
        const pos = coords[axis]!;
        for (let i = 0; i < quarter; i++) {
          const omega = 1 / Math.pow(10000, i / quarter);
          out[base + axis * 2 * quarter + i] = Math.sin(pos * omega);
          out[base + axis * 2 * quarter + quarter + i] = Math.cos(pos * omega);
        }
      }
    }
  }
  return out;
}

interface Projection {
  w: tf.Variable;
  b: tf.Variable;
  loraA?: tf.Variable;
  loraB?: tf.Variable;
}

interface Attention {
  q: Projection;
  k: Projection;
  v: Projection;
  o: Projection;
}

interface Block {
  modulation: Projection;
  attn: Attention;
  crossAttn: Attention;
  fc1: Projection;
  fc2: Projection;
}

type Init = 'xavier' | 'zeros' | { normal: number };

class WeightFactory {
  readonly parameters = new Map<string, tf.Variable>();
  private readonly adapterNames: string[] = [];
  constructor(private readonly rng: Rng) {}

  private add(name: string, shape: number[], values: Float32Array, adapter = false): tf.Variable {
    const variable = tf.tidy(() => tf.variable(tf.tensor(values, shape), true));
    this.parameters.set(name, variable);
    if (adapter) this.adapterNames.push(name);
    return variable;
  }

  matrix(name: string, rows: number, cols: number, init: Init, adapter = false): tf.Variable {
    const values = new Float32Array(rows * cols);
    if (init === 'xavier') {
      const bound = Math.sqrt(6 / (rows + cols));
      for (let i = 0; i < values.length; i++) values[i] = (2 * this.rng.uniform() - 1) * bound;
    } else if (init !== 'zeros') {
      this.rng.fillNormal(values);
      for (let i = 0; i < values.length; i++) values[i] = values[i]! * init.normal;
    }
    return this.add(name, [rows, cols], values, adapter);
  }

  uniformMatrix(name: string, rows: number, cols: number, bound: number, adapter: boolean): tf.Variable {
    const values = new Float32Array(rows * cols);
    for (let i = 0; i < values.length; i++) values[i] = (2 * this.rng.uniform() - 1) * bound;
    return this.add(name, [rows, cols], values, adapter);
  }

  vector(name: string, size: number): tf.Variable {
    return this.add(name, [size], new Float32Array(size));
  }

  linear(name: string, inputs: number, outputs: number, init: Init, lora?: LoraConfig): Projection {
    const projection: Projection = {
      w: this.matrix(`${name}.weight`, inputs, outputs, init),
      b: this.vector(`${name}.bias`, outputs),
    };
    if (lora) {
      // PEFT's default: A ~ kaiming-uniform (bound 1/√fan_in), B = 0, so the adapter starts as a no-op.
      projection.loraA = this.uniformMatrix(`${name}.lora_A`, inputs, lora.rank, 1 / Math.sqrt(inputs), true);
      projection.loraB = this.matrix(`${name}.lora_B`, lora.rank, outputs, 'zeros', true);
    }
    return projection;
  }

  adapters(): string[] {
    return [...this.adapterNames];
  }
}

/** [B, C, H, W] → [B·N, C·p·p]: tokens in row-major grid order, features in (C, p, p) order, as a conv's kernel. */
export function patchify(x: tf.Tensor4D, patch: number): tf.Tensor2D {
  const [b, c, h, w] = x.shape;
  if (h % patch !== 0 || w % patch !== 0) throw new Error(`patchify: ${h}×${w} is not a multiple of patch ${patch}`);
  const gh = h / patch;
  const gw = w / patch;
  const split = tf.reshape(x, [b, c, gh, patch, gw, patch]);
  return tf.reshape(tf.transpose(split, [0, 2, 4, 1, 3, 5]), [b * gh * gw, c * patch * patch]) as tf.Tensor2D;
}

/** The inverse of patchify for square latents of side `size`. */
export function unpatchify(tokens: tf.Tensor2D, batch: number, channels: number, size: number, patch: number): tf.Tensor4D {
  const g = size / patch;
  const split = tf.reshape(tokens, [batch, g, g, channels, patch, patch]);
  return tf.reshape(tf.transpose(split, [0, 3, 1, 4, 2, 5]), [batch, channels, size, size]) as tf.Tensor4D;
}

export class Dit implements Denoiser {
  readonly config: DitConfig;
  readonly parameters: ReadonlyMap<string, tf.Variable>;
  readonly hasAdapters: boolean;
  private readonly adapterNames: string[];
  private readonly projections: Projection[] = [];
  private enabled = true;
  private readonly tokens: number;
  private readonly freqDim: number;
  private readonly loraScale: number;
  private readonly patchEmbed: Projection;
  private readonly positions: tf.Tensor2D | tf.Variable;
  private readonly timeMlp1: Projection;
  private readonly timeMlp2: Projection;
  private readonly textPool: Projection;
  private readonly blocks: Block[] = [];
  private readonly finalModulation: Projection;
  private readonly head: Projection;
  private readonly timeFrequencies: tf.Tensor2D;

  constructor(config: DitConfig, seed: number) {
    validateDitConfig(config);
    this.config = structuredClone(config);
    const { latentChannels: c, patch: p, width: d, depth, textWidth, mlpRatio, lora } = config;
    const grid = config.latentSize / p;
    this.tokens = grid * grid;
    this.freqDim = config.timeFreqDim ?? 256;
    this.loraScale = lora ? lora.alpha / lora.rank : 0;
    const hidden = Math.round(d * mlpRatio);
    const factory = new WeightFactory(createRng(seed));

    this.patchEmbed = factory.linear('x_embedder.proj', c * p * p, d, 'xavier');
    if (config.posEmbed === 'learned') {
      this.positions = factory.matrix('pos_embed', this.tokens, d, { normal: 0.02 });
    } else {
      this.positions = tf.tensor2d(sincosPositions(grid, d), [this.tokens, d]);
    }
    this.timeMlp1 = factory.linear('t_embedder.mlp.0', this.freqDim, d, { normal: 0.02 });
    this.timeMlp2 = factory.linear('t_embedder.mlp.2', d, d, { normal: 0.02 });
    this.textPool = factory.linear('y_embedder.proj', textWidth, d, 'xavier');
    for (let i = 0; i < depth; i++) {
      const name = `blocks.${i}`;
      const attention = (prefix: string, kvWidth: number, zeroOut: boolean): Attention => ({
        q: factory.linear(`${prefix}.q`, d, d, 'xavier', lora),
        k: factory.linear(`${prefix}.k`, kvWidth, d, 'xavier', lora),
        v: factory.linear(`${prefix}.v`, kvWidth, d, 'xavier', lora),
        o: factory.linear(`${prefix}.o`, d, d, zeroOut ? 'zeros' : 'xavier', lora),
      });
      this.blocks.push({
        // adaLN-zero: the modulation starts at zero, so every block starts as the identity.
        modulation: factory.linear(`${name}.adaLN_modulation`, d, 6 * d, 'zeros'),
        attn: attention(`${name}.attn`, d, false),
        // PixArt-α zeroes the cross-attention output for the same reason.
        crossAttn: attention(`${name}.cross_attn`, textWidth, true),
        fc1: factory.linear(`${name}.mlp.fc1`, d, hidden, 'xavier'),
        fc2: factory.linear(`${name}.mlp.fc2`, hidden, d, 'xavier'),
      });
    }
    this.finalModulation = factory.linear('final_layer.adaLN_modulation', d, 2 * d, 'zeros');
    this.head = factory.linear('final_layer.linear', d, p * p * c, 'zeros');

    for (const block of this.blocks) {
      for (const attn of [block.attn, block.crossAttn]) this.projections.push(attn.q, attn.k, attn.v, attn.o);
    }
    this.parameters = factory.parameters;
    this.adapterNames = factory.adapters();
    this.hasAdapters = lora !== undefined;

    const half = this.freqDim / 2;
    const freqs = new Float32Array(half);
    for (let i = 0; i < half; i++) freqs[i] = Math.exp((-Math.log(10000) * i) / half);
    this.timeFrequencies = tf.tensor2d(freqs, [1, half]);
  }

  trainableNames(): string[] {
    if (this.hasAdapters) return [...this.adapterNames];
    return [...this.parameters.keys()];
  }

  adaptersEnabled(): boolean {
    return this.hasAdapters && this.enabled;
  }

  setAdaptersEnabled(enabled: boolean): void {
    this.enabled = enabled;
  }

  mergeAdapters(fraction = 1): void {
    if (!this.hasAdapters) return;
    if (!(fraction >= 0 && fraction <= 1)) throw new Error(`mergeAdapters: fraction must be in [0, 1], got ${fraction}`);
    for (const projection of this.projections) {
      const { w, loraA, loraB } = projection;
      if (!loraA || !loraB) continue;
      tf.tidy(() => {
        const delta = tf.mul(tf.matMul(loraA as tf.Tensor2D, loraB as tf.Tensor2D), this.loraScale * fraction);
        w.assign(tf.add(w, delta));
        loraB.assign(tf.mul(loraB, 1 - fraction));
      });
    }
  }

  clone(): Dit {
    const copy = new Dit(this.config, 0);
    for (const [name, variable] of this.parameters) copy.parameters.get(name)!.assign(variable);
    copy.setAdaptersEnabled(this.enabled);
    return copy;
  }

  dispose(): void {
    for (const variable of this.parameters.values()) variable.dispose();
    if (!(this.positions instanceof tf.Variable)) this.positions.dispose();
    this.timeFrequencies.dispose();
  }

  predict(xt: tf.Tensor4D, t: tf.Tensor1D, textStates: tf.Tensor3D, mask?: tf.Tensor2D): tf.Tensor4D {
    const { latentChannels: c, latentSize, width: d, textWidth } = this.config;
    const [batch, channels, height, width] = xt.shape;
    if (channels !== c || height !== latentSize || width !== latentSize) {
      throw new Error(`dit: latents ${xt.shape.join('×')} do not match config ${c}×${latentSize}×${latentSize}`);
    }
    if (t.shape[0] !== batch) throw new Error(`dit: ${t.shape[0]} timesteps for a batch of ${batch}`);
    const [textBatch, textLength, textChannels] = textStates.shape;
    if (textBatch !== batch || textChannels !== textWidth) {
      throw new Error(`dit: text states ${textStates.shape.join('×')} do not match batch ${batch} × S × ${textWidth}`);
    }
    if (mask && (mask.shape[0] !== batch || mask.shape[1] !== textLength)) {
      throw new Error(`dit: mask ${mask.shape.join('×')} does not match text states ${batch}×${textLength}`);
    }
    return tf.tidy(() => {
      const n = this.tokens;
      const patches = patchify(xt, this.config.patch);
      let x = tf.add(tf.reshape(this.linear(patches, this.patchEmbed), [batch, n, d]), this.positions) as tf.Tensor3D;
      const conditioning = silu(this.conditioning(t, textStates, mask));
      const textFlat = tf.reshape(textStates, [batch * textLength, textWidth]) as tf.Tensor2D;
      const maskBias = mask ? (tf.reshape(tf.mul(tf.sub(mask, 1), 1e9), [batch, 1, 1, textLength]) as tf.Tensor4D) : undefined;
      for (const block of this.blocks) x = this.block(x, conditioning, block, textFlat, textLength, maskBias);
      const [shift, scale] = tf.split(this.linear(conditioning, this.finalModulation), 2, 1) as [tf.Tensor2D, tf.Tensor2D];
      const normed = modulate(layerNorm(x), shift, scale);
      const out = this.linear(tf.reshape(normed, [batch * n, d]) as tf.Tensor2D, this.head);
      return unpatchify(out, batch, c, latentSize, this.config.patch);
    });
  }

  private linear(x: tf.Tensor2D, projection: Projection): tf.Tensor2D {
    // With adapters only they train, so the base weights take the cheaper input-only gradient.
    const y = (this.hasAdapters ? denseFrozen : dense)(x, projection.w as tf.Tensor2D, projection.b as tf.Tensor1D);
    const { loraA, loraB } = projection;
    if (!loraA || !loraB || !this.enabled) return y;
    const low = dense(dense(x, loraA as tf.Tensor2D), loraB as tf.Tensor2D);
    return tf.add(y, tf.mul(low, this.loraScale));
  }

  /** Timestep MLP on sinusoidal features, plus the mask-weighted mean of the text states, projected: [B, D]. */
  private conditioning(t: tf.Tensor1D, text: tf.Tensor3D, mask?: tf.Tensor2D): tf.Tensor2D {
    const b = t.shape[0];
    const steps = t.dtype === 'float32' ? t : tf.cast(t, 'float32');
    const args = tf.mul(tf.reshape(steps, [b, 1]), this.timeFrequencies);
    const features = tf.concat([tf.cos(args), tf.sin(args)], 1) as tf.Tensor2D;
    const timeEmbedding = this.linear(silu(this.linear(features, this.timeMlp1)), this.timeMlp2);
    let pooled: tf.Tensor2D;
    if (mask) {
      const weights = tf.reshape(mask, [b, mask.shape[1], 1]);
      const count = tf.maximum(tf.sum(mask, 1, true), 1);
      pooled = tf.div(tf.sum(tf.mul(text, weights), 1), count) as tf.Tensor2D;
    } else {
      pooled = tf.mean(text, 1) as tf.Tensor2D;
    }
    return tf.add(timeEmbedding, this.linear(pooled, this.textPool));
  }

  private block(
    x: tf.Tensor3D,
    conditioning: tf.Tensor2D,
    block: Block,
    textFlat: tf.Tensor2D,
    textLength: number,
    maskBias?: tf.Tensor4D,
  ): tf.Tensor3D {
    const [b, n, d] = x.shape;
    const gate = (g: tf.Tensor2D): tf.Tensor3D => tf.reshape(g, [b, 1, d]);
    const [shiftAttn, scaleAttn, gateAttn, shiftMlp, scaleMlp, gateMlp] = tf.split(
      this.linear(conditioning, block.modulation),
      6,
      1,
    ) as tf.Tensor2D[] as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
    const flat = (y: tf.Tensor3D): tf.Tensor2D => tf.reshape(y, [b * n, d]);

    const attnIn = flat(modulate(layerNorm(x), shiftAttn, scaleAttn));
    const attnOut = this.attention(block.attn, attnIn, attnIn, b, n, n);
    x = tf.add(x, tf.mul(gate(gateAttn), tf.reshape(attnOut, [b, n, d])));

    const crossOut = this.attention(block.crossAttn, flat(layerNorm(x)), textFlat, b, n, textLength, maskBias);
    x = tf.add(x, tf.reshape(crossOut, [b, n, d]));

    const mlpIn = flat(modulate(layerNorm(x), shiftMlp, scaleMlp));
    const mlpOut = this.linear(geluTanh(this.linear(mlpIn, block.fc1)), block.fc2);
    return tf.add(x, tf.mul(gate(gateMlp), tf.reshape(mlpOut, [b, n, d])));
  }

  /** Multi-head attention of queries [B·Nq, D] over keys/values [B·Nk, *]; returns [B·Nq, D]. */
  private attention(
    attn: Attention,
    queries: tf.Tensor2D,
    context: tf.Tensor2D,
    b: number,
    nq: number,
    nk: number,
    maskBias?: tf.Tensor4D,
  ): tf.Tensor2D {
    const { width: d, heads: h } = this.config;
    const dh = d / h;
    const q = tf.mul(this.linear(queries, attn.q), 1 / Math.sqrt(dh));
    const k = this.linear(context, attn.k);
    const v = this.linear(context, attn.v);
    const qh = tf.reshape(tf.transpose(tf.reshape(q, [b, nq, h, dh]), [0, 2, 1, 3]), [b * h, nq, dh]) as tf.Tensor3D;
    const kt = tf.reshape(tf.transpose(tf.reshape(k, [b, nk, h, dh]), [0, 2, 3, 1]), [b * h, dh, nk]) as tf.Tensor3D;
    const vh = tf.reshape(tf.transpose(tf.reshape(v, [b, nk, h, dh]), [0, 2, 1, 3]), [b * h, nk, dh]) as tf.Tensor3D;
    let scores = tf.matMul(qh, kt);
    if (maskBias) scores = tf.reshape(tf.add(tf.reshape(scores, [b, h, nq, nk]), maskBias), [b * h, nq, nk]);
    const mixed = tf.matMul(tf.softmax(scores), vh);
    const merged = tf.reshape(tf.transpose(tf.reshape(mixed, [b, h, nq, dh]), [0, 2, 1, 3]), [b * nq, d]) as tf.Tensor2D;
    return this.linear(merged, attn.o);
  }
}

export function createDit(config: DitConfig, seed = 0): Dit {
  return new Dit(config, seed);
}
