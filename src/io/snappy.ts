// Snappy compression for the Parquet writer: the same algorithm, and so the same bytes, as the writer's built-in
// compressor (the reference implementation's fast path: a hash table of up to 2^14 positions, the skip heuristic,
// copies of at most 64 bytes), in WebAssembly (wasm/snappy.wat, built by scripts/build-wasm.sh into snappy.wasm).
// The built-in one appends byte by byte through a growable writer, which made it ≈ 20 % of a consensus run's CPU.
// Any change here must keep the output byte for byte the writer's (test/io/snappy.test.ts compares the two on every
// kind of input): the files' bytes, and the hashes recorded of them, depend on it.
import { instantiateWasm } from './wasm-module.ts';

interface Kernel {
  memory: WebAssembly.Memory;
  compress(input: number, length: number, output: number): number;
}

const TABLE_BYTES = 1 << 16;
const SLACK = 16;
const PAGE = 65536;

let kernel: Kernel | null = null;

function load(): Kernel {
  kernel ??= instantiateWasm<Kernel>(new URL('./wasm/snappy.wasm', import.meta.url));
  return kernel;
}

/** The largest output for `length` input bytes: the varint, the literal tags, and the bytes themselves. */
function maxCompressedLength(length: number): number {
  return 32 + length + Math.ceil(length / 6);
}

export function snappyCompress(input: Uint8Array): Uint8Array {
  return snappyCompressView(input).slice();
}

/** The compressed bytes as a view of the module's memory: valid until the next call (for a caller that copies them at once). */
export function snappyCompressView(input: Uint8Array): Uint8Array {
  const { memory, compress } = load();
  const inputAt = TABLE_BYTES;
  const outputAt = inputAt + input.length + SLACK;
  const needed = outputAt + maxCompressedLength(input.length);
  if (needed > memory.buffer.byteLength) memory.grow(Math.ceil((needed - memory.buffer.byteLength) / PAGE));
  new Uint8Array(memory.buffer, inputAt, input.length).set(input);
  const length = compress(inputAt, input.length, outputAt);
  return new Uint8Array(memory.buffer, outputAt, length);
}
