// The float-tensor preprocessing of the hpsv2 profiles: HPSv2's val transform converts to RGB, runs ToTensor FIRST
// (v / 255 in float32) and only then torchvision's Resize(size, BICUBIC) on the float tensor and CenterCrop(crop),
// so nothing is rounded to 8 bits between the passes. This is a port of the CPU kernels torch runs for that resize,
// in float32 arithmetic step by step (Math.fround after every operation, as the C++ does in `float`), evaluated only
// for the output pixels the centre crop keeps:
// - antialias=True (`hpsv2`, torchvision ≥ 0.17's default): ATen's separable `_upsample_bicubic2d_aa`, PIL's filter
//   (a = −0.5) with the support widened by the shrink factor and the weights normalised, width first, then height;
// - antialias=False (`hpsv2-legacy`, torchvision < 0.17): `upsample_bicubic2d`, 4×4 taps of Keys' cubic with
//   a = −0.75, source indices clamped at the borders, weights not normalised; no clamp of the result to [0, 1]
//   (torchvision clamps only uint8 tensors).
// Geometry as torchvision: long side = trunc(size · long / short), no resize when the short side is already `size`,
// crop offset = round-half-even((resized − crop) / 2) (Python's round).
import type { RgbImage } from './preprocess.ts';
import { PlanCache, roundHalfEven, shortestEdgeSize } from './geometry.ts';

const f32 = Math.fround;

/**
 * Taps of one pass for a window of outputs, in the order the compiled ATen loop sums them: explicit source indices
 * (the legacy kernel repeats border ones), float32 weights, and per output the tap from which on the sum is
 * contracted into fused multiply-adds.
 */
interface FloatTaps {
  index: Int32Array;
  weight: Float64Array;
  /** Taps per output. */
  stride: number;
  count: Int32Array;
  fusedFrom: Int32Array;
}

// a·b + c rounded once, as an FMA instruction: the product of two float32 values is exact in a double.
const fma = (a: number, b: number, c: number): number => f32(a * b + c);

// ATen's HelperInterpCubic::aa_filter, PIL's form with a = −0.5: the |x| < 1 branch in double (its constants are
// doubles), the other in float with the two inner steps contracted into FMAs, as compiled, then × −0.5.
function aaFilter(x: number): number {
  if (x < 0) x = -x;
  if (x < 1) return f32((1.5 * x - 2.5) * x * x + 1);
  if (x < 2) return f32(fma(fma(f32(x - 5), x, 8), x, -4) * -0.5);
  return 0;
}

/** _compute_indices_weights_aa + _compute_weights_aa, in float32 as the C++ computes them. */
function antialiasTaps(inSize: number, outSize: number, first: number, n: number): FloatTaps {
  const scale = f32(inSize / outSize);
  const support = scale >= 1 ? f32(2 * scale) : 2;
  const stride = Math.ceil(support) * 2 + 1;
  const invscale = scale >= 1 ? f32(1 / scale) : 1;
  const index = new Int32Array(n * stride);
  const weight = new Float64Array(n * stride);
  const count = new Int32Array(n);
  const fusedFrom = new Int32Array(n);
  for (let o = 0; o < n; o++) {
    const i = first + o;
    const center = f32(scale * (i + 0.5));
    const xmin = Math.max(Math.trunc(f32(center - support) + 0.5), 0);
    const xsize = Math.min(Math.trunc(f32(center + support) + 0.5), inSize) - xmin;
    let total = 0;
    for (let j = 0; j < xsize; j++) {
      const w = aaFilter(f32((f32(j + xmin - center) + 0.5) * invscale));
      weight[o * stride + j] = w;
      index[o * stride + j] = xmin + j;
      total = f32(total + w);
    }
    if (total !== 0) for (let j = 0; j < xsize; j++) weight[o * stride + j] = f32(weight[o * stride + j]! / total);
    count[o] = xsize;
    // The loop over taps 1…n−1 runs four at a time (separate multiply and add); the remainder is fused.
    fusedFrom[o] = 1 + 4 * Math.floor((xsize - 1) / 4);
  }
  return { index, weight, stride, count, fusedFrom };
}

const A = -0.75;

// cubic_convolution1/2 with a = −0.75 in float; the inner steps are contracted into FMAs as compiled, the last not.
function cubic1(x: number): number {
  return f32(f32(f32(fma(A + 2, x, -(A + 3)) * x) * x) + 1);
}

function cubic2(x: number): number {
  return f32(f32(fma(fma(A, x, -5 * A), x, 8 * A) * x) - 4 * A);
}

// The legacy kernel sums the tap at floor(source index) first, then the one before it, then the two after.
const LEGACY_ORDER = [1, 0, 2, 3] as const;

/** HelperInterpCubic::compute_indices_weights + get_cubic_upsample_coefficients (align_corners=False). */
function legacyTaps(inSize: number, outSize: number, first: number, n: number): FloatTaps {
  const scale = f32(inSize / outSize);
  const index = new Int32Array(n * 4);
  const weight = new Float64Array(n * 4);
  const count = new Int32Array(n).fill(4);
  const fusedFrom = new Int32Array(n).fill(1);
  for (let o = 0; o < n; o++) {
    // The source coordinate is not rounded to float32 before the fractional part is taken.
    const real = scale * (first + o + 0.5) - 0.5;
    const input = Math.min(Math.floor(real), inSize - 1);
    const t = Math.min(Math.max(f32(real - input), 0), 1);
    const x2 = f32(1 - t);
    const w = [cubic2(f32(t + 1)), cubic1(t), cubic1(x2), cubic2(f32(x2 + 1))];
    LEGACY_ORDER.forEach((j, k) => {
      index[o * 4 + k] = Math.max(Math.min(input - 1 + j, inSize - 1), 0);
      weight[o * 4 + k] = w[j]!;
    });
  }
  return { index, weight, stride: 4, count, fusedFrom };
}

/** Everything about one (input size, size, crop, kernel) geometry that does not depend on the pixels. */
interface FloatPlan {
  width: number;
  height: number;
  crop: number;
  /** Crop offset in the input when there is no resize. */
  left: number;
  top: number;
  /** null: the short side is already `size`, and torchvision returns the image unchanged. */
  passes: { horizontal: FloatTaps; vertical: FloatTaps; rowFirst: number; rows: number } | null;
}

export const FLOAT_PLAN_CACHE_SIZE = 64;
const planCache = new PlanCache<FloatPlan>(FLOAT_PLAN_CACHE_SIZE);

function floatPlan(width: number, height: number, size: number, crop: number, antialias: boolean): FloatPlan {
  return planCache.get(`${width}x${height}/${size}/${crop}/${antialias}`, () => makeFloatPlan(width, height, size, crop, antialias));
}

function makeFloatPlan(width: number, height: number, size: number, crop: number, antialias: boolean): FloatPlan {
  const { width: outW, height: outH } = shortestEdgeSize(width, height, size);
  if (outW < crop || outH < crop) throw new RangeError(`crop ${crop} is larger than the resized image ${outW}×${outH}`);
  const left = roundHalfEven((outW - crop) / 2);
  const top = roundHalfEven((outH - crop) / 2);
  if (outW === width && outH === height) return { width, height, crop, left, top, passes: null };
  const taps = antialias ? antialiasTaps : legacyTaps;
  const horizontal = taps(width, outW, left, crop);
  const vertical = taps(height, outH, top, crop);
  let rowFirst = height;
  let rowEnd = 0;
  for (let o = 0; o < crop; o++) {
    for (let k = 0; k < vertical.count[o]!; k++) {
      const y = vertical.index[o * vertical.stride + k]!;
      if (y < rowFirst) rowFirst = y;
      if (y + 1 > rowEnd) rowEnd = y + 1;
    }
  }
  // The vertical pass reads rows of the horizontal pass's output, numbered from rowFirst.
  for (let i = 0; i < vertical.index.length; i++) vertical.index[i] = vertical.index[i]! - rowFirst;
  return { width, height, crop, left, top, passes: { horizontal, vertical, rowFirst, rows: rowEnd - rowFirst } };
}

/** Forgets every cached geometry (for benchmarks of the cold path). */
export function clearFloatPlanCache(): void {
  planCache.clear();
}

// ToTensor: float32(v) / 255 in float32.
const TO_TENSOR = Float64Array.from({ length: 256 }, (_, v) => f32(v / 255));

let scratch: Float64Array = new Float64Array(0);
const SCRATCH_KEPT = 1 << 20;

/**
 * RGB HWC 8-bit → resized and centre-cropped float32 values, CHW, then normalised as torchvision's Normalize:
 * (x − mean) / std in float32. Written at `offset` of `out`.
 */
export function resizeCropNormaliseFloat(
  image: RgbImage,
  size: number,
  crop: number,
  antialias: boolean,
  mean: readonly number[],
  std: readonly number[],
  out: Float32Array,
  offset: number,
): void {
  const { data, width, height } = image;
  const plan = floatPlan(width, height, size, crop, antialias);
  const plane = crop * crop;
  const m = [f32(mean[0]!), f32(mean[1]!), f32(mean[2]!)];
  const s = [f32(std[0]!), f32(std[1]!), f32(std[2]!)];
  if (plan.passes === null) {
    for (let y = 0; y < crop; y++) {
      for (let x = 0; x < crop; x++) {
        const p = 3 * ((plan.top + y) * width + plan.left + x);
        for (let c = 0; c < 3; c++) out[offset + c * plane + y * crop + x] = f32(f32(TO_TENSOR[data[p + c]!]! - m[c]!) / s[c]!);
      }
    }
    return;
  }
  const { horizontal, vertical, rowFirst, rows } = plan.passes;
  const midLength = 3 * crop * rows;
  let mid: Float64Array;
  if (midLength <= scratch.length) mid = scratch;
  else {
    mid = new Float64Array(midLength);
    if (midLength <= SCRATCH_KEPT) scratch = mid;
  }
  // Width first, two rows at a time: each weight is loaded once for six sums (the sums themselves are per value).
  {
    const { index, weight, stride, count, fusedFrom } = horizontal;
    const rowBytes = 3 * width;
    const midRow = 3 * crop;
    let r = 0;
    for (; r + 1 < rows; r += 2) {
      const row = (rowFirst + r) * rowBytes;
      let d = midRow * r;
      for (let x = 0, base = 0; x < crop; x++, base += stride, d += 3) {
        let p = row + 3 * index[base]!;
        let q = p + rowBytes;
        let w = weight[base]!;
        let r0 = f32(TO_TENSOR[data[p]!]! * w);
        let g0 = f32(TO_TENSOR[data[p + 1]!]! * w);
        let b0 = f32(TO_TENSOR[data[p + 2]!]! * w);
        let r1 = f32(TO_TENSOR[data[q]!]! * w);
        let g1 = f32(TO_TENSOR[data[q + 1]!]! * w);
        let b1 = f32(TO_TENSOR[data[q + 2]!]! * w);
        const fused = base + fusedFrom[x]!;
        const end = base + count[x]!;
        for (let k = base + 1; k < fused; k++) {
          p = row + 3 * index[k]!;
          q = p + rowBytes;
          w = weight[k]!;
          r0 = f32(r0 + f32(TO_TENSOR[data[p]!]! * w));
          g0 = f32(g0 + f32(TO_TENSOR[data[p + 1]!]! * w));
          b0 = f32(b0 + f32(TO_TENSOR[data[p + 2]!]! * w));
          r1 = f32(r1 + f32(TO_TENSOR[data[q]!]! * w));
          g1 = f32(g1 + f32(TO_TENSOR[data[q + 1]!]! * w));
          b1 = f32(b1 + f32(TO_TENSOR[data[q + 2]!]! * w));
        }
        for (let k = fused; k < end; k++) {
          p = row + 3 * index[k]!;
          q = p + rowBytes;
          w = weight[k]!;
          r0 = f32(TO_TENSOR[data[p]!]! * w + r0);
          g0 = f32(TO_TENSOR[data[p + 1]!]! * w + g0);
          b0 = f32(TO_TENSOR[data[p + 2]!]! * w + b0);
          r1 = f32(TO_TENSOR[data[q]!]! * w + r1);
          g1 = f32(TO_TENSOR[data[q + 1]!]! * w + g1);
          b1 = f32(TO_TENSOR[data[q + 2]!]! * w + b1);
        }
        mid[d] = r0;
        mid[d + 1] = g0;
        mid[d + 2] = b0;
        mid[d + midRow] = r1;
        mid[d + midRow + 1] = g1;
        mid[d + midRow + 2] = b1;
      }
    }
    for (; r < rows; r++) {
      const row = (rowFirst + r) * rowBytes;
      let d = midRow * r;
      for (let x = 0, base = 0; x < crop; x++, base += stride, d += 3) {
        let p = row + 3 * index[base]!;
        let w = weight[base]!;
        let red = f32(TO_TENSOR[data[p]!]! * w);
        let green = f32(TO_TENSOR[data[p + 1]!]! * w);
        let blue = f32(TO_TENSOR[data[p + 2]!]! * w);
        const fused = base + fusedFrom[x]!;
        const end = base + count[x]!;
        for (let k = base + 1; k < fused; k++) {
          p = row + 3 * index[k]!;
          w = weight[k]!;
          red = f32(red + f32(TO_TENSOR[data[p]!]! * w));
          green = f32(green + f32(TO_TENSOR[data[p + 1]!]! * w));
          blue = f32(blue + f32(TO_TENSOR[data[p + 2]!]! * w));
        }
        for (let k = fused; k < end; k++) {
          p = row + 3 * index[k]!;
          w = weight[k]!;
          red = f32(TO_TENSOR[data[p]!]! * w + red);
          green = f32(TO_TENSOR[data[p + 1]!]! * w + green);
          blue = f32(TO_TENSOR[data[p + 2]!]! * w + blue);
        }
        mid[d] = red;
        mid[d + 1] = green;
        mid[d + 2] = blue;
      }
    }
  }
  {
    const { index, weight, stride, count, fusedFrom } = vertical;
    const rowValues = 3 * crop;
    for (let y = 0, base = 0; y < crop; y++, base += stride) {
      const fused = base + fusedFrom[y]!;
      const end = base + count[y]!;
      for (let x = 0; x < crop; x++) {
        const col = 3 * x;
        let p = index[base]! * rowValues + col;
        let w = weight[base]!;
        let red = f32(mid[p]! * w);
        let green = f32(mid[p + 1]! * w);
        let blue = f32(mid[p + 2]! * w);
        for (let k = base + 1; k < fused; k++) {
          p = index[k]! * rowValues + col;
          w = weight[k]!;
          red = f32(red + f32(mid[p]! * w));
          green = f32(green + f32(mid[p + 1]! * w));
          blue = f32(blue + f32(mid[p + 2]! * w));
        }
        for (let k = fused; k < end; k++) {
          p = index[k]! * rowValues + col;
          w = weight[k]!;
          red = f32(mid[p]! * w + red);
          green = f32(mid[p + 1]! * w + green);
          blue = f32(mid[p + 2]! * w + blue);
        }
        const o = offset + y * crop + x;
        out[o] = f32(f32(red - m[0]!) / s[0]!);
        out[o + plane] = f32(f32(green - m[1]!) / s[1]!);
        out[o + 2 * plane] = f32(f32(blue - m[2]!) / s[2]!);
      }
    }
  }
}
