// The exact PIL bicubic resampler as it was before the tap cache and the tightened loops (commit 585db0d of
// src/models/preprocess.ts), kept only so that bench/label.ts --preprocess can time old against new in one run.
// Not used by src/: do not import it from there.
import { type RgbImage, shortestEdgeSize } from '../src/models/preprocess.ts';

/** Resize the short side to `size` (PIL bicubic) and take the centre `crop`×`crop`, as 8-bit RGB HWC. */
export function baselineResizeAndCrop(image: RgbImage, size: number, crop: number): Uint8Array {
  const resized = shortestEdgeSize(image.width, image.height, size);
  if (resized.width < crop || resized.height < crop) {
    throw new RangeError(`crop ${crop} is larger than the resized image ${resized.width}×${resized.height}`);
  }
  const left = Math.floor((resized.width - crop) / 2);
  const top = Math.floor((resized.height - crop) / 2);
  return resampleWindow(image, resized.width, resized.height, left, top, crop, crop);
}

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

interface Taps {
  /** First input index per output index. */
  start: Int32Array;
  /** Number of inputs per output index. */
  count: Int32Array;
  /** Fixed-point weights, `stride` per output index. */
  weights: Int32Array;
  stride: number;
}

/** PIL's precompute_coeffs + normalize_coeffs_8bpc for outputs first … first+n−1 of an inSize → outSize resize. */
function taps(inSize: number, outSize: number, first: number, n: number): Taps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 2 * filterScale;
  const stride = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(n);
  const count = new Int32Array(n);
  const weights = new Int32Array(n * stride);
  const w = new Float64Array(stride);
  const ss = 1 / filterScale;
  for (let i = 0; i < n; i++) {
    const center = (first + i + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let total = 0;
    for (let x = 0; x < xmax; x++) {
      w[x] = bicubic((x + xmin - center + 0.5) * ss);
      total += w[x]!;
    }
    for (let x = 0; x < xmax; x++) {
      const k = total !== 0 ? w[x]! / total : w[x]!;
      weights[i * stride + x] = k < 0 ? Math.trunc(-0.5 + k * ONE) : Math.trunc(0.5 + k * ONE);
    }
    start[i] = xmin;
    count[i] = xmax;
  }
  return { start, count, weights, stride };
}

// Sums stay inside int32, as in PIL's C: 2^21 + 255 · (positive weights ≤ ~1.15 · 2^22) < 2^31. The `| 0` in the
// loops below tells V8 so, which keeps the arithmetic in integer registers.
function clip8(v: number): number {
  if (v >= ONE << 8) return 255;
  if (v <= 0) return 0;
  return v >> PRECISION_BITS;
}

/**
 * Pixels [left, left+outW) × [top, top+outH) of the image resized to newW×newH, two passes (horizontal, then
 * vertical, 8-bit in between) exactly as PIL; a pass is skipped when that dimension does not change, as in PIL.
 */
function resampleWindow(image: RgbImage, newW: number, newH: number, left: number, top: number, outW: number, outH: number): Uint8Array {
  const { data, width, height } = image;
  const needH = newW !== width;
  const needV = newH !== height;
  const vt = needV ? taps(height, newH, top, outH) : null;
  // Input rows the vertical pass reads.
  const rowFirst = vt ? vt.start[0]! : top;
  const rowEnd = vt ? vt.start[outH - 1]! + vt.count[outH - 1]! : top + outH;
  const rows = rowEnd - rowFirst;

  // Horizontal pass: rows × outW, or a plain column slice when the width is unchanged.
  const mid = new Uint8Array(rows * outW * 3);
  if (needH) {
    const ht = taps(width, newW, left, outW);
    for (let y = 0; y < rows; y++) {
      const src = (rowFirst + y) * width * 3;
      const dst = y * outW * 3;
      for (let x = 0; x < outW; x++) {
        const base = x * ht.stride;
        const n = ht.count[x]!;
        let p = src + ht.start[x]! * 3;
        let r = HALF;
        let g = HALF;
        let b = HALF;
        for (let k = 0; k < n; k++, p += 3) {
          const w = ht.weights[base + k]!;
          r = (r + data[p]! * w) | 0;
          g = (g + data[p + 1]! * w) | 0;
          b = (b + data[p + 2]! * w) | 0;
        }
        mid[dst + x * 3] = clip8(r);
        mid[dst + x * 3 + 1] = clip8(g);
        mid[dst + x * 3 + 2] = clip8(b);
      }
    }
  } else {
    for (let y = 0; y < rows; y++) {
      const src = ((rowFirst + y) * width + left) * 3;
      mid.set(data.subarray(src, src + outW * 3), y * outW * 3);
    }
  }
  if (!vt) return mid;

  // Vertical pass.
  const out = new Uint8Array(outH * outW * 3);
  const rowStride = outW * 3;
  for (let y = 0; y < outH; y++) {
    const base = y * vt.stride;
    const n = vt.count[y]!;
    const first = (vt.start[y]! - rowFirst) * rowStride;
    const dst = y * rowStride;
    for (let x = 0; x < rowStride; x += 3) {
      let r = HALF;
      let g = HALF;
      let b = HALF;
      let p = first + x;
      for (let k = 0; k < n; k++, p += rowStride) {
        const w = vt.weights[base + k]!;
        r = (r + mid[p]! * w) | 0;
        g = (g + mid[p + 1]! * w) | 0;
        b = (b + mid[p + 2]! * w) | 0;
      }
      out[dst + x] = clip8(r);
      out[dst + x + 1] = clip8(g);
      out[dst + x + 2] = clip8(b);
    }
  }
  return out;
}
