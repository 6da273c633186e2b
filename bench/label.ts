// How close `bdpo label` gets to the speed of its image tower alone. In one process and one run:
//   (a) bare ONNX Runtime: the vision session on pre-made batches (inference only),
//   (b) bare decode + preprocess of the same images, one after another (no overlap),
//   (c) runLabel end to end on a dataset of the same images,
// then the ratios (c)/(a) (goal ≥ 0.9) and (c) against the serial bound 1/(1/a + 1/b), which shows how much of the
// decoding hides behind inference. The tower is the ViT-B/32-shaped model of bench/make-vit-b32.ts; the text tower
// is tiny (its cost is per prompt, cached); the images are 512² JPEGs cut from the photos in test/fixtures.
//
//   node --import tsx bench/label.ts [--images 256] [--batch 16] [--threads 2] [--workers N] [--model PATH]
//   node --import tsx bench/label.ts --scaling [--images 256] [--rounds 3] [--free-model PATH] [--free-text-model PATH]
//
// With --preprocess, only the exact preprocessing (512² JPEG → 224² CLIP tensor) on one thread, no model: the
// resampler before the tap cache (bench/preprocess-baseline.ts) against src/models/preprocess.ts, decode included
// and excluded, in alternating rounds (--rounds 3) so that other processes weigh on both alike.
//
// With --profiles, the same one-thread measurement for each preprocessing profile (hf-clip, openai-clip, hpsv2,
// hpsv2-legacy; decode included), in alternating rounds, as ratios to hf-clip.
//
// The default run then goes on as --scaling does; with --scaling alone (no ViT-B/32 needed, ≈ 1 min), only:
//   (ii) runLabel end to end with a near-free model (--free-model, default data/models/demo-clip-vision.onnx: what a
//        GPU looks like to the CPU side) at workers = 1 … availableParallelism(), against workers × the per-core rate
//        of the exact preprocessing (the "new, decode included" variant of --preprocess, measured in the same run);
//   (iv) the cores it takes to feed 500 and 2,500 images/s at that per-core rate.
// Rounds (--rounds) alternate the worker counts; the best round of each is reported.
//
// Other processes on the machine lower every number: each line ends with the cores this process kept busy.
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { imageId, promptId } from '../src/core/ids.ts';
import { writeRowsPart } from '../src/io/arrow-table.ts';
import { decodeRgb, normalisationTable, normaliseInto, preprocessInto, resizeAndCrop, type RgbImage } from '../src/models/preprocess.ts';
import { baselineResizeAndCrop } from './preprocess-baseline.ts';
import { runLabel } from '../src/label/run.ts';
import { createSession } from '../src/models/session.ts';
import { PREPROCESS_PROFILES } from '../src/models/preprocess-profiles.ts';
import { tinyClipTextModel } from '../tools/onnx-builder/tiny-models.ts';
import type { ImageRow, PromptRow } from '../src/core/schema.ts';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '256' },
    batch: { type: 'string', default: '16' },
    threads: { type: 'string', default: '2' },
    workers: { type: 'string', default: '0' },
    model: { type: 'string', default: 'bench/.cache/vit-b32-vision.onnx' },
    preprocess: { type: 'boolean', default: false },
    scaling: { type: 'boolean', default: false },
    profiles: { type: 'boolean', default: false },
    'free-model': { type: 'string', default: 'data/models/demo-clip-vision.onnx' },
    'free-text-model': { type: 'string', default: 'data/models/demo-clip-text.onnx' },
    rounds: { type: 'string', default: '3' },
  },
});
const count = Number(values.images);
const batch = Number(values.batch);
const threads = Number(values.threads);
const workers = Number(values.workers);
const model = resolve(values.model!);
const SIZE = 224;
const EMBED = 512;

const rounds = Number(values.rounds);
if (!values.preprocess && !values.scaling && !values.profiles && !existsSync(model)) {
  console.error(`${model} is missing: run node --import tsx bench/make-vit-b32.ts first`);
  process.exit(1);
}

const cache = resolve('bench/.cache/label-bench');
const template = join(cache, `dataset-${count}`);
const PHOTOS = ['astronaut.jpg', 'camera-grey.jpg', 'chelsea.jpg', 'coffee.jpg', 'motorcycle-portrait.jpg', 'rocket.jpg'];
const PROMPTS = 32;

/** Image i: photo i mod 6, cropped at a position and mirrored/tinted by i, so every image has its own bytes. */
async function makeImage(photos: Buffer[], i: number): Promise<Uint8Array> {
  const photo = photos[i % photos.length]!;
  const positions = ['centre', 'north', 'south', 'east', 'west', 'northeast', 'southwest'] as const;
  let image = sharp(photo)
    .removeAlpha()
    .toColourspace('srgb')
    .resize(512, 512, { fit: 'cover', position: positions[Math.floor(i / 6) % positions.length] });
  if (Math.floor(i / 42) % 2 === 1) image = image.flop();
  image = image.modulate({ brightness: 0.85 + (0.3 * ((i * 37) % 101)) / 100, hue: (i * 13) % 360 });
  return new Uint8Array(await image.jpeg({ quality: 90 }).toBuffer());
}

async function buildDataset(): Promise<void> {
  if (existsSync(join(template, 'images'))) return;
  const t = performance.now();
  const photos = await Promise.all(PHOTOS.map((name) => readFile(join('test/fixtures/preprocess', name))));
  const prompts: PromptRow[] = Array.from({ length: PROMPTS }, (_, k) => {
    const text = `a photograph, variation ${k}: ${['a cat on a sofa', 'an astronaut', 'a cup of coffee', 'a rocket at dusk'][k % 4]}`;
    return { prompt_id: promptId(text), text, source: 'images', split: null, category: null, challenge: null, note: null, prompt_index: k };
  });
  const rows: ImageRow[] = [];
  for (let i = 0; i < count; i++) {
    const bytes = await makeImage(photos, i);
    rows.push({
      image_id: imageId(bytes),
      prompt_id: prompts[i % PROMPTS]!.prompt_id,
      bytes,
      mime: 'image/jpeg',
      width: 512,
      height: 512,
      source_ref: `bench/${String(i).padStart(5, '0')}.jpg`,
      model: 'bench',
      seed: null,
    });
  }
  await rm(template, { recursive: true, force: true });
  await writeRowsPart(template, 'prompts', 'bench', prompts);
  await writeRowsPart(template, 'images', 'bench', rows);
  const mb = rows.reduce((s, r) => s + r.bytes.byteLength, 0) / 1e6;
  console.log(`dataset: ${count} JPEGs 512², ${mb.toFixed(1)} MB, made in ${((performance.now() - t) / 1000).toFixed(1)} s → ${template}`);
}

async function writeMetric(): Promise<string> {
  const text = join(cache, `text-tiny-${EMBED}.onnx`);
  if (!existsSync(text)) await writeFile(text, tinyClipTextModel({ embedDim: EMBED, width: 32, vocabSize: 1024 }));
  const tokenizer = ['data/models/tokenizer.json'].map((p) => resolve(p)).find((p) => existsSync(p));
  if (!tokenizer) throw new Error('no CLIP tokenizer.json in data/models/');
  const path = join(cache, 'vit-b32-clip.json');
  const json = { name: 'clip-b32', kind: 'clip', version: 'bench', score: 'cos', vision_model: model, text_model: text, tokenizer };
  await writeFile(path, `${JSON.stringify(json, null, 2)}\n`);
  return path;
}

/**
 * runLabel on a fresh copy of the bench dataset (removed after): its timing, the first and the last scored batch (the
 * steady state leaves out sessions, tokenizer and worker start-up), after checking every image was scored.
 */
async function labelFreshCopy(
  metricPath: string,
  workers: number,
  name: string,
  expected: number,
): Promise<{ seconds: number; cores: number; first: { images: number; seconds: number }; last: { images: number; seconds: number } }> {
  const work = join(cache, `${name}-${process.pid}`);
  await rm(work, { recursive: true, force: true });
  await cp(template, work, { recursive: true });
  const progress: Array<{ images: number; seconds: number }> = [];
  const run = await measure(() =>
    runLabel(work, {
      metrics: [metricPath],
      device: 'cpu',
      intraOpNumThreads: threads,
      batchSize: batch,
      workers,
      onProgress: (p) => progress.push({ images: p.images, seconds: p.seconds }),
    }),
  );
  await rm(work, { recursive: true, force: true });
  const scored = run.result.metrics[0]!.scored;
  if (scored !== expected) throw new Error(`runLabel scored ${scored} of ${expected}`);
  const first = progress.find((p) => p.images > 0)!;
  const last = progress.find((p) => p.images === expected)!;
  return { seconds: run.seconds, cores: run.cores, first, last };
}

/** Wall seconds and cores kept busy (process CPU time / wall time) of an action. */
async function measure<T>(action: () => Promise<T>): Promise<{ result: T; seconds: number; cores: number }> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  const result = await action();
  const seconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  return { result, seconds, cores: (used.user + used.system) / 1e6 / seconds };
}

await mkdir(cache, { recursive: true });
await buildDataset();
const { tableFromIPC } = await import('apache-arrow');
const part = tableFromIPC(await readFile(join(template, 'images/part-bench.arrow')));
const images: Uint8Array[] = Array.from({ length: part.numRows }, (_, i) => part.getChild('bytes')!.get(i) as Uint8Array);
if (values.preprocess) {
  await preprocessBench(images, rounds);
  process.exit(0);
}
if (values.scaling) {
  await scalingBench(images, rounds);
  process.exit(0);
}
if (values.profiles) {
  await profilesBench(images, rounds);
  process.exit(0);
}
const metric = await writeMetric();
const batches = Math.ceil(images.length / batch);
const per = 3 * SIZE * SIZE;
// CPU time per image is printed beside the wall-clock rate: it barely moves when other processes take cores away.
const line = (label: string, imagesPerSecond: number, seconds: number, cores?: number) =>
  console.log(
    `${label.padEnd(34)} ${imagesPerSecond.toFixed(1).padStart(7)} images/s  (${seconds.toFixed(2)} s` +
      (cores === undefined
        ? ''
        : `, ${cores.toFixed(2)} cores busy, ` + `${((1000 * seconds * cores) / images.length).toFixed(0)} ms CPU/image`) +
      ')',
  );
console.log(
  `${images.length} images, batch ${batch}, ${threads} ONNX threads, ${workers === 0 ? availableParallelism() : workers} image workers; ` +
    `load average ${loadavg()[0]!.toFixed(2)}`,
);

// (b) decode + preprocess, serially, into the batches that (a) then runs.
const pixels = Array.from({ length: batches }, (_, b) => new Float32Array(Math.min(batch, images.length - b * batch) * per));
const decode = await measure(async () => {
  for (let i = 0; i < images.length; i++) await preprocessInto(images[i]!, pixels[Math.floor(i / batch)]!, i % batch, { size: SIZE });
});

// (a) the same session type runLabel opens, on the pre-made batches; measured before and after (c), since other
// processes on the machine come and go.
async function inferenceOnly(): Promise<{ seconds: number; cores: number; open: number }> {
  const opened = await measure(() => createSession(model, { device: 'cpu', intraOpNumThreads: threads }));
  const session = opened.result;
  await session.run({ pixel_values: { data: pixels[0]!, dims: [pixels[0]!.length / per, 3, SIZE, SIZE] } });
  const run = await measure(async () => {
    for (const p of pixels) await session.run({ pixel_values: { data: p, dims: [p.length / per, 3, SIZE, SIZE] } }, ['image_embeds']);
  });
  await session.dispose();
  return { seconds: run.seconds, cores: run.cores, open: opened.seconds };
}
const inferBefore = await inferenceOnly();

// (c) runLabel on a fresh copy of the dataset.
const label = await labelFreshCopy(metric, workers, 'run', images.length);
const inferAfter = await inferenceOnly();
// Steady state: from the first finished batch to the last (session loading and the first decode left out).
const firstBatch = label.first;
const lastBatch = label.last;
const steady = (lastBatch.images - firstBatch.images) / (lastBatch.seconds - firstBatch.seconds);

const inferRate = images.length / ((inferBefore.seconds + inferAfter.seconds) / 2);
const decodeRate = images.length / decode.seconds;
const serialRate = 1 / (1 / inferRate + 1 / decodeRate);
const endToEnd = images.length / label.seconds;
line('(b) decode + preprocess, serial', decodeRate, decode.seconds, decode.cores);
line('(a) bare ONNX Runtime, before (c)', images.length / inferBefore.seconds, inferBefore.seconds, inferBefore.cores);
line('(a) bare ONNX Runtime, after (c)', images.length / inferAfter.seconds, inferAfter.seconds, inferAfter.cores);
line('    inference, mean of the two', inferRate, images.length / inferRate);
console.log(`    (session open ${inferBefore.open.toFixed(2)} s, ${inferAfter.open.toFixed(2)} s)`);
line('    serial bound 1/(1/a + 1/b)', serialRate, images.length / serialRate);
line('(c) runLabel end to end', endToEnd, label.seconds, label.cores);
line('    runLabel steady state', steady, lastBatch.seconds - firstBatch.seconds);
console.log(
  `ratio end-to-end / inference:        ${(endToEnd / inferRate).toFixed(3)} (steady state ${(steady / inferRate).toFixed(3)}; goal ≥ 0.9)`,
);
console.log(
  `ratio end-to-end / serial bound:     ${(endToEnd / serialRate).toFixed(3)} ` +
    `(steady state ${(steady / serialRate).toFixed(3)}; > 1 = decoding overlaps inference)`,
);
console.log(`load average after: ${loadavg()[0]!.toFixed(2)}`);
console.log('');
await scalingBench(images, rounds);

/**
 * Old and new exact preprocessing, one image at a time on this thread (sharp decodes on one libuv thread while this
 * one waits, so one core is busy at a time): images/s by the wall clock and per CPU-second of the process, decode
 * included (bytes → tensor) and excluded (decoded RGB → tensor). Each round runs every variant once, old and new
 * alternating; the best round of each is reported, the least disturbed by other processes.
 */
async function preprocessBench(jpegs: Uint8Array[], rounds: number): Promise<void> {
  const table = normalisationTable();
  const tensor = new Float32Array(3 * SIZE * SIZE);
  const decoded: RgbImage[] = [];
  for (const bytes of jpegs) decoded.push(await decodeRgb(bytes));
  const oldResult = baselineResizeAndCrop(decoded[0]!, SIZE, SIZE);
  const newResult = resizeAndCrop(decoded[0]!, SIZE, SIZE);
  if (Buffer.compare(oldResult, newResult) !== 0) throw new Error('old and new resamplers disagree');
  const variants: Variant[] = [
    {
      label: 'old, decode included',
      run: async () => {
        for (const bytes of jpegs) normaliseInto(baselineResizeAndCrop(await decodeRgb(bytes), SIZE, SIZE), tensor, 0, table);
      },
    },
    exactPreprocessing(jpegs, tensor),
    {
      label: 'old, decode excluded',
      run: async () => {
        for (const image of decoded) normaliseInto(baselineResizeAndCrop(image, SIZE, SIZE), tensor, 0, table);
      },
    },
    {
      label: 'new, decode excluded',
      run: async () => {
        for (const image of decoded) normaliseInto(resizeAndCrop(image, SIZE, SIZE), tensor, 0, table);
      },
    },
    {
      label: 'decode alone',
      run: async () => {
        for (const bytes of jpegs) await decodeRgb(bytes);
      },
    },
  ];
  console.log(`${jpegs.length} JPEGs 512² → ${SIZE}² CLIP tensor, ${rounds} rounds; load average ${loadavg()[0]!.toFixed(2)}`);
  const best = await bestRounds(variants, jpegs.length, rounds);
  for (const [label, rate] of best) {
    console.log(
      `${label.padEnd(24)} ${rate.wall.toFixed(1).padStart(7)} images/s wall  ` +
        `${rate.cpu.toFixed(1).padStart(7)} images per CPU-second  (${(1000 / rate.cpu).toFixed(2)} ms CPU/image)`,
    );
  }
  for (const what of ['decode included', 'decode excluded']) {
    const before = best.get(`old, ${what}`)!;
    const after = best.get(`new, ${what}`)!;
    console.log(
      `new / old, ${what}: ${(after.wall / before.wall).toFixed(2)}× wall, ${(after.cpu / before.cpu).toFixed(2)}× per CPU-second`,
    );
  }
  console.log(`load average after: ${loadavg()[0]!.toFixed(2)}`);
}

/** Each preprocessing profile, bytes → tensor on this thread, as the workers run it; ratios to hf-clip. */
async function profilesBench(jpegs: Uint8Array[], rounds: number): Promise<void> {
  const tensor = new Float32Array(3 * SIZE * SIZE);
  const variants: Variant[] = PREPROCESS_PROFILES.map((profile) => ({
    label: profile,
    run: async () => {
      for (const bytes of jpegs) await preprocessInto(bytes, tensor, 0, { profile, size: SIZE });
    },
  }));
  console.log(`${jpegs.length} JPEGs 512² → ${SIZE}² tensor per profile, ${rounds} rounds; load average ${loadavg()[0]!.toFixed(2)}`);
  const best = await bestRounds(variants, jpegs.length, rounds);
  const base = best.get('hf-clip')!;
  for (const [label, rate] of best) {
    console.log(
      `${label.padEnd(14)} ${rate.wall.toFixed(1).padStart(7)} images/s wall  ${rate.cpu.toFixed(1).padStart(7)} images per CPU-second  ` +
        `${(rate.cpu / base.cpu).toFixed(2)}× hf-clip per CPU-second`,
    );
  }
  console.log(`load average after: ${loadavg()[0]!.toFixed(2)}`);
}

interface Variant {
  label: string;
  run: () => Promise<void>;
}

/** The exact preprocessing runLabel's workers do, bytes → tensor, one image at a time on this thread. */
function exactPreprocessing(jpegs: Uint8Array[], tensor: Float32Array): Variant {
  return {
    label: 'new, decode included',
    run: async () => {
      for (const bytes of jpegs) await preprocessInto(bytes, tensor, 0, { size: SIZE });
    },
  };
}

/** Best round of each variant (by the wall clock): images/s wall and images per CPU-second; variants alternate. */
async function bestRounds(variants: Variant[], images: number, rounds: number): Promise<Map<string, { wall: number; cpu: number }>> {
  for (const variant of variants) await variant.run(); // warm-up: JIT and the tap cache
  const best = new Map<string, { wall: number; cpu: number }>();
  for (let round = 0; round < rounds; round++) {
    for (const variant of variants) {
      const { seconds, cores } = await measure(variant.run);
      const rate = { wall: images / seconds, cpu: images / (seconds * cores) };
      const previous = best.get(variant.label);
      best.set(variant.label, previous && previous.wall >= rate.wall ? previous : rate);
    }
  }
  return best;
}

/**
 * (ii) and (iv): how runLabel's throughput grows with the image workers when the model costs next to nothing, so
 * that preprocessing is all there is, against workers × the per-core rate of that preprocessing alone.
 */
async function scalingBench(jpegs: Uint8Array[], rounds: number): Promise<void> {
  const vision = resolve(values['free-model']!);
  const text = resolve(values['free-text-model']!);
  for (const path of [vision, text]) if (!existsSync(path)) throw new Error(`${path} is missing (--free-model / --free-text-model)`);
  const tokenizer = resolve('data/models/tokenizer.json');
  const metricPath = join(cache, 'free-clip.json');
  const json = { name: 'clip-free', kind: 'clip', version: 'bench', score: 'cos', vision_model: vision, text_model: text, tokenizer };
  await writeFile(metricPath, `${JSON.stringify(json, null, 2)}\n`);
  const cores = availableParallelism();
  console.log(
    `(ii) scaling: ${jpegs.length} images, near-free model ${vision}, batch ${batch}, ${threads} ONNX threads, ` +
      `workers 1…${cores}, ${rounds} rounds; load average ${loadavg()[0]!.toFixed(2)}`,
  );

  const perCore = (await bestRounds([exactPreprocessing(jpegs, new Float32Array(3 * SIZE * SIZE))], jpegs.length, rounds)).get(
    'new, decode included',
  )!;
  console.log(
    `per-core exact preprocessing (bytes → 224² tensor, one thread): ${perCore.wall.toFixed(1)} images/s wall, ` +
      `${perCore.cpu.toFixed(1)} images per CPU-second (the per-core rate below)`,
  );

  interface Best {
    endToEnd: number;
    steady: number;
    cores: number;
    cpuPerImage: number;
    /** Seconds from the call to the first scored batch: sessions, tokenizer, reading the part, worker start-up. */
    firstBatch: number;
  }
  const best = new Map<number, Best>();
  const counts = Array.from({ length: cores }, (_, i) => i + 1);
  // A throw-away run first: the workers' first tsx compile and ONNX Runtime's first session are not part of a count.
  const schedule = [1, ...Array.from({ length: rounds }, () => counts).flat()];
  for (const [step, workers] of schedule.entries()) {
    const run = await labelFreshCopy(metricPath, workers, 'scaling', jpegs.length);
    const { first, last } = run;
    const result: Best = {
      endToEnd: jpegs.length / run.seconds,
      steady: (last.images - first.images) / (last.seconds - first.seconds),
      cores: run.cores,
      cpuPerImage: (1000 * run.seconds * run.cores) / jpegs.length,
      firstBatch: first.seconds,
    };
    if (step === 0) continue;
    const previous = best.get(workers);
    if (!previous || result.endToEnd > previous.endToEnd) best.set(workers, result);
  }
  for (const workers of counts) {
    const r = best.get(workers)!;
    const bound = workers * perCore.cpu;
    console.log(
      `workers ${String(workers).padStart(2)}: ${r.endToEnd.toFixed(1).padStart(7)} images/s end to end ` +
        `(${(r.endToEnd / bound).toFixed(3)} of ${workers} × per-core; goal ≥ 0.9), steady state ${r.steady.toFixed(1)} ` +
        `(${(r.steady / bound).toFixed(3)}); first batch at ${r.firstBatch.toFixed(2)} s; ${r.cores.toFixed(2)} cores busy, ` +
        `${r.cpuPerImage.toFixed(1)} ms CPU/image`,
    );
  }
  for (const target of [500, 2500]) {
    console.log(
      `(iv) ${String(target).padStart(5)} images/s needs ${Math.ceil(target / perCore.cpu)} cores of exact preprocessing ` +
        `(ceil(${target} / ${perCore.cpu.toFixed(1)}))`,
    );
  }
  console.log(`load average after: ${loadavg()[0]!.toFixed(2)}`);
}
