// CLIP image preprocessing, matching Hugging Face's CLIPImageProcessor (PIL path) pixel for pixel: the hf-clip
// profile. The other profiles (preprocess-profiles.ts) reuse its decoder and resampler: openai-clip below (PIL's
// resize in the image's own mode, torchvision's rounded crop), hpsv2 / hpsv2-legacy in preprocess-float.ts.
//
// sharp decodes; the geometry and resampling are ours. sharp's `kernel: 'cubic'` with `fit: 'cover'` lands within
// ≈ 0.2/255 of PIL when shrinking, but it rounds the resized size and the crop offset its own way (one-pixel shifts:
// mean errors of 4–7/255 on some aspect ratios), and when enlarging it ignores the kernel (mean error 4/255 on a
// photo, 36/255 on noise). So sharp only decodes to 8-bit RGB, and the resize is a port of PIL's bicubic
// resampler (separable, Catmull-Rom a = −0.5, support widened by the shrink factor, 22-bit fixed point), evaluated
// only for the output pixels the centre crop keeps, in WebAssembly SIMD (resample-simd.ts). The result equals PIL's
// bit for bit wherever the decoders agree. For a 512² JPEG the resize, crop and normalisation cost ≈ 2 ms of CPU,
// about half the decode (bench/label.ts --preprocess).
//
// What CLIPImageProcessor does, and so do we:
// - `convert('RGB')`: alpha is dropped, not composited; greyscale is replicated; palette images use their palette;
//   CMYK uses PIL's naive formula (no colour management). Embedded ICC profiles are ignored, and so is the EXIF
//   orientation (HF does not rotate).
// - Resize so the short side is `size`: long side = trunc(size · long / short); no resize if the short side
//   already equals `size`.
// - Centre crop: top = floor((h − crop) / 2), left = floor((w − crop) / 2) (HF's `//`; torchvision rounds instead).
// - Rescale by 1/255 and normalise with float32 arithmetic, CHW.
// Known divergence: 16-bit greyscale PNGs (PIL's mode "I") — PIL clips values above 255, libvips scales by 1/256.
import sharp, { type OutputInfo } from 'sharp';
import type { RejectReason } from '../core/schema.ts';
import { DEFAULT_MAX_PIXELS, HEADER_UNREADABLE, PIXELS_UNREADABLE } from './image-check.ts';
import { BdpoError } from '../core/errors.ts';
import { resampleSimd } from './resample-simd.ts';
import { PREPROCESS_PROFILES, type PreprocessProfile } from './preprocess-profiles.ts';
import { resizeCropNormaliseFloat } from './preprocess-float.ts';
import { PlanCache, roundHalfEven, shortestEdgeSize } from './geometry.ts';

// libvips threads per image; the label stage overlaps several images instead.
sharp.concurrency(1);

export type Rgb = readonly [number, number, number];

export const CLIP_IMAGE_SIZE = 224;
export const CLIP_MEAN: Rgb = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: Rgb = [0.26862954, 0.26130258, 0.27577711];

export interface PreprocessOptions {
  /** Whose preprocessing to reproduce (preprocess-profiles.ts); default hf-clip. */
  profile?: PreprocessProfile;
  /** Short side after the resize (224; 336 for the @336px models). */
  size?: number;
  /** Side of the centre crop; defaults to `size`. */
  cropSize?: number;
  mean?: Rgb;
  std?: Rgb;
  /** Images with more pixels (from the header) are refused before decoding. */
  maxPixels?: number;
}

export type ImageDecodeReason = Extract<RejectReason, 'bad_image' | 'empty_image' | 'too_many_pixels'>;

/** An image that cannot be preprocessed; `reason` is the reject code to record. */
export class ImageDecodeError extends BdpoError {
  readonly reason: ImageDecodeReason;

  constructor(reason: ImageDecodeReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ImageDecodeError';
    this.reason = reason;
  }
}

/** 8-bit RGB pixels, row-major HWC. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** 8-bit pixels as stored, before any conversion to RGB: what the profiles that resize first work on. */
export interface DecodedImage {
  data: Uint8Array;
  width: number;
  height: number;
  /** 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA, or CMYK ink values). */
  channels: number;
  cmyk: boolean;
  /** A palette image (PIL's mode P): PIL resizes it NEAREST. Its pixels are the palette colours. */
  palette: boolean;
}

/** Decodes to the stored 8-bit channels; CMYK ink values are kept as they are, for PIL's own conversion. */
export async function decodeImage(bytes: Uint8Array, maxPixels: number = DEFAULT_MAX_PIXELS): Promise<DecodedImage> {
  if (bytes.byteLength === 0) throw new ImageDecodeError('empty_image', 'no image bytes');
  let space: string | undefined;
  let width: number | undefined;
  let height: number | undefined;
  let isPalette: boolean | undefined;
  try {
    ({ space, width, height, isPalette } = await sharp(bytes, { limitInputPixels: false }).metadata());
  } catch (error) {
    throw new ImageDecodeError('bad_image', HEADER_UNREADABLE, { cause: error });
  }
  if (!width || !height) throw new ImageDecodeError('bad_image', 'no dimensions in the image header');
  if (width * height > maxPixels) {
    throw new ImageDecodeError('too_many_pixels', `${width}×${height} is more than ${maxPixels} pixels`);
  }
  const cmyk = space === 'cmyk';
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    const input = sharp(bytes, { failOn: 'truncated', limitInputPixels: maxPixels, ignoreIcc: true });
    // For CMYK, ask for the stored ink values untouched and convert them below as PIL does.
    const pipeline = cmyk ? input.pipelineColourspace('cmyk').toColourspace('cmyk') : input.toColourspace('srgb');
    decoded = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw new ImageDecodeError('bad_image', PIXELS_UNREADABLE, { cause: error });
  }
  const { data, info } = decoded;
  const channels = info.channels;
  if (data.length !== info.width * info.height * channels) {
    throw new ImageDecodeError('bad_image', `unexpected pixel layout (${channels} channels)`);
  }
  if (channels < 1 || channels > 4 || (cmyk && channels !== 4)) {
    throw new ImageDecodeError('bad_image', cmyk ? `CMYK image with ${channels} channels` : `unsupported channel count ${channels}`);
  }
  return { data, width: info.width, height: info.height, channels, cmyk, palette: isPalette === true };
}

/** Decodes to 8-bit RGB as PIL's `Image.open(...).convert('RGB')` does. */
export async function decodeRgb(bytes: Uint8Array, maxPixels: number = DEFAULT_MAX_PIXELS): Promise<RgbImage> {
  return toRgbImage(await decodeImage(bytes, maxPixels));
}

function toRgbImage(image: DecodedImage): RgbImage {
  return { data: toRgb(image.data, image.width * image.height, image.channels, image.cmyk), width: image.width, height: image.height };
}

function toRgb(data: Uint8Array, n: number, channels: number, cmyk: boolean): Uint8Array {
  if (channels === 3 && !cmyk) return data;
  const rgb = new Uint8Array(n * 3);
  if (cmyk) {
    if (channels < 4) throw new ImageDecodeError('bad_image', `CMYK image with ${channels} channels`);
    for (let i = 0, j = 0; i < n * channels; i += channels, j += 3) {
      // PIL's cmyk2rgb: (255 − K) − C·(255 − K)/255 with its rounded integer division by 255.
      const nk = 255 - data[i + 3]!;
      rgb[j] = clip255(nk - muldiv255(data[i]!, nk));
      rgb[j + 1] = clip255(nk - muldiv255(data[i + 1]!, nk));
      rgb[j + 2] = clip255(nk - muldiv255(data[i + 2]!, nk));
    }
    return rgb;
  }
  if (channels === 1 || channels === 2) {
    for (let i = 0, j = 0; i < n * channels; i += channels, j += 3) rgb[j] = rgb[j + 1] = rgb[j + 2] = data[i]!;
    return rgb;
  }
  if (channels !== 4) throw new ImageDecodeError('bad_image', `unsupported channel count ${channels}`);
  for (let i = 0, j = 0; i < n * 4; i += 4, j += 3) {
    rgb[j] = data[i]!;
    rgb[j + 1] = data[i + 1]!;
    rgb[j + 2] = data[i + 2]!;
  }
  return rgb;
}

function muldiv255(a: number, b: number): number {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

function clip255(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

export { shortestEdgeSize };

/**
 * Resize the short side to `size` (PIL bicubic) and take the centre `crop`×`crop`, as 8-bit RGB HWC. The crop offset
 * is floored as HF does, or rounded half to even as torchvision's CenterCrop does.
 */
export function resizeAndCrop(image: RgbImage, size: number, crop: number, offset: CropOffset = 'floor'): Uint8Array {
  return resample(image, resamplePlan(image.width, image.height, size, crop, offset));
}

export type CropOffset = 'floor' | 'round';

/** The centre crop's first column or row: HF floors (h − crop) / 2, torchvision rounds it (Python's round). */
export function cropOffset(resized: number, crop: number, offset: CropOffset): number {
  return offset === 'floor' ? Math.floor((resized - crop) / 2) : roundHalfEven((resized - crop) / 2);
}

// ---- PIL's bicubic resampler (Resample.c), restricted to an output window -------------------------------------

const PRECISION_BITS = 32 - 8 - 2;

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
  const one = 1 << PRECISION_BITS;
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
      weights[i * stride + x] = k < 0 ? Math.trunc(-0.5 + k * one) : Math.trunc(0.5 + k * one);
    }
    start[i] = xmin;
    count[i] = xmax;
  }
  return { start, count, weights, stride };
}

/**
 * Everything about one (input size, size, crop) geometry that does not depend on the pixels: the taps of both
 * passes and the byte offsets the loops read from. A dataset has few distinct geometries, and computing the taps
 * (a bicubic and a division per weight) costs about as much as the vertical pass itself.
 */
interface ResamplePlan {
  width: number;
  height: number;
  outW: number;
  outH: number;
  /** Byte offset of the window's first pixel in the source the vertical pass reads (or that is copied). */
  left: number;
  /** First input row the output depends on, and how many rows. */
  rowFirst: number;
  rows: number;
  /** Horizontal taps (start as byte offsets within a row), or null when the width does not change. */
  horizontal: { byteStart: Int32Array; count: Int32Array; weights: Int32Array; stride: number } | null;
  /** Vertical taps (start as byte offsets of a row in the source), or null when the height does not change. */
  vertical: { byteStart: Int32Array; count: Int32Array; weights: Int32Array; stride: number; rowBytes: number } | null;
}

/** Resample plans kept, most recently used last; a Map iterates in insertion order, which makes it an LRU. */
export const RESAMPLE_PLAN_CACHE_SIZE = 64;
const planCache = new PlanCache<ResamplePlan>(RESAMPLE_PLAN_CACHE_SIZE);

/** Number of geometries whose taps are cached (at most RESAMPLE_PLAN_CACHE_SIZE). */
export function resamplePlanCacheEntries(): number {
  return planCache.size;
}

/** Forgets every cached geometry, so that the next call computes its taps cold. */
export function clearResamplePlanCache(): void {
  planCache.clear();
}

function resamplePlan(width: number, height: number, size: number, crop: number, offset: CropOffset): ResamplePlan {
  return planCache.get(`${width}x${height}/${size}/${crop}/${offset}`, () => makePlan(width, height, size, crop, offset));
}

/**
 * PIL's two passes (horizontal, then vertical, 8-bit in between) over the window [left, left+crop) × [top, top+crop)
 * of the image resized to the shortest-edge size; a pass is skipped when that dimension does not change, as in PIL.
 */
function makePlan(width: number, height: number, size: number, crop: number, offset: CropOffset): ResamplePlan {
  const resized = shortestEdgeSize(width, height, size);
  if (resized.width < crop || resized.height < crop) {
    throw new RangeError(`crop ${crop} is larger than the resized image ${resized.width}×${resized.height}`);
  }
  const left = cropOffset(resized.width, crop, offset);
  const top = cropOffset(resized.height, crop, offset);
  const outW = crop;
  const outH = crop;
  const vt = resized.height !== height ? taps(height, resized.height, top, outH) : null;
  const rowFirst = vt ? vt.start[0]! : top;
  const rowEnd = vt ? vt.start[outH - 1]! + vt.count[outH - 1]! : top + outH;
  let horizontal: ResamplePlan['horizontal'] = null;
  if (resized.width !== width) {
    const ht = taps(width, resized.width, left, outW);
    horizontal = { byteStart: ht.start.map((x) => 3 * x), count: ht.count, weights: ht.weights, stride: ht.stride };
  }
  let vertical: ResamplePlan['vertical'] = null;
  if (vt) {
    // Without a horizontal pass the vertical one reads the decoded image in place, whole rows apart.
    const rowBytes = horizontal ? 3 * outW : 3 * width;
    const byteStart = vt.start.map((y) => (y - rowFirst) * rowBytes);
    vertical = { byteStart, count: vt.count, weights: vt.weights, stride: vt.stride, rowBytes };
  }
  return { width, height, outW, outH, left: 3 * left, rowFirst, rows: rowEnd - rowFirst, horizontal, vertical };
}

// Sums stay inside int32, as in PIL's C: 2^21 + 255 · (positive weights ≤ ~1.15 · 2^22) < 2^31. The passes run in
// WebAssembly SIMD (resample-simd.ts), with PIL's integer arithmetic and clip8.
function resample(image: RgbImage, plan: ResamplePlan): Uint8Array {
  const { data, width, height } = image;
  if (width !== plan.width || height !== plan.height) throw new RangeError('resample plan of another geometry');
  const { outW, outH, rowFirst, rows, horizontal, vertical } = plan;
  if (!horizontal && !vertical) {
    const out = new Uint8Array(3 * outW * outH);
    for (let y = 0; y < outH; y++) {
      const src = (rowFirst + y) * width * 3 + plan.left;
      out.set(data.subarray(src, src + 3 * outW), 3 * outW * y);
    }
    return out;
  }
  return resampleSimd(data, width * 3, rowFirst, rows, rowFirst * width * 3 + plan.left, outW, outH, horizontal, vertical);
}

// ---- openai-clip: torchvision's Resize and CenterCrop on the PIL image in its own mode, convert('RGB') last -------

/**
 * OpenAI's clip.load transform (and open_clip's standard one) resizes before converting to RGB, so PIL resizes the
 * image in its stored mode: a palette image NEAREST, RGBA and LA premultiplied by alpha (RGBa / La) and back, CMYK
 * ink values before PIL's naive CMYK → RGB. Greyscale and RGB resize as in hf-clip, channel by channel. The crop
 * offset is rounded as torchvision's CenterCrop does. Returns the 8-bit RGB crop, HWC.
 */
export function openaiClipPixels(image: DecodedImage, size: number, crop: number): Uint8Array {
  const { width, height, channels } = image;
  const resized = shortestEdgeSize(width, height, size);
  if (resized.width === width && resized.height === height) {
    // torchvision returns the image unchanged: the crop, then convert('RGB').
    return resizeAndCrop(toRgbImage(image), size, crop, 'round');
  }
  if (image.palette) return nearestCrop(toRgbImage(image), resized.width, resized.height, crop);
  const alpha = !image.cmyk && (channels === 2 || channels === 4);
  if (!image.cmyk && !alpha) return resizeAndCrop(toRgbImage(image), size, crop, 'round');
  // Four bands resized independently, as two three-band images: the colour (premultiplied, or C M Y) and the fourth.
  const n = width * height;
  const colour = new Uint8Array(3 * n);
  const fourth = new Uint8Array(3 * n);
  const d = image.data;
  for (let i = 0, p = 0, q = 0; i < n; i++, p += channels, q += 3) {
    const last = d[p + channels - 1]!;
    fourth[q] = fourth[q + 1] = fourth[q + 2] = last;
    if (image.cmyk) {
      colour[q] = d[p]!;
      colour[q + 1] = d[p + 1]!;
      colour[q + 2] = d[p + 2]!;
    } else if (channels === 2) {
      // PIL's LA → La: the grey premultiplied, rounded as MULDIV255.
      colour[q] = colour[q + 1] = colour[q + 2] = muldiv255(d[p]!, last);
    } else {
      colour[q] = muldiv255(d[p]!, last);
      colour[q + 1] = muldiv255(d[p + 1]!, last);
      colour[q + 2] = muldiv255(d[p + 2]!, last);
    }
  }
  const c = resizeAndCrop({ data: colour, width, height }, size, crop, 'round');
  const f = resizeAndCrop({ data: fourth, width, height }, size, crop, 'round');
  const m = crop * crop;
  if (image.cmyk) {
    const cmyk = new Uint8Array(4 * m);
    for (let i = 0; i < m; i++) {
      cmyk[4 * i] = c[3 * i]!;
      cmyk[4 * i + 1] = c[3 * i + 1]!;
      cmyk[4 * i + 2] = c[3 * i + 2]!;
      cmyk[4 * i + 3] = f[3 * i]!;
    }
    return toRgb(cmyk, m, 4, true);
  }
  // PIL's RGBa → RGBA (and La → LA): divide back by alpha, truncating; alpha 0 and 255 keep the stored value.
  const out = new Uint8Array(3 * m);
  for (let i = 0; i < 3 * m; i++) {
    const a = f[i]!;
    const v = c[i]!;
    out[i] = a === 0 || a === 255 ? v : clip255(Math.floor((255 * v) / a));
  }
  return out;
}

/**
 * PIL's NEAREST resize (ImagingScaleAffine: the source coordinate advances by in/out from in/out / 2, in double, and
 * is truncated) restricted to the centre crop, whose offset torchvision rounds.
 */
function nearestCrop(image: RgbImage, outW: number, outH: number, crop: number): Uint8Array {
  const { data, width, height } = image;
  const left = cropOffset(outW, crop, 'round');
  const top = cropOffset(outH, crop, 'round');
  const columns = nearestIndices(width, outW, left, crop);
  const rows = nearestIndices(height, outH, top, crop);
  const out = new Uint8Array(3 * crop * crop);
  for (let y = 0, d = 0; y < crop; y++) {
    const row = 3 * rows[y]! * width;
    for (let x = 0; x < crop; x++, d += 3) {
      const p = row + 3 * columns[x]!;
      out[d] = data[p]!;
      out[d + 1] = data[p + 1]!;
      out[d + 2] = data[p + 2]!;
    }
  }
  return out;
}

function nearestIndices(inSize: number, outSize: number, first: number, n: number): Int32Array {
  const step = inSize / outSize;
  const indices = new Int32Array(n);
  // Summed from the first output, as PIL does: the rounding of the running sum is part of the result.
  let position = step * 0.5;
  for (let x = 0; x < first + n; x++, position += step) {
    if (x >= first) indices[x - first] = Math.min(Math.trunc(position), inSize - 1);
  }
  return indices;
}

// ---- rescale + normalise ---------------------------------------------------------------------------------------

/**
 * Per channel, the float32 value of each 8-bit level, computed as CLIPImageProcessor does:
 * float32(v · (1/255)), then float32 subtraction of the mean and float32 division by the std.
 */
export function normalisationTable(mean: Rgb = CLIP_MEAN, std: Rgb = CLIP_STD): Float32Array {
  const table = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const m = Math.fround(mean[c]!);
    const s = Math.fround(std[c]!);
    for (let v = 0; v < 256; v++) {
      table[c * 256 + v] = Math.fround(Math.fround(Math.fround(v * (1 / 255)) - m) / s);
    }
  }
  return table;
}

/** HWC 8-bit RGB → normalised CHW float32, written at `offset` of `out`. */
export function normaliseInto(pixels: Uint8Array, out: Float32Array, offset: number, table: Float32Array): void {
  const plane = pixels.length / 3;
  if (offset < 0 || offset + 3 * plane > out.length) {
    throw new RangeError(`target holds ${out.length} values; cannot write ${3 * plane} at ${offset}`);
  }
  for (let i = 0, p = 0; i < plane; i++, p += 3) {
    out[offset + i] = table[pixels[p]!]!;
    out[offset + plane + i] = table[256 + pixels[p + 1]!]!;
    out[offset + 2 * plane + i] = table[512 + pixels[p + 2]!]!;
  }
}

// ---- public entry points ---------------------------------------------------------------------------------------

interface Resolved {
  profile: PreprocessProfile;
  size: number;
  crop: number;
  mean: Rgb;
  std: Rgb;
  table: Float32Array;
  maxPixels: number;
}

const defaultTable = normalisationTable();

function resolve(options: PreprocessOptions): Resolved {
  const size = options.size ?? CLIP_IMAGE_SIZE;
  const crop = options.cropSize ?? size;
  if (!Number.isInteger(size) || size < 1 || !Number.isInteger(crop) || crop < 1 || crop > size) {
    throw new RangeError(`preprocess: size ${size} and crop ${crop} must be positive integers with crop ≤ size`);
  }
  const profile = options.profile ?? 'hf-clip';
  if (!PREPROCESS_PROFILES.includes(profile)) {
    throw new RangeError(`preprocess: unknown profile ${JSON.stringify(profile)} (${PREPROCESS_PROFILES.join(', ')})`);
  }
  const mean = options.mean ?? CLIP_MEAN;
  const std = options.std ?? CLIP_STD;
  const table = options.mean || options.std ? normalisationTable(mean, std) : defaultTable;
  return { profile, size, crop, mean, std, table, maxPixels: options.maxPixels ?? DEFAULT_MAX_PIXELS };
}

/** Values per image: 3 × crop × crop. */
export function pixelValuesLength(options: PreprocessOptions = {}): number {
  const { crop } = resolve(options);
  return 3 * crop * crop;
}

/**
 * The centre-cropped 8-bit RGB (HWC) that the model's tensor is made from, for the 8-bit profiles (hf-clip,
 * openai-clip); the hpsv2 profiles resize float values and have no such pixels.
 */
export async function preprocessPixels(bytes: Uint8Array, options: PreprocessOptions = {}): Promise<Uint8Array> {
  const resolved = resolve(options);
  const image = await decodeImage(bytes, resolved.maxPixels);
  const pixels = pixels8(image, resolved);
  if (pixels === null) throw new RangeError(`preprocess: profile ${resolved.profile} resizes float values, not 8-bit pixels`);
  return pixels;
}

function pixels8(image: DecodedImage, resolved: Resolved): Uint8Array | null {
  if (resolved.profile === 'hf-clip') return resizeAndCrop(toRgbImage(image), resolved.size, resolved.crop);
  if (resolved.profile === 'openai-clip') return openaiClipPixels(image, resolved.size, resolved.crop);
  return null;
}

/** One image → Float32Array [3, crop, crop]. Throws ImageDecodeError for bytes that are not a usable image. */
export async function preprocessImage(bytes: Uint8Array, options: PreprocessOptions = {}): Promise<Float32Array> {
  const resolved = resolve(options);
  const out = new Float32Array(3 * resolved.crop * resolved.crop);
  await fill(bytes, out, 0, resolved);
  return out;
}

/**
 * Writes image `index` of a preallocated [n, 3, crop, crop] batch (e.g. an ONNX `pixel_values` buffer) in place.
 * On ImageDecodeError the slot is left untouched.
 */
export async function preprocessInto(
  bytes: Uint8Array,
  batch: Float32Array,
  index: number,
  options: PreprocessOptions = {},
): Promise<void> {
  const resolved = resolve(options);
  const per = 3 * resolved.crop * resolved.crop;
  if (!Number.isInteger(index) || index < 0 || (index + 1) * per > batch.length) {
    throw new RangeError(`preprocessInto: index ${index} is outside a batch of ${Math.floor(batch.length / per)}`);
  }
  await fill(bytes, batch, index * per, resolved);
}

async function fill(bytes: Uint8Array, out: Float32Array, offset: number, resolved: Resolved): Promise<void> {
  const image = await decodeImage(bytes, resolved.maxPixels);
  const pixels = pixels8(image, resolved);
  if (pixels !== null) {
    normaliseInto(pixels, out, offset, resolved.table);
    return;
  }
  const antialias = resolved.profile === 'hpsv2';
  resizeCropNormaliseFloat(toRgbImage(image), resolved.size, resolved.crop, antialias, resolved.mean, resolved.std, out, offset);
}
