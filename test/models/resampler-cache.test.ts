import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RESAMPLE_PLAN_CACHE_SIZE,
  clearResamplePlanCache,
  resamplePlanCacheEntries,
  resizeAndCrop,
  type RgbImage,
} from '../../src/models/preprocess.ts';
import { baselineResizeAndCrop } from '../../bench/preprocess-baseline.ts';

/** Deterministic noise (the worst case for a resampler: every tap matters) with some saturated pixels. */
function noiseImage(width: number, height: number, seed: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < data.length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    const v = (state >>> 0) % 300;
    data[i] = v >= 256 ? (v & 1 ? 255 : 0) : v;
  }
  return { data, width, height };
}

// [width, height, size, crop]: down- and upscaling, odd and even crops and margins, one axis unchanged, none resized.
const GEOMETRIES: Array<[number, number, number, number]> = [
  [512, 512, 224, 224],
  [640, 480, 224, 224],
  [480, 640, 224, 223],
  [333, 517, 224, 97],
  [100, 150, 224, 224],
  [37, 61, 224, 221],
  [224, 300, 224, 224],
  [301, 224, 224, 111],
  [224, 224, 224, 224],
  [250, 250, 336, 336],
  [1024, 77, 64, 63],
];

test('cached taps give the same pixels as a cold computation and as the resampler before the cache', () => {
  GEOMETRIES.forEach(([width, height, size, crop], n) => {
    const image = noiseImage(width, height, 1000 + n);
    const label = `${width}×${height} → ${size}, crop ${crop}`;
    clearResamplePlanCache();
    const cold = resizeAndCrop(image, size, crop);
    assert.equal(cold.length, 3 * crop * crop, label);
    const warm = resizeAndCrop(image, size, crop);
    assert.notEqual(warm, cold, `${label}: each call returns its own array`);
    assert.deepEqual(warm, cold, `${label}: warm equals cold`);
    // A second image of the same geometry goes through the cached plan and the reused scratch rows.
    const other = noiseImage(width, height, 2000 + n);
    assert.deepEqual(resizeAndCrop(other, size, crop), baselineResizeAndCrop(other, size, crop), `${label}: other image`);
    assert.deepEqual(cold, baselineResizeAndCrop(image, size, crop), `${label}: equals the old resampler`);
  });
});

test('interleaved geometries do not disturb each other, and warm calls do not mutate earlier outputs', () => {
  clearResamplePlanCache();
  const images = GEOMETRIES.map(([width, height], n) => noiseImage(width, height, 3000 + n));
  const first = GEOMETRIES.map(([, , size, crop], n) => resizeAndCrop(images[n]!, size, crop));
  const copies = first.map((pixels) => pixels.slice());
  for (let round = 0; round < 2; round++) {
    for (let n = GEOMETRIES.length - 1; n >= 0; n--) {
      const [, , size, crop] = GEOMETRIES[n]!;
      assert.deepEqual(resizeAndCrop(images[n]!, size, crop), copies[n], `geometry ${GEOMETRIES[n]!.join('/')}`);
    }
  }
  first.forEach((pixels, n) => assert.deepEqual(pixels, copies[n], `output ${n} unchanged by later calls`));
});

test('the tap cache stays bounded; kept and evicted geometries give the same pixels again', () => {
  clearResamplePlanCache();
  assert.equal(resamplePlanCacheEntries(), 0);
  const keep = noiseImage(300, 300, 7);
  const keepCold = resizeAndCrop(keep, 224, 224);
  for (let k = 0; k < 3 * RESAMPLE_PLAN_CACHE_SIZE; k++) {
    resizeAndCrop(noiseImage(40 + k, 30, k + 1), 16, 15);
    if (k % 8 === 0) resizeAndCrop(keep, 224, 224); // recently used: must survive the flood
    assert.ok(resamplePlanCacheEntries() <= RESAMPLE_PLAN_CACHE_SIZE, `${resamplePlanCacheEntries()} entries after ${k + 1}`);
  }
  assert.equal(resamplePlanCacheEntries(), RESAMPLE_PLAN_CACHE_SIZE);
  assert.deepEqual(resizeAndCrop(keep, 224, 224), keepCold);
  // An evicted geometry is computed again, identically.
  const early = noiseImage(40, 30, 1);
  assert.deepEqual(resizeAndCrop(early, 16, 15), baselineResizeAndCrop(early, 16, 15));
  assert.equal(resamplePlanCacheEntries(), RESAMPLE_PLAN_CACHE_SIZE);
});

test('a crop larger than the resized image is still refused, and nothing is cached for it', () => {
  clearResamplePlanCache();
  assert.throws(() => resizeAndCrop(noiseImage(30, 20, 3), 16, 17), /crop 17 is larger than the resized image 24×16/);
  assert.equal(resamplePlanCacheEntries(), 0);
});
