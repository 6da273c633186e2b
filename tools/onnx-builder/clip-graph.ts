// ONNX subgraphs for CLIP-architecture towers, laid out as a Hugging Face export traces them: Linear as
// MatMul(+Add) with [in, out] weights, LayerNormalization, attention as Reshape/Transpose/MatMul/Softmax, EOS
// pooling at argmax(input_ids), CLS pooling + post_layernorm for vision.

import { float, GraphBuilder, type Value } from './graph.ts';
import {
  CLIP_VOCAB_SIZE,
  tokensPerImage,
  type ClipTextWeights,
  type ClipVisionWeights,
  type Encoder,
  type LayerNorm,
  type Linear,
} from './clip-weights.ts';

/** Added to attention scores at masked positions (large enough that softmax gives them exactly 0). */
export const MASKED_SCORE = -1e9;

export function linearNode(g: GraphBuilder, x: Value, l: Linear, prefix: string, out?: string): Value {
  const w = g.initializer(`${prefix}.weight`, l.weight, [l.inFeatures, l.outFeatures]);
  if (l.bias === null) return g.op('MatMul', [x, w], {}, out === undefined ? {} : { out });
  const y = g.op('MatMul', [x, w]);
  const b = g.initializer(`${prefix}.bias`, l.bias, [l.outFeatures]);
  return g.op('Add', [y, b], {}, out === undefined ? {} : { out });
}

export function layerNormNode(g: GraphBuilder, x: Value, ln: LayerNorm, prefix: string, out?: string): Value {
  const gamma = g.initializer(`${prefix}.weight`, ln.gamma, [ln.gamma.length]);
  const beta = g.initializer(`${prefix}.bias`, ln.beta, [ln.beta.length]);
  return g.op('LayerNormalization', [x, gamma, beta], { axis: -1, epsilon: float(ln.epsilon) }, out === undefined ? {} : { out });
}

function activationNode(g: GraphBuilder, x: Value, kind: Encoder['activation']): Value {
  if (kind === 'quick_gelu') {
    return g.op('Mul', [x, g.op('Sigmoid', [g.op('Mul', [x, g.scalar(1.702)])])]);
  }
  // Exact GELU: 0.5·x·(1 + erf(x/√2)).
  const erf = g.op('Erf', [g.op('Div', [x, g.scalar(Math.SQRT2)])]);
  return g.op('Mul', [g.op('Mul', [x, g.scalar(0.5)]), g.op('Add', [erf, g.scalar(1)])]);
}

/**
 * Pre-LN transformer encoder over x [batch, tokens, width]. `additiveMask` ([batch or 1, 1, tokens, tokens], 0 or
 * MASKED_SCORE) is added to the attention scores.
 */
export function encoderNodes(g: GraphBuilder, x: Value, enc: Encoder, prefix: string, additiveMask?: Value): Value {
  const headDim = enc.width / enc.heads;
  const splitHeads = g.ints([0, 0, enc.heads, headDim]);
  const mergeHeads = g.ints([0, 0, enc.width]);
  const scale = g.scalar(1 / Math.sqrt(headDim));
  let h = x;
  enc.layers.forEach((layer, i) => {
    const p = `${prefix}.layers.${i}`;
    const a = layerNormNode(g, h, layer.ln1, `${p}.layer_norm1`);
    const q = g.op('Mul', [linearNode(g, a, layer.q, `${p}.self_attn.q_proj`), scale]);
    const k = linearNode(g, a, layer.k, `${p}.self_attn.k_proj`);
    const v = linearNode(g, a, layer.v, `${p}.self_attn.v_proj`);
    const qh = g.op('Transpose', [g.op('Reshape', [q, splitHeads])], { perm: [0, 2, 1, 3] });
    const kt = g.op('Transpose', [g.op('Reshape', [k, splitHeads])], { perm: [0, 2, 3, 1] });
    const vh = g.op('Transpose', [g.op('Reshape', [v, splitHeads])], { perm: [0, 2, 1, 3] });
    let scores = g.op('MatMul', [qh, kt]);
    if (additiveMask !== undefined) scores = g.op('Add', [scores, additiveMask]);
    const probs = g.op('Softmax', [scores], { axis: -1 });
    const ctx = g.op('Reshape', [g.op('Transpose', [g.op('MatMul', [probs, vh])], { perm: [0, 2, 1, 3] }), mergeHeads]);
    h = g.op('Add', [h, linearNode(g, ctx, layer.o, `${p}.self_attn.out_proj`)]);
    const m = layerNormNode(g, h, layer.ln2, `${p}.layer_norm2`);
    const hidden = activationNode(g, linearNode(g, m, layer.fc1, `${p}.mlp.fc1`), enc.activation);
    h = g.op('Add', [h, linearNode(g, hidden, layer.fc2, `${p}.mlp.fc2`)]);
  });
  return h;
}

export interface TextTowerValues {
  lastHiddenState: Value; // [batch, seq, width]
  pooled: Value; // [batch, width], hidden state at the first argmax(input_ids) (the end token)
  textEmbeds: Value | null; // [batch, embedDim], not normalised
}

/**
 * CLIP text tower. `attentionMask` (int64 [batch, seq]) is optional: SD's text-encoder export has none and relies on
 * the causal mask alone. Output names are given by `names` so that the same tower can sit inside a full CLIP graph.
 */
export function textTowerNodes(
  g: GraphBuilder,
  w: ClipTextWeights,
  inputIds: Value,
  attentionMask: Value | null,
  names: { lastHiddenState?: string; pooled?: string; textEmbeds?: string } = {},
  prefix = 'text_model',
): TextTowerValues {
  const width = w.encoder.width;
  const ids = w.vocabSize >= CLIP_VOCAB_SIZE ? inputIds : g.op('Mod', [inputIds, g.ints([w.vocabSize], [])]);
  const table = g.initializer(`${prefix}.embeddings.token_embedding.weight`, w.tokenEmbedding, [w.vocabSize, width]);
  const positions = g.initializer(`${prefix}.embeddings.position_embedding.weight`, w.positionEmbedding, [w.maxPositions, width]);
  const seqLen = g.op('Slice', [g.op('Shape', [inputIds]), g.ints([1]), g.ints([2])]); // [1]
  const pos = g.op('Slice', [positions, g.ints([0]), seqLen, g.ints([0])]);
  const x = g.op('Add', [g.op('Gather', [table, ids], { axis: 0 }), pos]);

  // Causal mask (lower triangle allowed), times the padding mask when there is one.
  const square = g.op('Concat', [seqLen, seqLen], { axis: 0 });
  let allowed = g.op('Trilu', [g.op('Expand', [g.scalar(1), square])], { upper: 0 }); // [seq, seq]
  if (attentionMask !== null) {
    const pad = g.op('Unsqueeze', [g.op('Cast', [attentionMask], { to: 1 }), g.ints([1, 2])]); // [batch,1,1,seq]
    allowed = g.op('Mul', [allowed, pad]);
  }
  const additive = g.op('Mul', [g.op('Sub', [allowed, g.scalar(1)]), g.scalar(-MASKED_SCORE)]);

  const encoded = encoderNodes(g, x, w.encoder, `${prefix}.encoder`, additive);
  const lastHiddenState = layerNormNode(g, encoded, w.finalLayerNorm, `${prefix}.final_layer_norm`, names.lastHiddenState);

  // One-hot row at the end token: exact (a sum of zeros and one value), unlike an interpolating gather.
  const eos = g.op('ArgMax', [inputIds], { axis: 1, keepdims: 0 }); // [batch]
  const positionsRange = g.op('Range', [g.ints([0], []), g.op('Squeeze', [seqLen, g.ints([0])]), g.ints([1], [])]);
  const select = g.op('Cast', [g.op('Equal', [g.op('Unsqueeze', [eos, g.ints([1])]), positionsRange])], { to: 1 });
  const pooled = g.op(
    'ReduceSum',
    [g.op('Mul', [lastHiddenState, g.op('Unsqueeze', [select, g.ints([2])])]), g.ints([1])],
    { keepdims: 0 },
    names.pooled === undefined ? {} : { out: names.pooled },
  );
  const textEmbeds = w.projection === null ? null : linearNode(g, pooled, w.projection, 'text_projection', names.textEmbeds);
  return { lastHiddenState, pooled, textEmbeds };
}

export interface VisionTowerValues {
  lastHiddenState: Value; // [batch, patches + 1, width]
  pooled: Value; // [batch, width] = post_layernorm(CLS)
  imageEmbeds: Value | null; // [batch, embedDim], not normalised
}

export function visionTowerNodes(
  g: GraphBuilder,
  w: ClipVisionWeights,
  pixelValues: Value,
  names: { lastHiddenState?: string; pooled?: string; imageEmbeds?: string } = {},
  prefix = 'vision_model',
): VisionTowerValues {
  const width = w.encoder.width;
  const p = w.patchSize;
  const kernel = g.initializer(`${prefix}.embeddings.patch_embedding.weight`, w.patchEmbedding, [width, 3, p, p]);
  const conv = g.op('Conv', [pixelValues, kernel], { kernel_shape: [p, p], strides: [p, p] });
  const patches = g.op('Transpose', [g.op('Reshape', [conv, g.ints([0, width, -1])])], { perm: [0, 2, 1] });

  const batch = g.op('Slice', [g.op('Shape', [pixelValues]), g.ints([0]), g.ints([1])]);
  const cls = g.initializer(`${prefix}.embeddings.class_embedding`, w.classEmbedding, [1, 1, width]);
  const clsRows = g.op('Expand', [cls, g.op('Concat', [batch, g.ints([1, width])], { axis: 0 })]);
  const tokens = (w.imageSize / p) ** 2 + 1;
  const positions = g.initializer(`${prefix}.embeddings.position_embedding.weight`, w.positionEmbedding, [tokens, width]);
  const x = g.op('Add', [g.op('Concat', [clsRows, patches], { axis: 1 }), positions]);

  const pre = layerNormNode(g, x, w.preLayerNorm, `${prefix}.pre_layrnorm`);
  const encoded = encoderNodes(g, pre, w.encoder, `${prefix}.encoder`);
  const lastHiddenState = g.op('Identity', [encoded], {}, names.lastHiddenState === undefined ? {} : { out: names.lastHiddenState });
  const cls0 = g.op('Gather', [lastHiddenState, g.ints([0], [])], { axis: 1 });
  const pooled = layerNormNode(g, cls0, w.postLayerNorm, `${prefix}.post_layernorm`, names.pooled);
  const imageEmbeds = w.projection === null ? null : linearNode(g, pooled, w.projection, 'visual_projection', names.imageEmbeds);
  return { lastHiddenState, pooled, imageEmbeds };
}

/** x / ‖x‖₂ along the last axis of a [rows, dim] value. */
export function l2NormalizeNode(g: GraphBuilder, x: Value, out?: string): Value {
  const norm = g.op('ReduceL2', [x], { axes: [-1], keepdims: 1 });
  return g.op('Div', [x, norm], {}, out === undefined ? {} : { out });
}

/**
 * A complete CLIPVisionModelWithProjection graph: pixel_values float [batch_size, num_channels, height, width] →
 * image_embeds [batch_size, D] (not normalised), last_hidden_state [batch_size, patches + 1, width].
 */
export function clipVisionModelGraph(w: ClipVisionWeights): GraphBuilder {
  if (w.projection === null) throw new Error('clipVisionModelGraph needs a projection');
  const g = new GraphBuilder('clip_vision_with_projection');
  const pixels = g.input('pixel_values', 'float32', ['batch_size', 'num_channels', 'height', 'width']);
  visionTowerNodes(g, w, pixels, { imageEmbeds: 'image_embeds', lastHiddenState: 'last_hidden_state' });
  g.output({ name: 'image_embeds' }, 'float32', ['batch_size', w.projection.outFeatures]);
  g.output({ name: 'last_hidden_state' }, 'float32', ['batch_size', tokensPerImage(w), w.encoder.width]);
  return g;
}
