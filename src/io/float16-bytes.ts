// The byte layout of the cached latents and text states: IEEE half precision, little endian, whatever the host's
// byte order. The value conversion is src/onnx/float16.ts's; this adds the byte codec, and a 65 536-entry table for
// decoding, because the loader decodes every latent and text state of every batch.
import { fromFloat16Bits, toFloat16Bits } from './float16.ts';
import { InputError } from '../core/errors.ts';

/** float16 little-endian bytes of `values` (round half to even; beyond ±65504 → ±Infinity). */
export function encodeFloat16(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  for (let i = 0; i < values.length; i++) {
    const h = toFloat16Bits(values[i] as number);
    out[2 * i] = h & 0xff;
    out[2 * i + 1] = h >>> 8;
  }
  return out;
}

let table: Float32Array | undefined;

function decodeTable(): Float32Array {
  if (!table) {
    table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) table[h] = fromFloat16Bits(h);
  }
  return table;
}

/** Decodes float16 little-endian bytes into `out` at `offset` (a new array when `out` is omitted). */
export function decodeFloat16(bytes: Uint8Array, out?: Float32Array, offset = 0): Float32Array {
  if (bytes.length % 2 !== 0) throw new RangeError(`float16 data must have an even number of bytes, got ${bytes.length}`);
  const n = bytes.length / 2;
  const target = out ?? new Float32Array(n);
  if (offset < 0 || offset + n > target.length) {
    throw new RangeError(`cannot decode ${n} float16 values at ${offset} into ${target.length}`);
  }
  const t = decodeTable();
  for (let i = 0; i < n; i++) target[offset + i] = t[bytes[2 * i]! | (bytes[2 * i + 1]! << 8)]!;
  return target;
}

/** "4x8x8" → [4, 8, 8]; throws on anything but positive integers joined by "x". */
export function parseShape(text: string): number[] {
  const dims = text.split('x').map(Number);
  if (text.length === 0 || dims.some((d) => !Number.isInteger(d) || d < 1)) throw new InputError(`bad tensor shape "${text}"`);
  return dims;
}

export function formatShape(dims: readonly number[]): string {
  return dims.join('x');
}
