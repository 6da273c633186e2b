import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import {
  CLIP_MEAN,
  CLIP_STD,
  ImageDecodeError,
  preprocessImage,
  preprocessInto,
  preprocessPixels,
  pixelValuesLength,
  shortestEdgeSize,
} from '../../src/models/preprocess.ts';

const fixtures = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'preprocess');

interface Case {
  file: string;
  sha256: string;
  size: number;
  crop_size: number;
  reference: string;
  mode: string;
  width: number;
  height: number;
  resized: [number, number];
  crop: [number, number];
  tensor_sum: number;
}

const manifest = JSON.parse(readFileSync(resolve(fixtures, 'manifest.json'), 'utf8')) as {
  mean: number[];
  std: number[];
  cases: Case[];
};
const bytesOf = (file: string): Uint8Array => new Uint8Array(readFileSync(resolve(fixtures, file)));
const referenceOf = (c: Case): Uint8Array => new Uint8Array(gunzipSync(readFileSync(resolve(fixtures, c.reference))));
const optionsOf = (c: Case) => ({ size: c.size, cropSize: c.crop_size });

/** Index of the first difference, or -1 (a cheap failure message, where deepEqual would diff 150k values). */
function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

test('fixtures are the ones the reference script made', () => {
  assert.ok(manifest.cases.length >= 14, 'at least 14 reference cases');
  assert.deepEqual(
    manifest.mean,
    [...CLIP_MEAN].map((x) => Math.fround(x)),
  );
  assert.deepEqual(
    manifest.std,
    [...CLIP_STD].map((x) => Math.fround(x)),
  );
  for (const c of manifest.cases) {
    assert.equal(createHash('sha256').update(bytesOf(c.file)).digest('hex'), c.sha256, c.file);
    assert.equal(referenceOf(c).length, c.crop_size * c.crop_size * 3, c.reference);
  }
  const modes = new Set(manifest.cases.map((c) => c.mode));
  for (const mode of ['RGB', 'L', 'RGBA', 'P', 'CMYK']) assert.ok(modes.has(mode), mode);
});

test('matches PIL / CLIPImageProcessor within 1/255 per channel on every fixture', async () => {
  const lines: string[] = [];
  for (const c of manifest.cases) {
    const ref = referenceOf(c);
    const tensor = await preprocessImage(bytesOf(c.file), optionsOf(c));
    const plane = c.crop_size * c.crop_size;
    assert.equal(tensor.length, 3 * plane);
    const means: number[] = [];
    let max = 0;
    for (let ch = 0; ch < 3; ch++) {
      let sum = 0;
      for (let i = 0; i < plane; i++) {
        // De-normalise ours back to the 0–1 pixel scale and compare with PIL's 8-bit pixels / 255.
        const ours = tensor[ch * plane + i]! * CLIP_STD[ch]! + CLIP_MEAN[ch]!;
        const d = Math.abs(ours - ref[i * 3 + ch]! / 255);
        sum += d;
        if (d > max) max = d;
      }
      means.push(sum / plane);
    }
    lines.push(
      `${c.file} ${c.size}/${c.crop_size} (${c.mode} ${c.width}×${c.height}): mean |Δ|·255 per channel ` +
        `${means.map((m) => (m * 255).toFixed(4)).join(' ')}, max |Δ|·255 ${(max * 255).toFixed(4)}`,
    );
    for (const m of means) assert.ok(m <= 1 / 255, `${c.file}: mean difference ${m * 255}/255`);
  }
  console.log(lines.join('\n'));
});

test("lossless inputs are bit-exact: the resampler is PIL's, the normalisation is numpy's float32", async () => {
  // PNG decoding has no decoder-version latitude (unlike JPEG's IDCT), so here any difference is ours.
  const pngs = manifest.cases.filter((c) => c.file.endsWith('.png'));
  assert.ok(pngs.length >= 3, 'at least 3 PNG cases');
  for (const c of pngs) {
    const pixels = await preprocessPixels(bytesOf(c.file), optionsOf(c));
    assert.equal(firstDifference(pixels, referenceOf(c)), -1, `${c.file} ${c.size}/${c.crop_size}`);
    const tensor = await preprocessImage(bytesOf(c.file), optionsOf(c));
    let sum = 0;
    for (const v of tensor) sum += v;
    assert.ok(Math.abs(sum - c.tensor_sum) <= 1e-9 * Math.abs(c.tensor_sum) + 1e-6, `${c.file}: ${sum} vs ${c.tensor_sum}`);
  }
});

test("control: the tolerance has teeth — sharp's own cubic cover resize misses it", async () => {
  // Why the resampler is ours: sharp rounds the resized size and crop offset its own way, and ignores the kernel
  // when enlarging. A one-row shift alone takes the portrait fixture far past 1/255.
  for (const file of ['motorcycle-portrait.jpg', 'chelsea-rgba.png']) {
    const c = manifest.cases.find((x) => x.file === file && x.size === 224)!;
    const ref = referenceOf(c);
    const theirs = await sharp(bytesOf(file), { ignoreIcc: true })
      .removeAlpha()
      .resize(224, 224, { fit: 'cover', kernel: 'cubic' })
      .raw()
      .toBuffer();
    let sum = 0;
    for (let i = 0; i < ref.length; i++) sum += Math.abs(theirs[i]! - ref[i]!);
    console.log(`sharp cover/cubic on ${file}: mean |Δ|·255 ${(sum / ref.length).toFixed(3)}`);
    assert.ok(sum / ref.length > 1, `${file}: sharp alone now within tolerance (${sum / ref.length})`);
  }
});

test('geometry: shortest edge truncates, centre crop floors', () => {
  for (const c of manifest.cases) {
    const { width, height } = shortestEdgeSize(c.width, c.height, c.size);
    assert.deepEqual([width, height], c.resized, c.file);
  }
  // 283×500 → 224 × trunc(395.76) = 395; the crop starts at floor(171/2) = 85 (rounding would say 86).
  assert.deepEqual(shortestEdgeSize(283, 500, 224), { width: 224, height: 395 });
  assert.deepEqual(shortestEdgeSize(640, 427, 224), { width: 335, height: 224 });
  assert.deepEqual(shortestEdgeSize(224, 301, 224), { width: 224, height: 301 });
});

test('EXIF orientation is ignored, as CLIPImageProcessor ignores it', async () => {
  const c = manifest.cases.find((x) => x.file === 'coffee-exif6.jpg')!;
  const meta = await sharp(bytesOf(c.file)).metadata();
  assert.equal(meta.orientation, 6);
  // Stored 360×260 (landscape); rotating would make it portrait and the resize 224×310 instead of 310×224.
  assert.deepEqual(c.resized, [310, 224]);
  const pixels = await preprocessPixels(bytesOf(c.file));
  const ref = referenceOf(c);
  let diff = 0;
  for (let i = 0; i < ref.length; i++) diff += Math.abs(pixels[i]! - ref[i]!);
  assert.ok(diff / ref.length < 1, 'EXIF image matches the unrotated reference');
});

test('normalisation and CHW layout on a flat colour, by hand', async () => {
  // A flat image stays flat through any resize, so the output is the normalised colour in every position.
  const colour = [10, 128, 250];
  const png = await sharp({ create: { width: 300, height: 250, channels: 3, background: { r: 10, g: 128, b: 250 } } })
    .png()
    .toBuffer();
  const tensor = await preprocessImage(new Uint8Array(png));
  assert.equal(tensor.length, 3 * 224 * 224);
  // (10/255 − 0.48145466)/0.26862954 = −1.6462783, (128/255 − 0.4578275)/0.26130258 = 0.1688972,
  // (250/255 − 0.40821073)/0.27577711 = 2.0747967
  const expected = [-1.6462783, 0.1688972, 2.0747967];
  for (let ch = 0; ch < 3; ch++) {
    const exact = (colour[ch]! / 255 - CLIP_MEAN[ch]!) / CLIP_STD[ch]!;
    assert.ok(Math.abs(exact - expected[ch]!) < 1e-6, `hand value, channel ${ch}`);
    const planeValues = new Set(tensor.subarray(ch * 224 * 224, (ch + 1) * 224 * 224));
    assert.equal(planeValues.size, 1);
    assert.ok(Math.abs([...planeValues][0]! - exact) < 1e-6, `channel ${ch}`);
  }
  // Custom mean/std and size.
  const plain = await preprocessImage(new Uint8Array(png), { size: 32, mean: [0, 0, 0], std: [1, 1, 1] });
  assert.equal(plain.length, 3 * 32 * 32);
  assert.ok(Math.abs(plain[0]! - 10 / 255) < 1e-7, 'red plane, mean 0 std 1');
  assert.ok(Math.abs(plain[32 * 32]! - 128 / 255) < 1e-7, 'green plane, mean 0 std 1');
  assert.ok(Math.abs(plain[2 * 32 * 32 + 5]! - 250 / 255) < 1e-7, 'blue plane, mean 0 std 1');
});

test('alpha is dropped, not composited (as PIL convert("RGB"))', async () => {
  // Fully transparent red: compositing onto white or black would change it; PIL keeps (200, 30, 40).
  const png = await sharp({ create: { width: 240, height: 230, channels: 4, background: { r: 200, g: 30, b: 40, alpha: 0 } } })
    .png()
    .toBuffer();
  const pixels = await preprocessPixels(new Uint8Array(png));
  assert.deepEqual(Array.from(pixels.subarray(0, 6)), [200, 30, 40, 200, 30, 40]);
});

test('preprocessInto fills one slot of a preallocated batch and nothing else', async () => {
  const c = manifest.cases.find((x) => x.file === 'chelsea.jpg')!;
  const per = pixelValuesLength();
  assert.equal(per, 3 * 224 * 224);
  const batch = new Float32Array(3 * per).fill(Number.NaN);
  await preprocessInto(bytesOf(c.file), batch, 1);
  const single = await preprocessImage(bytesOf(c.file));
  assert.equal(firstDifference(batch.subarray(per, 2 * per), single), -1);
  assert.ok(batch.subarray(0, per).every(Number.isNaN), 'slot 0 untouched');
  assert.ok(batch.subarray(2 * per).every(Number.isNaN), 'slot 2 untouched');
  await assert.rejects(preprocessInto(bytesOf(c.file), batch, 3), RangeError);
  // A failed decode leaves its slot untouched.
  await assert.rejects(preprocessInto(new Uint8Array([1, 2, 3]), batch, 0), ImageDecodeError);
  assert.ok(batch.subarray(0, per).every(Number.isNaN), 'slot 0 untouched');
});

test('undecodable bytes throw ImageDecodeError with a reject reason', async () => {
  const jpeg = bytesOf('astronaut.jpg');
  const truncated = jpeg.subarray(0, Math.floor(jpeg.length / 2));
  const cases: [string, Uint8Array, string][] = [
    ['truncated JPEG', truncated, 'bad_image'],
    ['text', new TextEncoder().encode('this is not an image, just some text bytes'), 'bad_image'],
    ['random bytes', new Uint8Array(4096).map((_, i) => (i * 7919 + 13) & 255), 'bad_image'],
    ['JPEG header only', jpeg.subarray(0, 600), 'bad_image'],
    ['empty', new Uint8Array(0), 'empty_image'],
  ];
  for (const [name, bytes, reason] of cases) {
    await assert.rejects(preprocessImage(bytes), (error: unknown) => {
      assert.ok(error instanceof ImageDecodeError, `${name}: ${String(error)}`);
      assert.equal(error.reason, reason, name);
      return true;
    });
  }
  // Bounded before decoding: 512×512 = 262144 pixels.
  await assert.rejects(preprocessImage(jpeg, { maxPixels: 262143 }), (error: unknown) => {
    assert.ok(error instanceof ImageDecodeError, String(error));
    assert.equal(error.reason, 'too_many_pixels');
    return true;
  });
  await preprocessImage(jpeg, { maxPixels: 262144 });
});

test('bad options are refused', async () => {
  await assert.rejects(preprocessImage(bytesOf('astronaut.jpg'), { size: 100, cropSize: 120 }), RangeError);
  await assert.rejects(preprocessImage(bytesOf('astronaut.jpg'), { size: 0 }), RangeError);
});
