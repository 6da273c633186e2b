// Tiny, deterministic ONNX models with exactly the input/output contract of the real exports the toolkit
// consumes (Hugging Face CLIP towers and full CLIP, the LAION aesthetic MLP, SD's VAE encoder and text encoder).
// Tests and the demo build them in memory; nothing is downloaded. Weights come from a seeded generator, and the
// same options always give the same bytes.

import {
  CLIP_MAX_POSITIONS,
  randomTextWeights,
  randomVisionWeights,
  tokensPerImage,
  type Activation,
  type ClipTextWeights,
  type ClipVisionWeights,
} from './clip-weights.ts';
import { clipVisionModelGraph, l2NormalizeNode, textTowerNodes, visionTowerNodes } from './clip-graph.ts';
import { withFloat16Io } from './float16-io.ts';
import { GraphBuilder } from './graph.ts';
import { encodeModel } from './model-proto.ts';
import { SeededRandom } from './seeded-random.ts';

export interface TinyClipOptions {
  /** Default 1. */
  seed?: number;
  /** Projection size D of text_embeds / image_embeds. Default 16. */
  embedDim?: number;
  /** Transformer width of both towers. Default 16. */
  width?: number;
  /** Transformer layers per tower. Default 1. */
  layers?: number;
  /** Attention heads (must divide width). Default 2. */
  heads?: number;
  /** MLP hidden size as a multiple of width. Default 4. */
  mlpRatio?: number;
  /** Default 'gelu' (erf). */
  activation?: Activation;
  /**
   * Rows of the token table. Below 49408 the ids are hashed into it (id mod vocabSize) to keep the file small;
   * 49408 gives the real table size. Default 1024.
   */
  vocabSize?: number;
  /** Default 224. */
  imageSize?: number;
  /** Default 14 (the ViT-L/14 and ViT-H/14 patch of the real scorers). */
  patchSize?: number;
  /** Stored logit_scale; the full model multiplies cosines by exp(logitScale). Default ln(100). */
  logitScale?: number;
}

export interface TinyClipWeights {
  text: ClipTextWeights;
  vision: ClipVisionWeights;
  embedDim: number;
  logitScale: number;
}

/** The weights every tiny CLIP factory uses for these options (same options → same weights in every file). */
export function tinyClipWeights(options: TinyClipOptions = {}): TinyClipWeights {
  const seed = options.seed ?? 1;
  const width = options.width ?? 16;
  const embedDim = options.embedDim ?? 16;
  const tower = {
    width,
    layers: options.layers ?? 1,
    heads: options.heads ?? 2,
    mlpDim: width * (options.mlpRatio ?? 4),
    embedDim,
    activation: options.activation ?? 'gelu',
  };
  return {
    text: randomTextWeights((seed * 2 + 1) >>> 0, {
      ...tower,
      vocabSize: options.vocabSize ?? 1024,
      maxPositions: CLIP_MAX_POSITIONS,
    }),
    vision: randomVisionWeights((seed * 2 + 2) >>> 0, {
      ...tower,
      imageSize: options.imageSize ?? 224,
      patchSize: options.patchSize ?? 14,
    }),
    embedDim,
    logitScale: options.logitScale ?? Math.log(100),
  };
}

const META = { producerName: 'balanced-dpo tiny-models' };

/**
 * CLIPTextModelWithProjection export. Inputs: input_ids int64 [batch_size, sequence_length], attention_mask int64
 * [batch_size, sequence_length]. Outputs: text_embeds float [batch_size, D] (not normalised), last_hidden_state
 * float [batch_size, sequence_length, width].
 */
export function tinyClipTextModel(options: TinyClipOptions = {}): Uint8Array {
  return tinyClipTextGraph(options).toBytes(META);
}

function tinyClipTextGraph(options: TinyClipOptions): GraphBuilder {
  const w = tinyClipWeights(options);
  const g = new GraphBuilder('clip_text_with_projection');
  const ids = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const mask = g.input('attention_mask', 'int64', ['batch_size', 'sequence_length']);
  textTowerNodes(g, w.text, ids, mask, { textEmbeds: 'text_embeds', lastHiddenState: 'last_hidden_state' });
  g.output({ name: 'text_embeds' }, 'float32', ['batch_size', w.embedDim]);
  g.output({ name: 'last_hidden_state' }, 'float32', ['batch_size', 'sequence_length', w.text.encoder.width]);
  return g;
}

const PIXEL_DIMS = ['batch_size', 'num_channels', 'height', 'width'] as const;

/**
 * CLIPVisionModelWithProjection export. Input: pixel_values float [batch_size, num_channels, height, width]
 * (3 × imageSize × imageSize). Outputs: image_embeds float [batch_size, D] (not normalised), last_hidden_state
 * float [batch_size, patches + 1, width].
 */
export function tinyClipVisionModel(options: TinyClipOptions = {}): Uint8Array {
  return clipVisionModelGraph(tinyClipWeights(options).vision).toBytes(META);
}

/** tinyClipTextModel with float16 text_embeds and last_hidden_state (input_ids and attention_mask stay int64). */
export function tinyClipTextModelFloat16(options: TinyClipOptions = {}): Uint8Array {
  return encodeModel(withFloat16Io(tinyClipTextGraph(options).toSpec(META)));
}

/** tinyClipVisionModel with float16 pixel_values, image_embeds and last_hidden_state. */
export function tinyClipVisionModelFloat16(options: TinyClipOptions = {}): Uint8Array {
  return encodeModel(withFloat16Io(clipVisionModelGraph(tinyClipWeights(options).vision).toSpec(META)));
}

/**
 * CLIPVisionModel export (no projection): outputs last_hidden_state and pooler_output [batch_size, width] only.
 * A scorer must refuse it; it exists so tests can check that refusal.
 */
export function tinyClipVisionModelWithoutProjection(options: TinyClipOptions = {}): Uint8Array {
  const w = tinyClipWeights(options);
  const g = new GraphBuilder('clip_vision');
  const pixels = g.input('pixel_values', 'float32', PIXEL_DIMS);
  visionTowerNodes(g, { ...w.vision, projection: null }, pixels, {
    pooled: 'pooler_output',
    lastHiddenState: 'last_hidden_state',
  });
  g.output({ name: 'last_hidden_state' }, 'float32', ['batch_size', tokensPerImage(w.vision), w.vision.encoder.width]);
  g.output({ name: 'pooler_output' }, 'float32', ['batch_size', w.vision.encoder.width]);
  return g.toBytes(META);
}

/**
 * CLIPModel export. Inputs: input_ids int64 [text_batch_size, sequence_length], pixel_values float
 * [image_batch_size, num_channels, height, width], attention_mask int64 [text_batch_size, sequence_length].
 * Outputs: logits_per_image [image_batch_size, text_batch_size] = exp(logit_scale)·image_embeds·text_embedsᵀ,
 * logits_per_text (its transpose), text_embeds [text_batch_size, D] and image_embeds [image_batch_size, D], both
 * L2-normalised as CLIPModel returns them. Same weights as the split towers built with the same options.
 */
export function tinyClipModel(options: TinyClipOptions = {}): Uint8Array {
  const w = tinyClipWeights(options);
  const g = new GraphBuilder('clip');
  const ids = g.input('input_ids', 'int64', ['text_batch_size', 'sequence_length']);
  const pixels = g.input('pixel_values', 'float32', ['image_batch_size', 'num_channels', 'height', 'width']);
  const mask = g.input('attention_mask', 'int64', ['text_batch_size', 'sequence_length']);
  const text = textTowerNodes(g, w.text, ids, mask);
  const vision = visionTowerNodes(g, w.vision, pixels);
  if (text.textEmbeds === null || vision.imageEmbeds === null) throw new Error('tiny CLIP towers lack projections');
  const textEmbeds = l2NormalizeNode(g, text.textEmbeds, 'text_embeds');
  const imageEmbeds = l2NormalizeNode(g, vision.imageEmbeds, 'image_embeds');
  const scale = g.op('Exp', [g.initializer('logit_scale', Float32Array.of(w.logitScale), [])]);
  const perText = g.op(
    'Mul',
    [g.op('MatMul', [textEmbeds, g.op('Transpose', [imageEmbeds], { perm: [1, 0] })]), scale],
    {},
    {
      out: 'logits_per_text',
    },
  );
  g.op('Transpose', [perText], { perm: [1, 0] }, { out: 'logits_per_image' });
  g.output({ name: 'logits_per_image' }, 'float32', ['image_batch_size', 'text_batch_size']);
  g.output({ name: 'logits_per_text' }, 'float32', ['text_batch_size', 'image_batch_size']);
  g.output(textEmbeds, 'float32', ['text_batch_size', w.embedDim]);
  g.output(imageEmbeds, 'float32', ['image_batch_size', w.embedDim]);
  return g.toBytes(META);
}

/**
 * CLIP text encoder as Stable Diffusion uses it (CLIPTextModel export, no attention mask: causal mask only).
 * Input: input_ids int64 [batch_size, sequence_length]. Outputs: last_hidden_state float
 * [batch_size, sequence_length, width], pooler_output float [batch_size, width].
 */
export function tinyClipTextEncoder(options: TinyClipOptions = {}): Uint8Array {
  const w = tinyClipWeights(options);
  const g = new GraphBuilder('clip_text_encoder');
  const ids = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  textTowerNodes(g, { ...w.text, projection: null }, ids, null, {
    lastHiddenState: 'last_hidden_state',
    pooled: 'pooler_output',
  });
  g.output({ name: 'last_hidden_state' }, 'float32', ['batch_size', 'sequence_length', w.text.encoder.width]);
  g.output({ name: 'pooler_output' }, 'float32', ['batch_size', w.text.encoder.width]);
  return g.toBytes(META);
}

// ---- LAION improved aesthetic predictor ----

/** A torch nn.Linear: weight [out, in] (exported as Gemm with transB = 1). */
export interface TorchLinear {
  inFeatures: number;
  outFeatures: number;
  weight: Float32Array;
  bias: Float32Array;
}

export interface TinyAestheticOptions {
  /** Embedding size (768 for the real CLIP ViT-L/14 predictor). Default 768. */
  inputDim?: number;
  /** Hidden sizes; the real predictor's are 1024, 128, 64, 16. */
  hidden?: readonly number[];
  /** Default 1. */
  seed?: number;
  /**
   * The MLP has no activations, so it is one affine map x ↦ u·x + c. Rescale the last layer so that c = offset and
   * ‖u‖ = scale: unit-norm embeddings then score in [offset − scale, offset + scale], like the real predictor's
   * ≈1–10 scale. Default offset 5.5, scale 4.5.
   */
  scoreOffset?: number;
  scoreScale?: number;
}

export const AESTHETIC_HIDDEN: readonly number[] = [1024, 128, 64, 16];

/** The layers of the tiny aesthetic MLP (nn.Linear init: uniform ±1/√in, then the last layer rescaled). */
export function tinyAestheticWeights(options: TinyAestheticOptions = {}): TorchLinear[] {
  const sizes = [options.inputDim ?? 768, ...(options.hidden ?? AESTHETIC_HIDDEN), 1];
  const rng = new SeededRandom(options.seed ?? 1);
  const layers: TorchLinear[] = [];
  for (let i = 0; i + 1 < sizes.length; i++) {
    const inF = sizes[i] as number;
    const outF = sizes[i + 1] as number;
    const bound = 1 / Math.sqrt(inF);
    const uniform = (n: number) => Float32Array.from({ length: n }, () => (rng.uniform() * 2 - 1) * bound);
    layers.push({ inFeatures: inF, outFeatures: outF, weight: uniform(inF * outF), bias: uniform(outF) });
  }
  // Collapse the affine chain: u = W1ᵀ…W5ᵀ (a row vector pushed back through the layers), c = the output at x = 0.
  let row = [1];
  let c = 0;
  for (let i = layers.length - 1; i >= 0; i--) {
    const l = layers[i] as TorchLinear;
    for (let o = 0; o < l.outFeatures; o++) c += (row[o] as number) * (l.bias[o] as number);
    const next = new Array<number>(l.inFeatures).fill(0);
    for (let o = 0; o < l.outFeatures; o++) {
      for (let j = 0; j < l.inFeatures; j++)
        next[j] = (next[j] as number) + (row[o] as number) * (l.weight[o * l.inFeatures + j] as number);
    }
    row = next;
  }
  const norm = Math.sqrt(row.reduce((a, v) => a + v * v, 0));
  const last = layers[layers.length - 1] as TorchLinear;
  const s = (options.scoreScale ?? 4.5) / norm;
  const lastBias = last.bias[0] as number;
  // c = lastBias + (rest of c, which flows through the last weight): rescaling the last weight by s scales both.
  last.weight.forEach((v, i) => (last.weight[i] = v * s));
  last.bias[0] = (options.scoreOffset ?? 5.5) - s * (c - lastBias);
  return layers;
}

/**
 * LAION improved aesthetic predictor export (Linear layers only; Dropout vanishes in an eval export). Input:
 * embedding float [batch_size, inputDim] (the L2-normalised CLIP image embedding). Output: score float [batch_size, 1].
 */
export function tinyAestheticModel(options: TinyAestheticOptions = {}): Uint8Array {
  const layers = tinyAestheticWeights(options);
  const g = new GraphBuilder('aesthetic_mlp');
  let x = g.input('embedding', 'float32', ['batch_size', layers[0]?.inFeatures ?? 0]);
  // nn.Sequential indices of the Linear layers in the original (Dropout at 1, 3, 5 between them).
  const seqIndex = [0, 2, 4, 6, 7];
  layers.forEach((l, i) => {
    const p = `layers.${seqIndex[i] ?? i}`;
    const w = g.initializer(`${p}.weight`, l.weight, [l.outFeatures, l.inFeatures]);
    const b = g.initializer(`${p}.bias`, l.bias, [l.outFeatures]);
    x = g.op('Gemm', [x, w, b], { transB: 1 }, i === layers.length - 1 ? { out: 'score' } : {});
  });
  g.output(x, 'float32', ['batch_size', 1]);
  return g.toBytes(META);
}

// ---- Stable Diffusion VAE encoder ----

export interface TinyVaeWeights {
  /** 1×1 conv 3 → 4 channels: weight [4, 3], bias [4]. */
  weight: Float32Array;
  bias: Float32Array;
}

export function tinyVaeWeights(options: { seed?: number } = {}): TinyVaeWeights {
  const rng = new SeededRandom(options.seed ?? 1);
  return { weight: rng.normals(12, 0.5), bias: rng.normals(4, 0.1) };
}

/**
 * VAE encoder export (the latent distribution's mean). Input: pixel_values float [batch_size, 3, height, width]
 * in [-1, 1]. Output: latent_mean float [batch_size, 4, height/8, width/8] (8×8 average pool, then a 3 → 4 channel
 * linear map).
 */
export function tinyVaeEncoder(options: { seed?: number } = {}): Uint8Array {
  const w = tinyVaeWeights(options);
  const g = new GraphBuilder('vae_encoder');
  const pixels = g.input('pixel_values', 'float32', ['batch_size', 3, 'height', 'width']);
  const pooled = g.op('AveragePool', [pixels], { kernel_shape: [8, 8], strides: [8, 8] });
  const kernel = g.initializer('quant_conv.weight', w.weight, [4, 3, 1, 1]);
  const bias = g.initializer('quant_conv.bias', w.bias, [4]);
  g.op('Conv', [pooled, kernel, bias], { kernel_shape: [1, 1] }, { out: 'latent_mean' });
  g.output({ name: 'latent_mean' }, 'float32', ['batch_size', 4, 'latent_height', 'latent_width']);
  return g.toBytes(META);
}
