// PIL's two bicubic passes (horizontal, then vertical, 8-bit in between) in WebAssembly SIMD: wasm/resample.wat, built
// by scripts/build-wasm.sh into wasm/resample.wasm. The integer arithmetic is PIL's (22-bit fixed-point weights, sums
// from 2^21, clip8), so the bytes are the JavaScript loops' bytes; a vector instruction does 4 (horizontal: the three
// channels of a pixel) or 16 (vertical: 16 bytes of a row) multiply-adds.
//
// The module's memory holds one call's buffers at a time (each thread has its own instance): the source pixels, the
// intermediate rows, the output and the taps, each followed by 16 bytes of slack for the vector loads and stores.
import { instantiateWasm } from '../io/wasm-module.ts';

export interface HorizontalTaps {
  byteStart: Int32Array;
  count: Int32Array;
  weights: Int32Array;
  stride: number;
}

export interface VerticalTaps extends HorizontalTaps {
  rowBytes: number;
}

interface Kernels {
  memory: WebAssembly.Memory;
  horizontal(
    src: number,
    rowBytes: number,
    rowFirst: number,
    rows: number,
    mid: number,
    outW: number,
    starts: number,
    counts: number,
    weights: number,
    stride: number,
  ): void;
  vertical(
    src: number,
    out: number,
    rowOut: number,
    outH: number,
    starts: number,
    counts: number,
    weights: number,
    stride: number,
    rowBytes: number,
  ): void;
}

const SLACK = 16;
const PAGE = 65536;

let kernels: Kernels | null = null;

function load(): Kernels {
  kernels ??= instantiateWasm<Kernels>(new URL('./wasm/resample.wasm', import.meta.url));
  return kernels;
}

/** Hands out 16-byte-aligned regions of the module's memory, growing it when one call needs more. */
class Regions {
  private end = 0;
  constructor(private readonly k: Kernels) {}

  take(bytes: number): number {
    const at = this.end;
    this.end = Math.ceil((at + bytes + SLACK) / 16) * 16;
    const have = this.k.memory.buffer.byteLength;
    if (this.end > have) this.k.memory.grow(Math.ceil((this.end - have) / PAGE));
    return at;
  }

  /** Copies `array` in and returns its address. */
  put(array: Uint8Array | Int32Array): number {
    const at = this.take(array.byteLength);
    new Uint8Array(this.k.memory.buffer, at, array.byteLength).set(new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
    return at;
  }
}

/**
 * The window of `data` (rows from `rowFirst`, `rows` of them when there is a horizontal pass) resampled to
 * outW × outH: the horizontal pass when `horizontal` is given, then the vertical when `vertical` is. Without a
 * horizontal pass the vertical one reads `data` from byte `sourceBase`.
 */
export function resampleSimd(
  data: Uint8Array,
  rowBytes: number,
  rowFirst: number,
  rows: number,
  sourceBase: number,
  outW: number,
  outH: number,
  horizontal: HorizontalTaps | null,
  vertical: VerticalTaps | null,
): Uint8Array {
  const k = load();
  const regions = new Regions(k);
  const src = regions.put(data);
  let source = src + sourceBase;
  const outBytes = 3 * outW * outH;
  let result = 0;
  if (horizontal) {
    const mid = regions.take(3 * outW * rows);
    const starts = regions.put(horizontal.byteStart);
    const counts = regions.put(horizontal.count);
    const weights = regions.put(horizontal.weights);
    k.horizontal(src, rowBytes, rowFirst, rows, mid, outW, starts, counts, weights, horizontal.stride);
    source = mid;
    result = mid;
  }
  if (vertical) {
    const out = regions.take(outBytes);
    const starts = regions.put(vertical.byteStart);
    const counts = regions.put(vertical.count);
    const weights = regions.put(vertical.weights);
    k.vertical(source, out, 3 * outW, outH, starts, counts, weights, vertical.stride, vertical.rowBytes);
    result = out;
  }
  return new Uint8Array(k.memory.buffer, result, outBytes).slice();
}
