import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEMO_COPIED_FILES, demoModels, demoReadme } from '../../scripts/make-demo-models.ts';
import { createSession, float32Output } from '../../src/models/session.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const modelsDir = join(repoRoot, 'data', 'models');

test('checked-in demo models are exactly what the script generates (deterministic, up to date)', () => {
  const models = demoModels();
  for (const m of models) {
    assert.deepEqual(new Uint8Array(readFileSync(join(modelsDir, m.file))), m.bytes, `${m.file} is stale: run scripts/make-demo-models.ts`);
  }
  for (const c of DEMO_COPIED_FILES) {
    const copy = readFileSync(join(modelsDir, c.file));
    assert.deepEqual(copy, readFileSync(c.from), c.file);
  }
  assert.equal(readFileSync(join(modelsDir, 'README.md'), 'utf8'), demoReadme(models));
  const total = readdirSync(modelsDir).reduce((a, f) => a + statSync(join(modelsDir, f)).size, 0);
  assert.ok(total < 3_000_000, `data/models holds ${total} bytes`);
});

test('demo models run end to end on real token ids: logits = 100·cos, aesthetic scores in range', async () => {
  // Real CLIP ids of two PartiPrompts ("bond", "an owl standing on a telephone wire"), as the reference tokenizer
  // gives them; padded with the end token like HF's CLIPTokenizer.
  const refs = [
    [49406, 6826, 49407],
    [49406, 550, 9899, 2862, 525, 320, 17243, 7794, 49407],
  ];
  const seq = Math.max(...refs.map((r) => r.length));
  const ids: number[] = [];
  const mask: number[] = [];
  for (const r of refs) {
    for (let i = 0; i < seq; i++) {
      ids.push(r[i] ?? 49407);
      mask.push(i < r.length ? 1 : 0);
    }
  }
  const size = 224;
  const pixels = Float32Array.from({ length: 2 * 3 * size * size }, (_, i) => (i < 3 * size * size ? -1 : 1) + 0.3 * Math.sin(i / 97));

  const full = await createSession(join(modelsDir, 'demo-clip-full.onnx'), { device: 'cpu' });
  const text = await createSession(join(modelsDir, 'demo-clip-text.onnx'), { device: 'cpu' });
  const vision = await createSession(join(modelsDir, 'demo-clip-vision.onnx'), { device: 'cpu' });
  const aesthetic = await createSession(join(modelsDir, 'demo-aesthetic.onnx'), { device: 'cpu' });
  try {
    const feeds = {
      input_ids: { data: ids, dims: [2, seq] },
      attention_mask: { data: mask, dims: [2, seq] },
      pixel_values: { data: pixels, dims: [2, 3, size, size] },
    };
    const out = await full.run(feeds);
    const logits = float32Output(out, 'logits_per_image').data;
    const t = float32Output(out, 'text_embeds').data;
    const v = float32Output(out, 'image_embeds').data;
    const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * (b[i] as number), 0);
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 2; j++) {
        const c = dot(v.subarray(i * 16, i * 16 + 16), t.subarray(j * 16, j * 16 + 16));
        assert.ok(Math.abs((logits[i * 2 + j] as number) - 100 * c) < 1e-3);
      }
    }
    assert.ok(new Set(Array.from(logits, (x) => x.toFixed(2))).size === 4, `four distinct logits: ${Array.from(logits)}`);

    // The split backbone: text and image embeddings (not normalised), then the aesthetic MLP on the normalised image.
    const te = float32Output(await text.run(feeds), 'text_embeds');
    assert.deepEqual(te.dims, [2, 16]);
    const ie = float32Output(await vision.run(feeds), 'image_embeds');
    const normalised = Float32Array.from(ie.data);
    for (let i = 0; i < 2; i++) {
      const row = normalised.subarray(i * 16, i * 16 + 16);
      const n = Math.hypot(...row);
      row.forEach((x, k) => (row[k] = x / n));
    }
    const scores = float32Output(await aesthetic.run({ embedding: { data: normalised, dims: [2, 16] } }), 'score');
    assert.deepEqual(scores.dims, [2, 1]);
    for (const s of scores.data) assert.ok(s >= 1 && s <= 10, `score ${s}`);
    assert.ok(Math.abs((scores.data[0] as number) - (scores.data[1] as number)) > 0.01, 'the two images score differently');
  } finally {
    await Promise.all([full, text, vision, aesthetic].map((s) => s.dispose()));
  }
});
