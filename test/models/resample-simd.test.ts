// The resampler's WebAssembly: the committed binary is what its source builds to, and it gives the bytes of the
// JavaScript resampler it replaced (bench/preprocess-baseline.ts, itself checked against PIL by the fixtures) on
// geometries chosen to hit every edge: widths whose rows are no multiple of 16 bytes, 1-pixel sides, upscaling,
// extreme aspect ratios, crops of every parity.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { baselineResizeAndCrop } from '../../bench/preprocess-baseline.ts';
import { resizeAndCrop, shortestEdgeSize, type RgbImage } from '../../src/models/preprocess.ts';
import { testCommittedWasm } from '../support/wasm-build.ts';

testCommittedWasm(new URL('../../src/models/wasm/resample.wat', import.meta.url).pathname);

function seeded(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

function noise(width: number, height: number, random: () => number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  // Saturated pixels next to dark ones drive the bicubic's negative lobes past 0 and 255: clip8 must clamp.
  for (let i = 0; i < data.length; i++) data[i] = random() < 0.2 ? (random() < 0.5 ? 0 : 255) : Math.floor(random() * 256);
  return { data, width, height };
}

test('the SIMD passes give the JavaScript resampler’s bytes on 120 geometries', () => {
  const random = seeded(20261201);
  const fixed: Array<[number, number, number, number]> = [
    [1, 1, 224, 224],
    [1, 300, 8, 8],
    [300, 1, 8, 5],
    [2, 3, 17, 17],
    [5, 5, 5, 5],
    [6, 4000, 16, 16],
    [4000, 7, 24, 13],
    [641, 479, 224, 224],
  ];
  const geometries = [...fixed];
  while (geometries.length < 120) {
    const width = 1 + Math.floor(random() * (random() < 0.3 ? 40 : 900));
    const height = 1 + Math.floor(random() * (random() < 0.3 ? 40 : 900));
    const size = 1 + Math.floor(random() * 300);
    const resized = shortestEdgeSize(width, height, size);
    const crop = 1 + Math.floor(random() * Math.min(resized.width, resized.height));
    geometries.push([width, height, size, crop]);
  }
  for (const [width, height, size, crop] of geometries) {
    const image = noise(width, height, random);
    const expected = baselineResizeAndCrop(image, size, crop);
    const actual = resizeAndCrop(image, size, crop);
    assert.ok(Buffer.from(actual).equals(Buffer.from(expected)), `${width}×${height} → ${size}, crop ${crop}`);
  }
});
