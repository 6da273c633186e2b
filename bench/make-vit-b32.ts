// Writes a ViT-B/32-shaped CLIP image tower with random weights (224², patch 32, width 768, 12 layers, 12 heads,
// MLP 3072, projection 512; LayerNorm, softmax attention, erf GELU), checks that ONNX Runtime runs it, and
// prints images/s at batch 8 on the CPU. The file (≈ 350 MB) is a benchmark artefact: never commit it.
//
//   node --import tsx bench/make-vit-b32.ts [out.onnx] [--batch 8] [--threads 2] [--runs 6] [--reuse]
//
// --reuse skips writing when the file exists (to re-measure). Other processes on the machine lower the number:
// the line ends with the CPU time this process got per wall-clock second.

import { existsSync, mkdirSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { clipVisionModelGraph } from '../tools/onnx-builder/clip-graph.ts';
import { randomVisionWeights } from '../tools/onnx-builder/clip-weights.ts';
import { createSession, float32Output } from '../src/models/session.ts';

const VIT_B32 = {
  imageSize: 224,
  patchSize: 32,
  width: 768,
  layers: 12,
  heads: 12,
  mlpDim: 3072,
  embedDim: 512,
  activation: 'gelu',
} as const;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    batch: { type: 'string', default: '8' },
    threads: { type: 'string', default: '2' },
    runs: { type: 'string', default: '6' },
    seed: { type: 'string', default: '32' },
    reuse: { type: 'boolean', default: false },
  },
});
const out = positionals[0] ?? 'bench/.cache/vit-b32-vision.onnx';
const batch = Number(values.batch);
const threads = Number(values.threads);
const runs = Number(values.runs);

let t = performance.now();
if (values.reuse && existsSync(out)) {
  console.log(`reusing ${out} (${(statSync(out).size / 1e6).toFixed(1)} MB)`);
} else {
  const weights = randomVisionWeights(Number(values.seed), VIT_B32);
  console.log(`weights: ${((performance.now() - t) / 1000).toFixed(1)} s`);
  t = performance.now();
  mkdirSync(dirname(out), { recursive: true });
  const bytes = await clipVisionModelGraph(weights).writeFile(out, { producerName: 'balanced-dpo bench' });
  console.log(`wrote ${out}: ${(bytes / 1e6).toFixed(1)} MB in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  if (statSync(out).size !== bytes) throw new Error('file size differs from the encoded size');
}

t = performance.now();
const session = await createSession(out, { device: 'cpu', intraOpNumThreads: threads });
console.log(`session: ${((performance.now() - t) / 1000).toFixed(1)} s (${session.provider}, ${threads} threads)`);
const size = VIT_B32.imageSize;
const pixels = new Float32Array(batch * 3 * size * size);
for (let i = 0; i < pixels.length; i++) pixels[i] = Math.sin(i * 0.37) * 1.5;
const feeds = { pixel_values: { data: pixels, dims: [batch, 3, size, size] } };
const warm = float32Output(await session.run(feeds), 'image_embeds');
if (warm.dims.join(',') !== `${batch},${VIT_B32.embedDim}` || !warm.data.every(Number.isFinite)) {
  throw new Error(`unexpected image_embeds dims [${warm.dims.join(', ')}] or non-finite values`);
}
const times: number[] = [];
const cpuStart = process.cpuUsage();
const wallStart = performance.now();
for (let r = 0; r < runs; r++) {
  const start = performance.now();
  await session.run(feeds);
  times.push((performance.now() - start) / 1000);
}
const cpu = process.cpuUsage(cpuStart);
const cores = (cpu.user + cpu.system) / 1000 / (performance.now() - wallStart);
await session.dispose();
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)] as number;
console.log(
  `batch ${batch}, ${threads} threads: median ${(median * 1000).toFixed(0)} ms/batch → ${(batch / median).toFixed(1)} images/s` +
    ` (best ${(batch / (times[0] as number)).toFixed(1)}, ${runs} runs; ${cores.toFixed(2)} cores busy,` +
    ` load average ${(loadavg()[0] as number).toFixed(2)})`,
);
