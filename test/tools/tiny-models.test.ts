import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  aestheticForward,
  clipForward,
  clipTextForward,
  clipVisionForward,
  erf,
  l2Normalize,
  vaeEncoderForward,
} from '../../tools/onnx-builder/clip-reference.ts';
import { createSession, float32Output, type OnnxSession } from '../../src/models/session.ts';
import {
  tinyAestheticModel,
  tinyAestheticWeights,
  tinyClipModel,
  tinyClipTextEncoder,
  tinyClipTextModel,
  tinyClipVisionModel,
  tinyClipVisionModelWithoutProjection,
  tinyClipWeights,
  tinyVaeEncoder,
  tinyVaeWeights,
  type TinyClipOptions,
} from '../../tools/onnx-builder/tiny-models.ts';

const MEAN = [0.48145466, 0.4578275, 0.40821073];
const STD = [0.26862954, 0.26130258, 0.27577711];

/** CLIP-normalised pixels of `count` synthetic RGB images (values in [0, 1] from f). */
function images(count: number, size: number, f: (n: number, c: number, y: number, x: number) => number): Float32Array {
  const out = new Float32Array(count * 3 * size * size);
  for (let n = 0; n < count; n++)
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++)
          out[((n * 3 + c) * size + y) * size + x] = (f(n, c, y, x) - (MEAN[c] as number)) / (STD[c] as number);
  return out;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    assert.ok(Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)), `${what}[${i}] = ${a}, expected ${e}`);
  }
}

const cosine = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += (a[i] as number) * (b[i] as number);
    aa += (a[i] as number) ** 2;
    bb += (b[i] as number) ** 2;
  }
  return ab / Math.sqrt(aa * bb);
};

// Two prompts, padded like HF's CLIPTokenizer pads OpenAI CLIP (with the end token), plus a mask.
const IDS = [49406, 320, 1125, 539, 49407, 49407, 49406, 5000, 700, 12, 40000, 49407];
const MASK = [1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1];
const PIXELS = images(2, 224, (n, c, y, x) =>
  n === 0 ? 0.5 + 0.4 * Math.sin((x + 2 * y) / 9 + c) : ((x >> 4) + (y >> 4)) % 2 ? 0.9 : 0.2,
);

const sessions: OnnxSession[] = [];
async function open(bytes: Uint8Array): Promise<OnnxSession> {
  const s = await createSession(bytes, { device: 'cpu' });
  sessions.push(s);
  return s;
}
let text: OnnxSession;
let vision: OnnxSession;
before(async () => {
  text = await open(tinyClipTextModel());
  vision = await open(tinyClipVisionModel());
});
after(async () => {
  await Promise.all(sessions.map((s) => s.dispose()));
});

test('reference erf matches tabulated values', () => {
  const table: [number, number][] = [
    [0, 0],
    [0.1, 0.1124629160182849],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [-1.5, -0.9661051464753108],
    [2, 0.9953222650189527],
    [2.5, 0.999593047982555],
    [3, 0.9999779095030014],
  ];
  for (const [x, v] of table) assert.ok(Math.abs(erf(x) - v) < 1e-13, `erf(${x}) = ${erf(x)}, expected ${v}`);
});

test('text tower: names and shapes of the HF export, outputs equal the plain-TS forward', async () => {
  assert.deepEqual(text.inputs, [
    { name: 'input_ids', type: 'int64', shape: ['batch_size', 'sequence_length'] },
    { name: 'attention_mask', type: 'int64', shape: ['batch_size', 'sequence_length'] },
  ]);
  assert.deepEqual(text.outputs, [
    { name: 'text_embeds', type: 'float32', shape: ['batch_size', 16] },
    { name: 'last_hidden_state', type: 'float32', shape: ['batch_size', 'sequence_length', 16] },
  ]);
  const out = await text.run({ input_ids: { data: IDS, dims: [2, 6] }, attention_mask: { data: MASK, dims: [2, 6] } });
  const ref = clipTextForward(tinyClipWeights().text, IDS, MASK, 2, 6);
  assert.deepEqual(out['text_embeds']?.dims, [2, 16]);
  assert.deepEqual(out['last_hidden_state']?.dims, [2, 6, 16]);
  assertClose(float32Output(out, 'text_embeds').data, ref.textEmbeds as Float64Array, 1e-5, 'text_embeds');
  assertClose(float32Output(out, 'last_hidden_state').data, ref.lastHiddenState, 1e-5, 'last_hidden_state');
  // Not normalised, as CLIPTextModelWithProjection returns them.
  const e = float32Output(out, 'text_embeds').data;
  const norm = Math.hypot(...e.subarray(0, 16));
  assert.ok(Math.abs(norm - 1) > 0.05, `norm ${norm}`);
});

test('text tower pools at the end token: causal, so tokens after it do not matter; tokens before it do', async () => {
  const run = async (ids: number[], mask: number[]) =>
    float32Output(
      await text.run({ input_ids: { data: ids, dims: [1, ids.length] }, attention_mask: { data: mask, dims: [1, ids.length] } }),
      'text_embeds',
    ).data;
  const base = await run([49406, 320, 1125, 49407, 49407, 49407], [1, 1, 1, 1, 0, 0]);
  const afterEnd = await run([49406, 320, 1125, 49407, 7, 9], [1, 1, 1, 1, 1, 1]);
  const shorter = await run([49406, 320, 1125, 49407], [1, 1, 1, 1]);
  const beforeEnd = await run([49406, 320, 1126, 49407, 49407, 49407], [1, 1, 1, 1, 0, 0]);
  assertClose(afterEnd, base, 1e-6, 'tokens after the end token');
  assertClose(shorter, base, 1e-6, 'padding length');
  assert.ok(cosine(beforeEnd, base) < 0.999, `a changed word changes the embedding (cos ${cosine(beforeEnd, base)})`);
  // Masking a token before the end token changes the result as well (the mask reaches attention).
  const masked = await run([49406, 320, 1125, 49407, 49407, 49407], [1, 0, 1, 1, 0, 0]);
  assert.ok(cosine(masked, base) < 0.9999);
});

test('vision tower: names and shapes of the HF export, outputs equal the plain-TS forward', async () => {
  assert.deepEqual(vision.inputs, [{ name: 'pixel_values', type: 'float32', shape: ['batch_size', 'num_channels', 'height', 'width'] }]);
  assert.deepEqual(vision.outputs, [
    { name: 'image_embeds', type: 'float32', shape: ['batch_size', 16] },
    { name: 'last_hidden_state', type: 'float32', shape: ['batch_size', 257, 16] },
  ]);
  const out = await vision.run({ pixel_values: { data: PIXELS, dims: [2, 3, 224, 224] } });
  const ref = clipVisionForward(tinyClipWeights().vision, PIXELS, 2);
  assertClose(float32Output(out, 'image_embeds').data, ref.imageEmbeds as Float64Array, 1e-5, 'image_embeds');
  assertClose(float32Output(out, 'last_hidden_state').data, ref.lastHiddenState, 1e-5, 'last_hidden_state');
  assert.ok(cosine(ref.imageEmbeds?.subarray(0, 16) ?? [], ref.imageEmbeds?.subarray(16) ?? []) < 0.95, 'different images differ');
});

test('brighter images give steadily more different image embeddings', async () => {
  const levels = [0.1, 0.3, 0.5, 0.7, 0.9];
  const px = images(levels.length, 224, (n, c, y, x) => Math.min(1, (levels[n] as number) + 0.05 * Math.sin(x / 5 + y / 7 + c)));
  const e = float32Output(await vision.run({ pixel_values: { data: px, dims: [levels.length, 3, 224, 224] } }), 'image_embeds').data;
  const row = (i: number) => e.subarray(i * 16, (i + 1) * 16);
  const fromDarkest = levels.map((_, i) => cosine(row(0), row(i)));
  for (let i = 1; i < levels.length; i++) {
    assert.ok(
      (fromDarkest[i] as number) < (fromDarkest[i - 1] as number) - 0.01,
      `cos to darkest: ${fromDarkest.map((c) => c.toFixed(3)).join(' ')}`,
    );
  }
  assert.ok((fromDarkest[4] as number) < 0.5, `darkest vs brightest cos ${fromDarkest[4]}`);
});

test('vision model without projection outputs only last_hidden_state and pooler_output', async () => {
  const s = await open(tinyClipVisionModelWithoutProjection());
  assert.deepEqual(s.outputNames, ['last_hidden_state', 'pooler_output']);
  assert.deepEqual(s.outputs[1], { name: 'pooler_output', type: 'float32', shape: ['batch_size', 16] });
  const out = await s.run({ pixel_values: { data: PIXELS, dims: [2, 3, 224, 224] } });
  assertClose(
    float32Output(out, 'pooler_output').data,
    clipVisionForward(tinyClipWeights().vision, PIXELS, 2).pooled,
    1e-5,
    'pooler_output',
  );
});

test('full CLIP: normalised embeddings and logits = exp(logit_scale)·cos, consistent with the split towers', async () => {
  const full = await open(tinyClipModel());
  assert.deepEqual(full.inputNames, ['input_ids', 'pixel_values', 'attention_mask']);
  assert.deepEqual(full.outputs, [
    { name: 'logits_per_image', type: 'float32', shape: ['image_batch_size', 'text_batch_size'] },
    { name: 'logits_per_text', type: 'float32', shape: ['text_batch_size', 'image_batch_size'] },
    { name: 'text_embeds', type: 'float32', shape: ['text_batch_size', 16] },
    { name: 'image_embeds', type: 'float32', shape: ['image_batch_size', 16] },
  ]);
  // Three texts (the third repeats the first) against two images: the two batch sizes are independent.
  const ids3 = [...IDS, ...IDS.slice(0, 6)];
  const mask3 = [...MASK, ...MASK.slice(0, 6)];
  const out = await full.run({
    input_ids: { data: ids3, dims: [3, 6] },
    attention_mask: { data: mask3, dims: [3, 6] },
    pixel_values: { data: PIXELS, dims: [2, 3, 224, 224] },
  });
  const ref = clipForward(tinyClipWeights(), ids3, mask3, 3, 6, PIXELS, 2);
  assert.deepEqual(out['logits_per_image']?.dims, [2, 3]);
  assertClose(float32Output(out, 'logits_per_image').data, ref.logitsPerImage, 1e-5, 'logits_per_image');
  assertClose(float32Output(out, 'logits_per_text').data, ref.logitsPerText, 1e-5, 'logits_per_text');
  assertClose(float32Output(out, 'text_embeds').data, ref.textEmbeds, 1e-5, 'text_embeds');
  assertClose(float32Output(out, 'image_embeds').data, ref.imageEmbeds, 1e-5, 'image_embeds');

  // Same options → same weights as the split towers: normalising their outputs gives the full model's.
  const t = float32Output(
    await text.run({ input_ids: { data: IDS, dims: [2, 6] }, attention_mask: { data: MASK, dims: [2, 6] } }),
    'text_embeds',
  );
  const v = float32Output(await vision.run({ pixel_values: { data: PIXELS, dims: [2, 3, 224, 224] } }), 'image_embeds');
  const tn = l2Normalize(Float64Array.from(t.data), 2);
  const vn = l2Normalize(Float64Array.from(v.data), 2);
  assertClose(float32Output(out, 'text_embeds').data.subarray(0, 32), tn, 1e-5, 'full vs split text');
  assertClose(float32Output(out, 'image_embeds').data, vn, 1e-5, 'full vs split image');
  const logits = float32Output(out, 'logits_per_image').data;
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 2; j++) {
      const c = cosine(vn.subarray(i * 16, i * 16 + 16), tn.subarray(j * 16, j * 16 + 16));
      assert.ok(Math.abs((logits[i * 3 + j] as number) - 100 * c) < 1e-3, `logit ${logits[i * 3 + j]} vs 100·cos ${100 * c}`);
    }
    assert.ok(Math.abs((logits[i * 3] as number) - (logits[i * 3 + 2] as number)) < 1e-5, 'repeated text, repeated logit');
  }
});

test('other architectures (2 layers, 4 heads, quick_gelu, full 49408-row vocab, patch 32) match the reference', async () => {
  const options: TinyClipOptions = {
    seed: 5,
    width: 8,
    layers: 2,
    heads: 4,
    activation: 'quick_gelu',
    vocabSize: 49408,
    patchSize: 32,
    embedDim: 6,
  };
  const w = tinyClipWeights(options);
  const t = await open(tinyClipTextModel(options));
  const tOut = await t.run({ input_ids: { data: IDS, dims: [2, 6] }, attention_mask: { data: MASK, dims: [2, 6] } });
  assertClose(float32Output(tOut, 'text_embeds').data, clipTextForward(w.text, IDS, MASK, 2, 6).textEmbeds as Float64Array, 1e-5, 'text');
  const v = await open(tinyClipVisionModel(options));
  assert.deepEqual(v.outputs[1]?.shape, ['batch_size', 50, 8]);
  const vOut = await v.run({ pixel_values: { data: PIXELS, dims: [2, 3, 224, 224] } });
  assertClose(float32Output(vOut, 'image_embeds').data, clipVisionForward(w.vision, PIXELS, 2).imageEmbeds as Float64Array, 1e-5, 'vision');
});

test('SD text encoder: input_ids only (causal mask), last_hidden_state and pooler_output', async () => {
  const s = await open(tinyClipTextEncoder());
  assert.deepEqual(s.inputs, [{ name: 'input_ids', type: 'int64', shape: ['batch_size', 'sequence_length'] }]);
  assert.deepEqual(s.outputNames, ['last_hidden_state', 'pooler_output']);
  const out = await s.run({ input_ids: { data: IDS, dims: [2, 6] } });
  const ref = clipTextForward(tinyClipWeights().text, IDS, null, 2, 6);
  assertClose(float32Output(out, 'last_hidden_state').data, ref.lastHiddenState, 1e-5, 'last_hidden_state');
  assertClose(float32Output(out, 'pooler_output').data, ref.pooled, 1e-5, 'pooler_output');
});

test('aesthetic MLP: 768→1024→128→64→16→1 Gemm layers; an affine map with offset 5.5 and slope norm 4.5', async () => {
  const layers = tinyAestheticWeights();
  assert.deepEqual(
    layers.map((l) => [l.inFeatures, l.outFeatures]),
    [
      [768, 1024],
      [1024, 128],
      [128, 64],
      [64, 16],
      [16, 1],
    ],
  );
  const s = await open(tinyAestheticModel());
  assert.deepEqual(s.inputs, [{ name: 'embedding', type: 'float32', shape: ['batch_size', 768] }]);
  assert.deepEqual(s.outputs, [{ name: 'score', type: 'float32', shape: ['batch_size', 1] }]);
  const x = l2Normalize(
    Float64Array.from({ length: 2 * 768 }, (_, i) => Math.sin(i * 0.7) + (i < 768 ? 0.3 : 0)),
    2,
  );
  const out = float32Output(await s.run({ embedding: { data: Float32Array.from(x), dims: [2, 768] } }), 'score');
  assert.deepEqual(out.dims, [2, 1]);
  assertClose(out.data, aestheticForward(layers, Float32Array.from(x), 2), 1e-5, 'score');

  // Recover the affine map from the model itself: c = f(0), u_i = f(e_i) − c.
  const small = await open(tinyAestheticModel({ inputDim: 16, seed: 3 }));
  const basis = new Float32Array(17 * 16);
  for (let i = 0; i < 16; i++) basis[(i + 1) * 16 + i] = 1;
  const f = float32Output(await small.run({ embedding: { data: basis, dims: [17, 16] } }), 'score').data;
  const c = f[0] as number;
  const u = Array.from(f.subarray(1), (v) => v - c);
  assert.ok(Math.abs(c - 5.5) < 1e-4, `offset ${c}`);
  assert.ok(Math.abs(Math.hypot(...u) - 4.5) < 1e-3, `slope norm ${Math.hypot(...u)}`);
});

test('VAE encoder: latent_mean [batch, 4, H/8, W/8] from 8×8 average pooling and a 3→4 map', async () => {
  const s = await open(tinyVaeEncoder());
  assert.deepEqual(s.inputs, [{ name: 'pixel_values', type: 'float32', shape: ['batch_size', 3, 'height', 'width'] }]);
  const px = Float32Array.from({ length: 2 * 3 * 32 * 24 }, (_, i) => Math.cos(i * 0.013) * 0.9);
  const out = float32Output(await s.run({ pixel_values: { data: px, dims: [2, 3, 32, 24] } }), 'latent_mean');
  assert.deepEqual(out.dims, [2, 4, 4, 3]);
  assertClose(out.data, vaeEncoderForward(tinyVaeWeights(), px, 2, 32, 24), 1e-5, 'latent_mean');
});

test('deterministic bytes; a new seed changes them; default models stay under 1 MB', () => {
  assert.deepEqual(tinyClipModel(), tinyClipModel());
  assert.deepEqual(tinyAestheticModel({ inputDim: 16 }), tinyAestheticModel({ inputDim: 16 }));
  assert.notDeepEqual(tinyClipTextModel({ seed: 2 }), tinyClipTextModel());
  const sizes = {
    text: tinyClipTextModel().length,
    vision: tinyClipVisionModel().length,
    full: tinyClipModel().length,
    aesthetic16: tinyAestheticModel({ inputDim: 16 }).length,
    vae: tinyVaeEncoder().length,
  };
  for (const [name, n] of Object.entries(sizes)) assert.ok(n < 1_000_000, `${name}: ${n} bytes`);
});

const pythonOnnx = spawnSync('/usr/bin/python3', ['-c', 'import onnx'], { encoding: 'utf8' }).status === 0;

test('every tiny model passes onnx.checker.check_model(full_check=True)', { skip: !pythonOnnx && 'python3-onnx not installed' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'bdpo-tiny-'));
  try {
    const models: Record<string, Uint8Array> = {
      text: tinyClipTextModel(),
      vision: tinyClipVisionModel(),
      noproj: tinyClipVisionModelWithoutProjection(),
      full: tinyClipModel(),
      encoder: tinyClipTextEncoder(),
      aesthetic: tinyAestheticModel({ inputDim: 16 }),
      vae: tinyVaeEncoder(),
    };
    for (const [name, bytes] of Object.entries(models)) writeFileSync(join(dir, `${name}.onnx`), bytes);
    const script =
      'import sys, onnx\nfor p in sys.argv[1:]:\n    onnx.checker.check_model(onnx.load(p), full_check=True)\nprint(len(sys.argv) - 1)';
    const r = spawnSync('/usr/bin/python3', ['-c', script, ...Object.keys(models).map((n) => join(dir, `${n}.onnx`))], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), '7');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
