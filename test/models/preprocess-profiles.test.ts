// Every preprocessing profile against its reference code (scripts/reference/torchvision_preprocess.py, run with
// Debian's torch 1.13 / torchvision 0.14 / PIL 9.4): the 8-bit profiles pixel for pixel, the float ones per value,
// on real photographs of several aspect ratios and modes; and the worker pool serves every profile unchanged.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { ImagePool, sharedFloat32 } from '../../src/models/image-pool.ts';
import { PREPROCESS_PROFILES, type PreprocessProfile } from '../../src/models/preprocess-profiles.ts';
import { CLIP_MEAN, CLIP_STD, preprocessImage, preprocessPixels, type PreprocessOptions } from '../../src/models/preprocess.ts';

const fixtures = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'preprocess');

interface Case {
  file: string;
  sha256: string;
  mode: string;
  size: number;
  crop_size: number;
  profile: PreprocessProfile;
  reference: string;
  encoding: 'u8-hwc' | 'f32-chw-rows';
  rows?: number[];
  width: number;
  height: number;
  crop?: [number, number];
  resized?: [number, number];
  max_abs_diff_vs_hf_clip_u8?: number;
  mean_abs_diff_vs_hf_clip?: number;
}

const manifest = JSON.parse(readFileSync(resolve(fixtures, 'profiles.json'), 'utf8')) as {
  mean: number[];
  std: number[];
  versions: Record<string, string>;
  cases: Case[];
};
const bytesOf = (file: string): Uint8Array => new Uint8Array(readFileSync(resolve(fixtures, file)));
const gunzip = (file: string): Buffer => gunzipSync(readFileSync(resolve(fixtures, file)));
const optionsOf = (c: Case): PreprocessOptions => ({ profile: c.profile, size: c.size, cropSize: c.crop_size });
const casesOf = (profile: PreprocessProfile): Case[] => manifest.cases.filter((c) => c.profile === profile);

/** The reference float32 values and where each sits in our [3, crop, crop] tensor. */
function floatReference(c: Case): { values: Float32Array; at: (i: number) => number } {
  const raw = gunzip(c.reference);
  const values = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
  const rows = c.rows!;
  const w = c.crop_size;
  assert.equal(values.length, 3 * rows.length * w, c.reference);
  return {
    values,
    at: (i) => {
      const channel = Math.floor(i / (rows.length * w));
      const row = rows[Math.floor(i / w) % rows.length]!;
      return channel * w * w + row * w + (i % w);
    },
  };
}

function maxFloatDifference(tensor: Float32Array, c: Case): { max: number; exact: number; n: number } {
  const { values, at } = floatReference(c);
  let max = 0;
  let exact = 0;
  for (let i = 0; i < values.length; i++) {
    const d = Math.abs(tensor[at(i)]! - values[i]!);
    if (d > max) max = d;
    if (d === 0) exact++;
  }
  return { max, exact, n: values.length };
}

function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

test('the fixtures are the ones the reference script made, covering every profile, mode and crop rounding', () => {
  assert.deepEqual(manifest.mean, [...CLIP_MEAN]);
  assert.deepEqual(manifest.std, [...CLIP_STD]);
  for (const key of ['torch', 'torchvision', 'pil', 'numpy']) assert.ok(manifest.versions[key], `version of ${key} recorded`);
  for (const c of manifest.cases) {
    assert.equal(createHash('sha256').update(bytesOf(c.file)).digest('hex'), c.sha256, c.file);
  }
  for (const profile of PREPROCESS_PROFILES) {
    const cases = casesOf(profile);
    assert.ok(cases.length >= 20, `${profile}: ${cases.length} cases`);
    const modes = new Set(cases.map((c) => c.mode));
    for (const mode of ['RGB', 'L', 'LA', 'RGBA', 'P', 'CMYK']) assert.ok(modes.has(mode), `${profile}: mode ${mode}`);
  }
  const hf = casesOf('hf-clip');
  // Odd crop differences where floor and round disagree (640×479 → 299×224: 37 vs 38), and where they agree.
  const odd = hf.filter((c) => (c.resized![0] - c.crop_size) % 2 === 1 || (c.resized![1] - c.crop_size) % 2 === 1);
  assert.ok(odd.some((c) => c.file === 'motorcycle-640x479.jpg'));
  assert.ok(odd.length >= 4, 'odd crop differences');
  // Upscales (short side below the size), large shrinks (the antialiasing support at its widest) and no resize.
  assert.ok(hf.filter((c) => Math.min(c.width, c.height) < c.size).length >= 3, 'upscales');
  assert.ok(
    hf.some((c) => Math.min(c.width, c.height) >= 3.5 * c.size),
    'a shrink by 3.5× or more',
  );
  assert.ok(
    hf.some((c) => Math.min(c.width, c.height) === c.size),
    'no resize',
  );
});

test('hf-clip and openai-clip equal their references pixel for pixel on every fixture', async () => {
  for (const profile of ['hf-clip', 'openai-clip'] as const) {
    for (const c of casesOf(profile)) {
      const pixels = await preprocessPixels(bytesOf(c.file), optionsOf(c));
      const at = firstDifference(pixels, gunzip(c.reference));
      assert.equal(at, -1, `${profile} ${c.file} ${c.size}/${c.crop_size} (${c.mode}): first difference at ${at}`);
    }
  }
});

test('hpsv2 and hpsv2-legacy equal their float32 references within 1e-6 per value on every fixture', async () => {
  const lines: string[] = [];
  for (const profile of ['hpsv2', 'hpsv2-legacy'] as const) {
    let worst = 0;
    let exact = 0;
    let n = 0;
    let lowest = Number.POSITIVE_INFINITY;
    for (const c of casesOf(profile)) {
      const tensor = await preprocessImage(bytesOf(c.file), optionsOf(c));
      for (const v of tensor) if (v < lowest) lowest = v;
      const d = maxFloatDifference(tensor, c);
      assert.ok(d.max <= 1e-6, `${profile} ${c.file} ${c.size}/${c.crop_size} (${c.mode}): max |Δ| ${d.max}`);
      // PNG decoding leaves no decoder latitude: there the port must be bit-exact.
      if (c.file.endsWith('.png')) assert.equal(d.exact, d.n, `${profile} ${c.file}: ${d.n - d.exact} values not bit-exact`);
      worst = Math.max(worst, d.max);
      exact += d.exact;
      n += d.n;
    }
    // torchvision clamps a bicubic result only for uint8 tensors: the cubic's overshoot below 0 stays in the tensor.
    assert.ok(lowest < (0 - CLIP_MEAN[0]) / CLIP_STD[0] - 0.1, `${profile}: lowest value ${lowest}, as if clamped to [0, 1]`);
    lines.push(`${profile}: max |Δ| ${worst.toExponential(2)} over ${n} reference values, ${exact} bit-exact`);
  }
  console.log(lines.join('\n'));
});

test('control: each profile misses the others’ references (the tolerance has teeth)', async () => {
  // openai-clip rounds the crop offset: on 640×479 the one-column shift is far outside "equal".
  const wide = casesOf('openai-clip').find((c) => c.file === 'motorcycle-640x479.jpg' && c.size === 224)!;
  const hfPixels = await preprocessPixels(bytesOf(wide.file), { ...optionsOf(wide), profile: 'hf-clip' });
  assert.notEqual(firstDifference(hfPixels, gunzip(wide.reference)), -1, 'hf-clip equals openai-clip on 640×479');
  // A palette image: PIL resizes it NEAREST before the RGB conversion in openai-clip.
  const palette = casesOf('openai-clip').find((c) => c.file === 'coffee-palette.png')!;
  const bicubic = await preprocessPixels(bytesOf(palette.file), { ...optionsOf(palette), profile: 'hf-clip' });
  assert.notEqual(firstDifference(bicubic, gunzip(palette.reference)), -1, 'palette image resized bicubic matches');
  for (const [profile, wrong] of [
    ['hpsv2', 'hf-clip'],
    ['hpsv2', 'hpsv2-legacy'],
    ['hpsv2-legacy', 'hpsv2'],
  ] as const) {
    const c = casesOf(profile).find((x) => x.file === 'astronaut.jpg')!;
    const tensor = await preprocessImage(bytesOf(c.file), { ...optionsOf(c), profile: wrong });
    const d = maxFloatDifference(tensor, c);
    assert.ok(d.max > 1e-3, `${wrong} is within ${d.max} of ${profile}'s reference`);
  }
});

test('the worker pool writes every profile exactly as the main thread does', async () => {
  const pool = new ImagePool(2);
  try {
    const files = ['motorcycle-640x479.jpg', 'chelsea-rgba.png', 'coffee-palette.png', 'astronaut-cmyk.jpg', 'coffee-small.jpg'];
    const rows = files.map(bytesOf);
    const targets = PREPROCESS_PROFILES.map((profile) => ({
      batch: sharedFloat32(rows.length * 3 * 96 * 96),
      options: { profile, size: 112, cropSize: 96 },
    }));
    const outcomes = await pool.preprocessRows(rows, targets);
    assert.deepEqual(
      outcomes,
      rows.map(() => null),
    );
    for (const target of targets) {
      for (const [i, bytes] of rows.entries()) {
        const single = await preprocessImage(bytes, target.options);
        const at = firstDifference(target.batch.subarray(i * single.length, (i + 1) * single.length), single);
        assert.equal(at, -1, `${target.options.profile} ${files[i]}`);
      }
    }
  } finally {
    await pool.dispose();
  }
});

test('float profiles have no 8-bit pixels, and an unknown profile is refused, not run as another', async () => {
  await assert.rejects(preprocessPixels(bytesOf('astronaut.jpg'), { profile: 'hpsv2' }), /profile hpsv2 resizes float values/);
  const unknown = { profile: 'torchvision' } as unknown as PreprocessOptions;
  await assert.rejects(preprocessImage(bytesOf('astronaut.jpg'), unknown), /unknown profile "torchvision"/);
});
