// Parameters of a CLIP-architecture text or vision tower (the layout of Hugging Face's CLIPTextModel /
// CLIPVisionModel), and deterministic random initialisation. The ONNX graph (clip-graph.ts) and the plain-TS
// forward pass (clip-reference.ts) both read these, so a test can check one against the other.

import { SeededRandom } from './seeded-random.ts';

/** A dense layer y = x·weight + bias with weight stored [inFeatures, outFeatures] (the MatMul layout of exports). */
export interface Linear {
  inFeatures: number;
  outFeatures: number;
  weight: Float32Array;
  bias: Float32Array | null;
}

export interface LayerNorm {
  gamma: Float32Array;
  beta: Float32Array;
  epsilon: number;
}

export interface EncoderLayer {
  ln1: LayerNorm;
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  ln2: LayerNorm;
  fc1: Linear;
  fc2: Linear;
}

/** 'gelu' is the exact erf GELU (open_clip ViT-H); 'quick_gelu' is x·σ(1.702x) (OpenAI CLIP). */
export type Activation = 'gelu' | 'quick_gelu';

export interface Encoder {
  width: number;
  heads: number;
  activation: Activation;
  layers: EncoderLayer[];
}

export interface ClipTextWeights {
  kind: 'text';
  /** Rows of the token table. Below the real 49408, ids are hashed into the table (id mod vocabSize). */
  vocabSize: number;
  maxPositions: number;
  tokenEmbedding: Float32Array; // [vocabSize, width]
  positionEmbedding: Float32Array; // [maxPositions, width]
  encoder: Encoder;
  finalLayerNorm: LayerNorm;
  /** text_projection (no bias); null for a model without projection. */
  projection: Linear | null;
}

export interface ClipVisionWeights {
  kind: 'vision';
  imageSize: number;
  patchSize: number;
  patchEmbedding: Float32Array; // Conv weight [width, 3, patch, patch], no bias
  classEmbedding: Float32Array; // [width]
  positionEmbedding: Float32Array; // [patches + 1, width]
  preLayerNorm: LayerNorm;
  encoder: Encoder;
  postLayerNorm: LayerNorm;
  /** visual_projection (no bias); null for a model without projection. */
  projection: Linear | null;
}

export interface TowerOptions {
  width: number;
  layers: number;
  heads: number;
  mlpDim: number;
  /** Projection output size; 0 for no projection. */
  embedDim: number;
  activation: Activation;
}

export const CLIP_VOCAB_SIZE = 49408;
export const CLIP_MAX_POSITIONS = 77;
const LN_EPSILON = 1e-5;

function linear(rng: SeededRandom, inFeatures: number, outFeatures: number, bias: boolean): Linear {
  return {
    inFeatures,
    outFeatures,
    weight: rng.normals(inFeatures * outFeatures, 1 / Math.sqrt(inFeatures)),
    bias: bias ? rng.normals(outFeatures, 0.1) : null,
  };
}

// Random (not identity) affine parameters, so that a graph that forgot gamma or beta fails the reference test.
function layerNorm(rng: SeededRandom, width: number): LayerNorm {
  return { gamma: rng.normals(width, 0.1, 1), beta: rng.normals(width, 0.1), epsilon: LN_EPSILON };
}

function encoder(rng: SeededRandom, o: TowerOptions): Encoder {
  if (o.width % o.heads !== 0) throw new Error(`width ${o.width} is not divisible by ${o.heads} heads`);
  const layers: EncoderLayer[] = [];
  for (let i = 0; i < o.layers; i++) {
    layers.push({
      ln1: layerNorm(rng, o.width),
      q: linear(rng, o.width, o.width, true),
      k: linear(rng, o.width, o.width, true),
      v: linear(rng, o.width, o.width, true),
      o: linear(rng, o.width, o.width, true),
      ln2: layerNorm(rng, o.width),
      fc1: linear(rng, o.width, o.mlpDim, true),
      fc2: linear(rng, o.mlpDim, o.width, true),
    });
  }
  return { width: o.width, heads: o.heads, activation: o.activation, layers };
}

export function randomTextWeights(seed: number, o: TowerOptions & { vocabSize: number; maxPositions: number }): ClipTextWeights {
  const rng = new SeededRandom(seed);
  return {
    kind: 'text',
    vocabSize: o.vocabSize,
    maxPositions: o.maxPositions,
    tokenEmbedding: rng.normals(o.vocabSize * o.width),
    positionEmbedding: rng.normals(o.maxPositions * o.width, 0.5),
    encoder: encoder(rng, o),
    finalLayerNorm: layerNorm(rng, o.width),
    projection: o.embedDim > 0 ? linear(rng, o.width, o.embedDim, false) : null,
  };
}

export function randomVisionWeights(seed: number, o: TowerOptions & { imageSize: number; patchSize: number }): ClipVisionWeights {
  if (o.imageSize % o.patchSize !== 0) throw new Error(`image size ${o.imageSize} is not a multiple of patch ${o.patchSize}`);
  const rng = new SeededRandom(seed);
  const patches = (o.imageSize / o.patchSize) ** 2;
  const fanIn = 3 * o.patchSize * o.patchSize;
  return {
    kind: 'vision',
    imageSize: o.imageSize,
    patchSize: o.patchSize,
    // A uniform brightness shift c moves every patch token by c·(kernel sums) ~ c·N(0, 0.25²). Against position
    // embeddings of std 0.5 that keeps LayerNorm out of saturation over the whole normalised pixel range (≈ ±2),
    // so the embedding moves steadily as an image gets brighter instead of flipping between two states.
    patchEmbedding: rng.normals(o.width * fanIn, 0.25 / Math.sqrt(fanIn)),
    classEmbedding: rng.normals(o.width),
    positionEmbedding: rng.normals((patches + 1) * o.width, 0.5),
    preLayerNorm: layerNorm(rng, o.width),
    encoder: encoder(rng, o),
    postLayerNorm: layerNorm(rng, o.width),
    projection: o.embedDim > 0 ? linear(rng, o.width, o.embedDim, false) : null,
  };
}

export function tokensPerImage(w: ClipVisionWeights): number {
  return (w.imageSize / w.patchSize) ** 2 + 1;
}
