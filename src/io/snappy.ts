// Snappy compression for the Parquet writer: the same algorithm, and so the same bytes, as the writer's built-in
// compressor (a port of the reference implementation's fast path: 14-bit hash table, skip heuristic, 64-byte copies),
// written straight into one preallocated buffer. The built-in one appends byte by byte through a growable writer and
// a subarray per literal, which made it ≈ 15 % of a consensus run's CPU. Any change here must keep the output byte
// for byte the same (test/io/snappy.test.ts compares the two on every kind of input); the file bytes depend on it.

const MAX_HASH_TABLE_BITS = 14;
const MAX_OFFSET = 0xffff;
const INPUT_MARGIN = 15;
const hashTables: Array<Uint32Array | undefined> = [];

/** The largest output for `length` input bytes: the varint, literal tags, and the bytes themselves. */
function maxCompressedLength(length: number): number {
  return 32 + length + Math.ceil(length / 6);
}

const load32 = (a: Uint8Array, p: number): number => a[p]! | (a[p + 1]! << 8) | (a[p + 2]! << 16) | (a[p + 3]! << 24);

export function snappyCompress(input: Uint8Array): Uint8Array {
  const out = new Uint8Array(maxCompressedLength(input.length));
  let op = 0;
  for (let value = input.length; ; value >>>= 7) {
    if ((value & ~0x7f) === 0) {
      out[op++] = value;
      break;
    }
    out[op++] = (value & 0x7f) | 0x80;
  }

  const emitLiteral = (from: number, length: number): void => {
    if (length <= 60) {
      out[op++] = (length - 1) << 2;
    } else {
      const value = length - 1;
      const bytes = value < 0x100 ? 1 : value < 0x10000 ? 2 : value < 0x1000000 ? 3 : 4;
      out[op++] = (59 + bytes) << 2;
      for (let i = 0; i < bytes; i++) out[op++] = value >>> (i * 8);
    }
    if (length < 32) {
      for (let i = 0; i < length; i++) out[op + i] = input[from + i]!;
    } else {
      out.set(input.subarray(from, from + length), op);
    }
    op += length;
  };
  const emitCopyShort = (offset: number, length: number): void => {
    if (length < 12 && offset < 2048) {
      out[op++] = 1 + ((length - 4) << 2) + ((offset >>> 8) << 5);
      out[op++] = offset & 0xff;
    } else {
      out[op++] = 2 + ((length - 1) << 2);
      out[op++] = offset & 0xff;
      out[op++] = offset >>> 8;
    }
  };
  const emitCopy = (offset: number, length: number): void => {
    while (length >= 68) {
      emitCopyShort(offset, 64);
      length -= 64;
    }
    if (length > 64) {
      emitCopyShort(offset, 60);
      length -= 60;
    }
    emitCopyShort(offset, length);
  };

  const inputSize = input.length;
  let bits = 1;
  while (1 << bits <= inputSize && bits <= MAX_HASH_TABLE_BITS) bits++;
  bits--;
  const shift = 32 - bits;
  let table = hashTables[bits];
  if (table === undefined) {
    table = new Uint32Array(1 << bits);
    hashTables[bits] = table;
  } else {
    table.fill(0);
  }
  const hash = (key: number): number => Math.imul(key, 0x1e35a7bd) >>> shift;

  let nextEmit = 0;
  if (inputSize >= INPUT_MARGIN) {
    const ipLimit = inputSize - INPUT_MARGIN;
    let ip = 1;
    let nextHash = hash(load32(input, ip));
    outer: for (;;) {
      let skip = 32;
      let nextIp = ip;
      let candidate = 0;
      for (;;) {
        ip = nextIp;
        const h = nextHash;
        const step = skip >>> 5;
        skip++;
        nextIp = ip + step;
        if (ip > ipLimit) break outer;
        nextHash = hash(load32(input, nextIp));
        candidate = table[h]!;
        table[h] = ip;
        if (ip - candidate <= MAX_OFFSET && load32(input, ip) === load32(input, candidate)) break;
      }
      emitLiteral(nextEmit, ip - nextEmit);
      for (;;) {
        const base = ip;
        let matched = 4;
        while (ip + matched < inputSize && input[ip + matched] === input[candidate + matched]) matched++;
        ip += matched;
        emitCopy(base - candidate, matched);
        nextEmit = ip;
        if (ip >= ipLimit) break outer;
        table[hash(load32(input, ip - 1))] = ip - 1;
        const h = hash(load32(input, ip));
        candidate = table[h]!;
        table[h] = ip;
        if (!(ip - candidate <= MAX_OFFSET && load32(input, ip) === load32(input, candidate))) break;
      }
      ip++;
      nextHash = hash(load32(input, ip));
    }
  }
  if (nextEmit < inputSize) emitLiteral(nextEmit, inputSize - nextEmit);
  return out.subarray(0, op);
}
